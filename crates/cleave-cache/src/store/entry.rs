//! One entry as a reader holds it: its metadata, read once, and the way
//! to its manifest and files.

use super::Store;
use crate::digest::Digest;
use crate::error::{CacheError, ErrorKind};
use crate::manifest::{EntryMeta, Manifest};

/// An entry found in a store by [`Store::get`] or written by [`Store::put`].
///
/// Restoring goes through this handle ([`Entry::restore`]), so that what is
/// restored is the entry whose metadata the caller looked at.
#[derive(Debug)]
pub struct Entry {
    pub(super) store: Store,
    pub(super) meta: EntryMeta,
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
        match self.read_meta(key) {
            Ok(meta) => Ok(Some(Entry {
                store: self.clone(),
                meta,
            })),
            Err(e) if e.kind() == ErrorKind::Evicted => Ok(None),
            Err(e) if e.kind() == ErrorKind::Damaged => {
                self.remove(key)?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}
