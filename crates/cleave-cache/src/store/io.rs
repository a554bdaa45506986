//! The store's file operations: hashing a file, writing one durably,
//! removing whatever is in the way.
//!
//! Everything below the store's root may have been put there by someone
//! else, so files are read through [`crate::foreign`]: opening a FIFO for
//! reading waits for a writer forever, and a symlink may lead out of the
//! store.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

use super::CHUNK;
use crate::digest::Digest;
use crate::error::CacheError;

/// The digest of an open file's contents from where it stands.
pub(crate) fn digest_of(file: &mut File) -> std::io::Result<Digest> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0; CHUNK];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(&buf[..n]);
    }
}

/// Writes `bytes` to a new file at `path` and syncs it.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let io = || CacheError::io(format!("writing {}", path.display()));
    let mut file = File::create(path).map_err(io())?;
    file.write_all(bytes).map_err(io())?;
    file.sync_all().map_err(io())
}

/// Creates `path` if needed and sets its modification time to now.
pub(crate) fn touch(path: &Path) -> Result<(), CacheError> {
    let io = || CacheError::io(format!("writing {}", path.display()));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io())?;
    file.set_modified(std::time::SystemTime::now())
        .map_err(io())
}

/// Syncs a directory, so that a rename into it survives a power cut.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Removes a file, link or directory tree, not following links.
pub(crate) fn remove_any(path: &Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(path)?.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}
