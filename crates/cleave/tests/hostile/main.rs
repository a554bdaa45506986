//! A shared cache turned against its users: helpers, remotes and shared
//! directories that answer with sealed but hostile entries, plant links
//! and pipes, hang, print terminal escapes or hand over huge files. Each
//! test drives the `cleave` binary with a real helper script, a real
//! `file://` directory or a real S3 server (moto), and checks that nothing
//! is written outside its target, every wait ends, memory stays bounded,
//! and what is printed is escaped; the build itself succeeds.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cleave_cache::Digest;
use serde_json::Value;

#[path = "../common/mod.rs"]
mod common;
#[path = "../../../cleave-cache/tests/services/mod.rs"]
mod services;

mod escapes;
mod memory;
mod printing;
mod waits;

use common::machines::Machines;
use common::stderr;

/// The most a command here may take; past it, the test fails (and the
/// command's process group is killed).
const LIMIT: Duration = Duration::from_secs(90);

/// Runs `command` in a process group of its own, killed with everything
/// in it if it is not done within `limit`: a hang fails the test instead of
/// holding it. Returns the output and how long it took.
fn bounded(mut command: Command, limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = command
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cleave");
    let pid = child.id();
    let pipes = (child.stdout.take(), child.stderr.take());
    let readers = (
        std::thread::spawn(move || read_all(pipes.0)),
        std::thread::spawn(move || read_all(pipes.1)),
    );
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let output = Output {
                status,
                stdout: readers.0.join().unwrap(),
                stderr: readers.1.join().unwrap(),
            };
            return (output, started.elapsed());
        }
        if started.elapsed() > limit {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
            let _ = child.wait();
            panic!("cleave did not finish within {limit:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read_all(pipe: Option<impl std::io::Read>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(mut pipe) = pipe {
        let _ = pipe.read_to_end(&mut out);
    }
    out
}

/// `cleave build` of machine `machine`, bounded by [`LIMIT`].
fn build(case: &Machines, machine: &str, extra: &[&str]) -> Output {
    build_with(case, machine, extra, &[])
}

/// [`build`] with environment variables.
fn build_with(case: &Machines, machine: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let args = case.build_args(machine, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    bounded(case.command(machine, &args, env), LIMIT).0
}

/// Runs `cleave` with at most `mib` MiB of data memory (`ulimit -d`): an
/// allocation past it fails, so a read that is not bounded aborts the
/// command instead of taking the machine's memory.
fn with_memory_limit(command: Command, mib: u64) -> Command {
    let mut limited = Command::new("sh");
    limited
        .arg("-c")
        .arg(format!("ulimit -d {} && exec \"$0\" \"$@\"", mib * 1024))
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => limited.env(key, value),
            None => limited.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        limited.current_dir(dir);
    }
    limited
}

/// An executable script in `dir`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A helper that hands over the entry `$FORGED/<key>` for each key it has
/// one for (whatever is there: a directory, a tar, a pipe), and keeps
/// nothing.
fn forged_helper(dir: &Path) -> PathBuf {
    script(
        dir,
        "forged-helper.py",
        r#"#!/usr/bin/env python3
import json, os, sys
request = json.load(sys.stdin)
path = os.path.join(os.environ["FORGED"], request["key"])
if sys.argv[1] == "lookup" and os.path.lexists(path):
    print(json.dumps({"found": True, "entry": path}))
elif sys.argv[1] == "lookup":
    print(json.dumps({"found": False}))
else:
    print("{}")
"#,
    )
}

/// Machine A's entries: full key by name and kind, from `cleave cache
/// list` and each entry's metadata.
fn key_of(case: &Machines, machine: &str, name: &str) -> String {
    let dir = case.path(&format!("cache-{machine}/staging/entries"));
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read(path.join("entry.json")).unwrap();
        let sealed: Value = serde_json::from_slice(&text).unwrap();
        if sealed["meta"]["name"] == name {
            return sealed["meta"]["key"].as_str().unwrap().to_string();
        }
    }
    panic!("no entry {name} in {}", dir.display());
}

/// Every key of a machine's store.
fn keys(case: &Machines, machine: &str) -> Vec<String> {
    std::fs::read_dir(case.path(&format!("cache-{machine}/staging/entries")))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// A portable entry exported from a machine's store, to be edited into a
/// hostile one and sealed again, as its author would.
struct Portable {
    dir: PathBuf,
    meta: Value,
    files: Value,
}

impl Portable {
    /// Exports the entry `key` of `machine` to `dir`.
    fn export(case: &Machines, machine: &str, key: &str, dir: &Path) -> Portable {
        let dest = dir.display().to_string();
        let out = case.cleave(machine, &["cache", "export", key, &dest]);
        assert!(out.status.success(), "{}", stderr(&out));
        let sealed: Value =
            serde_json::from_slice(&std::fs::read(dir.join("entry.json")).unwrap()).unwrap();
        let files = serde_json::from_slice(&std::fs::read(dir.join("files.json")).unwrap());
        Portable {
            dir: dir.to_path_buf(),
            meta: sealed["meta"].clone(),
            files: files.unwrap(),
        }
    }

    /// Adds a blob; returns its digest.
    fn blob(&self, bytes: &[u8]) -> String {
        let digest = Digest::of(bytes).to_hex();
        std::fs::write(self.dir.join("blobs").join(&digest), bytes).unwrap();
        digest
    }

    /// Writes both files, the manifest's digest and the seal made anew.
    fn seal(&mut self) {
        let files = serde_json::to_string(&self.files).unwrap();
        std::fs::write(self.dir.join("files.json"), &files).unwrap();
        self.meta["manifest"] = Value::from(Digest::of(files.as_bytes()).to_hex());
        let meta = serde_json::to_string(&self.meta).unwrap();
        let seal = Digest::of(meta.as_bytes());
        let entry = format!("{{\"seal\":\"{seal}\",\"meta\":{meta}}}");
        std::fs::write(self.dir.join("entry.json"), entry).unwrap();
    }
}

/// Leftover processes a helper started (it writes their PIDs to a file),
/// killed when the test ends.
struct Leftovers(PathBuf);

impl Drop for Leftovers {
    fn drop(&mut self) {
        for pid in std::fs::read_to_string(&self.0)
            .unwrap_or_default()
            .split_whitespace()
        {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
}
