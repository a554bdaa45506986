//! Command-line definitions; behaviour lives in `commands/`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Build conda packages from recipe.yaml: build once, split into many packages.
#[derive(Debug, Parser)]
#[command(name = "cleave", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Render a recipe: every output, per used variant, in build order.
    Render(RenderArgs),
    /// Build every output of a recipe into a local channel.
    Build(BuildArgs),
}

/// Which recipe, for which platform and variants.
#[derive(Debug, clap::Args)]
pub(crate) struct RecipeArgs {
    /// The recipe directory, or a recipe file.
    #[arg(long, short = 'r', default_value = ".")]
    pub(crate) recipe: PathBuf,
    /// Variant config files, applied in order after `variants.yaml` next to
    /// the recipe.
    #[arg(long = "variant-config", short = 'm')]
    pub(crate) variant_config: Vec<PathBuf>,
    /// Platform to render for, e.g. linux-64 or osx-arm64 (default: this machine).
    #[arg(long)]
    pub(crate) target_platform: Option<String>,
}

/// Arguments of `cleave render`.
#[derive(Debug, clap::Args)]
pub(crate) struct RenderArgs {
    #[command(flatten)]
    pub(crate) recipe: RecipeArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    pub(crate) output: Format,
}

/// Machine-readable output formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    Yaml,
    Json,
}

/// Arguments of `cleave build`.
#[derive(Debug, clap::Args)]
pub(crate) struct BuildArgs {
    #[command(flatten)]
    pub(crate) recipe: RecipeArgs,
    /// Channels to solve from, after the output directory: a local
    /// directory, a file:// or http(s) URL, or a channel name.
    #[arg(long = "channel", short = 'c')]
    pub(crate) channels: Vec<String>,
    /// The output channel; packages land in its subdirectories.
    #[arg(long, default_value = "output")]
    pub(crate) output_dir: PathBuf,
    /// Where builds run (default: `bld/` in the output directory).
    #[arg(long)]
    pub(crate) build_dir: Option<PathBuf>,
    /// Package, repodata and source caches.
    #[arg(long, env = "CLEAVE_CACHE_DIR")]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Whether to run the packages' tests.
    #[arg(long, value_enum, default_value_t = TestArg::Native)]
    pub(crate) test: TestArg,
    /// Archive format of the packages.
    #[arg(long, value_enum, default_value_t = PackageFormatArg::Conda)]
    pub(crate) package_format: PackageFormatArg,
    /// Keep the build directories after a successful build.
    #[arg(long)]
    pub(crate) keep_build: bool,
}

/// `--test`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum TestArg {
    /// Run the tests on this machine.
    Native,
    /// Do not run them.
    Skip,
}

/// `--package-format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum PackageFormatArg {
    /// `.conda`.
    Conda,
    /// `.tar.bz2`.
    TarBz2,
}
