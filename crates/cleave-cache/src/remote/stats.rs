//! Counters per level (the local store, then each remote): for the last
//! build and in total, kept in the store
//! (`stats/remotes.json`) so that `cleave cache stats` can show them.
//! Never with credentials: a remote is named as it may be printed.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::shared_dir::SharedDir;

/// What one remote did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TierStats {
    /// The remote, without credentials.
    pub remote: String,
    /// Entries found there.
    pub hits: u64,
    /// Entries asked for and not there.
    pub misses: u64,
    /// Lookups and uploads that failed (with a warning).
    pub errors: u64,
    /// Entries uploaded.
    pub uploads: u64,
    /// Requests made.
    pub requests: u64,
    /// Bytes downloaded.
    pub bytes_down: u64,
    /// Bytes uploaded.
    pub bytes_up: u64,
    /// Milliseconds spent waiting on the remote.
    pub wait_ms: u64,
}

impl TierStats {
    /// Zero counters for `remote`.
    pub fn new(remote: &str) -> TierStats {
        TierStats {
            remote: remote.to_string(),
            ..TierStats::default()
        }
    }

    /// True when the level was not used.
    pub fn is_idle(&self) -> bool {
        self.requests == 0 && self.errors == 0 && self.hits == 0 && self.misses == 0
    }

    /// Adds another count of the same remote to this one.
    pub fn add(&mut self, other: &TierStats) {
        self.hits += other.hits;
        self.misses += other.misses;
        self.errors += other.errors;
        self.uploads += other.uploads;
        self.requests += other.requests;
        self.bytes_down += other.bytes_down;
        self.bytes_up += other.bytes_up;
        self.wait_ms += other.wait_ms;
    }
}

/// The counters kept in the store.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SavedStats {
    /// The last build that used the cache, per level in lookup order.
    pub last: Vec<TierStats>,
    /// Every build, per level.
    pub total: BTreeMap<String, TierStats>,
}

impl SavedStats {
    /// Where the counters are below the store.
    const PATH: &str = "stats/remotes.json";

    /// The saved counters; none when there are none or they do not parse.
    /// Another user of the store may have replaced the file: it is read
    /// only as a regular file, not through a link, and bounded.
    pub fn load(store: &Path) -> SavedStats {
        SharedDir::new(store.to_path_buf())
            .read(Self::PATH, crate::foreign::limits::RECORD)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Adds one build's counters. Counting is best effort: a store that
    /// cannot be written loses the figures, not the build.
    pub fn record(store: &Path, build: &[TierStats]) {
        if build.iter().all(TierStats::is_idle) {
            return;
        }
        let dir = SharedDir::new(store.to_path_buf());
        let Ok(lock) = dir.lock_file("stats/lock") else {
            return;
        };
        if lock.lock().is_err() {
            return;
        }
        let mut saved = SavedStats::load(store);
        for tier in build {
            saved
                .total
                .entry(tier.remote.clone())
                .or_insert_with(|| TierStats::new(&tier.remote))
                .add(tier);
        }
        saved.last = build.to_vec();
        if let Ok(text) = serde_json::to_vec_pretty(&saved) {
            let _ = dir.write(Self::PATH, &text);
        }
    }
}
