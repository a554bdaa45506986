//! `cleave cc COMPILER ARGS...`, cleave started under a compiler's name
//! (a masquerade link), and `cleave /path/to/rustc ARGS...` (cargo's
//! `RUSTC_WRAPPER`): one compiler call through the compile cache.
//!
//! This runs once per compile, so it starts before the command-line
//! parser and reads no more than it must: in a recipe build, the variables
//! the build set; outside one, cleave.toml with `CLEAVE_CACHE_DIR`,
//! `CLEAVE_REMOTE`, `CLEAVE_REMOTE_MODE` and `CLEAVE_CACHE_HELPER` over
//! it.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use cleave_compile::masquerade::is_compiler_name;
use cleave_compile::remote::Levels;
use cleave_compile::rust::is_rustc;
use cleave_compile::{Config, Invocation, vars};
use rattler_conda_types::Subdir;

use crate::config::{Overrides, Settings, compile_dir, store_dir};

/// The exit status of a compiler call when `argv` is one: cleave started
/// as a compiler, or as `cleave cc COMPILER ...`. `None` for every other
/// command line (and for `cleave cc --help`), which clap then reads.
pub(crate) fn from_argv(argv: &[OsString]) -> Option<i32> {
    if let Some(rustc) = argv.get(1).map(Path::new).filter(|p| is_rustc(p)) {
        // Cargo's wrapper call: checked first, so that no subcommand name
        // can shadow it.
        return Some(cleave_compile::rust::run(rustc, &argv[2..], &config()));
    }
    if let (Some(wrapper), Some(rustc)) = (argv.get(1), argv.get(2))
        && argv[1] != "cc"
        && is_rustc(Path::new(rustc))
    {
        // `cleave clippy-driver rustc ...`: cargo's workspace wrapper sits
        // between cleave and rustc.
        return Some(cleave_compile::rust::run_other(
            Path::new(wrapper),
            &argv[2..],
            &config(),
        ));
    }
    let name = Path::new(argv.first()?).file_name()?;
    if is_compiler_name(&name.to_string_lossy()) {
        // Started as `.../gcc`: the compiler is the `gcc` further along
        // PATH.
        return Some(run(name.to_os_string(), argv[1..].to_vec()));
    }
    let compiler = argv.get(2)?;
    if argv[1] == "cc" && !compiler.to_string_lossy().starts_with('-') {
        return Some(run(compiler.clone(), argv[3..].to_vec()));
    }
    None
}

/// One call of `compiler` (a name to look up on `PATH`, or a path).
pub(crate) fn run(compiler: OsString, args: Vec<OsString>) -> i32 {
    cleave_compile::run(&Invocation { compiler, args }, &config())
}

/// The wrapper's settings; with no usable cache directory the cache is
/// off and the compiler runs as asked.
fn config() -> Config {
    let settings = std::env::current_dir()
        .map_err(|e| miette::miette!("{e}"))
        .and_then(|cwd| {
            let cache_dir = std::env::var_os("CLEAVE_CACHE_DIR").map(|d| cwd.join(d));
            if std::env::var_os(vars::BUILD_START).is_some()
                && let Some(dir) = cache_dir
            {
                // A recipe build set everything, helpers and remotes
                // included: no file to read per compile.
                return Ok((dir, Levels::default()));
            }
            // `RUSTC_WRAPPER=cleave cargo build` or `cleave cc` outside
            // a recipe: cleave.toml and the variables `cleave build`
            // reads, as it reads them.
            let list = |var: &str| -> Vec<String> {
                std::env::var(var)
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .map(str::to_string)
                    .collect()
            };
            let remotes = list("CLEAVE_REMOTE");
            let helpers: Vec<PathBuf> = list("CLEAVE_CACHE_HELPER")
                .into_iter()
                .map(PathBuf::from)
                .collect();
            let mode = std::env::var("CLEAVE_REMOTE_MODE").ok();
            let with_env = Settings::load(
                &cwd,
                Overrides {
                    cache_dir: cache_dir.as_deref(),
                    remotes: &remotes,
                    remote_mode: mode.as_deref().filter(|m| !m.is_empty()),
                    helpers: &helpers,
                    ..Overrides::default()
                },
            );
            // A remote variable that does not parse costs its remotes, not
            // the local cache.
            let settings = match with_env {
                Ok(settings) => settings,
                Err(report) => {
                    let plain = Overrides {
                        cache_dir: cache_dir.as_deref(),
                        ..Overrides::default()
                    };
                    let settings = Settings::load(&cwd, plain)?;
                    let _ = writeln!(
                        std::io::stderr(),
                        "cleave: warning: {report}; CLEAVE_REMOTE, CLEAVE_REMOTE_MODE and CLEAVE_CACHE_HELPER are left out"
                    );
                    settings
                }
            };
            let levels = Levels {
                remotes: settings.remotes,
                helpers: settings.helpers,
                platform: Subdir::current().map(|s| s.to_string()).unwrap_or_default(),
            };
            Ok((settings.cache_dir, levels))
        });
    match settings {
        Ok((dir, levels)) => {
            let mut config = Config::from_env(store_dir(&dir), compile_dir(&dir));
            if !levels.is_empty() {
                config.levels = levels;
            }
            config
        }
        Err(report) => {
            let _ = writeln!(std::io::stderr(), "cleave: compile cache off: {report}");
            let mut config = Config::from_env(Default::default(), Default::default());
            config.enabled = false;
            config
        }
    }
}
