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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use filetime::FileTime;
use rayon::prelude::*;

use crate::digest::Digest;
use crate::error::CacheError;
use crate::fingerprint::Fingerprinter;
use crate::key::Inputs;
use crate::lock::Lock;
use crate::manifest::{EntryMeta, Item, Manifest};
use crate::relocate::{self, Replacement, Scanner};

const CHUNK: usize = 256 * 1024;

/// A store rooted at one directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// What to keep: named trees, and paths to look for inside files.
#[derive(Debug)]
pub struct Capture<'a> {
    /// The key the entry is stored under.
    pub key: Digest,
    /// A name for people (several keys may share it).
    pub name: &'a str,
    /// The inputs the key came from, kept for `explain`.
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

/// Which entries of a tree to capture or restore.
#[derive(Debug, Clone, Copy)]
pub enum Select<'a> {
    /// Everything below the directory.
    All,
    /// Exactly these relative paths (files, links, empty directories).
    Only(&'a [PathBuf]),
}

/// Where to restore one tree of an entry.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The tree's name in the entry.
    pub tree: &'a str,
    /// The directory to restore into (created if missing).
    pub dir: &'a Path,
    /// Which of the tree's items to write: a caller that needs a few files
    /// of a large tree (a build tree's license files) gets only those, with
    /// the directories above them.
    pub select: Select<'a>,
}

impl Target<'_> {
    /// The items of `tree` this target writes.
    fn items<'m>(&self, tree: &'m [Item]) -> Vec<&'m Item> {
        match self.select {
            Select::All => tree.iter().collect(),
            Select::Only(paths) => {
                let wanted: HashSet<&Path> = paths.iter().map(PathBuf::as_path).collect();
                tree.iter().filter(|i| wanted.contains(i.path())).collect()
            }
        }
    }
}

/// What a restore did.
#[derive(Debug, Default)]
pub struct Restored {
    /// Per tree, the files and links written (relative paths).
    pub trees: BTreeMap<String, Vec<PathBuf>>,
    /// Bytes of file contents written.
    pub bytes: u64,
    /// Files whose contents were rewritten for new paths.
    pub relocated: usize,
}

/// An entry with its last use.
#[derive(Debug, Clone)]
pub struct EntryInfo {
    /// The entry's metadata.
    pub meta: EntryMeta,
    /// Seconds since the epoch of the last store or restore.
    pub last_used: u64,
}

/// A problem `verify` found.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The entry.
    pub key: String,
    /// Its name, when the metadata could be read.
    pub name: Option<String>,
    /// What is wrong.
    pub reason: String,
}

/// Which entries `gc` removes.
#[derive(Debug, Clone, Copy, Default)]
pub struct GcPolicy {
    /// Evict least recently used entries until the blobs fit in this size.
    pub max_size: Option<u64>,
    /// Evict entries not used for this long.
    pub older_than: Option<Duration>,
}

/// What `gc` removed and kept.
#[derive(Debug, Default)]
pub struct GcReport {
    /// The evicted entries.
    pub removed: Vec<EntryInfo>,
    /// Bytes of blobs deleted.
    pub freed: u64,
    /// Entries left.
    pub kept: usize,
    /// Bytes of blobs left.
    pub kept_bytes: u64,
}

impl Store {
    /// Opens (and creates) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, CacheError> {
        let root = root.into();
        for dir in ["blobs", "entries", "tmp"] {
            let dir = root.join(dir);
            std::fs::create_dir_all(&dir)
                .map_err(CacheError::io(format!("creating {}", dir.display())))?;
        }
        Ok(Store { root })
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

    /// True if an entry is stored under `key` (its blobs are checked on
    /// restore, not here).
    pub fn contains(&self, key: &Digest) -> bool {
        self.entry_dir(key).join("entry.json").is_file()
    }

    /// The metadata of the entry under `key`.
    pub fn meta(&self, key: &Digest) -> Result<EntryMeta, CacheError> {
        let path = self.entry_dir(key).join("entry.json");
        read_json(&path, &key.to_hex())
    }

    /// The item list of the entry under `key`.
    pub fn manifest(&self, key: &Digest) -> Result<Manifest, CacheError> {
        let path = self.entry_dir(key).join("files.json");
        read_json(&path, &key.to_hex())
    }

    /// Captures the trees into a new entry; returns its metadata. If another
    /// process stored the same key meanwhile, its entry is kept.
    pub fn put(&self, capture: &Capture<'_>) -> Result<EntryMeta, CacheError> {
        let _lock = self.shared_lock()?;
        let tmp = self.root.join("tmp");
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
        let mut size = 0;
        let mut count = 0;
        for tree in &capture.trees {
            let found = list(tree)?;
            let items: Vec<Item> = found
                .into_par_iter()
                .map(|(rel, meta)| self.capture_item(tree.dir, rel, &meta, &needles, capture))
                .collect::<Result<_, _>>()?;
            size += items
                .iter()
                .map(|i| match i {
                    Item::File { size, .. } => *size,
                    _ => 0,
                })
                .sum::<u64>();
            count += items.len();
            manifest.trees.insert(tree.name.to_string(), items);
        }
        let meta = EntryMeta {
            key: capture.key,
            name: capture.name.to_string(),
            created: unix_now(),
            inputs: capture.inputs.clone(),
            items: count,
            size,
            extra: capture.extra.clone(),
        };
        let staged = tempfile::Builder::new()
            .prefix("entry-")
            .tempdir_in(&tmp)
            .map_err(CacheError::io(format!(
                "creating a directory in {}",
                tmp.display()
            )))?;
        write_synced(&staged.path().join("files.json"), &manifest)?;
        write_synced(&staged.path().join("entry.json"), &meta)?;
        touch(&staged.path().join("used"))?;
        let dest = self.entry_dir(&capture.key);
        let staged = staged.keep();
        match std::fs::rename(&staged, &dest) {
            Ok(()) => {
                sync_dir(&self.root.join("entries"));
                Ok(meta)
            }
            Err(_) if self.contains(&capture.key) => {
                // Another process stored the same key first; its entry is
                // as good as this one.
                let _ = std::fs::remove_dir_all(&staged);
                self.meta(&capture.key)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staged);
                Err(CacheError::io(format!("storing {}", dest.display()))(e))
            }
        }
    }

    fn capture_item(
        &self,
        dir: &Path,
        rel: PathBuf,
        meta: &std::fs::Metadata,
        needles: &[Vec<u8>],
        capture: &Capture<'_>,
    ) -> Result<Item, CacheError> {
        let path = dir.join(&rel);
        let mode = meta.permissions().mode() & 0o7777;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path)
                .map_err(CacheError::io(format!("reading {}", path.display())))?;
            return Ok(Item::Symlink { path: rel, target });
        }
        if meta.is_dir() {
            return Ok(Item::Dir { path: rel, mode });
        }
        let (blob, size, found, binary) = self.store_blob(&path, needles)?;
        let mtime = FileTime::from_last_modification_time(meta);
        Ok(Item::File {
            path: rel,
            blob,
            size,
            mode,
            mtime: (mtime.unix_seconds(), mtime.nanoseconds()),
            roots: found
                .into_iter()
                .map(|i| capture.roots[i].0.to_string())
                .collect(),
            binary,
        })
    }

    /// Copies a file into the blob store in one read, hashing and scanning
    /// it on the way.
    fn store_blob(
        &self,
        path: &Path,
        needles: &[Vec<u8>],
    ) -> Result<(Digest, u64, Vec<usize>, bool), CacheError> {
        let io = || CacheError::io(format!("storing {}", path.display()));
        let mut source = std::fs::File::open(path).map_err(io())?;
        let mut temp = tempfile::NamedTempFile::new_in(self.root.join("tmp")).map_err(io())?;
        let mut hasher = blake3::Hasher::new();
        let mut scanner = Scanner::new(needles);
        let mut buf = vec![0; CHUNK];
        let mut size = 0;
        loop {
            let n = source.read(&mut buf).map_err(io())?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            scanner.feed(&buf[..n]);
            temp.write_all(&buf[..n]).map_err(io())?;
            size += n as u64;
        }
        let digest: Digest = hasher.finalize().into();
        let dest = self.blob_path(&digest);
        // A blob of the wrong size is damaged: replace it. (Damage that keeps
        // the size is caught on restore, which then deletes the blob.)
        if std::fs::metadata(&dest).ok().map(|m| m.len()) != Some(size) {
            std::fs::create_dir_all(dest.parent().expect("blobs live in a directory"))
                .map_err(io())?;
            temp.persist(&dest).map_err(|e| io()(e.error))?;
        }
        let (found, binary) = scanner.finish();
        Ok((digest, size, found, binary))
    }

    /// Restores the entry under `key` into the targets, rewriting the roots'
    /// paths where the new ones differ. Every blob is checked against its
    /// digest; a mismatch is [`CacheError::Damaged`] and the caller should
    /// [`Store::remove`] the entry and rebuild.
    pub fn restore(
        &self,
        key: &Digest,
        targets: &[Target<'_>],
        roots: &[(&str, &Path)],
    ) -> Result<Restored, CacheError> {
        let _lock = self.shared_lock()?;
        let hex = key.to_hex();
        let manifest = self.manifest(key)?;
        manifest.check(&hex)?;
        // Longest old path first, so a root inside another is not cut short.
        let mut replacements: Vec<(String, Replacement)> = roots
            .iter()
            .filter_map(|(name, new)| {
                let old = manifest.roots.get(*name)?;
                let new = new.as_os_str().as_encoded_bytes();
                (old.as_bytes() != new).then(|| {
                    (
                        name.to_string(),
                        Replacement {
                            old: old.as_bytes().to_vec(),
                            new: new.to_vec(),
                        },
                    )
                })
            })
            .collect();
        replacements.sort_by_key(|(_, r)| std::cmp::Reverse(r.old.len()));

        // Refuse before writing anything: a binary file that would need a
        // longer path.
        let chosen: Vec<Vec<&Item>> = targets
            .iter()
            .map(|t| t.items(manifest.trees.get(t.tree).map_or(&[][..], Vec::as_slice)))
            .collect();
        for items in &chosen {
            for item in items {
                if let Item::File {
                    path,
                    roots: held,
                    binary: true,
                    ..
                } = item
                {
                    for (name, r) in &replacements {
                        if held.contains(name) && r.new.len() > r.old.len() {
                            return Err(CacheError::TooLong {
                                key: hex.clone(),
                                file: path.clone(),
                                old: String::from_utf8_lossy(&r.old).into_owned(),
                                new: String::from_utf8_lossy(&r.new).into_owned(),
                            });
                        }
                    }
                }
            }
        }

        let mut restored = Restored::default();
        for (target, items) in targets.iter().zip(&chosen) {
            let done = self.restore_tree(&hex, items, target.dir, &replacements)?;
            restored.bytes += done.bytes;
            restored.relocated += done.relocated;
            restored.trees.insert(target.tree.to_string(), done.paths);
        }
        let _ = touch(&self.entry_dir(key).join("used"));
        Ok(restored)
    }

    fn restore_tree(
        &self,
        key: &str,
        items: &[&Item],
        dir: &Path,
        replacements: &[(String, Replacement)],
    ) -> Result<TreeDone, CacheError> {
        std::fs::create_dir_all(dir)
            .map_err(CacheError::io(format!("creating {}", dir.display())))?;
        // Directories first, each checked to be a real directory inside the
        // target: the target may already hold links of its own.
        let mut dirs = SafeDirs::new(dir);
        for item in items {
            match item {
                Item::Dir { path, .. } => dirs.ensure(path)?,
                other => {
                    if let Some(parent) = other.path().parent() {
                        dirs.ensure(parent)?;
                    }
                }
            }
        }
        let results: Vec<(u64, bool)> = items
            .par_iter()
            .filter_map(|item| match item {
                Item::File {
                    path,
                    blob,
                    mode,
                    mtime,
                    roots,
                    binary,
                    ..
                } => {
                    let wanted: Vec<Replacement> = replacements
                        .iter()
                        .filter(|(name, _)| roots.contains(name))
                        .map(|(_, r)| r.clone())
                        .collect();
                    Some(
                        self.restore_file(key, blob, &dir.join(path), path, &wanted, *binary)
                            .and_then(|bytes| {
                                let dest = dir.join(path);
                                std::fs::set_permissions(
                                    &dest,
                                    std::fs::Permissions::from_mode(*mode),
                                )
                                .and_then(|()| {
                                    filetime::set_file_mtime(
                                        &dest,
                                        FileTime::from_unix_time(mtime.0, mtime.1),
                                    )
                                })
                                .map_err(CacheError::io(format!("restoring {}", dest.display())))?;
                                Ok((bytes, !wanted.is_empty()))
                            }),
                    )
                }
                _ => None,
            })
            .collect::<Result<_, _>>()?;
        let mut done = TreeDone {
            bytes: results.iter().map(|(b, _)| b).sum(),
            relocated: results.iter().filter(|(_, r)| *r).count(),
            paths: Vec::new(),
        };
        for item in items {
            match item {
                Item::Symlink { path, target } => {
                    let dest = dir.join(path);
                    remove_non_dir(&dest)?;
                    let target = relink(target, replacements);
                    std::os::unix::fs::symlink(&target, &dest)
                        .map_err(CacheError::io(format!("linking {}", dest.display())))?;
                    done.paths.push(path.clone());
                }
                Item::File { path, .. } => done.paths.push(path.clone()),
                Item::Dir { .. } => {}
            }
        }
        // Modes of directories last: a read-only one must be filled first.
        for item in items.iter().rev() {
            if let Item::Dir { path, mode } = item {
                let dest = dir.join(path);
                std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(*mode))
                    .map_err(CacheError::io(format!("restoring {}", dest.display())))?;
            }
        }
        Ok(done)
    }

    /// Writes one blob to `dest`, verified against its digest.
    fn restore_file(
        &self,
        key: &str,
        blob: &Digest,
        dest: &Path,
        rel: &Path,
        replacements: &[Replacement],
        binary: bool,
    ) -> Result<u64, CacheError> {
        let source = self.blob_path(blob);
        let damaged = |reason: String| {
            // A blob that fails its digest is wrong for every entry using
            // it: delete it, so that the rebuild stores it afresh.
            let _ = std::fs::remove_file(&source);
            CacheError::Damaged {
                key: key.to_string(),
                reason: format!("{}: {reason}", rel.display()),
            }
        };
        let io = || CacheError::io(format!("restoring {}", dest.display()));
        remove_non_dir(dest)?;
        if !replacements.is_empty() {
            let data =
                std::fs::read(&source).map_err(|e| damaged(format!("blob unreadable: {e}")))?;
            if Digest::of(&data) != *blob {
                return Err(damaged("blob does not match its digest".into()));
            }
            let data = if binary {
                let mut data = data;
                relocate::binary(&mut data, replacements).map_err(|r| CacheError::TooLong {
                    key: key.to_string(),
                    file: rel.to_path_buf(),
                    old: String::from_utf8_lossy(&r.old).into_owned(),
                    new: String::from_utf8_lossy(&r.new).into_owned(),
                })?;
                data
            } else {
                relocate::text(&data, replacements)
            };
            std::fs::write(dest, &data).map_err(io())?;
            return Ok(data.len() as u64);
        }
        // A reflink shares the blob's extents copy-on-write: a later write
        // to the restored file cannot reach the store. Verify by reading it
        // back; where reflinks are not supported, copy and hash in one pass.
        if reflink_copy::reflink(&source, dest).is_ok() {
            let digest = Digest::of_file(dest).map_err(io())?;
            if digest != *blob {
                return Err(damaged("blob does not match its digest".into()));
            }
            return Ok(std::fs::metadata(dest).map_err(io())?.len());
        }
        let mut input =
            std::fs::File::open(&source).map_err(|e| damaged(format!("blob unreadable: {e}")))?;
        let mut output = std::fs::File::create(dest).map_err(io())?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0; CHUNK];
        let mut size = 0;
        loop {
            let n = input
                .read(&mut buf)
                .map_err(|e| damaged(format!("blob unreadable: {e}")))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            output.write_all(&buf[..n]).map_err(io())?;
            size += n as u64;
        }
        if Digest::from(hasher.finalize()) != *blob {
            return Err(damaged("blob does not match its digest".into()));
        }
        Ok(size)
    }

    /// Removes the entry under `key` (its blobs go at the next `gc`).
    pub fn remove(&self, key: &Digest) -> Result<(), CacheError> {
        let dir = self.entry_dir(key);
        // Out of `entries/` first, in one step, so no reader sees half an entry.
        let doomed = self
            .root
            .join("tmp")
            .join(format!("removed-{}", key.to_hex()));
        match std::fs::rename(&dir, &doomed) {
            Ok(()) => std::fs::remove_dir_all(&doomed)
                .map_err(CacheError::io(format!("removing {}", doomed.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(CacheError::io(format!("removing {}", dir.display()))(e)),
        }
    }

    /// Every entry whose metadata can be read, most recently used first.
    pub fn entries(&self) -> Result<Vec<EntryInfo>, CacheError> {
        let dir = self.root.join("entries");
        let mut out = Vec::new();
        for entry in
            std::fs::read_dir(&dir).map_err(CacheError::io(format!("listing {}", dir.display())))?
        {
            let entry = entry.map_err(CacheError::io(format!("listing {}", dir.display())))?;
            let Ok(key) = entry.file_name().to_string_lossy().parse::<Digest>() else {
                continue;
            };
            if let Ok(meta) = self.meta(&key) {
                let last_used = std::fs::metadata(entry.path().join("used"))
                    .map(|m| m.mtime().max(0) as u64)
                    .unwrap_or(meta.created);
                out.push(EntryInfo { meta, last_used });
            }
        }
        out.sort_by(|a, b| {
            b.last_used
                .cmp(&a.last_used)
                .then(a.meta.key.cmp(&b.meta.key))
        });
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

    /// Checks every entry: readable metadata and manifest, safe paths, and
    /// every blob present with the right digest. With `repair`, damaged
    /// blobs and the entries that have problems are removed.
    pub fn verify(&self, repair: bool) -> Result<Vec<Problem>, CacheError> {
        let _lock = self.shared_lock()?;
        let dir = self.root.join("entries");
        let mut problems = Vec::new();
        for entry in
            std::fs::read_dir(&dir).map_err(CacheError::io(format!("listing {}", dir.display())))?
        {
            let entry = entry.map_err(CacheError::io(format!("listing {}", dir.display())))?;
            let hex = entry.file_name().to_string_lossy().into_owned();
            let Ok(key) = hex.parse::<Digest>() else {
                continue;
            };
            let name = self.meta(&key).ok().map(|m| m.name);
            let problem = |reason: String| Problem {
                key: hex.clone(),
                name: name.clone(),
                reason,
            };
            if name.is_none() {
                problems.push(problem("entry.json is missing or unreadable".into()));
                continue;
            }
            let manifest = match self.manifest(&key) {
                Ok(m) => m,
                Err(e) => {
                    problems.push(problem(e.to_string()));
                    continue;
                }
            };
            if let Err(e) = manifest.check(&hex) {
                problems.push(problem(e.to_string()));
                continue;
            }
            let blobs: HashMap<Digest, u64> = manifest.blobs().collect();
            let bad: Vec<String> = blobs
                .par_iter()
                .filter_map(|(digest, _)| {
                    let path = self.blob_path(digest);
                    match Digest::of_file(&path) {
                        Err(_) => Some(format!("blob {digest} is missing")),
                        Ok(d) if d != *digest => {
                            if repair {
                                let _ = std::fs::remove_file(&path);
                            }
                            Some(format!("blob {digest} does not match its digest"))
                        }
                        Ok(_) => None,
                    }
                })
                .collect();
            problems.extend(bad.into_iter().map(problem));
        }
        if repair {
            let mut keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
            keys.dedup();
            for key in keys {
                if let Ok(key) = key.parse::<Digest>() {
                    self.remove(&key)?;
                }
            }
        }
        Ok(problems)
    }

    /// Evicts entries by the policy, least recently used first, then deletes
    /// blobs no entry refers to and leftovers of killed writers.
    pub fn gc(&self, policy: GcPolicy) -> Result<GcReport, CacheError> {
        let (_lock, _) = Lock::exclusive(&self.root.join("lock"), || {})?;
        let mut entries = self.entries()?;
        // Oldest first.
        entries.reverse();
        let mut manifests: Vec<Option<Manifest>> = entries
            .iter()
            .map(|e| self.manifest(&e.meta.key).ok())
            .collect();
        let mut refs: HashMap<Digest, (u64, usize)> = HashMap::new();
        for m in manifests.iter().flatten() {
            let distinct: HashSet<(Digest, u64)> = m.blobs().collect();
            for (digest, size) in distinct {
                refs.entry(digest).or_insert((size, 0)).1 += 1;
            }
        }
        let mut total: u64 = refs.values().map(|(s, _)| s).sum();
        let now = unix_now();
        let mut report = GcReport::default();
        for (entry, manifest) in entries.iter().zip(manifests.iter_mut()) {
            let stale = policy
                .older_than
                .is_some_and(|age| now.saturating_sub(entry.last_used) > age.as_secs());
            let over = policy.max_size.is_some_and(|max| total > max);
            if !(stale || over || manifest.is_none()) {
                continue;
            }
            if let Some(m) = manifest.take() {
                let distinct: HashSet<(Digest, u64)> = m.blobs().collect();
                for (digest, _) in distinct {
                    if let Some((size, count)) = refs.get_mut(&digest) {
                        *count -= 1;
                        if *count == 0 {
                            total -= *size;
                        }
                    }
                }
            }
            self.remove(&entry.meta.key)?;
            report.removed.push(entry.clone());
        }
        let live: HashSet<Digest> = refs
            .iter()
            .filter(|(_, (_, count))| *count > 0)
            .map(|(d, _)| *d)
            .collect();
        report.freed = self.sweep_blobs(&live)?;
        // No writer holds the store now: whatever is in tmp/ was left by a
        // killed process.
        let tmp = self.root.join("tmp");
        if let Ok(dir) = std::fs::read_dir(&tmp) {
            for e in dir.flatten() {
                let _ = remove_any(&e.path());
            }
        }
        report.kept = entries.len() - report.removed.len();
        report.kept_bytes = total;
        Ok(report)
    }

    fn sweep_blobs(&self, live: &HashSet<Digest>) -> Result<u64, CacheError> {
        let blobs = self.root.join("blobs");
        let mut freed = 0;
        let io = || CacheError::io(format!("listing {}", blobs.display()));
        for shard in std::fs::read_dir(&blobs).map_err(io())? {
            let shard = shard.map_err(io())?;
            for blob in std::fs::read_dir(shard.path()).map_err(io())? {
                let blob = blob.map_err(io())?;
                let keep = blob
                    .file_name()
                    .to_string_lossy()
                    .parse::<Digest>()
                    .is_ok_and(|d| live.contains(&d));
                if !keep {
                    freed += blob.metadata().map(|m| m.len()).unwrap_or(0);
                    let _ = std::fs::remove_file(blob.path());
                }
            }
        }
        Ok(freed)
    }

    /// Total bytes of the entries as stored, counting shared blobs once per
    /// entry: an upper bound that needs no manifest reads.
    pub fn size_upper_bound(&self) -> Result<u64, CacheError> {
        Ok(self.entries()?.iter().map(|e| e.meta.size).sum())
    }

    /// Removes every entry, blob and fingerprint index.
    pub fn clean(&self) -> Result<usize, CacheError> {
        let (_lock, _) = Lock::exclusive(&self.root.join("lock"), || {})?;
        let count = self.entries()?.len();
        for dir in ["entries", "blobs", "tmp", "fingerprints"] {
            let dir = self.root.join(dir);
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .map_err(CacheError::io(format!("removing {}", dir.display())))?;
            }
        }
        Store::open(&self.root)?;
        Ok(count)
    }
}

struct TreeDone {
    paths: Vec<PathBuf>,
    bytes: u64,
    relocated: usize,
}

/// Creates directories below a root, refusing to pass through a symlink.
struct SafeDirs<'a> {
    root: &'a Path,
    known: HashSet<PathBuf>,
}

impl<'a> SafeDirs<'a> {
    fn new(root: &'a Path) -> Self {
        SafeDirs {
            root,
            known: HashSet::new(),
        }
    }

    fn ensure(&mut self, rel: &Path) -> Result<(), CacheError> {
        if rel.as_os_str().is_empty() || self.known.contains(rel) {
            return Ok(());
        }
        if let Some(parent) = rel.parent() {
            self.ensure(parent)?;
        }
        let path = self.root.join(rel);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(CacheError::Unsafe {
                    key: String::new(),
                    path: rel.to_path_buf(),
                    reason: "is a symlink in the restore target",
                });
            }
            Ok(_) => {
                std::fs::remove_file(&path)
                    .map_err(CacheError::io(format!("replacing {}", path.display())))?;
                std::fs::create_dir(&path)
                    .map_err(CacheError::io(format!("creating {}", path.display())))?;
            }
            Err(_) => std::fs::create_dir(&path)
                .map_err(CacheError::io(format!("creating {}", path.display())))?,
        }
        self.known.insert(rel.to_path_buf());
        Ok(())
    }
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

/// A symlink target with a root's old path replaced by its new one.
fn relink(target: &Path, replacements: &[(String, Replacement)]) -> PathBuf {
    let bytes = target.as_os_str().as_encoded_bytes();
    for (_, r) in replacements {
        if let Some(rest) = bytes.strip_prefix(r.old.as_slice()) {
            let mut new = r.new.clone();
            new.extend_from_slice(rest);
            return PathBuf::from(String::from_utf8_lossy(&new).into_owned());
        }
    }
    target.to_path_buf()
}

fn remove_non_dir(path: &Path) -> Result<(), CacheError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(_) => Ok(()),
    }
    .map_err(CacheError::io(format!("replacing {}", path.display())))
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(path)?.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, key: &str) -> Result<T, CacheError> {
    let damaged = |reason: String| CacheError::Damaged {
        key: key.to_string(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| damaged(format!("{}: {e}", path.display())))?;
    serde_json::from_slice(&bytes).map_err(|e| damaged(format!("{}: {e}", path.display())))
}

fn write_synced<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), CacheError> {
    let io = || CacheError::io(format!("writing {}", path.display()));
    let bytes = serde_json::to_vec(value).map_err(|e| io()(std::io::Error::other(e)))?;
    let mut file = std::fs::File::create(path).map_err(io())?;
    file.write_all(&bytes).map_err(io())?;
    file.sync_all().map_err(io())
}

fn touch(path: &Path) -> Result<(), CacheError> {
    let io = || CacheError::io(format!("writing {}", path.display()));
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io())?;
    filetime::set_file_mtime(path, FileTime::now()).map_err(io())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
