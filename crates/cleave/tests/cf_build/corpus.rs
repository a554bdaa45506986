//! The corpus beside the repository (`../shared/cf-build`), the copy the
//! tools build from, and the channel of its toolchain stand-ins.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{repo, stderr, walk};

/// A recipe of `ORDER`.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub name: String,
    /// Its packages go into a channel of their own that later recipes do
    /// not solve from.
    pub side: bool,
}

/// The corpus: recipes, sources, stand-ins and the order.
pub fn shared() -> PathBuf {
    repo().join("../shared/cf-build")
}

/// The recipes of `ORDER`, in order.
pub fn order(shared: &Path) -> Vec<Recipe> {
    let text = std::fs::read_to_string(shared.join("ORDER")).expect("read ORDER");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next().unwrap_or_default().to_string();
            let side = words.any(|w| w == "side");
            assert!(
                shared.join(&name).join("recipe.yaml").is_file(),
                "ORDER names {name}, which has no recipe.yaml"
            );
            Recipe { name, side }
        })
        .collect()
}

/// Copies the recipes of `order` into `dest` as the tools build them: the
/// sources' `@CF_SOURCES@` becomes the absolute path of the corpus's
/// `_sources/` (read in place), and the variant files lose
/// `channel_sources`.
///
/// The peer solves only from a variant file's `channel_sources` when it
/// has one, and refuses channels given beside it; conda-forge's files name
/// `conda-forge` there, which is not reachable here. Both tools get the
/// same variant file without it and the same channels on the command line,
/// so their build strings still agree with each other.
pub fn copy(shared: &Path, order: &[Recipe], dest: &Path) {
    let sources = std::fs::canonicalize(shared.join("_sources")).expect("the corpus's _sources");
    let sources = sources.to_str().expect("a UTF-8 path");
    for recipe in order {
        let from = shared.join(&recipe.name);
        for file in walk(&from) {
            let to = dest
                .join(&recipe.name)
                .join(file.strip_prefix(&from).unwrap());
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            let bytes = std::fs::read(&file).unwrap();
            let bytes = match String::from_utf8(bytes) {
                Ok(text)
                    if file
                        .file_name()
                        .is_some_and(|n| n == "ci_support_linux_64.yaml") =>
                {
                    without_key(&text, "channel_sources").into_bytes()
                }
                Ok(text) => text.replace("@CF_SOURCES@", sources).into_bytes(),
                Err(e) => e.into_bytes(),
            };
            std::fs::write(&to, bytes).unwrap();
            // Executable bits as in the corpus; writable, as a recipe
            // checkout is (zlib's script writes next to its recipe).
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode | 0o200)).unwrap();
        }
    }
}

/// A conda-forge variant file without the top-level `key` and its list.
fn without_key(text: &str, key: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.starts_with(&format!("{key}:")) {
            skipping = true;
            continue;
        }
        if skipping && (line.starts_with('-') || line.starts_with(' ')) {
            continue;
        }
        skipping = false;
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The channel of the toolchain stand-ins (`_toolchain/`), built by
/// cleave once per set of inputs (the stand-ins and the cleave binary)
/// under Cargo's test scratch directory. `SOURCE_DATE_EPOCH` is fixed, so
/// the same inputs give the same bytes, and the peer's cached builds (see
/// `runs::peer`) stay valid while they do.
pub fn toolchain(shared: &Path) -> PathBuf {
    let dir = shared.join("_toolchain");
    let mut hasher = DefaultHasher::new();
    tree_hash(&dir, &mut hasher);
    let binary = std::fs::metadata(env!("CARGO_BIN_EXE_cleave")).unwrap();
    binary.len().hash(&mut hasher);
    binary.modified().unwrap().hash(&mut hasher);
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cf-build");
    let done = root.join(format!("toolchain-{:016x}", hasher.finish()));
    if done.join("noarch/repodata.json").exists() {
        return done;
    }
    std::fs::create_dir_all(&root).unwrap();
    let tmp = tempfile::tempdir_in(&root).unwrap();
    let channel = tmp.path().join("channel");
    let mut recipes: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("recipe.yaml").is_file())
        .collect();
    recipes.sort();
    for recipe in recipes {
        let output = Command::new(env!("CARGO_BIN_EXE_cleave"))
            .arg("build")
            .arg("--recipe")
            .arg(&recipe)
            .arg("--output-dir")
            .arg(&channel)
            .arg("--cache-dir")
            .arg(tmp.path().join("cache"))
            .arg("--staging-root")
            .arg(tmp.path().join("stg"))
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .env("NO_COLOR", "1")
            .output()
            .expect("run cleave");
        assert!(
            output.status.success(),
            "building the stand-in {}:\n{}",
            recipe.display(),
            stderr(&output)
        );
    }
    // Another process may have won the race: its channel is as good.
    if std::fs::rename(&channel, &done).is_err() {
        assert!(done.join("noarch/repodata.json").exists());
    }
    for entry in std::fs::read_dir(&root).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("toolchain-") && entry.path() != done {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    done
}

/// A digest of every file below `dir` (paths and contents).
pub fn tree_hash(dir: &Path, hasher: &mut DefaultHasher) {
    let mut files = walk(dir);
    files.sort();
    for file in files {
        file.strip_prefix(dir).unwrap().hash(hasher);
        std::fs::read(&file).unwrap().hash(hasher);
    }
}

mod tests {
    use super::*;

    #[test]
    fn a_key_and_its_list_are_dropped_from_a_variant_file() {
        let text = "c_stdlib:\n- sysroot\nchannel_sources:\n- conda-forge\nchannel_targets:\n- conda-forge main\n";
        assert_eq!(
            without_key(text, "channel_sources"),
            "c_stdlib:\n- sysroot\nchannel_targets:\n- conda-forge main\n"
        );
    }
}
