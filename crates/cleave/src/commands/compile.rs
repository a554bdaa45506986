//! `cleave cc COMPILER ARGS...`, cleave started under a compiler's name
//! (a masquerade link), and `cleave /path/to/rustc ARGS...` (cargo's
//! `RUSTC_WRAPPER`): one compiler call through the compile cache.
//!
//! This runs once per compile, so it starts before the command-line
//! parser and reads no more than it must: the cache directory from
//! `CLEAVE_CACHE_DIR` (which recipe builds set), else from cleave.toml.

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

use cleave_compile::masquerade::is_compiler_name;
use cleave_compile::rust::is_rustc;
use cleave_compile::{Config, Invocation};

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
    let cache_dir = std::env::current_dir()
        .map_err(|e| miette::miette!("{e}"))
        .and_then(|cwd| match std::env::var_os("CLEAVE_CACHE_DIR") {
            // Recipe builds set it: no file to read per compile.
            Some(dir) => Ok(cwd.join(dir)),
            None => Settings::load(&cwd, Overrides::default()).map(|s| s.cache_dir),
        });
    match cache_dir {
        Ok(dir) => Config::from_env(store_dir(&dir), compile_dir(&dir)),
        Err(report) => {
            let _ = writeln!(std::io::stderr(), "cleave: compile cache off: {report}");
            let mut config = Config::from_env(Default::default(), Default::default());
            config.enabled = false;
            config
        }
    }
}
