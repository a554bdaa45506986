//! Helpers shared by the end-to-end tests.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

pub mod differences;
pub mod machines;
pub mod quetz;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// For a test whose inputs are not on this machine: passes after saying
/// `why` on stderr, unless the environment variable `require` is set, which
/// makes the absence a failure (CI sets it).
#[allow(
    clippy::print_stderr,
    reason = "a skipped test says why in the test output"
)]
pub fn skip_unless_required(require: &str, why: &str) {
    assert!(
        std::env::var_os(require).is_none(),
        "{require} is set, but {why}"
    );
    eprintln!("skipped: {why}");
}

pub fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "cleave failed:\n{}",
        stderr(output)
    );
}

/// Waits for processes that run together, reading all their pipes at
/// once: waiting for one while the others' pipes are not read deadlocks
/// as soon as one of them fills a pipe (64 KiB of script trace) and the
/// one waited for needs it to go on (it holds a lock the other waits for).
pub fn wait_all(children: Vec<Child>) -> Vec<Output> {
    let readers: Vec<_> = children
        .into_iter()
        .map(|child| std::thread::spawn(move || child.wait_with_output()))
        .collect();
    readers
        .into_iter()
        .map(|reader| reader.join().unwrap().unwrap())
        .collect()
}

/// Runs `command` to its end, reading its pipes while it runs (a long
/// report cannot fill one and stall it), and kills it when it has not
/// ended after `limit`: for commands that must not block.
pub fn output_within(limit: Duration, command: &mut Command) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the command");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(limit) {
        Ok(output) => output.expect("the command's output"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("{command:?} did not end within {limit:?}");
        }
    }
}

/// What a run printed on stderr, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs tests/oracle/channel.py: extracts every package with
/// conda-package-handling, installs `specs` with py-rattler into `prefix`
/// and runs `command` there.
pub fn oracle(channel: &Path, prefix: &Path, specs: &[&str], command: &[&str]) -> Value {
    oracle_with(channel, &[], prefix, specs, command)
}

/// [`oracle`], solving from `also` after `channel` (their packages are not
/// checked).
pub fn oracle_with(
    channel: &Path,
    also: &[&Path],
    prefix: &Path,
    specs: &[&str],
    command: &[&str],
) -> Value {
    let mut cmd = Command::new("python3");
    cmd.arg(repo().join("tests/oracle/channel.py"));
    for extra in also {
        cmd.arg("--channel").arg(extra);
    }
    cmd.arg(channel).arg(prefix).args(specs);
    if !command.is_empty() {
        cmd.arg("--").args(command);
    }
    let output = cmd.output().expect("run python3");
    assert!(
        output.status.success(),
        "the oracle rejected the channel:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("oracle JSON")
}

/// The package called `name`, as the oracle extracted it.
pub fn package<'a>(checked: &'a Value, name: &str) -> &'a Value {
    checked["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["index"]["name"] == name)
        .unwrap_or_else(|| panic!("no package {name} in {checked}"))
}

/// index.json of the package called `name`, as the oracle extracted it.
pub fn index<'a>(checked: &'a Value, name: &str) -> &'a Value {
    &package(checked, name)["index"]
}

/// The paths of the package called `name` (from its paths.json), sorted.
pub fn paths(checked: &Value, name: &str) -> Vec<String> {
    let mut paths: Vec<String> = package(checked, name)["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["_path"].as_str().unwrap().to_string())
        .collect();
    paths.sort();
    paths
}

pub fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// A copy of a recipe directory of the repository in a fresh temporary
/// directory, for tests that edit recipes or count what ran beside them.
pub struct RecipeCopy {
    pub tmp: tempfile::TempDir,
    pub recipe: PathBuf,
}

impl RecipeCopy {
    /// A copy of `tests/<group>/<name>` at `<tmp>/<name>`.
    pub fn new(group: &str, name: &str) -> RecipeCopy {
        let tmp = tempfile::tempdir().unwrap();
        let recipe = tmp.path().join(name);
        copy_dir(&repo().join("tests").join(group).join(name), &recipe);
        RecipeCopy { tmp, recipe }
    }

    /// A path in the temporary directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// Rewrites a file of the recipe copy.
    pub fn edit(&self, rel: &str, edit: impl FnOnce(String) -> String) {
        let path = self.recipe.join(rel);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        std::fs::write(&path, edit(text)).unwrap();
    }
}

/// Every file below `dir` (links not followed into), at any depth.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// A tmpfs mounted at a directory for the life of the value: a real disk
/// that fills up.
pub struct TinyDisk(PathBuf);

impl TinyDisk {
    /// Mounts a tmpfs of `size` (`1m`) at `dir`; `None` when this process
    /// may not mount (it is not root), unless `CLEAVE_TEST_MOUNT` requires
    /// it.
    pub fn mount(dir: &Path, size: &str) -> Option<TinyDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            skip_unless_required("CLEAVE_TEST_MOUNT", "mounting a tmpfs needs root");
        }
        mounted.then(|| TinyDisk(dir.to_path_buf()))
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
