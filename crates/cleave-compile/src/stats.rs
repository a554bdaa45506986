//! What the wrapper did, call by call, for `cleave cache stats`.
//!
//! ```text
//! <cache>/compile/
//! ├── stats.log    one line per call, appended by the wrapper
//! └── stats.json   the sum of the lines folded in so far
//! ```
//!
//! Many compiles run at once, so a call appends its line with one write
//! to a file opened for appending, holding a shared lock: appends never
//! interleave and never wait for each other. Reading the stats takes the
//! lock exclusively, folds the lines into `stats.json` (written whole and
//! renamed) and empties the log, so the log stays short and no line is
//! counted twice or lost.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Seek, Write};
use std::path::Path;

use cleave_cache::remote::TierStats;
use serde::{Deserialize, Serialize};

/// How a hit was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// From the source and the include manifest, without preprocessing.
    Direct,
    /// From the preprocessed text.
    Preprocessed,
}

/// Why a cacheable call compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissReason {
    /// No entry for this source, these flags and this compiler.
    New,
    /// Entries for the source, but a header it includes changed.
    HeadersChanged,
    /// Entries for the crate, but a source file or a variable it reads
    /// changed (Rust).
    SourcesChanged,
    /// The entry found was damaged; it was dropped.
    Damaged,
    /// The object holds a build path that cannot be rewritten to this
    /// build's (another length).
    Relocation,
}

impl fmt::Display for MissReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MissReason::New => "new source, flags or compiler",
            MissReason::HeadersChanged => "included file changed",
            MissReason::SourcesChanged => "source file or variable changed",
            MissReason::Damaged => "damaged entry recompiled",
            MissReason::Relocation => "build path of another length",
        })
    }
}

/// What one call came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Served from the cache.
    Hit {
        /// How it was found.
        mode: Mode,
        /// The compile time of the entry, less this call's time.
        saved_us: u64,
    },
    /// Compiled and stored.
    Miss {
        /// Why.
        reason: MissReason,
        /// How long the compiler took.
        compile_us: u64,
    },
    /// Passed straight to the compiler.
    Uncacheable(String),
    /// The compiler failed (nothing is stored).
    Failed,
    /// The cache failed; the compiler ran without it.
    Error(String),
}

/// The counts since the last reset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Seconds since the epoch of the first call counted.
    pub since: Option<u64>,
    /// Hits without preprocessing.
    pub hits_direct: u64,
    /// Hits found by the preprocessed text.
    pub hits_preprocessed: u64,
    /// Misses by reason.
    pub misses: BTreeMap<String, u64>,
    /// Calls passed through, by reason.
    pub uncacheable: BTreeMap<String, u64>,
    /// Calls whose compile failed.
    pub failed: u64,
    /// Calls the cache failed to serve.
    pub errors: u64,
    /// The last of those errors.
    pub last_error: Option<String>,
    /// Compile time the hits did not spend, in microseconds.
    pub saved_us: u64,
    /// Time the hits took (the wrapper's whole run), in microseconds.
    pub hit_us: u64,
    /// Time the compiler took on misses, in microseconds.
    pub compile_us: u64,
    /// Time the misses took in all (lookups, compile, store).
    pub miss_us: u64,
    /// Hits whose entry came from a remote store.
    #[serde(default)]
    pub remote_hits: u64,
    /// What the calls did with each remote store (requests, uploads,
    /// bytes, errors, waiting), by the remote as printed.
    #[serde(default)]
    pub remotes: BTreeMap<String, TierStats>,
    /// Calls served without direct mode (from the preprocessed text
    /// only), by reason.
    #[serde(default)]
    pub direct_off: BTreeMap<String, u64>,
    /// Lines of the log that could not be read (a torn or foreign write):
    /// skipped, so that one bad line costs its own count, not the stats.
    #[serde(default)]
    pub skipped: u64,
}

impl Summary {
    /// Hits of both modes.
    pub fn hits(&self) -> u64 {
        self.hits_direct + self.hits_preprocessed
    }

    /// Misses of every reason.
    pub fn misses(&self) -> u64 {
        self.misses.values().sum()
    }

    /// Calls passed through.
    pub fn uncacheable(&self) -> u64 {
        self.uncacheable.values().sum()
    }

    /// Every call counted.
    pub fn calls(&self) -> u64 {
        self.hits() + self.misses() + self.uncacheable() + self.failed + self.errors
    }

    /// Counts one line of the log; false when it is not one the wrapper
    /// writes.
    fn add(&mut self, line: &[u8]) -> bool {
        let Ok(line) = std::str::from_utf8(line) else {
            return false;
        };
        let mut fields = line.splitn(4, '\t');
        let (Some(tag), Some(wall), Some(value), text) = (
            fields.next(),
            fields.next().and_then(|f| f.parse::<u64>().ok()),
            fields.next().and_then(|f| f.parse::<u64>().ok()),
            fields.next().unwrap_or(""),
        ) else {
            return false;
        };
        match tag {
            "hd" | "hp" => {
                if tag == "hd" {
                    self.hits_direct += 1;
                } else {
                    self.hits_preprocessed += 1;
                }
                self.saved_us += value;
                self.hit_us += wall;
            }
            "m" => {
                *self.misses.entry(text.to_string()).or_default() += 1;
                self.compile_us += value;
                self.miss_us += wall;
            }
            "u" => *self.uncacheable.entry(text.to_string()).or_default() += 1,
            "f" => self.failed += 1,
            "e" => {
                self.errors += 1;
                self.last_error = Some(text.to_string());
            }
            "d" => *self.direct_off.entry(text.to_string()).or_default() += 1,
            "r" => {
                let Ok(tiers) = serde_json::from_str::<Vec<TierStats>>(text) else {
                    return false;
                };
                self.remote_hits += value;
                for tier in tiers {
                    self.remotes
                        .entry(tier.remote.clone())
                        .or_insert_with(|| TierStats::new(&tier.remote))
                        .add(&tier);
                }
            }
            _ => return false,
        }
        true
    }
}

const LOG: &str = "stats.log";
const SUM: &str = "stats.json";

/// Appends one call's outcome; a failure to count is not a failure of the
/// compile.
pub fn record(state: &Path, outcome: &Outcome, wall_us: u64) {
    let clean = |text: &str| text.replace(['\t', '\n'], " ");
    let line = match outcome {
        Outcome::Hit { mode, saved_us } => {
            let tag = match mode {
                Mode::Direct => "hd",
                Mode::Preprocessed => "hp",
            };
            format!("{tag}\t{wall_us}\t{saved_us}\t\n")
        }
        Outcome::Miss { reason, compile_us } => format!("m\t{wall_us}\t{compile_us}\t{reason}\n"),
        Outcome::Uncacheable(why) => format!("u\t{wall_us}\t0\t{}\n", clean(why)),
        Outcome::Failed => format!("f\t{wall_us}\t0\t\n"),
        Outcome::Error(what) => format!("e\t{wall_us}\t0\t{}\n", clean(what)),
    };
    append(state, &line);
}

/// Appends a line to the log, under its shared lock (folds take it
/// exclusively). Best effort.
fn append(state: &Path, line: &str) {
    let append = || -> std::io::Result<()> {
        std::fs::create_dir_all(state)?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(state.join(LOG))?;
        file.lock_shared()?;
        file.write_all(line.as_bytes())
    };
    let _ = append();
}

/// Notes that a call was served without direct mode, and why (the call's
/// outcome is recorded on its own).
pub fn record_direct_off(state: &Path, why: &str) {
    append(
        state,
        &format!("d\t0\t0\t{}\n", why.replace(['\t', '\n'], " ")),
    );
}

/// Appends one call's traffic with the remote stores: `served` when an
/// entry a remote gave served the call.
pub fn record_remote(state: &Path, served: bool, tiers: &[TierStats]) {
    let tiers: Vec<&TierStats> = tiers.iter().filter(|t| !t.is_idle()).collect();
    if tiers.is_empty() && !served {
        return;
    }
    let json = serde_json::to_string(&tiers).unwrap_or_default();
    append(state, &format!("r\t0\t{}\t{json}\n", u64::from(served)));
}

/// The counts so far, folding the log into the sum.
pub fn summary(state: &Path) -> std::io::Result<Summary> {
    fold(state, false)
}

/// The counts so far, and counting starts afresh, in one step under the
/// log's lock: two readers that both reset never both count the same calls.
pub fn take(state: &Path) -> std::io::Result<Summary> {
    fold(state, true)
}

/// Folds the log into the sum under the log's exclusive lock; with
/// `reset`, the sum is removed instead of kept.
fn fold(state: &Path, reset: bool) -> std::io::Result<Summary> {
    if !state.join(LOG).exists() && !state.join(SUM).exists() {
        return Ok(Summary::default());
    }
    std::fs::create_dir_all(state)?;
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(state.join(LOG))?;
    log.lock()?;
    let mut sum: Summary = std::fs::read(state.join(SUM))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let mut text = Vec::new();
    log.read_to_end(&mut text)?;
    if !text.is_empty() {
        sum.since.get_or_insert_with(unix_now);
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if !sum.add(line) {
                sum.skipped += 1;
            }
        }
    }
    if reset {
        match std::fs::remove_file(state.join(SUM)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    } else if !text.is_empty() {
        let mut tmp = tempfile::NamedTempFile::new_in(state)?;
        serde_json::to_writer(&mut tmp, &sum)?;
        tmp.persist(state.join(SUM)).map_err(|e| e.error)?;
    }
    if !text.is_empty() {
        log.set_len(0)?;
        log.rewind()?;
    }
    Ok(sum)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_add_up_across_folds_and_zero_resets() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("compile");
        assert_eq!(summary(&state).unwrap(), Summary::default());
        record(
            &state,
            &Outcome::Miss {
                reason: MissReason::New,
                compile_us: 900,
            },
            1000,
        );
        record(
            &state,
            &Outcome::Hit {
                mode: Mode::Direct,
                saved_us: 880,
            },
            20,
        );
        record(&state, &Outcome::Uncacheable("linking".into()), 5);
        let first = summary(&state).unwrap();
        assert_eq!(
            (first.hits(), first.misses(), first.uncacheable()),
            (1, 1, 1)
        );
        record(
            &state,
            &Outcome::Hit {
                mode: Mode::Preprocessed,
                saved_us: 100,
            },
            30,
        );
        record(&state, &Outcome::Error("the store: disk\tfull".into()), 7);
        let second = summary(&state).unwrap();
        assert_eq!(second.hits_direct, 1);
        assert_eq!(second.hits_preprocessed, 1);
        assert_eq!(second.saved_us, 980);
        assert_eq!(second.hit_us, 50);
        assert_eq!(second.misses["new source, flags or compiler"], 1);
        assert_eq!(second.uncacheable["linking"], 1);
        assert_eq!(second.last_error.as_deref(), Some("the store: disk full"));
        assert_eq!(second.calls(), 5);
        take(&state).unwrap();
        assert_eq!(summary(&state).unwrap().calls(), 0);
    }

    #[test]
    fn concurrent_appends_are_all_counted() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().to_path_buf();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let state = state.clone();
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        record(&state, &Outcome::Failed, 1);
                    }
                })
            })
            .collect();
        let folder = {
            let state = state.clone();
            std::thread::spawn(move || {
                for _ in 0..20 {
                    summary(&state).unwrap();
                }
            })
        };
        for t in threads {
            t.join().unwrap();
        }
        folder.join().unwrap();
        assert_eq!(summary(&state).unwrap().failed, 1600);
    }

    #[test]
    fn a_line_that_is_not_utf8_or_not_a_record_is_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().to_path_buf();
        record(&state, &Outcome::Failed, 1);
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(state.join(LOG))
            .unwrap();
        log.write_all(b"u\t1\t0\tbad \xff byte\nnonsense\nr\t0\t1\t[{\n")
            .unwrap();
        record(&state, &Outcome::Uncacheable("linking".into()), 1);
        let sum = summary(&state).unwrap();
        assert_eq!((sum.failed, sum.uncacheable(), sum.skipped), (1, 1, 3));
        assert_eq!(sum.remote_hits, 0);
        assert_eq!(take(&state).unwrap().skipped, 3);
        assert_eq!(summary(&state).unwrap(), Summary::default());
    }
}
