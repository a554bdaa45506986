//! Verify: every entry and blob checked, damage listed and optionally
//! removed.

use std::collections::HashSet;

use rayon::prelude::*;

use super::{Store, io};
use crate::digest::Digest;
use crate::error::{CacheError, ErrorKind};
use crate::manifest::Manifest;

/// A problem `verify` found.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The entry.
    pub key: String,
    /// Its name, when the metadata could be read.
    pub name: Option<String>,
    /// What is wrong.
    pub reason: String,
    /// [`ErrorKind::Damaged`] for a bad entry; [`ErrorKind::Io`] for one
    /// this process cannot read (it may be fine, and is never removed).
    pub kind: ErrorKind,
}

impl Store {
    /// Checks every entry: readable metadata and manifest, safe paths, and
    /// every blob present with the right digest. With `repair`, damaged
    /// blobs and the entries that have them are removed.
    pub fn verify(&self, repair: bool) -> Result<Vec<Problem>, CacheError> {
        let _lock = self.shared_lock()?;
        let mut problems = Vec::new();
        for (_, key) in self.entry_dirs()? {
            let Some(key) = key else {
                continue;
            };
            let meta = self.read_meta(&key);
            let name = meta.as_ref().ok().map(|m| m.name.clone());
            let problem = |reason: String, kind| Problem {
                key: key.to_hex(),
                name: name.clone(),
                reason,
                kind,
            };
            let manifest = match meta.and_then(|meta| self.read_manifest(&meta)) {
                Ok(m) => m,
                // Removed since it was listed.
                Err(e) if e.kind() == ErrorKind::Evicted => continue,
                Err(e) => {
                    problems.push(problem(e.to_string(), e.kind()));
                    continue;
                }
            };
            let bad = self.bad_blobs(&manifest, repair);
            problems.extend(bad.into_iter().map(|(digest, state)| {
                let kind = if state.is_damage() {
                    ErrorKind::Damaged
                } else {
                    ErrorKind::Io
                };
                problem(format!("blob {digest} {state}"), kind)
            }));
        }
        if repair {
            let damaged: HashSet<&str> = problems
                .iter()
                .filter(|p| p.kind == ErrorKind::Damaged)
                .map(|p| p.key.as_str())
                .collect();
            for key in damaged {
                if let Ok(key) = key.parse::<Digest>() {
                    self.remove_unlocked(&key)?;
                }
            }
        }
        Ok(problems)
    }

    /// The blobs of `manifest` that are not whole, checked in parallel;
    /// with `drop`, the damaged ones are deleted, so that the next put of
    /// their contents writes them afresh.
    pub(super) fn bad_blobs(&self, manifest: &Manifest, drop: bool) -> Vec<(Digest, BlobState)> {
        let blobs: HashSet<Digest> = manifest.blobs().map(|(digest, _)| digest).collect();
        let mut bad: Vec<(Digest, BlobState)> = blobs
            .into_par_iter()
            .filter_map(|digest| {
                let path = self.blob_path(&digest);
                let state = match crate::foreign::open_regular(&path) {
                    Ok(Some(mut file)) => match io::digest_of(&mut file) {
                        Ok(found) if found == digest => return None,
                        Ok(_) => BlobState::Mismatch,
                        Err(e) => BlobState::Unreadable(e.to_string()),
                    },
                    Ok(None) => BlobState::NotAFile,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => BlobState::Missing,
                    Err(e) => BlobState::Unreadable(e.to_string()),
                };
                if drop && state.is_damage() {
                    let _ = io::remove_any(&path);
                }
                Some((digest, state))
            })
            .collect();
        bad.sort_by_key(|(digest, _)| *digest);
        bad
    }

    /// Drops a damaged entry: every blob of it that fails its digest (the
    /// first one found is rarely the only one, and other entries may share
    /// them), then the entry.
    pub(super) fn discard(&self, key: &Digest, manifest: Option<&Manifest>) {
        if let Some(manifest) = manifest {
            self.bad_blobs(manifest, true);
        }
        let _ = self.remove(key);
    }
}

/// What is wrong with a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum BlobState {
    /// No blob file.
    Missing,
    /// Something other than a regular file where the blob goes.
    NotAFile,
    /// Its contents do not have its digest.
    Mismatch,
    /// This process cannot read it (permissions, an I/O error): the blob
    /// may be fine, so it is not damage.
    Unreadable(String),
}

impl BlobState {
    /// True when the blob is bad for every reader: missing or wrong.
    pub(super) fn is_damage(&self) -> bool {
        !matches!(self, BlobState::Unreadable(_))
    }
}

impl std::fmt::Display for BlobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobState::Missing => f.write_str("is missing"),
            BlobState::NotAFile => f.write_str("is not a regular file"),
            BlobState::Mismatch => f.write_str("does not match its digest"),
            BlobState::Unreadable(e) => write!(f, "cannot be read: {e}"),
        }
    }
}
