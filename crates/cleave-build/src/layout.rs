//! Where a build happens: one directory per output under a build root.
//!
//! ```text
//! <build root>/
//! └── <name>-<version>-<build string>/
//!     ├── work/                      $SRC_DIR: sources, then the build's own files
//!     ├── build_env/                 $BUILD_PREFIX: tools that run on this machine
//!     ├── host_env_placehold_pl.../  $PREFIX: padded to 255 bytes, see below
//!     └── build.log                  the script's output
//! ```
//!
//! `$PREFIX` is padded with `_placehold` so that binaries built into it carry
//! a long prefix. At install time the prefix is replaced by the (shorter)
//! target prefix, and a binary string can only be rewritten to something no
//! longer than itself.

use std::path::{Path, PathBuf};

/// The directories of one output's build.
#[derive(Debug, Clone)]
pub struct OutputDirs {
    /// The output's own directory.
    pub root: PathBuf,
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
    /// The directories for `id` (`name-version-build`) under `build_root`.
    pub fn new(build_root: &Path, id: &str) -> Self {
        let root = build_root.join(id);
        let host_prefix = root.join(padded_name(&root));
        OutputDirs {
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

    /// Removes anything left from an earlier build and creates the dirs.
    pub fn recreate(&self) -> std::io::Result<()> {
        if self.root.exists() {
            std::fs::remove_dir_all(&self.root)?;
        }
        for dir in [&self.work, &self.build_prefix, &self.host_prefix] {
            std::fs::create_dir_all(dir)?;
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
    fn a_deep_build_root_still_gets_a_prefix() {
        let deep = PathBuf::from("/x".repeat(130));
        let dirs = OutputDirs::new(&deep, "a-1-h_0");
        assert!(dirs.host_prefix.ends_with("host_env"));
    }
}
