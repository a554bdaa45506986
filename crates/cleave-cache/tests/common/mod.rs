//! Helpers shared by the store's test binaries.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]

use std::path::{Path, PathBuf};

use cleave_cache::store::{Capture, Entry, Select, Target, TreeSource};
use cleave_cache::{Digest, Inputs, Store};

/// The directory of the entry under `key`.
pub fn entry_dir(store: &Path, key: &Digest) -> PathBuf {
    store.join("entries").join(key.to_hex())
}

/// Rewrites `entry.json` of the entry under `key` so that it records the
/// digest of its `files.json` as that file is now, sealed again: what an
/// entry with the edited manifest would look like had the store written it.
/// (The seal is the BLAKE3 digest of the `meta` text; see `manifest.rs`.)
pub fn reseal(store: &Path, key: &Digest) {
    let dir = entry_dir(store, key);
    let files = std::fs::read(dir.join("files.json")).unwrap();
    let sealed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("entry.json")).unwrap()).unwrap();
    let mut meta = sealed["meta"].clone();
    meta["manifest"] = Digest::of(&files).to_hex().into();
    write_sealed(&dir.join("entry.json"), &meta);
}

/// Writes `meta` as a sealed `entry.json`.
pub fn write_sealed(path: &Path, meta: &serde_json::Value) {
    let text = meta.to_string();
    let seal = Digest::of(text.as_bytes()).to_hex();
    std::fs::write(path, format!("{{\"seal\":\"{seal}\",\"meta\":{text}}}")).unwrap();
}

/// Every blob file of the store.
pub fn blob_files(store: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for shard in std::fs::read_dir(store.join("blobs")).unwrap() {
        for blob in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            out.push(blob.unwrap().path());
        }
    }
    out.sort();
    out
}

/// Runs `f` on another thread and returns its result, failing the test if
/// it takes more than ten seconds: for operations that must not block (a
/// blocked thread is left behind; the test binary exits anyway).
pub fn within_10s<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{what} blocked"))
}

/// Makes a named pipe at `path`.
pub fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

/// A tmpfs mounted at a directory for the life of the value: a real disk
/// that fills up.
pub struct TinyDisk(PathBuf);

impl TinyDisk {
    /// Mounts a tmpfs of `size` (`256k`) at `dir`; `None` when this process
    /// may not mount (it is not root), after saying so on stderr.
    pub fn mount(dir: &Path, size: &str) -> Option<TinyDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            // Not through eprintln!: the workspace lints stderr printing.
            let note = "skipped: mounting a tmpfs needs root\n";
            let _ = std::io::Write::write_all(&mut std::io::stderr(), note.as_bytes());
        }
        mounted.then(|| TinyDisk(dir.to_path_buf()))
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// xorshift64: reproducible without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
        &from[self.below(from.len())]
    }
}

const TOKENS: &[&str] = &[
    "null",
    "-1",
    "0",
    "1e999",
    "18446744073709551616",
    "-9223372036854775808",
    "4294967296",
    "\"\"",
    "\"..\"",
    "\"/\"",
    "\"a/../../b\"",
    "[]",
    "{}",
    "[[[[[[[[",
    "\"\\u0000\"",
    "\"é\"",
    "{\"type\":\"symlink\",\"path\":\"x\",\"target\":\"/\"}",
    ",",
    ":",
    "\"",
];

/// One to four edits of `bytes`: a range cut, a token of JSON (or a
/// hostile value) put in, the end cut off, a bit flipped.
pub fn mutate_bytes(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(4) {
            0 if !out.is_empty() => {
                let end = (at + rng.below(16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            1 => {
                let token = rng.pick(TOKENS);
                out.splice(at..at, token.bytes());
            }
            2 => out.truncate(at),
            _ if at < out.len() => out[at] ^= 1 << rng.below(8),
            _ => {}
        }
    }
    out
}

/// A tree of `files` small files (and a few shared ones), as a staging
/// build's prefix.
pub fn tree(files: usize, salt: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..files {
        let sub = dir.path().join(format!("d{}", i % 50));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("f{i}")), format!("file {i} of {salt}\n")).unwrap();
    }
    std::fs::write(dir.path().join("big"), vec![7u8; 300_000]).unwrap();
    dir
}

/// Every file below `dir`, with its contents.
pub fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((
                    path.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&path).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// Stores `dir` as the entry `name` (its only input).
pub fn put(store: &Store, dir: &Path, name: &str) -> Entry {
    let mut inputs = Inputs::new();
    inputs.insert("name", name);
    store
        .put(&Capture {
            name,
            inputs: &inputs,
            trees: vec![TreeSource {
                name: "prefix",
                dir,
                select: Select::All,
            }],
            roots: vec![("prefix", dir)],
            extra: serde_json::Value::Null,
        })
        .unwrap()
        .entry
}

/// Restores the entry's `prefix` tree into `dir`.
pub fn restore(entry: &Entry, dir: &Path) {
    entry
        .restore(
            &[Target {
                tree: "prefix",
                dir,
                select: Select::All,
            }],
            &[("prefix", dir)],
        )
        .unwrap();
}

/// A warning sink that fails the test on any warning.
pub fn no_warnings() -> impl FnMut(String) {
    |w| panic!("unexpected warning: {w}")
}
