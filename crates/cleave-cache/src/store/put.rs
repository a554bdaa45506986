//! Capture: trees into blobs and a new entry.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::entry::Pin;
use super::io::{remove_any, sync_dir, touch, write_synced};
use super::{CHUNK, Entry, Select, Store, unix_now};
use crate::digest::Digest;
use crate::error::CacheError;
use crate::foreign::open_regular;
use crate::key::Inputs;
use crate::manifest::{EntryMeta, Item, Manifest, SET_ID};
use crate::relocate::Scanner;

/// What to keep: named trees, and paths to look for inside files.
#[derive(Debug)]
pub struct Capture<'a> {
    /// A name for people (several keys may share it).
    pub name: &'a str,
    /// The inputs; the entry is stored under their key, and keeps them for
    /// `explain`.
    pub inputs: &'a Inputs,
    /// The trees to capture.
    pub trees: Vec<TreeSource<'a>>,
    /// Named absolute paths to find in file contents, so that a restore at
    /// other paths can rewrite them. Longer paths should come first when
    /// one contains another.
    pub roots: Vec<(&'a str, &'a Path)>,
    /// Kept in the entry's metadata as it is.
    pub extra: serde_json::Value,
}

/// One directory to capture, whole or in part.
#[derive(Debug)]
pub struct TreeSource<'a> {
    /// The tree's name in the entry.
    pub name: &'a str,
    /// Where it is now.
    pub dir: &'a Path,
    /// Which of its entries to take.
    pub select: Select<'a>,
}

/// What [`Store::put`] stored.
#[derive(Debug)]
pub struct Stored {
    /// The entry (another process's, if it stored the same key first).
    pub entry: Entry,
    /// What was left out, by tree name and relative path: named pipes,
    /// sockets and devices, which have no contents to keep (and opening a
    /// pipe to read it would wait for a writer forever).
    pub skipped: Vec<(String, PathBuf)>,
}

impl Store {
    /// Captures the trees into a new entry, stored under the key of its
    /// inputs. If another process stored the same key meanwhile, its entry
    /// is kept.
    pub fn put(&self, capture: &Capture<'_>) -> Result<Stored, CacheError> {
        let key = capture.inputs.key();
        let _lock = self.shared_lock()?;
        let needles: Vec<Vec<u8>> = capture
            .roots
            .iter()
            .map(|(_, p)| p.as_os_str().as_encoded_bytes().to_vec())
            .collect();
        let mut manifest = Manifest {
            roots: capture
                .roots
                .iter()
                .map(|(n, p)| (n.to_string(), p.display().to_string()))
                .collect(),
            trees: BTreeMap::new(),
        };
        let mut size: u64 = 0;
        let mut count = 0;
        let mut skipped = Vec::new();
        for tree in &capture.trees {
            let found = list(tree)?;
            let captured: Vec<Result<Item, PathBuf>> = found
                .into_par_iter()
                .map(|(rel, meta)| self.capture_item(tree.dir, rel, &meta, &needles, capture))
                .collect::<Result<_, _>>()?;
            let mut items = Vec::with_capacity(captured.len());
            for item in captured {
                match item {
                    Ok(item) => items.push(item),
                    Err(rel) => skipped.push((tree.name.to_string(), rel)),
                }
            }
            size = items.iter().fold(size, |sum, i| match i {
                Item::File { size, .. } => sum.saturating_add(*size),
                _ => sum,
            });
            count += items.len();
            manifest.trees.insert(tree.name.to_string(), items);
        }
        let json =
            |e: serde_json::Error| CacheError::io("writing an entry")(std::io::Error::other(e));
        let files = serde_json::to_vec(&manifest).map_err(json)?;
        let meta = EntryMeta {
            key,
            name: capture.name.to_string(),
            created: unix_now(),
            inputs: capture.inputs.clone(),
            items: count,
            size,
            extra: capture.extra.clone(),
            manifest: Digest::of(&files),
        };
        let entry = meta.to_json().map_err(json)?;
        self.install(&files, &entry, meta)
            .map(|entry| Stored { entry, skipped })
    }

    /// Writes an entry's two files into a new directory of `tmp/`, pins it
    /// and renames it into `entries/`: the entry, or the one another
    /// process stored under the same key first.
    pub(super) fn install(
        &self,
        files: &[u8],
        entry: &[u8],
        meta: EntryMeta,
    ) -> Result<Entry, CacheError> {
        let tmp = self.root.join("tmp");
        let staged = tempfile::Builder::new()
            .prefix("entry-")
            .tempdir_in(&tmp)
            .map_err(CacheError::io(format!(
                "creating a directory in {}",
                tmp.display()
            )))?;
        write_synced(&staged.path().join("files.json"), files)?;
        write_synced(&staged.path().join("entry.json"), entry)?;
        touch(&staged.path().join("used"))?;
        // Pinned before it is in place: no gc can take it between its
        // arrival and the caller's restore.
        let pin_error = || CacheError::io(format!("locking {}", staged.path().display()));
        let pin = Pin::take(staged.path())
            .map_err(pin_error())?
            .ok_or_else(|| pin_error()(std::io::ErrorKind::NotFound.into()))?;
        let staged = staged.keep();
        let stored = self.publish(&staged, &meta.key);
        if stored.is_err() {
            let _ = std::fs::remove_dir_all(&staged);
        }
        Ok(stored?.unwrap_or(Entry {
            store: self.clone(),
            meta,
            _pin: pin,
        }))
    }

    /// Renames a complete entry directory into `entries/`. Returns the
    /// entry found there instead when another process stored the same key
    /// first (its entry is as good as this one). Something unreadable in
    /// the way is removed (by [`Store::get`]) and the rename tried again.
    fn publish(&self, staged: &Path, key: &Digest) -> Result<Option<Entry>, CacheError> {
        let dest = self.entry_dir(key);
        let mut tries = 0;
        loop {
            let error = match std::fs::rename(staged, &dest) {
                Ok(()) => {
                    sync_dir(&self.root.join("entries"));
                    return Ok(None);
                }
                Err(e) => e,
            };
            if let Some(existing) = self.get(key)? {
                let _ = std::fs::remove_dir_all(staged);
                return Ok(Some(existing));
            }
            tries += 1;
            if tries == 3 {
                return Err(CacheError::io(format!("storing {}", dest.display()))(error));
            }
        }
    }

    /// One captured item, or `Err` with its path when it is left out (not
    /// a regular file, link or directory).
    fn capture_item(
        &self,
        dir: &Path,
        rel: PathBuf,
        meta: &std::fs::Metadata,
        needles: &[Vec<u8>],
        capture: &Capture<'_>,
    ) -> Result<Result<Item, PathBuf>, CacheError> {
        let path = dir.join(&rel);
        let mode = meta.permissions().mode() & 0o7777;
        let kind = meta.file_type();
        // A file's set-ID bits are not kept: no entry may restore one (see
        // `Manifest::check`).
        let file_mode = mode & !SET_ID;
        if kind.is_symlink() {
            let target = std::fs::read_link(&path)
                .map_err(CacheError::io(format!("reading {}", path.display())))?;
            return Ok(Ok(Item::Symlink { path: rel, target }));
        }
        if kind.is_dir() {
            return Ok(Ok(Item::Dir { path: rel, mode }));
        }
        if !kind.is_file() {
            return Ok(Err(rel));
        }
        let Some(blob) = self.store_blob(&path, needles)? else {
            // It became something else since it was listed.
            return Ok(Err(rel));
        };
        Ok(Ok(Item::File {
            path: rel,
            blob: blob.digest,
            size: blob.size,
            mode: file_mode,
            mtime: (meta.mtime(), meta.mtime_nsec().clamp(0, 999_999_999) as u32),
            roots: blob
                .found
                .into_iter()
                .filter_map(|i| capture.roots.get(i).map(|(name, _)| name.to_string()))
                .collect(),
            binary: blob.binary,
        }))
    }

    /// Copies a file into the blob store in one read, hashing and scanning
    /// it on the way; `None` if it is not a regular file.
    fn store_blob(&self, path: &Path, needles: &[Vec<u8>]) -> Result<Option<Blob>, CacheError> {
        let io = || CacheError::io(format!("storing {}", path.display()));
        let Some(mut source) = open_regular(path).map_err(io())? else {
            return Ok(None);
        };
        let mut temp = tempfile::NamedTempFile::new_in(self.root.join("tmp")).map_err(io())?;
        let mut hasher = blake3::Hasher::new();
        let mut scanner = Scanner::new(needles);
        let mut buf = vec![0; CHUNK];
        let mut size: u64 = 0;
        loop {
            let n = source.read(&mut buf).map_err(io())?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            scanner.feed(&buf[..n]);
            temp.write_all(&buf[..n]).map_err(io())?;
            size = size.saturating_add(n as u64);
        }
        let digest: Digest = hasher.finalize().into();
        let dest = self.blob_path(&digest);
        // Always renamed over a blob already there: the contents are written
        // by now, so this costs one rename, and an existing blob is not
        // trusted without reading it (one of the same size may hold other
        // bytes). A reader of the old file keeps reading the old file.
        if let Some(shard) = dest.parent() {
            std::fs::create_dir_all(shard).map_err(io())?;
        }
        if let Err(e) = temp.persist(&dest) {
            // A directory where the blob goes (nothing the store makes) is
            // in the way of every later put: remove it and try once more.
            remove_any(&dest).map_err(io())?;
            e.file.persist(&dest).map_err(|e| io()(e.error))?;
        }
        let (found, binary) = scanner.finish();
        Ok(Some(Blob {
            digest,
            size,
            found,
            binary,
        }))
    }
}

/// A file as [`Store::store_blob`] stored it.
struct Blob {
    digest: Digest,
    size: u64,
    /// Indexes of the capture's roots its contents hold.
    found: Vec<usize>,
    /// Whether it holds a NUL byte.
    binary: bool,
}

/// Lists a tree's items to capture, with their metadata (not followed).
fn list(tree: &TreeSource<'_>) -> Result<Vec<(PathBuf, std::fs::Metadata)>, CacheError> {
    let mut out = Vec::new();
    match tree.select {
        Select::All => walk(tree.dir, Path::new(""), &mut out)?,
        Select::Only(paths) => {
            for rel in paths {
                let path = tree.dir.join(rel);
                let meta = std::fs::symlink_metadata(&path)
                    .map_err(CacheError::io(format!("reading {}", path.display())))?;
                out.push((rel.clone(), meta));
            }
        }
    }
    Ok(out)
}

fn walk(
    root: &Path,
    rel: &Path,
    out: &mut Vec<(PathBuf, std::fs::Metadata)>,
) -> Result<(), CacheError> {
    let dir = root.join(rel);
    let io = || CacheError::io(format!("listing {}", dir.display()));
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .map_err(io())?
        .collect::<Result<_, _>>()
        .map_err(io())?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = rel.join(entry.file_name());
        let meta = std::fs::symlink_metadata(entry.path()).map_err(CacheError::io(format!(
            "reading {}",
            entry.path().display()
        )))?;
        let is_dir = meta.is_dir();
        out.push((path.clone(), meta));
        if is_dir {
            walk(root, &path, out)?;
        }
    }
    Ok(())
}
