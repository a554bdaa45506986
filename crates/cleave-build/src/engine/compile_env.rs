//! The compile cache in a build script's environment: a masquerade
//! directory first on `PATH` (`cc`, `gcc`, `g++`, ... and the names
//! activation gave `$CC` and `$CXX`, each a link to cleave), the compiler
//! variables pointed at it, cleave as cargo's `RUSTC_WRAPPER` (with
//! `CARGO_INCREMENTAL=0`), and the roots the wrapper keeps out of keys.
//! The caching itself is cleave-compile's.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use cleave_compile::masquerade::{self, LinkTo};
use cleave_compile::roots::Roots;
use cleave_compile::vars;

use crate::error::BuildError;
use crate::layout::OutputDirs;

/// How recipe builds' compiler calls reach the compile cache.
#[derive(Debug, Clone, Default)]
pub struct CompileCache {
    /// The wrapper: the `cleave` binary. Without one (a library caller),
    /// scripts see the compilers as activation left them.
    pub wrapper: Option<PathBuf>,
    /// Whether calls are cached. Off, the masquerade links lead to the
    /// compilers themselves, so that a build tree that recorded their
    /// paths (cmake does) still builds after the setting changes.
    pub enabled: bool,
}

/// Variables that name a compiler and go through the masquerade directory
/// when they name one it holds.
const COMPILER_VARS: &[&str] = &["CC", "CXX", "CC_FOR_BUILD", "CXX_FOR_BUILD", "GCC", "GXX"];

/// Cargo's variable naming the program that runs rustc.
const RUSTC_WRAPPER: &str = "RUSTC_WRAPPER";

/// Cargo's switch for incremental compilation, which overrides the
/// profile's.
const CARGO_INCREMENTAL: &str = "CARGO_INCREMENTAL";

/// Where a build's masquerade links live: in its own key-named directory,
/// so that a restored build tree finds them at the same path.
pub(super) fn masquerade_dir(dirs: &OutputDirs) -> PathBuf {
    dirs.root.join("compile-bin")
}

/// Puts the wrappers into an activated script environment; `levels`
/// names the file listing the build's cache helpers and remote stores, if
/// it has any.
pub(super) fn install(
    cache: &CompileCache,
    env: &mut BTreeMap<String, String>,
    dirs: &OutputDirs,
    (recipe_dir, cache_dir): (&Path, &Path),
    levels: Option<&Path>,
) -> Result<(), BuildError> {
    let Some(wrapper) = &cache.wrapper else {
        return Ok(());
    };
    let dir = masquerade_dir(dirs);
    let path = env.get("PATH").cloned().unwrap_or_default();
    let mut names: Vec<String> = masquerade::NAMES.iter().map(|n| n.to_string()).collect();
    for var in COMPILER_VARS {
        let name = env
            .get(*var)
            .and_then(|v| v.split_whitespace().next())
            .and_then(|first| Path::new(first).file_name())
            .and_then(OsStr::to_str);
        names.extend(name.map(str::to_string));
    }
    let link_to = if cache.enabled {
        LinkTo::Wrapper(wrapper)
    } else {
        LinkTo::Compilers
    };
    let linked = masquerade::install(&dir, link_to, &names, OsStr::new(&path))
        .map_err(BuildError::io(format!("creating {}", dir.display())))?;
    for var in COMPILER_VARS {
        let wrapped = env
            .get(*var)
            .and_then(|value| masquerade::wrap(value, &dir, &linked, OsStr::new(&path)));
        if let Some(wrapped) = wrapped {
            env.insert(var.to_string(), wrapped.display().to_string());
        }
    }
    env.insert("PATH".into(), format!("{}:{path}", dir.display()));
    env.insert(vars::MASQUERADE.into(), dir.display().to_string());
    if cache.enabled {
        let roots = Roots::encode(&[
            ("work", &dirs.work),
            ("build_env", &dirs.build_prefix),
            ("host_env", &dirs.host_prefix),
            ("build_dir", &dirs.root),
            ("recipe", recipe_dir),
        ]);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        env.insert(vars::ROOTS.into(), roots);
        env.insert(vars::BUILD_START.into(), now.to_string());
        env.insert("CLEAVE_CACHE_DIR".into(), cache_dir.display().to_string());
        if let Some(levels) = levels {
            env.insert(vars::LEVELS.into(), levels.display().to_string());
        }
        // Cargo runs rustc through cleave (the Rust compile cache), unless
        // the recipe chose a wrapper of its own. Then not incrementally,
        // unless the recipe says so: the dev profile is incremental, an
        // incremental call passes the cache by, and a recipe build starts
        // from a fresh work dir, where the session files only cost time.
        if !env.contains_key(RUSTC_WRAPPER) {
            env.insert(RUSTC_WRAPPER.into(), wrapper.display().to_string());
            env.entry(CARGO_INCREMENTAL.into())
                .or_insert_with(|| "0".into());
        }
    }
    Ok(())
}
