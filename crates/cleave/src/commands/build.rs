//! `cleave build`: every output of a recipe into a local channel.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use cleave_build::BuildError;
use cleave_build::engine::{
    BuildOptions, BuildReport, Builder, CacheMode, CompileCache, Event, Outcome, Plan,
    PlannedRecipe, SkipExisting, TestMode,
};
use cleave_build::package::PackageFormat;
use cleave_build::script::guard::Guard;
use cleave_cache::foreign::printable;
use miette::{Context, IntoDiagnostic, miette};
use rattler_conda_types::{Channel, ChannelConfig};

use cleave_recipe::RenderConfig;

use crate::Status;
use crate::cli::{BuildArgs, PackageFormatArg, SetupArgs, SkipExistingArg, Switch, TestArg};
use crate::config::{Overrides, Settings};

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
    let Some(rendered) = super::recipe::render_all(&args.setup.recipe)? else {
        return Ok(Status::Failure);
    };
    let config = rendered
        .first()
        .map(|r| r.config.clone())
        .ok_or_else(|| miette!("no recipe to build"))?;
    let recipes = rendered
        .into_iter()
        .map(|r| PlannedRecipe {
            recipe: r.recipe,
            file: r.file,
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
    let mut builder = match Builder::new(options) {
        Ok(builder) => builder,
        Err(err) => {
            super::print_report(&report(err));
            return Ok(Status::Failure);
        }
    };
    let built = builder.build(&plan, &mut show_progress);
    print_summary(&built, &output_dir).into_diagnostic()?;
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
        } => format!(
            "last lines of the log:\n{tail}\n\nfull log: {}\nwork dir kept at: {}",
            log.display(),
            work_dir.display()
        ),
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

/// What the build is doing, on stderr.
fn show_progress(event: Event<'_>) {
    if let Event::Failed { what, error } = event {
        let _ = writeln!(std::io::stderr().lock(), "   failed: {what}");
        super::print_report(&report(error));
        return;
    }
    let mut err = std::io::stderr().lock();
    let _ = match &event {
        Event::Started { kind, what } => writeln!(err, "── {kind} {what}"),
        Event::Environment { kind, packages } => {
            writeln!(err, "   {} environment: {packages} packages", kind.as_str())
        }
        Event::Restored { from, bytes } => {
            writeln!(err, "   restored staging `{from}` ({})", human_size(*bytes))
        }
        Event::StagingCached { staging, key } => writeln!(
            err,
            "   cached: staging `{staging}` (key {}) is in the cache; its script does not run",
            short(key)
        ),
        Event::StagingStored {
            staging,
            key,
            items,
            bytes,
        } => writeln!(
            err,
            "   stored staging `{staging}` (key {}): {items} entries, {}",
            short(key),
            human_size(*bytes)
        ),
        Event::Waiting { what, lock } => writeln!(
            err,
            "   waiting: another build holds {what} ({})",
            lock.display()
        ),
        Event::Reused { what, key } => writeln!(
            err,
            "   reused: {what} (key {}) is in the cache; nothing runs",
            short(key)
        ),
        Event::PackageStored { what, key } => {
            writeln!(err, "   stored {what} (key {})", short(key))
        }
        Event::Fetched {
            what,
            remote,
            bytes,
        } => writeln!(
            err,
            "   fetched: {what} from {} ({}) into the local cache",
            printable(remote),
            human_size(*bytes)
        ),
        // Warnings quote helpers, remotes and entries.
        Event::Warning(text) => writeln!(err, "warning: {}", printable(text)),
        Event::Unclaimed { staging, files } => {
            let _ = writeln!(
                err,
                "warning: {} file(s) of staging `{staging}` are in no package:",
                files.len()
            );
            files
                .iter()
                .take(20)
                .try_for_each(|f| writeln!(err, "   {}", printable(&f.to_string_lossy())))
        }
        Event::Overlapping { staging, files } => {
            let _ = writeln!(
                err,
                "warning: {} file(s) of staging `{staging}` are in more than one package:",
                files.len()
            );
            files.iter().take(20).try_for_each(|(f, takers)| {
                writeln!(
                    err,
                    "   {} ({})",
                    printable(&f.to_string_lossy()),
                    takers.join(", ")
                )
            })
        }
        Event::Evicted { entries, bytes } => writeln!(
            err,
            "   cache: evicted {entries} least recently used entries ({})",
            human_size(*bytes)
        ),
        Event::Line(line) => writeln!(err, "   │ {line}"),
        Event::Packaged(p) => writeln!(err, "   wrote {}", p.path.display()),
        Event::Tested { what, count } => writeln!(err, "   {what}: {count} tests passed"),
        Event::Skipped { what, channel } => {
            writeln!(err, "── skipped {what}: it is in {channel} already")
        }
        Event::NotBuilt { what, because } => {
            writeln!(err, "── not built: {what}, because {because} failed")
        }
        // Printed above, with its report.
        Event::Failed { .. } => Ok(()),
    };
}

fn print_summary(report: &BuildReport, output_dir: &Path) -> std::io::Result<()> {
    if report.outputs.is_empty() {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    let rows: Vec<[String; 7]> = report
        .outputs
        .iter()
        .map(|o| {
            let (subdir, state, size, files) = match &o.outcome {
                Outcome::Built(p) => (
                    p.subdir.clone(),
                    if p.reused { "reused" } else { "built" },
                    human_size(p.size),
                    p.files.to_string(),
                ),
                Outcome::Skipped { .. } => (String::new(), "skipped", String::new(), String::new()),
                Outcome::Failed => (String::new(), "failed", String::new(), String::new()),
                Outcome::NotBuilt { .. } => {
                    (String::new(), "not built", String::new(), String::new())
                }
            };
            [
                o.name.clone(),
                o.version.clone(),
                o.build.clone(),
                subdir,
                state.to_string(),
                size,
                files,
            ]
        })
        .collect();
    let header = ["package", "version", "build", "subdir", "", "size", "files"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i >= 5 {
                    format!("{c:>w$}")
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    writeln!(out, "{}", line(&header.map(String::from)))?;
    for row in &rows {
        writeln!(out, "{}", line(row))?;
    }
    let count = |f: fn(&Outcome) -> bool| report.outputs.iter().filter(|o| f(&o.outcome)).count();
    let built = count(|o| matches!(o, Outcome::Built(p) if !p.reused));
    let reused = count(|o| matches!(o, Outcome::Built(p) if p.reused));
    let packages = built + reused;
    let mut text = format!(
        "\n{packages} package{} in {} ({built} built, {reused} reused from the cache",
        if packages == 1 { "" } else { "s" },
        output_dir.display(),
    );
    for (n, what) in [
        (
            count(|o| matches!(o, Outcome::Skipped { .. })),
            "skipped: already in a channel",
        ),
        (count(|o| matches!(o, Outcome::Failed)), "failed"),
        (
            count(|o| matches!(o, Outcome::NotBuilt { .. })),
            "not built",
        ),
    ] {
        if n > 0 {
            text.push_str(&format!("; {n} {what}"));
        }
    }
    writeln!(out, "{text})")
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
