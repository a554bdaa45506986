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
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::digest::Digest;
use crate::error::CacheError;
use crate::manifest::{EntryMeta, Item};
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

/// Where a portable entry's files come from.
enum Source {
    Dir(PathBuf),
    Tar(HashMap<String, Vec<u8>>),
}

impl Source {
    fn open(path: &Path) -> Result<Source, CacheError> {
        let io = || CacheError::io(format!("reading {}", path.display()));
        let meta = std::fs::metadata(path).map_err(io())?;
        if meta.is_dir() {
            return Ok(Source::Dir(path.to_path_buf()));
        }
        // Only the names of the format are kept, and only regular files:
        // a tar member's path is never used as a path.
        let mut members = HashMap::new();
        let mut archive = tar::Archive::new(std::fs::File::open(path).map_err(io())?);
        for member in archive.entries().map_err(io())? {
            let mut member = member.map_err(io())?;
            if !member.header().entry_type().is_file() {
                continue;
            }
            let path = member.path().map_err(io())?.to_string_lossy().into_owned();
            // `tar -C DIR -cf - .` names members `./entry.json`.
            let name = path.strip_prefix("./").unwrap_or(&path).to_string();
            let wanted = name == "entry.json"
                || name == "files.json"
                || name
                    .strip_prefix("blobs/")
                    .is_some_and(|d| d.parse::<Digest>().is_ok());
            if wanted {
                let mut bytes = Vec::new();
                member.read_to_end(&mut bytes).map_err(io())?;
                members.insert(name, bytes);
            }
        }
        Ok(Source::Tar(members))
    }

    /// One file of the entry; `None` if it is not there (or is not a
    /// regular file: a link is not followed).
    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, CacheError> {
        match self {
            Source::Tar(members) => Ok(members.get(name).cloned()),
            Source::Dir(dir) => {
                let path = dir.join(name);
                match std::fs::symlink_metadata(&path) {
                    Ok(meta) if meta.is_file() => std::fs::read(&path)
                        .map(Some)
                        .map_err(CacheError::io(format!("reading {}", path.display()))),
                    Ok(_) => Ok(None),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(CacheError::io(format!("reading {}", path.display()))(e)),
                }
            }
        }
    }
}

/// Reads the portable entry at `path` (a directory or a tar) into `store`.
/// With `key`, the entry must be that key's; without, the key its metadata
/// names is taken (and checked against its seal).
pub fn import(store: &Store, path: &Path, key: Option<&Digest>) -> Result<Entry, CacheError> {
    let source = Source::open(path)?;
    let damaged = |key: &str, reason: String| CacheError::Damaged {
        key: key.to_string(),
        reason,
    };
    let shown = key.map_or_else(|| path.display().to_string(), Digest::to_hex);
    let entry = source
        .read("entry.json")?
        .ok_or_else(|| damaged(&shown, "entry.json is missing".into()))?;
    let files = source
        .read("files.json")?
        .ok_or_else(|| damaged(&shown, "files.json is missing".into()))?;
    let key = match key {
        Some(key) => *key,
        None => {
            named_key(&entry).ok_or_else(|| damaged(&shown, "entry.json names no key".into()))?
        }
    };
    let incoming = Incoming::check(&key, EntryFiles { entry, files })?;
    let mut seen = std::collections::HashSet::new();
    for (blob, size) in incoming.manifest().blobs() {
        if !seen.insert(blob) || store.has_blob(&blob) {
            continue;
        }
        let bytes = source
            .read(&format!("blobs/{blob}"))?
            .ok_or_else(|| damaged(&key.to_hex(), format!("blob {blob} is missing")))?;
        if bytes.len() as u64 != size {
            return Err(damaged(
                &key.to_hex(),
                format!("blob {blob} is not the size the manifest gives"),
            ));
        }
        store.add_blob(&key, &blob, &bytes)?;
    }
    store.admit(incoming)
}

/// The key an `entry.json` says it is for (checked later with its seal).
fn named_key(entry: &[u8]) -> Option<Digest> {
    let value: serde_json::Value = serde_json::from_slice(entry).ok()?;
    let meta: EntryMeta = serde_json::from_str(value.get("meta")?.to_string().as_str()).ok()?;
    Some(meta.key)
}
