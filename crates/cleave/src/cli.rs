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
}

/// Arguments of `cleave render`.
#[derive(Debug, clap::Args)]
pub(crate) struct RenderArgs {
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
