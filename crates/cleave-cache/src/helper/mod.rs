//! Cache helpers (protocol 1): executables that keep entries wherever their
//! author likes, asked by cleave before a build and told after one.
//!
//! cleave runs `HELPER lookup` and `HELPER store` with one JSON object on
//! stdin and reads one from stdout (docs/cache-helpers.md is the
//! specification). What a helper hands back is a portable entry
//! ([`crate::portable`]), read and checked as any entry from elsewhere. A
//! helper that fails, hangs past its timeout or prints something that is
//! not the answer costs a warning and is not run again in this process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::foreign::{limits, printable};
use crate::key::Inputs;
use crate::portable::{self, FileInfo};
use crate::remote::TierStats;
use crate::store::{Entry, Store};

pub mod answer;
mod process;

use answer::Lookup;

/// The protocol version cleave speaks.
pub const PROTOCOL: u32 = 1;

/// One configured helper.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HelperConfig {
    /// The executable.
    pub path: PathBuf,
    /// How long `lookup` may take.
    pub lookup_timeout: Duration,
    /// How long `store` may take (it may upload).
    pub store_timeout: Duration,
}

impl HelperConfig {
    /// A helper with the default timeouts: 5 s to look up, 60 s to store.
    pub fn new(path: PathBuf) -> HelperConfig {
        HelperConfig {
            path,
            lookup_timeout: Duration::from_secs(5),
            store_timeout: Duration::from_secs(60),
        }
    }
}

/// What an entry is, for the helper.
#[derive(Debug, Serialize)]
struct Request<'a> {
    protocol: u32,
    key: String,
    name: &'a str,
    inputs: BTreeMap<&'a str, &'a str>,
    platform: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    entry: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<&'a BTreeMap<String, FileInfo>>,
    /// On `store`: this entry takes the place of one stored before under
    /// its key (a compile manifest that grew).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    replace: bool,
}

/// A helper as a build uses it.
#[derive(Debug)]
pub struct Helper {
    config: HelperConfig,
    platform: String,
    disabled: bool,
    /// Its counters, named `helper:PATH`.
    pub stats: TierStats,
}

/// Why a helper call gave nothing.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// It could not run, failed, hung or answered garbage: not run again.
    #[error("cache helper {helper}: {reason}")]
    Broken {
        /// The helper's path.
        helper: String,
        /// What went wrong.
        reason: String,
    },
    /// What it handed back is not a good entry.
    #[error("cache helper {helper}: {source}")]
    Entry {
        /// The helper's path.
        helper: String,
        /// Why the entry was refused.
        #[source]
        source: crate::CacheError,
    },
}

impl HelperError {
    /// True when the helper itself misbehaved.
    pub fn is_broken(&self) -> bool {
        matches!(self, HelperError::Broken { .. })
    }
}

impl Helper {
    /// A helper for builds of `platform`.
    pub fn new(config: HelperConfig, platform: &str) -> Helper {
        Helper {
            stats: TierStats::new(&format!("helper:{}", config.path.display())),
            config,
            platform: platform.to_string(),
            disabled: false,
        }
    }

    /// Whether it may still be run.
    pub fn usable(&self) -> bool {
        !self.disabled
    }

    /// Stops running it (after a failure).
    pub fn disable(&mut self) {
        self.disabled = true;
    }

    /// The helper as messages name it: its path.
    pub fn shown(&self) -> String {
        self.config.path.display().to_string()
    }

    fn broken(&self, reason: String) -> HelperError {
        HelperError::Broken {
            helper: self.shown(),
            reason,
        }
    }

    /// Asks the helper for `key`; a hit is imported into `store`.
    pub fn lookup(
        &mut self,
        store: &Store,
        key: &Digest,
        name: &str,
        inputs: &Inputs,
    ) -> Result<Option<Entry>, HelperError> {
        let platform = self.platform.clone();
        let request = Request {
            protocol: PROTOCOL,
            key: key.to_hex(),
            name,
            inputs: inputs.iter().collect(),
            platform: &platform,
            entry: None,
            files: None,
            replace: false,
        };
        let answer = self.run("lookup", &request, self.config.lookup_timeout)?;
        let path = match answer::lookup(&answer).map_err(|reason| self.broken(reason))? {
            Lookup::Missing => {
                self.stats.misses += 1;
                return Ok(None);
            }
            // Both modes read the entry where it is, once, into the store:
            // for `copy` that read is cleave's own copy, for `in-place`
            // nothing outlives the build either.
            Lookup::Found { entry, .. } => entry,
        };
        let entry =
            portable::import(store, &path, Some(key)).map_err(|source| HelperError::Entry {
                helper: self.shown(),
                source,
            })?;
        self.stats.hits += 1;
        self.stats.bytes_down += entry.meta().size;
        Ok(Some(entry))
    }

    /// Tells the helper about an entry just stored: it gets a portable copy
    /// that exists until it exits. With `replace`, the entry takes the
    /// place of one the helper may hold under its key. Returns where it
    /// says the entry went.
    pub fn store(&mut self, entry: &Entry, replace: bool) -> Result<Option<String>, HelperError> {
        let scratch = tempfile::tempdir()
            .map_err(|e| self.broken(format!("making a scratch directory: {e}")))?;
        let dir = scratch.path().join("entry");
        let files = portable::export(entry, &dir).map_err(|source| HelperError::Entry {
            helper: self.shown(),
            source,
        })?;
        let meta = entry.meta();
        let platform = self.platform.clone();
        let request = Request {
            protocol: PROTOCOL,
            key: meta.key.to_hex(),
            name: &meta.name,
            inputs: meta.inputs.iter().collect(),
            platform: &platform,
            entry: Some(&dir),
            files: Some(&files),
            replace,
        };
        let answer = self.run("store", &request, self.config.store_timeout)?;
        let relocated_to = answer::store(&answer).map_err(|reason| self.broken(reason))?;
        self.stats.uploads += 1;
        self.stats.bytes_up += meta.size;
        Ok(relocated_to)
    }

    /// Runs `HELPER VERB` with `request` on stdin: its stdout, or why not.
    fn run(
        &mut self,
        verb: &str,
        request: &Request<'_>,
        timeout: Duration,
    ) -> Result<Vec<u8>, HelperError> {
        let started = Instant::now();
        self.stats.requests += 1;
        let result = self.run_inner(verb, request, timeout);
        self.stats.wait_ms += started.elapsed().as_millis() as u64;
        result
    }

    fn run_inner(
        &self,
        verb: &str,
        request: &Request<'_>,
        timeout: Duration,
    ) -> Result<Vec<u8>, HelperError> {
        let input = serde_json::to_vec(request).map_err(|e| self.broken(e.to_string()))?;
        let finished = process::run(&self.config.path, verb, input, limits::ANSWER, timeout)
            .map_err(|e| self.broken(format!("`{verb}` {e}")))?;
        if !finished.status.success() {
            let text = String::from_utf8_lossy(&finished.stderr);
            let tail: Vec<&str> = text.lines().rev().take(3).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(self.broken(format!(
                "`{verb}` failed ({}): {}",
                finished.status,
                printable(&tail.join(" / "))
            )));
        }
        Ok(finished.stdout)
    }
}
