//! Verify: every entry and blob checked, damage listed and optionally
//! removed.

use std::collections::HashSet;

use rayon::prelude::*;

use super::Store;
use crate::digest::Digest;
use crate::error::CacheError;
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
}

impl Store {
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
            let meta = self.read_meta(&key);
            let name = meta.as_ref().ok().map(|m| m.name.clone());
            let problem = |reason: String| Problem {
                key: hex.clone(),
                name: name.clone(),
                reason,
            };
            let manifest = match meta.and_then(|meta| self.read_manifest(&meta)) {
                Ok(m) => m,
                Err(e) => {
                    problems.push(problem(e.to_string()));
                    continue;
                }
            };
            let bad = self.bad_blobs(&manifest, repair);
            problems.extend(bad.into_iter().map(|(digest, state)| {
                problem(match state {
                    BlobState::Missing => format!("blob {digest} is missing"),
                    BlobState::Mismatch => format!("blob {digest} does not match its digest"),
                })
            }));
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

    /// The blobs of `manifest` that are missing or fail their digest,
    /// checked in parallel; with `drop`, those that fail are deleted, so
    /// that the next put of their contents writes them afresh.
    pub(super) fn bad_blobs(&self, manifest: &Manifest, drop: bool) -> Vec<(Digest, BlobState)> {
        let blobs: HashSet<Digest> = manifest.blobs().map(|(digest, _)| digest).collect();
        let mut bad: Vec<(Digest, BlobState)> = blobs
            .into_par_iter()
            .filter_map(|digest| {
                let path = self.blob_path(&digest);
                match Digest::of_file(&path) {
                    Err(_) => Some((digest, BlobState::Missing)),
                    Ok(found) if found != digest => {
                        if drop {
                            let _ = std::fs::remove_file(&path);
                        }
                        Some((digest, BlobState::Mismatch))
                    }
                    Ok(_) => None,
                }
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BlobState {
    /// No blob file.
    Missing,
    /// Its contents do not have its digest.
    Mismatch,
}
