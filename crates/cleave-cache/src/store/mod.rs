//! The store on disk: content-addressed blobs and one entry per key.
//!
//! ```text
//! <store>/
//! ├── blobs/ab/ab12…            file contents, named by BLAKE3 digest
//! ├── entries/<key>/entry.json  name, inputs, size (EntryMeta)
//! │                /files.json  every item, per tree (Manifest)
//! │                /used        its mtime is the entry's last use (LRU)
//! ├── fingerprints/             fast-path indexes of source trees
//! ├── tmp/                      writes in progress
//! └── lock                      shared by readers and writers, exclusive for gc
//! ```
//!
//! An entry appears by renaming a complete directory from `tmp/` into
//! `entries/`, after its blobs are in place and its manifest is synced, so a
//! process killed at any point leaves either no entry or a whole one. Blobs
//! are not synced one by one: a blob lost to a power cut is caught by the
//! digest check on restore, and the entry is rebuilt.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::digest::Digest;
use crate::error::CacheError;
use crate::fingerprint::Fingerprinter;
use crate::foreign::{self, ForeignError, limits};
use crate::lock::Lock;
use crate::manifest::{EntryMeta, Manifest};

mod entry;
mod gc;
mod import;
mod io;
mod put;
mod restore;
mod verify;

pub use entry::Entry;
pub use gc::{GcPolicy, GcReport};
pub use import::{EntryFiles, Incoming};
pub use put::{Capture, Stored, TreeSource};
pub use restore::{Restored, Target};
pub use verify::Problem;

pub(crate) const CHUNK: usize = 256 * 1024;

/// A store rooted at one directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// Which entries of a tree to capture or restore.
#[derive(Debug, Clone, Copy)]
pub enum Select<'a> {
    /// Everything below the directory.
    All,
    /// Exactly these relative paths (files, links, empty directories).
    Only(&'a [PathBuf]),
}

/// An entry with its last use.
#[derive(Debug, Clone)]
pub struct EntryInfo {
    /// The entry's metadata.
    pub meta: EntryMeta,
    /// Seconds since the epoch of the last store or restore.
    pub last_used: u64,
}

impl Store {
    /// Opens (and creates) the store at `root`, clearing what killed
    /// writers left in `tmp/` if no other process is using the store.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, CacheError> {
        let root = root.into();
        for dir in ["blobs", "entries", "tmp"] {
            let dir = root.join(dir);
            std::fs::create_dir_all(&dir)
                .map_err(CacheError::io(format!("creating {}", dir.display())))?;
        }
        let store = Store { root };
        store.clear_stale_tmp();
        Ok(store)
    }

    /// Removes everything in `tmp/` when the store's lock is free. Every
    /// writer holds the lock (shared) while it has files in `tmp/`, so with
    /// the lock taken exclusively whatever is there was left by a process
    /// that died; with the lock busy, nothing is touched (the next open or
    /// `gc` clears it). Waiting is never worth it, nor is failing (a store
    /// on a read-only disk can still be read): this only frees space.
    fn clear_stale_tmp(&self) {
        if let Ok(Some(_lock)) = Lock::try_exclusive(&self.root.join("lock"))
            && let Ok(dir) = std::fs::read_dir(self.root.join("tmp"))
        {
            for leftover in dir.flatten() {
                let _ = io::remove_any(&leftover.path());
            }
        }
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A fingerprinter whose fast-path indexes live in this store.
    pub fn fingerprinter(&self) -> Fingerprinter {
        Fingerprinter::new(self.root.join("fingerprints"))
    }

    fn entry_dir(&self, key: &Digest) -> PathBuf {
        self.root.join("entries").join(key.to_hex())
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.to_hex();
        self.root.join("blobs").join(&hex[..2]).join(hex)
    }

    fn shared_lock(&self) -> Result<Lock, CacheError> {
        Lock::shared(&self.root.join("lock"))
    }

    /// True if a readable entry is stored under `key` (its blobs are
    /// checked on restore, not here).
    pub fn contains(&self, key: &Digest) -> bool {
        self.read_meta(key).is_ok()
    }

    /// The sealed metadata of the entry under `key`.
    fn read_meta(&self, key: &Digest) -> Result<EntryMeta, CacheError> {
        let path = self.entry_dir(key).join("entry.json");
        EntryMeta::from_json(&read_entry_file(&path, key)?, key)
    }

    /// The manifest of the entry `meta` describes, checked against the
    /// digest the metadata records.
    fn read_manifest(&self, meta: &EntryMeta) -> Result<Manifest, CacheError> {
        let path = self.entry_dir(&meta.key).join("files.json");
        Manifest::from_json(&read_entry_file(&path, &meta.key)?, meta)
    }

    /// Removes the entry under `key` (its blobs go at the next `gc`).
    pub fn remove(&self, key: &Digest) -> Result<(), CacheError> {
        let _lock = self.shared_lock()?;
        self.remove_unlocked(key)
    }

    /// [`Store::remove`] for a caller that holds the store's lock.
    fn remove_unlocked(&self, key: &Digest) -> Result<(), CacheError> {
        let dir = self.entry_dir(key);
        // Out of `entries/` first, in one step, so no reader sees half an
        // entry; into a directory of its own, so that a removal killed
        // half-way leaves nothing in the way of the next one.
        let tmp = self.root.join("tmp");
        let doomed = tempfile::Builder::new()
            .prefix("removed-")
            .tempdir_in(&tmp)
            .map_err(CacheError::io(format!(
                "creating a directory in {}",
                tmp.display()
            )))?;
        match std::fs::rename(&dir, doomed.path().join("entry")) {
            Ok(()) => {
                let path = doomed.path().to_path_buf();
                doomed
                    .close()
                    .map_err(CacheError::io(format!("removing {}", path.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(CacheError::io(format!("removing {}", dir.display()))(e)),
        }
    }

    /// Every entry whose metadata can be read, most recently used first.
    pub fn entries(&self) -> Result<Vec<EntryInfo>, CacheError> {
        let mut out: Vec<EntryInfo> = self
            .entry_dirs()?
            .into_iter()
            .filter_map(|(_, key)| self.read_meta(&key?).ok())
            .map(|meta| self.info(meta))
            .collect();
        out.sort_by(|a, b| {
            b.last_used
                .cmp(&a.last_used)
                .then(a.meta.key.cmp(&b.meta.key))
        });
        Ok(out)
    }

    /// An entry's metadata with its last use.
    fn info(&self, meta: EntryMeta) -> EntryInfo {
        let last_used = std::fs::metadata(self.entry_dir(&meta.key).join("used"))
            .map(|m| m.mtime().max(0) as u64)
            .unwrap_or(meta.created);
        EntryInfo { meta, last_used }
    }

    /// Everything in `entries/`, with the key its name spells, if any.
    fn entry_dirs(&self) -> Result<Vec<(PathBuf, Option<Digest>)>, CacheError> {
        let dir = self.root.join("entries");
        let io = || CacheError::io(format!("listing {}", dir.display()));
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io())? {
            let entry = entry.map_err(io())?;
            let key = entry.file_name().to_string_lossy().parse::<Digest>().ok();
            out.push((entry.path(), key));
        }
        out.sort();
        Ok(out)
    }

    /// The entry whose key starts with `prefix`.
    pub fn find(&self, prefix: &str) -> Result<EntryInfo, CacheError> {
        let prefix = prefix.to_ascii_lowercase();
        let mut matches: Vec<EntryInfo> = self
            .entries()?
            .into_iter()
            .filter(|e| e.meta.key.to_hex().starts_with(&prefix))
            .collect();
        match matches.len() {
            0 => Err(CacheError::NotFound(prefix)),
            1 => Ok(matches.remove(0)),
            count => Err(CacheError::Ambiguous { prefix, count }),
        }
    }

    /// The most recently stored entry called `name`, other than `except`.
    pub fn latest_named(
        &self,
        name: &str,
        except: Option<&Digest>,
    ) -> Result<Option<EntryInfo>, CacheError> {
        Ok(self
            .entries()?
            .into_iter()
            .filter(|e| e.meta.name == name && Some(&e.meta.key) != except)
            .max_by_key(|e| (e.meta.created, e.last_used)))
    }
}

/// The bytes of one of an entry's files, `entry.json` or `files.json`, of
/// at most the size its format allows. A file missing from an entry
/// directory that is there is damage; a missing directory means the entry
/// is gone (evicted, if it was there before); any other error is this
/// machine's.
fn read_entry_file(path: &Path, key: &Digest) -> Result<Vec<u8>, CacheError> {
    let damaged = |reason: String| CacheError::Damaged {
        key: key.to_hex(),
        reason,
    };
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let limit = if name == "entry.json" {
        limits::ENTRY_JSON
    } else {
        limits::FILES_JSON
    };
    match foreign::read_regular(path, limit) {
        Ok(bytes) => Ok(bytes),
        Err(ForeignError::Missing) => match path.parent().map(std::fs::symlink_metadata) {
            Some(Ok(_)) => Err(damaged(format!("{name} is missing"))),
            _ => Err(CacheError::Evicted { key: key.to_hex() }),
        },
        Err(ForeignError::Io(e)) if e.kind() == std::io::ErrorKind::NotADirectory => {
            Err(damaged("the entry is not a directory".into()))
        }
        Err(ForeignError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
            Err(damaged(format!("{name}: {e}")))
        }
        Err(ForeignError::Io(e)) => Err(CacheError::io(format!("reading {}", path.display()))(e)),
        Err(e) => Err(damaged(format!("{name} {e}"))),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
