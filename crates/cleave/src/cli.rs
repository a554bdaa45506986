//! Command-line definitions; behaviour lives in `commands/`.

use std::path::PathBuf;

use clap::builder::ArgPredicate;
use clap::{ArgAction, Parser, Subcommand, ValueEnum};

/// Build conda packages from recipe.yaml: build once, split into many packages.
#[derive(Debug, Parser)]
#[command(name = "cleave", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
}

/// What cleave shows, for every command (before or after its name).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Global options")]
pub(crate) struct GlobalArgs {
    /// Show more: `-v` adds steps and debug logs, `-vv` traces (for a
    /// filter of your own, set CLEAVE_LOG or RUST_LOG, e.g.
    /// `cleave_cache=trace`).
    #[arg(short, long, action = ArgAction::Count, global = true, conflicts_with = "quiet")]
    pub(crate) verbose: u8,
    /// Show less: errors and the summary only (no script output, no
    /// progress).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub(crate) quiet: u8,
    /// When to use colours: `auto` colours a terminal unless NO_COLOR is
    /// set (CLICOLOR_FORCE colours anything).
    #[arg(long, value_enum, default_value_t = ColorArg::Auto, global = true)]
    pub(crate) color: ColorArg,
    /// How to show progress and logs: `fancy` (progress bars in a
    /// terminal, plain lines elsewhere), `plain`, `json` (one object per
    /// line) or `github` (groups, annotations and a step summary; the
    /// default when GITHUB_ACTIONS=true).
    #[arg(long, value_enum, global = true, env = "CLEAVE_LOG_STYLE")]
    pub(crate) log_style: Option<LogStyle>,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorArg {
    /// Colours on a terminal, unless NO_COLOR is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// `--log-style`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogStyle {
    /// Progress bars and colours in a terminal; plain lines elsewhere.
    Fancy,
    /// Plain lines, with a line every so often for a long step.
    Plain,
    /// One JSON object per line on stderr.
    Json,
    /// Plain lines in `::group::`s, errors and warnings as annotations,
    /// a summary in `$GITHUB_STEP_SUMMARY`.
    Github,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Render recipes: every output, per used variant, in build order.
    Render(RenderArgs),
    /// Build every output of one or more recipes into a local channel.
    Build(Box<BuildArgs>),
    /// Copy packages into a channel and index it, in one step: a directory,
    /// an S3-compatible bucket, or a package server (quetz, prefix.dev,
    /// anaconda.org, Artifactory).
    Publish(PublishArgs),
    /// Run the tests a package file carries (in `info/tests/`, as cleave
    /// and rattler-build write them), each in a fresh environment.
    Test(TestArgs),
    /// Inspect and maintain the cache: staging builds, packages, compiles.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Look into a failed build.
    #[command(subcommand)]
    Debug(DebugCommand),
    /// Run a C or C++ compiler through the compile cache, as ccache does:
    /// `CC="cleave cc gcc"`. Recipe builds do this for every compiler
    /// call without being asked.
    Cc(CcArgs),
}

/// Arguments of `cleave publish`.
#[derive(Debug, clap::Args)]
pub(crate) struct PublishArgs {
    /// The channel: a directory or `file://` URL,
    /// `s3://BUCKET/CHANNEL?endpoint=URL&region=R` (credentials as for S3
    /// remotes), `quetz://HOST/CHANNEL` (`quetz+http://` for plain http),
    /// `prefix://HOST/CHANNEL` or `https://prefix.dev/CHANNEL`,
    /// `https://anaconda.org/OWNER[/CHANNEL]`, `artifactory://HOST/CHANNEL`.
    /// API keys come from QUETZ_API_KEY, PREFIX_API_KEY, ANACONDA_API_KEY,
    /// ARTIFACTORY_TOKEN (or ARTIFACTORY_USERNAME and ARTIFACTORY_PASSWORD),
    /// else from rattler's authentication storage.
    #[arg(long, value_name = "URL")]
    pub(crate) to: String,
    /// Replace a different package of the same file name in the channel
    /// (by default that is an error: a published package does not change).
    #[arg(long)]
    pub(crate) force: bool,
    /// The package files (`.conda` or `.tar.bz2`).
    #[arg(required = true, value_name = "PKG")]
    pub(crate) packages: Vec<PathBuf>,
}

/// Arguments of `cleave test`.
#[derive(Debug, clap::Args)]
pub(crate) struct TestArgs {
    /// The package file (`.conda` or `.tar.bz2`), made by cleave or by
    /// rattler-build.
    #[arg(long, short = 'p', value_name = "PKG")]
    pub(crate) package_file: PathBuf,
    /// Channels the test environments solve from, after the package
    /// itself: a local directory, a file:// or http(s) URL, or a channel
    /// name.
    #[arg(long = "channel", short = 'c')]
    pub(crate) channels: Vec<String>,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
}

/// Arguments of `cleave cc`.
#[derive(Debug, clap::Args)]
pub(crate) struct CcArgs {
    /// The compiler: a name looked up on PATH (skipping cleave's own
    /// links), or a path.
    pub(crate) compiler: std::ffi::OsString,
    /// Its arguments, passed on unchanged.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub(crate) args: Vec<std::ffi::OsString>,
}

/// `cleave debug ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum DebugCommand {
    /// An interactive bash in the environment a failed build script saw:
    /// `build_env.sh` sourced, in the script's directory.
    Shell {
        /// The kept build directory or work directory a failed build
        /// printed (the one holding `build_env.sh`, or below it).
        #[arg(long)]
        work_dir: PathBuf,
    },
}

/// `cleave cache ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum CacheCommand {
    /// List the entries, most recently used first.
    List {
        /// Only entries of this kind: staging, package, compile or
        /// manifest.
        #[arg(long)]
        kind: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show the compile cache's counts (hits, misses and uncacheable
    /// calls by reason, time saved), the store's size by kind, and what
    /// each cache level (local, helpers, remotes) did: in the last build
    /// and in total.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Reset the compile counts after printing them.
        #[arg(long)]
        zero: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show one entry: its inputs, size and contents.
    Info {
        /// The key, or a unique prefix of it.
        key: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show the key inputs of a recipe's staging builds and what changed
    /// since the last entry of the same name.
    Explain(Box<SetupArgs>),
    /// Check every entry's blobs against their digests.
    Verify {
        /// Remove the damaged entries.
        #[arg(long)]
        remove: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Evict entries: least recently used first above a size, or unused for
    /// a time.
    Gc {
        /// Keep the cache below this size, e.g. `10GiB` or `500 MB`
        /// (default: `cache.max-size` of cleave.toml, else 10 GiB).
        #[arg(long)]
        max_size: Option<String>,
        /// Evict entries unused for this long, e.g. `30d` or `12h`.
        #[arg(long)]
        older_than: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove every entry.
    Clean(StoreArgs),
    /// Upload entries to a remote store (those it lacks).
    Push {
        /// The key, or a unique prefix of it.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        key: Option<String>,
        /// Every entry of the local cache.
        #[arg(long)]
        all: bool,
        /// The remote, as for `cleave build --remote`.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Download an entry from a remote store into the local cache.
    Pull {
        /// The full key.
        key: String,
        /// The remote, as for `cleave build --remote`.
        #[arg(long)]
        from: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Write an entry in the portable format (docs/cache-helpers.md): a
    /// directory, or a tar when DEST ends in `.tar`.
    Export {
        /// The key, or a unique prefix of it.
        key: String,
        /// Where to write it (must not exist).
        dest: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Read an entry in the portable format into the local cache, checked.
    Import {
        /// A directory or a `.tar`.
        path: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Where the cache is.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct StoreArgs {
    /// The cache directory (default: `cache.dir` of cleave.toml, else the
    /// platform cache dir, e.g. ~/.cache/cleave).
    #[arg(long, env = "CLEAVE_CACHE_DIR")]
    pub(crate) cache_dir: Option<PathBuf>,
}

/// Which recipes, for which platform and variants.
#[derive(Debug, clap::Args)]
pub(crate) struct RecipeArgs {
    /// A recipe directory (holding `recipe.yaml`) or a recipe file; give it
    /// more than once for several recipes, built in the order their
    /// requirements ask for.
    #[arg(
        long = "recipe",
        short = 'r',
        default_value = ".",
        default_value_if("recipe_dir", ArgPredicate::IsPresent, None),
        help_heading = "Inputs"
    )]
    pub(crate) recipes: Vec<PathBuf>,
    /// A directory of recipes: every directory below it holding a
    /// `recipe.yaml`, at any depth, skipping hidden directories and what
    /// `.gitignore` or `.ignore` files exclude (as rattler-build finds
    /// them).
    #[arg(long, help_heading = "Inputs")]
    pub(crate) recipe_dir: Option<PathBuf>,
    /// Variant config files, applied in order after `variants.yaml` next to
    /// each recipe.
    #[arg(long = "variant-config", short = 'm', help_heading = "Variants")]
    pub(crate) variant_config: Vec<PathBuf>,
    /// Replaces a variant key's values after the variant files, e.g.
    /// `--variant python=3.12` or `--variant python=3.12,3.11` for two
    /// variants; give it once per key.
    #[arg(
        long = "variant",
        value_name = "KEY=VALUE[,VALUE]...",
        value_parser = parse_variant,
        help_heading = "Variants"
    )]
    pub(crate) variants: Vec<(String, Vec<String>)>,
    /// Platform to render for, e.g. linux-64 or osx-arm64 (default: this machine).
    #[arg(long, help_heading = "Variants")]
    pub(crate) target_platform: Option<String>,
}

/// `KEY=VALUE[,VALUE]...` of `--variant`, split as rattler-build splits it.
fn parse_variant(text: &str) -> Result<(String, Vec<String>), String> {
    let (key, values) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE: no `=`"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("`{text}` names no key"));
    }
    let values = values.split(',').map(|v| v.trim().to_string()).collect();
    Ok((key.to_string(), values))
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

/// What decides the staging keys: the recipe, the channels, the caches.
#[derive(Debug, clap::Args)]
pub(crate) struct SetupArgs {
    #[command(flatten)]
    pub(crate) recipe: RecipeArgs,
    /// Channels to solve from, after the output directory: a local
    /// directory, a file:// or http(s) URL, or a channel name.
    #[arg(long = "channel", short = 'c', help_heading = "Inputs")]
    pub(crate) channels: Vec<String>,
    /// The output channel; packages land in its subdirectories.
    #[arg(long, default_value = "output", help_heading = "Outputs")]
    pub(crate) output_dir: PathBuf,
    #[command(flatten, next_help_heading = "Cache")]
    pub(crate) store: StoreArgs,
    /// Where every build runs (staging builds and package outputs), in
    /// directories named by key (default: `build.staging-root` of
    /// cleave.toml, else cleave-staging in the temp dir). Keep it the same
    /// on every machine sharing a cache, so that restored build trees
    /// continue without recompiling and packages are the same bytes.
    #[arg(long, visible_alias = "build-dir", help_heading = "Cache")]
    pub(crate) staging_root: Option<PathBuf>,
    #[command(flatten, next_help_heading = "Cache")]
    pub(crate) remotes: RemoteArgs,
}

/// Remote stores behind the local cache.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RemoteArgs {
    /// A remote store, asked after the local cache and after the
    /// `[[cache.remote]]` tables of cleave.toml, in the order given:
    /// `s3://BUCKET/PREFIX?endpoint=URL&region=R`, `redis://HOST:PORT/DB`,
    /// `webdav+http(s)://HOST:PORT/PATH`, `file:///DIR`, `gcs://BUCKET/PREFIX`,
    /// `azblob://CONTAINER/PREFIX`, `gha://PREFIX`. Credentials come from the
    /// service's usual variables (AWS_ACCESS_KEY_ID, ...), never from flags.
    #[arg(long = "remote", env = "CLEAVE_REMOTE", value_delimiter = ',')]
    pub(crate) remote: Vec<String>,
    /// What cleave may do with every remote: `read-write`, `read-only`
    /// (pull requests of forks) or `off`.
    #[arg(long, env = "CLEAVE_REMOTE_MODE")]
    pub(crate) remote_mode: Option<String>,
    /// A cache helper (docs/cache-helpers.md): an executable asked before a
    /// build (`HELPER lookup`) and told after one (`HELPER store`), after
    /// the `cache.helpers` of cleave.toml, in the order given.
    #[arg(
        long = "cache-helper",
        env = "CLEAVE_CACHE_HELPER",
        value_delimiter = ','
    )]
    pub(crate) cache_helper: Vec<PathBuf>,
}

/// Arguments of `cleave build`.
#[derive(Debug, clap::Args)]
pub(crate) struct BuildArgs {
    #[command(flatten)]
    pub(crate) setup: SetupArgs,
    /// Build only what this package needs (its build and host requirements
    /// among the outputs, transitively) and the package itself.
    #[arg(long, value_name = "NAME", help_heading = "Inputs")]
    pub(crate) up_to: Option<String>,
    /// Archive format of the packages.
    #[arg(long, value_enum, default_value_t = PackageFormatArg::Conda, help_heading = "Outputs")]
    pub(crate) package_format: PackageFormatArg,
    /// Skip an output whose package (name, version and build string) is
    /// already in the output channel (`local`, what the flag alone means)
    /// or in any channel given (`all`).
    #[arg(
        long,
        value_enum,
        default_value_t = SkipExistingArg::None,
        default_missing_value = "local",
        num_args = 0..=1,
        help_heading = "Outputs"
    )]
    pub(crate) skip_existing: SkipExistingArg,
    /// Go on after a failed output: only what depends on it is not built.
    /// The exit status is still 1.
    #[arg(long, visible_alias = "continue-on-failure", help_heading = "Outputs")]
    pub(crate) keep_going: bool,
    /// Fail when a staging build leaves files that no output takes.
    #[arg(long, help_heading = "Outputs")]
    pub(crate) error_unclaimed_files: bool,
    /// Fail when two outputs take the same staging file.
    #[arg(long, help_heading = "Outputs")]
    pub(crate) error_overlapping_files: bool,
    /// Keep the build directories after a successful build.
    #[arg(long, help_heading = "Cache")]
    pub(crate) keep_build: bool,
    /// Run every staging build and keep none of them: no cache lookup, and
    /// nothing stored in the cache directory (the compile cache is off too).
    #[arg(long, help_heading = "Cache")]
    pub(crate) no_cache: bool,
    /// Whether scripts' C and C++ compiler calls go through the compile
    /// cache (default: `build.compile-cache` of cleave.toml, else on).
    #[arg(long, value_enum, help_heading = "Cache")]
    pub(crate) compile_cache: Option<Switch>,
    /// Whether to run the packages' tests. A package whose tests fail goes
    /// to `OUTPUT/broken/`, never into the channel.
    #[arg(long, value_enum, default_value_t = TestArg::Native, help_heading = "Tests")]
    pub(crate) test: TestArg,
    /// After the build, publish the packages it built or reused to this
    /// channel, as `cleave publish --to URL` does.
    #[arg(long, value_name = "URL", help_heading = "Publishing")]
    pub(crate) publish_to: Option<String>,
}

/// `--skip-existing`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum SkipExistingArg {
    /// Build every output.
    None,
    /// Skip what the output channel has.
    Local,
    /// Skip what the output channel or any `-c` channel has.
    All,
}

/// `on` or `off`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Switch {
    /// On.
    On,
    /// Off.
    Off,
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
