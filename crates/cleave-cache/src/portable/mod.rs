//! The portable entry format: one entry outside any store, for cache
//! helpers and for `cleave cache export` / `import`.
//!
//! ```text
//! <entry>/entry.json          as the store wrote it (sealed metadata)
//! <entry>/files.json          the manifest
//! <entry>/blobs/<digest>      every distinct file content, named by BLAKE3
//! ```
//!
//! The same layout may be packed as an uncompressed tar (`.tar`). Reading
//! one trusts nothing: the metadata must carry its seal (and name the key
//! asked for, if one is), the manifest must match its digest and pass the
//! path checks, and every blob must hash to its name before the store takes
//! it. Nothing is ever written where a portable entry says: only the three
//! names above are read, and only into the store.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;

use serde::Serialize;

use crate::digest::Digest;
use crate::error::CacheError;
use crate::foreign::{self, FileRange, ForeignError, Opened, limits};
use crate::manifest::{EntryMeta, Item};

mod archive;
use crate::store::{Entry, EntryFiles, Incoming, Store};

/// One file of an exported entry, as a helper sees it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FileInfo {
    /// BLAKE3 of its contents (the blob's name).
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// Writes `entry` to `dest` in the portable format: a directory, or a tar
/// when `dest` ends in `.tar`. Returns every file of the entry by
/// `TREE/RELATIVE_PATH`.
pub fn export(entry: &Entry, dest: &Path) -> Result<BTreeMap<String, FileInfo>, CacheError> {
    let files = entry.files()?;
    let manifest = entry.manifest()?;
    let mut listed = BTreeMap::new();
    let mut blobs: BTreeMap<Digest, u64> = BTreeMap::new();
    for (tree, items) in &manifest.trees {
        for item in items {
            if let Item::File {
                path, blob, size, ..
            } = item
            {
                listed.insert(
                    format!("{tree}/{}", path.display()),
                    FileInfo {
                        digest: *blob,
                        size: *size,
                    },
                );
                blobs.insert(*blob, *size);
            }
        }
    }
    let io = |what: &Path| CacheError::io(format!("exporting to {}", what.display()));
    if dest.extension().is_some_and(|e| e == "tar") {
        let file = tempfile::NamedTempFile::new_in(dest.parent().unwrap_or(Path::new(".")))
            .map_err(io(dest))?;
        let mut tar = tar::Builder::new(file);
        let mut add = |name: &str, bytes: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, name, bytes).map_err(io(dest))
        };
        add("entry.json", &files.entry)?;
        add("files.json", &files.files)?;
        for blob in blobs.keys() {
            add(&format!("blobs/{blob}"), &entry.blob(blob)?)?;
        }
        let file = tar.into_inner().map_err(io(dest))?;
        file.persist(dest).map_err(|e| io(dest)(e.error))?;
    } else {
        let dir = dest.join("blobs");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        write_new(&dest.join("entry.json"), &files.entry)?;
        write_new(&dest.join("files.json"), &files.files)?;
        for blob in blobs.keys() {
            write_new(&dir.join(blob.to_hex()), &entry.blob(blob)?)?;
        }
    }
    Ok(listed)
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let io = || CacheError::io(format!("exporting to {}", path.display()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io())?;
    file.write_all(bytes).map_err(io())
}

/// Where a portable entry's files come from: a directory or a tar, open.
/// Nothing is read before it is known to be a regular file of a size the
/// format allows; a name is looked up in the open directory (no link
/// followed), or among the tar's members by their headers.
enum Source {
    Dir(OwnedFd),
    Tar(File),
}

impl Source {
    fn open(path: &Path, shown: &str) -> Result<Source, CacheError> {
        match foreign::open_dir_or_file(path) {
            Ok(Some(Opened::Dir(dir))) => Ok(Source::Dir(dir)),
            Ok(Some(Opened::File(file))) => Ok(Source::Tar(file)),
            Ok(None) => Err(damaged(
                shown,
                "the entry named is neither a directory nor a regular file".into(),
            )),
            Err(e) => Err(CacheError::io(format!("reading {}", path.display()))(e)),
        }
    }

    /// `entry.json` and `files.json`, each of at most the size its format
    /// allows (a tar's headers are read once for both).
    fn entry_files(&self, shown: &str) -> Result<EntryFiles, CacheError> {
        let refused = |name: &str, e: ForeignError| match e {
            ForeignError::Io(e) => CacheError::io(format!("reading {name} of {shown}"))(e),
            e => damaged(shown, format!("{name} {e}")),
        };
        let names = [
            ("entry.json", limits::ENTRY_JSON),
            ("files.json", limits::FILES_JSON),
        ];
        let mut read = Vec::with_capacity(2);
        match self {
            Source::Dir(dir) => {
                for (name, limit) in names {
                    let bytes = match foreign::open_regular_at(dir, name) {
                        Ok(Some(mut file)) => foreign::read_limited(&mut file, limit),
                        Ok(None) => Err(ForeignError::NotRegular),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            Err(ForeignError::Missing)
                        }
                        Err(e) => Err(e.into()),
                    };
                    read.push(bytes.map_err(|e| refused(name, e))?);
                }
            }
            Source::Tar(file) => {
                let mut found = [None, None];
                for member in archive::members(file) {
                    let member = member.map_err(|e| tar_refused(e, shown))?;
                    if let Some(i) = names.iter().position(|(name, _)| *name == member.name) {
                        found[i] = Some(member);
                    }
                }
                for ((name, limit), member) in names.into_iter().zip(found) {
                    let member = member.ok_or_else(|| refused(name, ForeignError::Missing))?;
                    if member.size > limit {
                        return Err(refused(name, ForeignError::TooLarge { limit }));
                    }
                    let mut bytes = Vec::with_capacity(member.size as usize);
                    FileRange::new(file, member.offset, member.offset + member.size)
                        .read_to_end(&mut bytes)
                        .map_err(|e| refused(name, e.into()))?;
                    read.push(bytes);
                }
            }
        }
        let files = read.pop().unwrap_or_default();
        let entry = read.pop().unwrap_or_default();
        Ok(EntryFiles { entry, files })
    }

    /// Streams every blob in `wanted` (digest and the manifest's size)
    /// into `store`, each checked there; what is taken leaves `wanted`.
    fn take_blobs(
        &self,
        store: &Store,
        key: &Digest,
        wanted: &mut HashMap<Digest, u64>,
    ) -> Result<(), CacheError> {
        let hex = key.to_hex();
        let wrong_size = |blob: &Digest| {
            damaged(
                &hex,
                format!("blob {blob} is not the size the manifest gives"),
            )
        };
        match self {
            Source::Dir(dir) => {
                let blobs = foreign::open_dir_at(dir, "blobs")
                    .map_err(CacheError::io(format!("reading the blobs of {hex}")))?;
                let Some(blobs) = blobs else {
                    return Ok(());
                };
                for (blob, size) in std::mem::take(wanted) {
                    let file = foreign::open_regular_at(&blobs, &blob.to_hex());
                    let mut file = match file {
                        Ok(Some(file)) => file,
                        Ok(None) => {
                            return Err(damaged(
                                &hex,
                                format!("blob {blob} is not a regular file"),
                            ));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            wanted.insert(blob, size);
                            continue;
                        }
                        Err(e) => {
                            return Err(CacheError::io(format!("reading blob {blob} of {hex}"))(e));
                        }
                    };
                    let found = file
                        .metadata()
                        .map_err(CacheError::io(format!("reading blob {blob} of {hex}")))?;
                    if found.len() != size {
                        return Err(wrong_size(&blob));
                    }
                    store.add_blob_from(key, &blob, size, &mut file)?;
                }
                Ok(())
            }
            Source::Tar(file) => {
                for member in archive::members(file) {
                    let member = member.map_err(|e| tar_refused(e, &hex))?;
                    let Some(blob) = member
                        .name
                        .strip_prefix("blobs/")
                        .and_then(|d| d.parse::<Digest>().ok())
                    else {
                        continue;
                    };
                    let Some(size) = wanted.remove(&blob) else {
                        continue;
                    };
                    if member.size != size {
                        return Err(wrong_size(&blob));
                    }
                    let mut data = FileRange::new(file, member.offset, member.offset + member.size);
                    store.add_blob_from(key, &blob, size, &mut data)?;
                }
                Ok(())
            }
        }
    }
}

fn damaged(key: &str, reason: String) -> CacheError {
    CacheError::Damaged {
        key: key.to_string(),
        reason,
    }
}

/// A tar that cannot be read: damaged, or this machine's I/O error.
fn tar_refused(e: archive::TarError, shown: &str) -> CacheError {
    match e {
        archive::TarError::Io(e) => CacheError::io(format!("reading the tar of {shown}"))(e),
        e => damaged(shown, e.to_string()),
    }
}

/// Reads the portable entry at `path` (a directory or a tar) into `store`.
/// With `key`, the entry must be that key's; without, the key its metadata
/// names is taken (and checked against its seal).
pub fn import(store: &Store, path: &Path, key: Option<&Digest>) -> Result<Entry, CacheError> {
    let shown = key.map_or_else(|| path.display().to_string(), Digest::to_hex);
    let source = Source::open(path, &shown)?;
    let files = source.entry_files(&shown)?;
    let key = match key {
        Some(key) => *key,
        None => named_key(&files.entry)
            .ok_or_else(|| damaged(&shown, "entry.json names no key".into()))?,
    };
    let incoming = Incoming::check(&key, files)?;
    let mut wanted: HashMap<Digest, u64> = incoming
        .manifest()
        .blobs()
        .filter(|(blob, _)| !store.has_blob(blob))
        .collect();
    source.take_blobs(store, &key, &mut wanted)?;
    if let Some(blob) = wanted.keys().min() {
        return Err(damaged(&key.to_hex(), format!("blob {blob} is missing")));
    }
    store.admit(incoming)
}

/// The key an `entry.json` says it is for (checked later with its seal).
fn named_key(entry: &[u8]) -> Option<Digest> {
    let value: serde_json::Value = serde_json::from_slice(entry).ok()?;
    let meta: EntryMeta = serde_json::from_str(value.get("meta")?.to_string().as_str()).ok()?;
    Some(meta.key)
}
