//! Restore: an entry's items written into target directories, every blob
//! checked against its digest.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use super::io::{self, touch};
use super::{CHUNK, Entry, Select, Store};
use crate::digest::Digest;
use crate::error::{CacheError, ErrorKind};
use crate::manifest::{Item, Manifest, mtime};
use crate::progress::{Operation, Reporter, Tracked};
use crate::relocate::{self, Replacement, StreamError};

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

impl Entry {
    /// Restores the entry into the targets, rewriting the roots' paths
    /// where the new ones differ. Every blob is checked against its digest;
    /// a mismatch is [`CacheError::Damaged`], and the entry is gone from
    /// the store when this returns: the caller builds it again.
    pub fn restore(
        &self,
        targets: &[Target<'_>],
        roots: &[(&str, &Path)],
    ) -> Result<Restored, CacheError> {
        self.restore_reporting(targets, roots, None)
    }

    /// [`Entry::restore`], reporting the bytes written to `reporter`.
    pub fn restore_reporting(
        &self,
        targets: &[Target<'_>],
        roots: &[(&str, &Path)],
        reporter: Option<&Arc<dyn Reporter>>,
    ) -> Result<Restored, CacheError> {
        let store = &self.store;
        let key = &self.meta.key;
        let _lock = store.shared_lock()?;
        // A damaged entry is dropped here, where the damage is seen, with
        // every bad blob it has: the caller builds it again.
        let manifest = self.manifest().inspect_err(|e| {
            if e.kind() == ErrorKind::Damaged {
                store.discard(key, None);
            }
        })?;
        self.restore_manifest(&manifest, targets, roots, reporter)
            .inspect_err(|e| {
                if e.kind() == ErrorKind::Damaged {
                    store.discard(key, Some(&manifest));
                }
            })
    }

    fn restore_manifest(
        &self,
        manifest: &Manifest,
        targets: &[Target<'_>],
        roots: &[(&str, &Path)],
        reporter: Option<&Arc<dyn Reporter>>,
    ) -> Result<Restored, CacheError> {
        let store = &self.store;
        let key = &self.meta.key;
        let hex = key.to_hex();
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

        let total: u64 = chosen
            .iter()
            .flatten()
            .map(|item| match item {
                Item::File { size, .. } => *size,
                _ => 0,
            })
            .sum();
        let tracked = Tracked::start(
            reporter,
            &Operation::Restore {
                name: &self.meta.name,
            },
            Some(total),
        );
        let mut restored = Restored::default();
        for (target, items) in targets.iter().zip(&chosen) {
            let done = store.restore_tree(&hex, items, target.dir, &replacements, &tracked)?;
            restored.bytes = restored.bytes.saturating_add(done.bytes);
            restored.relocated += done.relocated;
            restored.trees.insert(target.tree.to_string(), done.paths);
        }
        let _ = touch(&store.entry_dir(key).join("used"));
        Ok(restored)
    }
}

impl Store {
    fn restore_tree(
        &self,
        key: &str,
        items: &[&Item],
        dir: &Path,
        replacements: &[(String, Replacement)],
        tracked: &Tracked<'_>,
    ) -> Result<TreeDone, CacheError> {
        std::fs::create_dir_all(dir)
            .map_err(CacheError::target(format!("creating {}", dir.display())))?;
        // Directories first, each made a real directory inside the target:
        // the target may already hold links of its own.
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
                    let file = FileToRestore {
                        blob,
                        rel: path,
                        mode: *mode,
                        mtime: *mtime,
                        binary: *binary,
                    };
                    Some(
                        self.restore_file(key, &file, &dir.join(path), &wanted)
                            .map(|bytes| {
                                tracked.advance(bytes);
                                (bytes, !wanted.is_empty())
                            }),
                    )
                }
                _ => None,
            })
            .collect::<Result<_, _>>()?;
        let mut done = TreeDone {
            bytes: results
                .iter()
                .fold(0u64, |sum, (bytes, _)| sum.saturating_add(*bytes)),
            relocated: results.iter().filter(|(_, r)| *r).count(),
            paths: Vec::new(),
        };
        for item in items {
            match item {
                Item::Symlink { path, target } => {
                    let dest = dir.join(path);
                    clear(&dest)?;
                    let target = relink(target, replacements);
                    std::os::unix::fs::symlink(&target, &dest)
                        .map_err(CacheError::target(format!("linking {}", dest.display())))?;
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
                    .map_err(CacheError::target(format!("restoring {}", dest.display())))?;
            }
        }
        Ok(done)
    }

    /// Writes one blob to `dest`, verified against its digest, with the
    /// file's mode and modification time.
    fn restore_file(
        &self,
        key: &str,
        file: &FileToRestore<'_>,
        dest: &Path,
        replacements: &[Replacement],
    ) -> Result<u64, CacheError> {
        let FileToRestore { blob, rel, .. } = *file;
        let source = self.blob_path(blob);
        let damaged = |reason: &str| CacheError::Damaged {
            key: key.to_string(),
            reason: format!("{}: blob {blob} {reason}", rel.display()),
        };
        let mismatch = || damaged("does not match its digest");
        // Only a missing blob or one with other contents is damage; a blob
        // this process cannot read is this machine's problem.
        let mut input = match crate::foreign::open_regular(&source) {
            Ok(Some(file)) => file,
            Ok(None) => return Err(damaged("is not a regular file")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(damaged("is missing"));
            }
            Err(e) => {
                return Err(CacheError::io(format!("reading {}", source.display()))(e));
            }
        };
        let blob_io = || CacheError::io(format!("reading {}", source.display()));
        let target_io = || CacheError::target(format!("restoring {}", dest.display()));
        clear(dest)?;
        let mut output = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dest)
            .map_err(target_io())?;
        let size = if !replacements.is_empty() {
            // Rewritten as it is read, never held whole: a blob from a
            // remote or helper may be of any size its manifest gave.
            let mut hasher = blake3::Hasher::new();
            let mut writer = std::io::BufWriter::with_capacity(CHUNK, &output);
            let written = relocate::stream(
                &mut input,
                &mut writer,
                replacements,
                file.binary,
                CHUNK,
                &mut |bytes| {
                    hasher.update(bytes);
                },
            )
            .map_err(|e| match e {
                StreamError::Read(e) => blob_io()(e),
                StreamError::Write(e) => target_io()(e),
                StreamError::TooLong(i) => CacheError::TooLong {
                    key: key.to_string(),
                    file: rel.to_path_buf(),
                    old: String::from_utf8_lossy(&replacements[i].old).into_owned(),
                    new: String::from_utf8_lossy(&replacements[i].new).into_owned(),
                },
                StreamError::LongString => CacheError::LongString {
                    key: key.to_string(),
                    file: rel.to_path_buf(),
                    max: relocate::MAX_STRING,
                },
            })?;
            writer.flush().map_err(target_io())?;
            drop(writer);
            if Digest::from(hasher.finalize()) != *blob {
                return Err(mismatch());
            }
            written
        } else if reflink_copy::reflink_file(&input, &output).is_ok() {
            // A reflink shares the blob's extents copy-on-write: a later
            // write to the restored file cannot reach the store. Verify by
            // reading it back.
            if io::digest_of(&mut output).map_err(target_io())? != *blob {
                return Err(mismatch());
            }
            output.metadata().map_err(target_io())?.len()
        } else {
            // Where reflinks are not supported: copy and hash in one pass.
            let mut hasher = blake3::Hasher::new();
            let mut buf = vec![0; CHUNK];
            let mut size: u64 = 0;
            loop {
                let n = input.read(&mut buf).map_err(blob_io())?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                output.write_all(&buf[..n]).map_err(target_io())?;
                size = size.saturating_add(n as u64);
            }
            if Digest::from(hasher.finalize()) != *blob {
                return Err(mismatch());
            }
            size
        };
        // Checked by the manifest: a time out of range never gets here.
        let modified = mtime(file.mtime).ok_or_else(|| CacheError::Unsafe {
            key: key.to_string(),
            path: rel.to_path_buf(),
            reason: "has a modification time out of range",
        })?;
        output
            .set_permissions(std::fs::Permissions::from_mode(file.mode))
            .and_then(|()| output.set_modified(modified))
            .map_err(target_io())?;
        Ok(size)
    }
}

/// What [`Store::restore_file`] needs of a file item.
struct FileToRestore<'a> {
    blob: &'a Digest,
    rel: &'a Path,
    mode: u32,
    mtime: (i64, u32),
    binary: bool,
}

struct TreeDone {
    paths: Vec<PathBuf>,
    bytes: u64,
    relocated: usize,
}

/// Creates directories below a root, never passing through a symlink.
///
/// Whatever is in the way of a directory of the entry is replaced by one,
/// a symlink included (a host package may ship `share/data` as a link where
/// the staging build wrote a directory). The target is the restore's own:
/// it must end up holding what the entry holds. Writing through the link
/// instead could write outside the target, or into the files of the
/// package the link belongs to; unlinking it touches neither.
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
        let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        if !is_dir {
            clear(&path)?;
            std::fs::create_dir(&path)
                .map_err(CacheError::target(format!("creating {}", path.display())))?;
        }
        self.known.insert(rel.to_path_buf());
        Ok(())
    }
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

/// Removes whatever is at `path` in a restore target (not following a
/// link), so that an item can take its place.
fn clear(path: &Path) -> Result<(), CacheError> {
    match io::remove_any(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CacheError::target(format!(
            "replacing {}",
            path.display()
        ))(e)),
        _ => Ok(()),
    }
}
