//! Entries that travel: read out whole (`entry.json`, `files.json` and
//! blobs, as they are on disk) and taken in from elsewhere (a remote store,
//! a helper), checked exactly as an entry read from this disk is.
//!
//! Nothing that comes in is trusted: the metadata must carry its seal and
//! name the key asked for, the manifest must match the digest the metadata
//! records and pass [`Manifest::check`], and every blob must hash to its
//! digest before it is written into the store.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::Path;

use rayon::prelude::*;

use super::io::{digest_of, remove_any};
use super::{CHUNK, Entry, Store};
use crate::digest::Digest;
use crate::error::CacheError;
use crate::foreign::open_regular;
use crate::manifest::{EntryMeta, Manifest};

/// The name a blob arriving from elsewhere has in its shard until it is
/// whole and checked.
const INCOMING: &str = ".incoming-";

/// An entry's two files as bytes, exactly as stored.
#[derive(Debug, Clone)]
pub struct EntryFiles {
    /// `entry.json`: the sealed metadata.
    pub entry: Vec<u8>,
    /// `files.json`: the manifest.
    pub files: Vec<u8>,
}

/// An entry arriving from elsewhere, its metadata and manifest checked.
#[derive(Debug)]
pub struct Incoming {
    files: EntryFiles,
    meta: EntryMeta,
    manifest: Manifest,
}

impl Incoming {
    /// Checks an entry's files as [`Store::get`] and restore check them:
    /// the seal, the key, the manifest's digest and its paths.
    pub fn check(key: &Digest, files: EntryFiles) -> Result<Incoming, CacheError> {
        let meta = EntryMeta::from_json(&files.entry, key)?;
        let manifest = Manifest::from_json(&files.files, &meta)?;
        Ok(Incoming {
            files,
            meta,
            manifest,
        })
    }

    /// The entry's metadata.
    pub fn meta(&self) -> &EntryMeta {
        &self.meta
    }

    /// The entry's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
}

impl Entry {
    /// The entry's `entry.json` and `files.json` as they are on disk, the
    /// manifest checked against the metadata this handle holds.
    pub fn files(&self) -> Result<EntryFiles, CacheError> {
        let dir = self.store.entry_dir(&self.meta.key);
        let files = super::read_entry_file(&dir.join("files.json"), &self.meta.key)?;
        Manifest::from_json(&files, &self.meta)?;
        let entry = super::read_entry_file(&dir.join("entry.json"), &self.meta.key)?;
        EntryMeta::from_json(&entry, &self.meta.key)?;
        Ok(EntryFiles { entry, files })
    }

    /// The contents of one of the entry's blobs, checked against its digest:
    /// a damaged blob must not travel to another store.
    pub fn blob(&self, digest: &Digest) -> Result<Vec<u8>, CacheError> {
        self.store.read_blob(digest, &self.meta.key)
    }
}

impl Store {
    /// True if a blob with this digest is in the store (its contents are
    /// checked when it is restored).
    pub fn has_blob(&self, digest: &Digest) -> bool {
        std::fs::symlink_metadata(self.blob_path(digest)).is_ok_and(|m| m.is_file())
    }

    /// A blob's bytes, checked against its digest.
    fn read_blob(&self, digest: &Digest, key: &Digest) -> Result<Vec<u8>, CacheError> {
        let path = self.blob_path(digest);
        let damaged = |reason: String| CacheError::Damaged {
            key: key.to_hex(),
            reason,
        };
        let mut file = match open_regular(&path) {
            Ok(Some(file)) => file,
            Ok(None) => return Err(damaged(format!("blob {digest} is not a regular file"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(damaged(format!("blob {digest} is missing")));
            }
            Err(e) => return Err(CacheError::io(format!("reading {}", path.display()))(e)),
        };
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes)
            .map_err(CacheError::io(format!("reading {}", path.display())))?;
        if Digest::of(&bytes) != *digest {
            return Err(damaged(format!("blob {digest} does not match its digest")));
        }
        Ok(bytes)
    }

    /// Writes a blob that arrives from elsewhere, read from `source`: hashed
    /// and counted on its way into a temporary file, never held whole, and
    /// renamed into place only when it has the manifest's `size` and the
    /// bytes of `digest`. Reading stops one byte past `size`, so a source
    /// that never ends costs that much.
    ///
    /// Another size or other bytes, or a source that cannot be read, is
    /// [`CacheError::Damaged`] for the entry `key` that named the blob; a
    /// failure to write it here (a full disk) is [`CacheError::Io`], with
    /// the system's error: this machine's problem, not the entry's.
    pub fn add_blob_from(
        &self,
        key: &Digest,
        digest: &Digest,
        size: u64,
        source: &mut dyn Read,
    ) -> Result<(), CacheError> {
        let damaged = |reason: String| CacheError::Damaged {
            key: key.to_hex(),
            reason: format!("blob {digest} {reason}"),
        };
        let _lock = self.shared_lock()?;
        let dest = self.blob_path(digest);
        let io = || CacheError::io(format!("storing {}", dest.display()));
        // The temporary file goes beside the blob, not into tmp/: a rename
        // within one directory locks that directory alone, where one from
        // tmp/ into a shard takes the file system's rename lock, which the
        // parallel writers of a fetch then wait on in turn (15% of the
        // samples of a 20,000-blob bench). A killed writer's leftover there
        // is no digest, so `gc` sweeps it.
        let shard = dest.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(shard).map_err(io())?;
        let mut temp = tempfile::Builder::new()
            .prefix(INCOMING)
            .tempfile_in(shard)
            .map_err(io())?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0; CHUNK.min(usize::try_from(size).unwrap_or(CHUNK) + 1)];
        let mut left = size.saturating_add(1);
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match source.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(damaged(format!("cannot be read: {e}"))),
            };
            hasher.update(&buf[..n]);
            temp.write_all(&buf[..n]).map_err(io())?;
            left -= n as u64;
        }
        if left != 1 {
            return Err(damaged("is not the size the manifest gives".into()));
        }
        if Digest::from(hasher.finalize()) != *digest {
            return Err(damaged("does not match its digest".into()));
        }
        if let Err(e) = temp.persist(&dest) {
            remove_any(&dest).map_err(io())?;
            e.file.persist(&dest).map_err(|e| io()(e.error))?;
        }
        Ok(())
    }

    /// Admits an entry whose blobs are all in the store, as
    /// [`Store::put`] would have stored it. Every blob is checked first, so
    /// an entry that is admitted restores unless this disk fails.
    pub fn admit(&self, incoming: Incoming) -> Result<Entry, CacheError> {
        self.admit_fetched(incoming, &HashSet::new())
    }

    /// [`Store::admit`] of an entry whose blobs in `fetched` this process
    /// has just written with [`Store::add_blob_from`], which hashed each on
    /// its way in: those are only checked to be there, regular files of the
    /// manifest's size, not read a second time (a remote hit would
    /// otherwise read every byte once more before its restore reads them
    /// again). The others are hashed, each once, on all cores.
    pub fn admit_fetched(
        &self,
        incoming: Incoming,
        fetched: &HashSet<Digest>,
    ) -> Result<Entry, CacheError> {
        let key = incoming.meta.key;
        let _lock = self.shared_lock()?;
        let blobs: HashMap<Digest, u64> = incoming.manifest.blobs().collect();
        blobs.par_iter().try_for_each(|(digest, size)| {
            if fetched.contains(digest) {
                self.check_present(digest, *size, &key)
            } else {
                self.check_blob(digest, &key)
            }
        })?;
        self.install(&incoming.files.files, &incoming.files.entry, incoming.meta)
    }

    /// Checks that a blob is a regular file of `size` bytes.
    fn check_present(&self, digest: &Digest, size: u64, key: &Digest) -> Result<(), CacheError> {
        match std::fs::symlink_metadata(self.blob_path(digest)) {
            Ok(meta) if meta.is_file() && meta.len() == size => Ok(()),
            _ => Err(CacheError::Damaged {
                key: key.to_hex(),
                reason: format!("blob {digest} is missing or not the size the manifest gives"),
            }),
        }
    }

    /// Checks one blob's contents against its digest.
    fn check_blob(&self, digest: &Digest, key: &Digest) -> Result<(), CacheError> {
        let path: &Path = &self.blob_path(digest);
        let damaged = |reason: String| CacheError::Damaged {
            key: key.to_hex(),
            reason,
        };
        match open_regular(path) {
            Ok(Some(mut file)) => {
                let found = digest_of(&mut file)
                    .map_err(CacheError::io(format!("reading {}", path.display())))?;
                if found == *digest {
                    Ok(())
                } else {
                    Err(damaged(format!("blob {digest} does not match its digest")))
                }
            }
            Ok(None) => Err(damaged(format!("blob {digest} is not a regular file"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(damaged(format!("blob {digest} is missing")))
            }
            Err(e) => Err(CacheError::io(format!("reading {}", path.display()))(e)),
        }
    }
}
