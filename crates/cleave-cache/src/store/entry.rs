//! One entry as a reader holds it: its metadata, read once, the way to its
//! manifest and files, and a pin that keeps `gc` and `clean` off it.
//!
//! The pin is a shared `flock` on the entry's directory, taken before its
//! metadata is read and held as long as the [`Entry`] lives. Eviction takes
//! the same lock exclusively without waiting, and leaves an entry it
//! cannot lock alone: a build that found an entry can restore it, however
//! long its other steps take in between. The kernel drops the lock of a
//! process that dies.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::Store;
use crate::digest::Digest;
use crate::error::{CacheError, ErrorKind};
use crate::manifest::{EntryMeta, Manifest};

/// An entry found in a store by [`Store::get`] or written by [`Store::put`].
///
/// Restoring goes through this handle ([`Entry::restore`]), so that what is
/// restored is the entry whose metadata the caller looked at, and the entry
/// is pinned while the handle lives.
#[derive(Debug)]
pub struct Entry {
    pub(super) store: Store,
    pub(super) meta: EntryMeta,
    pub(super) _pin: Pin,
}

/// A shared lock on an entry's directory.
#[derive(Debug)]
pub(super) struct Pin {
    _dir: File,
}

/// Opens a directory without following a link.
fn open_dir(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(path)
}

impl Pin {
    /// Pins the directory at `path`: `None` if there is no directory
    /// there. The lock is on the directory itself, so it moves with it
    /// when a writer renames a staged entry into place.
    pub(super) fn take(path: &Path) -> std::io::Result<Option<Pin>> {
        // A removal between the open and the lock leaves this lock on a
        // directory that is no longer the entry: check, and try again.
        for _ in 0..3 {
            let dir = match open_dir(path) {
                Ok(dir) => dir,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e)
                    if e.kind() == std::io::ErrorKind::NotADirectory
                        || e.raw_os_error() == Some(libc::ELOOP) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e),
            };
            dir.lock_shared()?;
            let held = dir.metadata()?;
            match std::fs::symlink_metadata(path) {
                Ok(now) if (now.dev(), now.ino()) == (held.dev(), held.ino()) => {
                    return Ok(Some(Pin { _dir: dir }));
                }
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}

/// Whether an entry could be locked for eviction.
pub(super) enum Eviction {
    /// Locked: the guard must be held while the entry is removed.
    Locked(File),
    /// A reader holds it.
    InUse,
    /// It is gone, or not a directory.
    Gone,
}

/// Takes the exclusive lock of the entry directory at `path` for its
/// removal, without waiting for its readers.
pub(super) fn lock_for_eviction(path: &Path) -> std::io::Result<Eviction> {
    let dir = match open_dir(path) {
        Ok(dir) => dir,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Eviction::Gone),
        Err(e) => return Err(e),
    };
    match dir.try_lock() {
        Ok(()) => Ok(Eviction::Locked(dir)),
        Err(TryLockError::WouldBlock) => Ok(Eviction::InUse),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

impl Entry {
    /// The entry's metadata.
    pub fn meta(&self) -> &EntryMeta {
        &self.meta
    }

    /// The entry's items, checked against the digest its metadata records
    /// and to be safe to write.
    pub fn manifest(&self) -> Result<Manifest, CacheError> {
        self.store.read_manifest(&self.meta)
    }
}

impl Store {
    /// The entry under `key`, or `None` when there is none.
    ///
    /// An entry whose metadata cannot be read (garbage, a missing
    /// `entry.json`, a broken seal) is a miss, and is removed here so that
    /// the caller can build and store it again: left in place, it would
    /// make every later build miss and then fail to store.
    pub fn get(&self, key: &Digest) -> Result<Option<Entry>, CacheError> {
        let dir = self.entry_dir(key);
        let pin = Pin::take(&dir).map_err(CacheError::io(format!("locking {}", dir.display())))?;
        match (self.read_meta(key), pin) {
            (Ok(meta), Some(pin)) => Ok(Some(Entry {
                store: self.clone(),
                meta,
                _pin: pin,
            })),
            // Stored just now, after the pin found nothing: a miss this
            // time.
            (Ok(_), None) => Ok(None),
            (Err(e), _) if e.kind() == ErrorKind::Evicted => Ok(None),
            (Err(e), _) if e.kind() == ErrorKind::Damaged => {
                self.remove(key)?;
                Ok(None)
            }
            (Err(e), _) => Err(e),
        }
    }
}
