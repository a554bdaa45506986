//! Where a build happens: one directory per key under the staging root.
//!
//! ```text
//! <staging root>/
//! ├── <name>-<key>.lock              held while a build of the key runs
//! ├── <name>-<key>.run.lock          held while a process of the build lives
//! └── <name>-<key>/
//!     ├── work/                      $SRC_DIR: sources, then the build's own files
//!     ├── build_env/                 $BUILD_PREFIX: tools that run on this machine
//!     ├── host_env_placehold_pl.../  $PREFIX: padded to 255 bytes, see below
//!     └── build.log                  the script's output
//! ```
//!
//! `<name>` comes from the recipe (a staging or package name), so it is
//! checked by [`key_dir_name`], the only way a name becomes part of a path:
//! the recipe reader refuses such names too, and this check holds for
//! callers that build a plan by hand.
//!
//! `$PREFIX` is padded with `_placehold` so that binaries built into it carry
//! a long prefix. At install time the prefix is replaced by the (shorter)
//! target prefix, and a binary string can only be rewritten to something no
//! longer than itself.

use std::path::{Path, PathBuf};

use cleave_cache::Digest;
use cleave_cache::lock::Lock;

use crate::error::BuildError;

/// Why a name cannot be part of a path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` cannot name a build directory: {reason}")]
pub struct UnsafeName {
    /// The name as given.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// `name-<16 hex digits of key>`: the directory (and lock file) name of a
/// staging build or package output, the same wherever the same build runs.
/// `name` must be one plain path component.
pub fn key_dir_name(name: &str, key: &Digest) -> Result<String, UnsafeName> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.contains('/') {
        Some("it contains `/`")
    } else if name.contains('\\') {
        Some("it contains `\\`")
    } else if name.chars().any(char::is_control) {
        Some("it contains a control character")
    } else if name == "." || name == ".." {
        Some("it is `.` or `..`")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(UnsafeName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(format!("{name}-{}", &key.to_hex()[..16])),
    }
}

/// The directories of one output's build.
#[derive(Debug, Clone)]
pub struct OutputDirs {
    /// The output's own directory.
    pub root: PathBuf,
    /// The run lock: held by every guard of a process working in these
    /// directories (see [`crate::script::guard`]).
    pub run_lock: PathBuf,
    /// `$SRC_DIR`.
    pub work: PathBuf,
    /// `$BUILD_PREFIX`.
    pub build_prefix: PathBuf,
    /// `$PREFIX`, padded.
    pub host_prefix: PathBuf,
    /// The script log.
    pub log: PathBuf,
}

/// Conda's conventional length for a padded build prefix.
const PADDED_PREFIX_LEN: usize = 255;

impl OutputDirs {
    /// The directories for `id` (a [`key_dir_name`]) under `build_root`.
    pub fn new(build_root: &Path, id: &str) -> Self {
        let root = build_root.join(id);
        let host_prefix = root.join(padded_name(&root));
        OutputDirs {
            run_lock: build_root.join(format!("{id}.run.lock")),
            work: root.join("work"),
            build_prefix: root.join("build_env"),
            log: root.join("build.log"),
            host_prefix,
            root,
        }
    }

    /// These directories with `$BUILD_PREFIX` being `$PREFIX`, for
    /// `build.merge_build_and_host_envs`: the build and host requirements
    /// are installed into one environment, as conda-build once built.
    pub fn merged(self) -> Self {
        OutputDirs {
            build_prefix: self.host_prefix.clone(),
            ..self
        }
    }

    /// Removes anything left from an earlier build and creates the dirs,
    /// once no process of an earlier build works in them any more: the
    /// run lock is free then. `on_wait` is called if it is not.
    pub fn recreate(&self, on_wait: impl FnOnce()) -> Result<(), BuildError> {
        drop(Lock::exclusive(&self.run_lock, on_wait)?);
        let io = |action: &str, dir: &Path| BuildError::io(format!("{action} {}", dir.display()));
        match std::fs::symlink_metadata(&self.root) {
            Ok(_) => std::fs::remove_dir_all(&self.root).map_err(io("removing", &self.root))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("inspecting", &self.root)(e)),
        }
        for dir in [&self.work, &self.build_prefix, &self.host_prefix] {
            std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        }
        Ok(())
    }
}

/// `host_env_placehold_placehold...`, exactly filling 255 bytes of path
/// when there is room. Every prefix then has the same length, so a binary
/// built in one can be relocated to another by a plain NUL-padded rewrite.
fn padded_name(parent: &Path) -> String {
    let base = "host_env";
    let room = PADDED_PREFIX_LEN.saturating_sub(parent.as_os_str().len() + 1);
    let mut name = String::from(base);
    while name.len() < room {
        name.push_str("_placehold");
    }
    name.truncate(room.max(base.len()));
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_prefix_is_padded_to_255_bytes_when_room_allows() {
        let dirs = OutputDirs::new(Path::new("/tmp/bld"), "libfoo-1.0-h123_0");
        assert_eq!(dirs.host_prefix.as_os_str().len(), 255);
        let other = OutputDirs::new(Path::new("/var/tmp/other/root"), "x-h1_0");
        assert_eq!(other.host_prefix.as_os_str().len(), 255);
        assert!(
            dirs.host_prefix
                .to_str()
                .unwrap()
                .contains("_placehold_placehold")
        );
    }

    #[test]
    fn only_plain_names_become_build_directories() {
        let key = cleave_cache::Digest::of(b"inputs");
        let id = key_dir_name("libfoo-build", &key).unwrap();
        assert_eq!(id, format!("libfoo-build-{}", &key.to_hex()[..16]));
        for name in ["", "/tmp/x", "a/../../b", "..", ".", "a\\b", "a\nb"] {
            assert!(key_dir_name(name, &key).is_err(), "{name:?}");
        }
    }

    #[test]
    fn a_deep_build_root_still_gets_a_prefix() {
        let deep = PathBuf::from("/x".repeat(130));
        let dirs = OutputDirs::new(&deep, "a-1-h_0");
        assert!(dirs.host_prefix.ends_with("host_env"));
    }
}
