//! Verify: every entry and blob checked, damage listed and optionally
//! removed.

use std::collections::HashMap;

use rayon::prelude::*;

use super::Store;
use crate::digest::Digest;
use crate::error::CacheError;

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
}
