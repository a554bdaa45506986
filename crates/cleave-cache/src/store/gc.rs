//! Eviction: least recently used entries, unreferenced blobs and
//! leftovers of killed writers.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::entry::{Eviction, lock_for_eviction};
use super::io::remove_any;
use super::{EntryInfo, Store, unix_now};
use crate::digest::Digest;
use crate::error::{CacheError, ErrorKind};
use crate::lock::Lock;
use crate::manifest::Manifest;

/// Which entries `gc` removes.
#[derive(Debug, Clone, Copy, Default)]
pub struct GcPolicy {
    /// Evict least recently used entries until the blobs fit in this size.
    pub max_size: Option<u64>,
    /// Evict entries not used for this long.
    pub older_than: Option<Duration>,
}

/// What `gc` removed and kept.
#[derive(Debug, Default)]
pub struct GcReport {
    /// The evicted entries.
    pub removed: Vec<EntryInfo>,
    /// Entries removed because they could not be read.
    pub unreadable: usize,
    /// Bytes of blobs deleted.
    pub freed: u64,
    /// Entries left.
    pub kept: usize,
    /// Bytes of blobs left.
    pub kept_bytes: u64,
    /// Entries kept although the policy would evict them, because a build
    /// is using them.
    pub in_use: usize,
}

impl Store {
    /// Evicts entries by the policy, least recently used first, then deletes
    /// blobs no entry refers to and leftovers of killed writers. Entries
    /// that cannot be read are removed whatever the policy: nothing can use
    /// them, and a build would only miss them.
    pub fn gc(&self, policy: GcPolicy) -> Result<GcReport, CacheError> {
        let (_lock, _) = Lock::exclusive(&self.root.join("lock"), || {})?;
        self.gc_locked(policy)
    }

    /// [`Store::gc`] for a caller that holds the store's lock exclusively.
    fn gc_locked(&self, policy: GcPolicy) -> Result<GcReport, CacheError> {
        let mut report = GcReport::default();
        let mut entries = self.census(&mut report)?;
        // Oldest first.
        entries.reverse();
        let mut refs: HashMap<Digest, (u64, usize)> = HashMap::new();
        for (_, manifest) in &entries {
            let distinct: HashSet<(Digest, u64)> = manifest.blobs().collect();
            for (digest, size) in distinct {
                refs.entry(digest).or_insert((size, 0)).1 += 1;
            }
        }
        // In u128: sizes as recorded may add up past 2^64, and a saturated
        // sum would go wrong as entries leave it.
        let mut total: u128 = refs.values().map(|(size, _)| u128::from(*size)).sum();
        let now = unix_now();
        let count = entries.len();
        for (entry, manifest) in entries {
            let stale = policy
                .older_than
                .is_some_and(|age| now.saturating_sub(entry.last_used) > age.as_secs());
            let over = policy.max_size.is_some_and(|max| total > u128::from(max));
            if !(stale || over) {
                continue;
            }
            // An entry a build has found (or just stored) stays until the
            // build lets go of it; the next ones in line go instead.
            let dir = self.entry_dir(&entry.meta.key);
            let guard = match lock_for_eviction(&dir)
                .map_err(CacheError::io(format!("locking {}", dir.display())))?
            {
                Eviction::Locked(guard) => guard,
                Eviction::InUse => {
                    report.in_use += 1;
                    continue;
                }
                Eviction::Gone => continue,
            };
            let distinct: HashSet<Digest> = manifest.blobs().map(|(digest, _)| digest).collect();
            for digest in distinct {
                if let Some((size, count)) = refs.get_mut(&digest) {
                    *count -= 1;
                    if *count == 0 {
                        total = total.saturating_sub(u128::from(*size));
                    }
                }
            }
            self.remove_unlocked(&entry.meta.key)?;
            drop(guard);
            report.removed.push(entry);
        }
        let live: HashSet<Digest> = refs
            .iter()
            .filter(|(_, (_, count))| *count > 0)
            .map(|(d, _)| *d)
            .collect();
        report.freed = self.sweep_blobs(&live)?;
        // No writer holds the store now: whatever is in tmp/ was left by a
        // killed process.
        let tmp = self.root.join("tmp");
        if let Ok(dir) = std::fs::read_dir(&tmp) {
            for e in dir.flatten() {
                let _ = remove_any(&e.path());
            }
        }
        report.kept = count - report.removed.len();
        report.kept_bytes = u64::try_from(total).unwrap_or(u64::MAX);
        Ok(report)
    }

    /// Every readable entry with its manifest; what cannot be read (garbage
    /// metadata or manifest, a name that is no key) is removed and counted.
    /// An I/O error stops here: with an entry's blobs unknown, sweeping
    /// could delete blobs it needs.
    fn census(&self, report: &mut GcReport) -> Result<Vec<(EntryInfo, Manifest)>, CacheError> {
        let mut found = Vec::new();
        for (dir, key) in self.entry_dirs()? {
            let read = key.ok_or(()).map(|key| {
                self.read_meta(&key)
                    .and_then(|meta| Ok((self.read_manifest(&meta)?, meta)))
            });
            match read {
                Ok(Ok((manifest, meta))) => found.push((self.info(meta), manifest)),
                Ok(Err(e)) if e.kind() == ErrorKind::Evicted => {}
                Ok(Err(e)) if e.kind() != ErrorKind::Damaged => return Err(e),
                Ok(Err(_)) | Err(()) => {
                    remove_any(&dir)
                        .map_err(CacheError::io(format!("removing {}", dir.display())))?;
                    report.unreadable += 1;
                }
            }
        }
        found.sort_by(|(a, _), (b, _)| {
            b.last_used
                .cmp(&a.last_used)
                .then(a.meta.key.cmp(&b.meta.key))
        });
        Ok(found)
    }

    /// Deletes every blob not in `live`, and whatever else is in `blobs/`
    /// (a directory where a blob goes, a file where a shard goes).
    fn sweep_blobs(&self, live: &HashSet<Digest>) -> Result<u64, CacheError> {
        let blobs = self.root.join("blobs");
        let mut freed: u64 = 0;
        let io = |dir: &std::path::Path| CacheError::io(format!("listing {}", dir.display()));
        for shard in std::fs::read_dir(&blobs).map_err(io(&blobs))? {
            let shard = shard.map_err(io(&blobs))?.path();
            if !std::fs::symlink_metadata(&shard).is_ok_and(|m| m.is_dir()) {
                let _ = remove_any(&shard);
                continue;
            }
            for blob in std::fs::read_dir(&shard).map_err(io(&shard))? {
                let blob = blob.map_err(io(&shard))?;
                let is_file = blob.file_type().is_ok_and(|t| t.is_file());
                let keep = is_file
                    && blob
                        .file_name()
                        .to_string_lossy()
                        .parse::<Digest>()
                        .is_ok_and(|d| live.contains(&d));
                if !keep {
                    if is_file {
                        freed = freed.saturating_add(blob.metadata().map_or(0, |m| m.len()));
                    }
                    let _ = remove_any(&blob.path());
                }
            }
        }
        Ok(freed)
    }

    /// Total bytes of the entries as stored, counting shared blobs once per
    /// entry: an upper bound that needs no manifest reads.
    pub fn size_upper_bound(&self) -> Result<u64, CacheError> {
        Ok(self
            .entries()?
            .iter()
            .fold(0, |sum, e| sum.saturating_add(e.meta.size)))
    }

    /// Removes every entry and blob but those of entries in use by a build
    /// (see [`GcReport::in_use`]), and the fingerprint indexes.
    pub fn clean(&self) -> Result<GcReport, CacheError> {
        let (_lock, _) = Lock::exclusive(&self.root.join("lock"), || {})?;
        let report = self.gc_locked(GcPolicy {
            max_size: Some(0),
            older_than: None,
        })?;
        // One by one, and whatever a running build writes meanwhile: the
        // indexes only save time, and builds do not lock the store to
        // write them.
        if let Ok(indexes) = std::fs::read_dir(self.root.join("fingerprints")) {
            for index in indexes.flatten() {
                let _ = remove_any(&index.path());
            }
        }
        Ok(report)
    }
}
