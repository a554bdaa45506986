//! The channel of toolchain stand-ins (`tests/toolchain/`), built by
//! cleave.
//!
//! It is built once per set of inputs (the recipes and the cleave binary)
//! into a directory named by their hash under Cargo's test scratch
//! directory: the first test of a run that needs it builds it, the others
//! (and later runs with the same inputs) use it. A build goes to a
//! temporary directory that is renamed into place, so two test processes
//! never see a half-built channel; channels of earlier inputs are removed.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::common::{assert_success, repo};

/// In build order: what a recipe's tests install must be built before it.
const RECIPES: [&str; 9] = [
    "libgcc",
    "libstdcxx",
    "sysroot_linux-64",
    "gcc_linux-64",
    "gxx_linux-64",
    "python_abi",
    "python",
    "pip",
    "setuptools",
];

/// The channel directory.
pub fn channel() -> &'static Path {
    static CHANNEL: OnceLock<PathBuf> = OnceLock::new();
    CHANNEL.get_or_init(build_channel)
}

fn build_channel() -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("toolchain");
    let done = root.join(inputs_hash());
    if done.join("noarch/repodata.json").exists() {
        return done;
    }
    std::fs::create_dir_all(&root).unwrap();
    let tmp = tempfile::tempdir_in(&root).unwrap();
    let channel = tmp.path().join("channel");
    for name in RECIPES {
        let output = Command::new(env!("CARGO_BIN_EXE_cleave"))
            .arg("build")
            .arg("--recipe")
            .arg(repo().join("tests/toolchain").join(name))
            .arg("--output-dir")
            .arg(&channel)
            .arg("--cache-dir")
            .arg(tmp.path().join("cache"))
            .arg("--staging-root")
            .arg(tmp.path().join("stg"))
            .env_remove("SOURCE_DATE_EPOCH")
            .env("NO_COLOR", "1")
            .output()
            .expect("run cleave");
        assert_success(&output);
    }
    // Another process may have won the race: its channel is as good.
    if std::fs::rename(&channel, &done).is_err() {
        assert!(done.join("noarch/repodata.json").exists());
    }
    // Channels of earlier inputs are not used again.
    for entry in std::fs::read_dir(&root).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_channel = name.len() == 16 && name.chars().all(|c| c.is_ascii_hexdigit());
        if is_channel && entry.path() != done {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    done
}

/// A hash of every file below `tests/toolchain` and of the cleave binary.
fn inputs_hash() -> String {
    let mut hasher = DefaultHasher::new();
    let dir = repo().join("tests/toolchain");
    let mut files = Vec::new();
    collect(&dir, &mut files);
    files.sort();
    for file in files {
        file.strip_prefix(&dir).unwrap().hash(&mut hasher);
        std::fs::read(&file).unwrap().hash(&mut hasher);
    }
    let binary = std::fs::metadata(env!("CARGO_BIN_EXE_cleave")).unwrap();
    binary.len().hash(&mut hasher);
    binary.modified().unwrap().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}
