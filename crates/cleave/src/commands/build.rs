//! `cleave build`: every output of a recipe into a local channel.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use cleave_build::BuildError;
use cleave_build::engine::{
    BuildOptions, Builder, CacheMode, CompileCache, Event, Plan, PlannedRecipe, Reporter,
    SkipExisting, TestMode,
};
use cleave_build::package::PackageFormat;
use cleave_build::script::guard::Guard;
use miette::{Context, IntoDiagnostic, miette};
use rattler_conda_types::{Channel, ChannelConfig};

use cleave_recipe::RenderConfig;

use crate::Status;
use crate::cli::{BuildArgs, PackageFormatArg, SetupArgs, SkipExistingArg, Switch, TestArg};
use crate::config::{Overrides, Settings, compile_dir};
use crate::output::{self, BuildReporter, Summary};

/// Variables passed from the caller to build scripts; everything else is
/// left out so builds do not depend on the shell they were started from.
const PASSED_VARIABLES: &[&str] = &[
    "PATH",
    "TMPDIR",
    "SOURCE_DATE_EPOCH",
    // What rattler-build passes on too: certificates, the SSH agent, the
    // display and proxies (see docs/recipe.md).
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "SSH_AUTH_SOCK",
    "DISPLAY",
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "no_proxy",
    "NO_PROXY",
];

pub(crate) fn run(args: BuildArgs) -> miette::Result<Status> {
    let started = Instant::now();
    let Some(rendered) = super::recipe::render_all(&args.setup.recipe)? else {
        return Ok(Status::Failure);
    };
    let config = rendered
        .first()
        .map(|r| r.config.clone())
        .ok_or_else(|| miette!("no recipe to build"))?;
    // The rendered recipes stay: their spans place a failure.
    let recipes = rendered
        .iter()
        .map(|r| PlannedRecipe {
            recipe: r.recipe.clone(),
            file: r.file.clone(),
        })
        .collect();
    let plan = match Plan::new(recipes, args.up_to.as_deref()) {
        Ok(plan) => plan,
        Err(err) => {
            super::print_report(&miette::Report::from_err(err));
            return Ok(Status::Failure);
        }
    };
    let cwd = std::env::current_dir().into_diagnostic()?;
    let mut options = options(&args.setup, &config, &cwd)?;
    options.format = match args.package_format {
        PackageFormatArg::Conda => PackageFormat::Conda,
        PackageFormatArg::TarBz2 => PackageFormat::TarBz2,
    };
    options.test = match args.test {
        TestArg::Native => TestMode::Native,
        TestArg::Skip => TestMode::Skip,
    };
    options.keep_build = args.keep_build;
    options.error_unclaimed = args.error_unclaimed_files;
    options.error_overlapping = args.error_overlapping_files;
    options.keep_going = args.keep_going;
    options.skip_existing = match args.skip_existing {
        SkipExistingArg::None => SkipExisting::None,
        SkipExistingArg::Local => SkipExisting::Local,
        SkipExistingArg::All => SkipExisting::All,
    };
    if let Some(switch) = args.compile_cache {
        options.compile_cache.enabled = matches!(switch, Switch::On);
    }
    if args.no_cache {
        options.cache_mode = CacheMode::Off;
        options.compile_cache.enabled = false;
    }
    let output_dir = options.output_dir.clone();
    let printer = output::printer();
    let compile = options
        .compile_cache
        .enabled
        .then(|| compile_dir(&options.cache_dir));
    let reporter = BuildReporter::new(printer, compile);
    let mut builder = match Builder::new(options) {
        Ok(builder) => builder.with_reporter(Arc::new(reporter.clone())),
        Err(err) => {
            reporter.finish();
            printer.error(&report(err), None);
            return Ok(Status::Failure);
        }
    };
    let built = builder.build(&plan, &mut |event| match event {
        // The report places the error in its recipe.
        Event::Failed { what, error } => {
            let location = super::recipe::locate(&rendered, &error);
            reporter.failed(what);
            printer.error(&report(error), location.as_ref());
        }
        Event::Unclaimed { staging, .. } | Event::Overlapping { staging, .. } => {
            let location = super::recipe::locate_staging(&rendered, staging);
            reporter.event_at(event, location.as_ref());
        }
        other => reporter.event(other),
    });
    let steps = reporter.finish();
    Summary {
        report: &built,
        steps: &steps,
        output_dir: &output_dir,
        total: started.elapsed(),
    }
    .print(printer)
    .into_diagnostic()?;
    let mut status = if built.succeeded() {
        Status::Success
    } else {
        Status::Failure
    };
    if let Some(url) = &args.publish_to {
        let files: Vec<PathBuf> = built.packages().map(|p| p.path.clone()).collect();
        if !files.is_empty() && !super::publish::publish(url, &files, false)? {
            status = Status::Failure;
        }
    }
    Ok(status)
}

/// Build options from the settings every command that solves shares:
/// `cleave build` and `cleave cache explain` must compute the same keys.
pub(crate) fn options(
    setup: &SetupArgs,
    config: &RenderConfig,
    cwd: &Path,
) -> miette::Result<BuildOptions> {
    let settings = Settings::load(
        cwd,
        Overrides {
            cache_dir: setup.store.cache_dir.as_deref(),
            staging_root: setup.staging_root.as_deref(),
            remotes: &setup.remotes.remote,
            remote_mode: setup.remotes.remote_mode.as_deref(),
            helpers: &setup.remotes.cache_helper,
        },
    )?;
    let output_dir = cwd.join(&setup.output_dir);
    let channels = setup
        .channels
        .iter()
        .map(|c| parse_channel(c, cwd))
        .collect::<miette::Result<Vec<_>>>()?;
    Ok(BuildOptions {
        output_dir,
        channels,
        cache_dir: settings.cache_dir,
        format: PackageFormat::Conda,
        test: TestMode::Native,
        keep_build: false,
        timestamp: timestamp()?,
        target_platform: config.target_platform,
        build_platform: config.build_platform,
        base_env: passed_variables(),
        staging_root: settings.staging_root,
        error_unclaimed: false,
        error_overlapping: false,
        max_cache_size: Some(settings.max_size),
        cache_mode: CacheMode::ReadWrite,
        compile_cache: CompileCache {
            // The wrapper is this binary; without it, compilers run as they are.
            wrapper: std::env::current_exe().ok(),
            enabled: settings.compile_cache,
        },
        remotes: settings.remotes,
        helpers: settings.helpers,
        // This binary, started again as the guard of each script.
        guard: Guard::new(
            std::env::current_exe()
                .into_diagnostic()
                .wrap_err("cannot find cleave's own executable to guard build scripts")?,
        ),
        keep_going: false,
        skip_existing: SkipExisting::None,
    })
}

/// The variables of cleave's environment that scripts get.
pub(crate) fn passed_variables() -> BTreeMap<String, String> {
    PASSED_VARIABLES
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect()
}

/// A build error with the details a user acts on.
pub(crate) fn report(err: BuildError) -> miette::Report {
    match err {
        BuildError::ScriptFailed { .. } => miette!("{err}\n\n{}", script_details(&err)),
        BuildError::Broken { ref source, .. } => match **source {
            BuildError::ScriptFailed { .. } => {
                miette!("{err}\n\n{source}\n\n{}", script_details(source))
            }
            _ => miette!("{err}\n\n{source}"),
        },
        other => miette::Report::from_err(other),
    }
}

/// The log tail, log file and work dir of a failed script.
fn script_details(err: &BuildError) -> String {
    match err {
        BuildError::ScriptFailed {
            tail,
            log,
            work_dir,
            ..
        } => {
            let dir = log.parent().unwrap_or(work_dir);
            format!(
                "last lines of the log:\n{tail}\n\nfull log: {}\nwork dir kept at: {}\n\
                 to run it again by hand: cd {} && source {} && bash {}\n\
                 or: cleave debug shell --work-dir {}",
                log.display(),
                work_dir.display(),
                dir.display(),
                cleave_build::script::env_file(log)
                    .file_name()
                    .map_or_else(Default::default, |n| n.to_string_lossy()),
                log.with_extension("sh")
                    .file_name()
                    .map_or_else(Default::default, |n| n.to_string_lossy()),
                dir.display(),
            )
        }
        _ => String::new(),
    }
}

/// `SOURCE_DATE_EPOCH` when set (reproducible builds), else now. The
/// specification makes it a non-negative number of seconds; a time the
/// `.conda` format's zip cannot hold (before 1980, after 2107) is clamped
/// in the archive only (see cleave_build::package).
fn timestamp() -> miette::Result<jiff::Timestamp> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) => {
            let seconds: u64 = text.trim().parse().into_diagnostic().wrap_err_with(|| {
                format!("SOURCE_DATE_EPOCH `{text}` is not a non-negative number of seconds")
            })?;
            i64::try_from(seconds)
                .ok()
                .and_then(|s| jiff::Timestamp::from_second(s).ok())
                .ok_or_else(|| {
                    miette!("SOURCE_DATE_EPOCH `{text}` is after 9999-12-31, the last time cleave can write")
                })
        }
        Err(_) => Ok(jiff::Timestamp::now()),
    }
}

/// A local directory (which must be a channel), a URL, or a channel name.
pub(crate) fn parse_channel(text: &str, cwd: &Path) -> miette::Result<Channel> {
    let looks_like_path = text.starts_with('.') || text.starts_with('/') || text.starts_with('~');
    if looks_like_path || cwd.join(text).is_dir() {
        let dir = cwd.join(text);
        if !dir.join("noarch/repodata.json").is_file() {
            return Err(miette!(
                "channel `{text}` is not a channel: {} has no noarch/repodata.json",
                dir.display()
            ));
        }
        let dir = std::fs::canonicalize(&dir).into_diagnostic()?;
        return Channel::try_from_directory(&dir)
            .into_diagnostic()
            .wrap_err_with(|| format!("invalid channel `{text}`"));
    }
    let config = ChannelConfig::default_with_root_dir(cwd.to_path_buf());
    Channel::from_str(text, &config)
        .into_diagnostic()
        .wrap_err_with(|| format!("invalid channel `{text}`"))
}

/// The first 16 hex digits of a key, as `cache list` shows them.
pub(crate) fn short(key: &cleave_cache::Digest) -> String {
    key.to_hex()[..16].to_string()
}

pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
