//! One remote: its operator with timeouts and retries, and an entry's trip
//! to it and back.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use opendal::layers::{RetryLayer, TimeoutLayer};
use rayon::prelude::*;

use super::backend::{Backend, Failure};
use super::known::Known;
use super::pack::{self, Index, Location, PackWriter};
use super::reapi;
use super::{Mode, RemoteConfig, RemoteError, TierStats, scrub};
use crate::digest::Digest;
use crate::foreign::{limits, printable};
use crate::progress::{Operation, Reporter, Tracked};
use crate::store::{Entry, Store};

/// One configured remote, as a build uses it.
pub(super) struct Tier {
    pub(super) config: RemoteConfig,
    backend: Option<Backend>,
    /// The connection of a REAPI remote, which is no OpenDAL service.
    pub(super) reapi: Option<reapi::Session>,
    pub(super) known: Known,
    /// Set after the service failed to answer: not asked again.
    pub(super) disabled: bool,
    pub(super) stats: TierStats,
    /// Where the progress of transfers goes.
    pub(super) reporter: Option<std::sync::Arc<dyn Reporter>>,
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// The remote had the entry already.
    AlreadyThere,
    /// The entry was uploaded.
    Uploaded,
}

impl Tier {
    /// A tier for `config`; the operator is made when first needed.
    pub(super) fn new(config: RemoteConfig, store: &Store) -> Tier {
        let shown = config.url.to_string();
        Tier {
            known: Known::new(store.root(), &shown),
            stats: TierStats::new(&shown),
            backend: None,
            reapi: None,
            disabled: false,
            reporter: None,
            config,
        }
    }

    pub(super) fn shown(&self) -> String {
        self.config.url.to_string()
    }

    pub(super) fn readable(&self) -> bool {
        !self.disabled && self.config.mode != Mode::Off
    }

    pub(super) fn writable(&self) -> bool {
        !self.disabled && self.config.mode == Mode::ReadWrite
    }

    /// What the tier talks to, made when first needed: a service through
    /// OpenDAL with the timeout and retries configured, or a shared
    /// directory.
    pub(super) fn backend(
        &mut self,
        runtime: &tokio::runtime::Runtime,
    ) -> Result<Backend, RemoteError> {
        if let Some(backend) = &self.backend {
            return Ok(backend.clone());
        }
        let backend = match self.config.url.dir() {
            Some(root) => Backend::Dir(crate::shared_dir::SharedDir::new(root)),
            None => {
                // HTTP services need the process-wide transport; installing
                // it twice keeps the first.
                opendal::install_default();
                let op = self
                    .config
                    .url
                    .operator()?
                    .layer(
                        TimeoutLayer::new()
                            .with_timeout(self.config.timeout)
                            .with_io_timeout(self.config.timeout),
                    )
                    .layer(
                        RetryLayer::new()
                            .with_max_times(self.config.retries)
                            .with_min_delay(Duration::from_millis(100))
                            .with_max_delay(Duration::from_secs(2))
                            .with_jitter(),
                    );
                let _entered = runtime.enter();
                let blocking = opendal::blocking::Operator::new(op.clone())
                    .map_err(|e| self.service(format!("cannot read from it: {e}")))?;
                Backend::Dal { op, blocking }
            }
        };
        self.backend = Some(backend.clone());
        Ok(backend)
    }

    /// A failure of the service, its text without secrets or control
    /// characters.
    pub(super) fn service(&self, reason: String) -> RemoteError {
        let reason = scrub(&reason, &self.config.url.secrets());
        RemoteError::Service {
            remote: self.shown(),
            reason: printable(&reason).into_owned(),
        }
    }

    /// The most one call may wait, retries and backoff included: a
    /// service that never answers costs this, and no more.
    pub(super) fn deadline(&self) -> Duration {
        let tries = self.config.retries as u32 + 1;
        self.config.timeout * tries + Duration::from_secs(2) * tries
    }

    /// Runs one request on the runtime, bounded by the deadline, counting
    /// it and the time spent waiting.
    pub(super) fn request<T>(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        what: &str,
        call: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        let started = Instant::now();
        let deadline = self.deadline();
        let result = runtime.block_on(async { tokio::time::timeout(deadline, call).await });
        self.stats.requests += 1;
        self.stats.wait_ms += started.elapsed().as_millis() as u64;
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(Failure::Service(reason))) => Err(Failure::Service(format!("{what}: {reason}"))),
            Ok(Err(too_large)) => Err(too_large),
            Err(_) => Err(Failure::Service(format!(
                "{what}: no answer within {} s",
                deadline.as_secs()
            ))),
        }
    }

    /// A failed request as the caller reports it: the service's failure,
    /// or damage of the entry `key`.
    pub(super) fn failed(&self, key: &Digest, failure: Failure) -> RemoteError {
        match failure {
            Failure::Service(reason) => self.service(reason),
            Failure::TooLarge(reason) => RemoteError::Damaged {
                remote: self.shown(),
                key: key.to_hex(),
                reason: printable(&reason).into_owned(),
            },
        }
    }

    /// Uploads `entry` unless the remote has it: new blobs in packs, then
    /// the index. With `replace`, the index is written even where one is:
    /// for an entry whose contents grow under one key (a compile manifest).
    pub(super) fn push(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        entry: &Entry,
        replace: bool,
    ) -> Result<Pushed, RemoteError> {
        let shown = self.shown();
        let reporter = self.reporter.clone();
        let tracked = Tracked::start(
            reporter.as_ref(),
            &Operation::Upload {
                remote: &shown,
                name: &entry.meta().name,
            },
            None,
        );
        if self.config.url.reapi().is_some() {
            let session = self.reapi.get_or_insert_with(Default::default);
            let pushed = session.push(runtime, &self.config, &mut self.stats, entry, replace);
            if session.read_only() {
                self.config.mode = Mode::ReadOnly;
            }
            return pushed;
        }
        let backend = self.backend(runtime)?;
        let key = entry.meta().key;
        let index_path = pack::index_path(&key);
        if !replace {
            let there = self
                .request(
                    runtime,
                    "looking an index up",
                    backend.exists(index_path.clone()),
                )
                .map_err(|f| self.failed(&key, f))?;
            if there {
                return Ok(Pushed::AlreadyThere);
            }
        }
        let files = entry.files()?;
        let manifest = entry.manifest()?;
        let mut blobs: BTreeMap<Digest, u64> = BTreeMap::new();
        for (blob, size) in manifest.blobs() {
            blobs.insert(blob, size);
        }
        // Blobs in packs the remote is known to hold go by reference; each
        // such pack is checked once.
        let mut locations = Vec::new();
        let mut checked: HashMap<Digest, bool> = HashMap::new();
        let mut new = Vec::new();
        for (blob, size) in blobs {
            let Some(location) = self.known.get(&blob) else {
                new.push((blob, size));
                continue;
            };
            let present = match checked.get(&location.pack) {
                Some(present) => *present,
                None => {
                    let stat = backend.exists(pack::pack_path(&location.pack));
                    let present = self
                        .request(runtime, "looking a pack up", stat)
                        .map_err(|f| self.failed(&key, f))?;
                    if !present {
                        self.known.forget_pack(&location.pack);
                    }
                    checked.insert(location.pack, present);
                    present
                }
            };
            if present {
                locations.push(location);
            } else {
                new.push((blob, size));
            }
        }
        tracked.total(new.iter().map(|(_, size)| size).sum());
        // Packs upload while the next is compressed, at most
        // PARALLEL_WRITES at once (each held whole until it is sent).
        let mut writes: VecDeque<PackWrite> = VecDeque::new();
        for chunk in chunks(&new, self.config.pack_size) {
            let frames: Vec<Result<(Digest, Vec<u8>), RemoteError>> = chunk
                .par_iter()
                .map(|(blob, _)| {
                    let bytes = entry.blob(blob)?;
                    let frame = pack::compress(&bytes).map_err(|e| RemoteError::Service {
                        remote: shown.clone(),
                        reason: format!("compressing: {e}"),
                    })?;
                    Ok((*blob, frame))
                })
                .collect();
            let mut writer = PackWriter::default();
            for frame in frames {
                let (blob, frame) = frame?;
                writer.push(blob, &frame);
            }
            let (pack, bytes, packed) = writer.finish();
            if writes.len() >= PARALLEL_WRITES
                && let Some(oldest) = writes.pop_front()
            {
                locations.extend(self.written(runtime, &key, oldest, &mut writes)?);
            }
            let size = bytes.len() as u64;
            let (backend, deadline) = (backend.clone(), self.deadline());
            let task = runtime.spawn(async move {
                let write = backend.write(pack::pack_path(&pack), bytes);
                tokio::time::timeout(deadline, write).await
            });
            writes.push_back(PackWrite { size, packed, task });
            tracked.advance(chunk.iter().map(|(_, size)| size).sum());
        }
        while let Some(oldest) = writes.pop_front() {
            locations.extend(self.written(runtime, &key, oldest, &mut writes)?);
        }
        let index = Index {
            format: 1,
            entry: String::from_utf8_lossy(&files.entry).into_owned(),
            files: String::from_utf8_lossy(&files.files).into_owned(),
            blobs: locations,
        };
        let bytes = serde_json::to_vec(&index).map_err(|e| RemoteError::Service {
            remote: self.shown(),
            reason: format!("writing an index: {e}"),
        })?;
        let size = bytes.len() as u64;
        if size > limits::INDEX {
            return Err(RemoteError::Unsendable {
                key: key.to_hex(),
                reason: format!(
                    "its index would have {size} bytes, more than the {} a remote index may have",
                    limits::INDEX
                ),
            });
        }
        let write = backend.write(index_path, bytes);
        self.request(runtime, "writing an index", write)
            .map_err(|f| self.failed(&key, f))?;
        self.stats.bytes_up += size;
        self.stats.uploads += 1;
        Ok(Pushed::Uploaded)
    }
}

/// How many packs upload at once.
const PARALLEL_WRITES: usize = 2;

/// A pack on its way up: its size, the blobs it holds, and the write.
struct PackWrite {
    size: u64,
    packed: Vec<Location>,
    task: tokio::task::JoinHandle<Result<Result<(), Failure>, tokio::time::error::Elapsed>>,
}

impl Tier {
    /// Waits for one pack's write, bounded by the deadline of one request:
    /// the blobs it holds. A failure stops the writes still in `rest`.
    fn written(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        key: &Digest,
        write: PackWrite,
        rest: &mut VecDeque<PackWrite>,
    ) -> Result<Vec<Location>, RemoteError> {
        let started = Instant::now();
        let done = runtime.block_on(write.task);
        self.stats.requests += 1;
        self.stats.wait_ms += started.elapsed().as_millis() as u64;
        let failure = match done {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(Failure::Service(reason)))) => {
                Some(Failure::Service(format!("writing a pack: {reason}")))
            }
            Ok(Ok(Err(too_large))) => Some(too_large),
            Ok(Err(_)) => Some(Failure::Service(format!(
                "writing a pack: no answer within {} s",
                self.deadline().as_secs()
            ))),
            Err(e) => Some(Failure::Service(format!("writing a pack: {e}"))),
        };
        if let Some(failure) = failure {
            for other in rest.drain(..) {
                other.task.abort();
            }
            return Err(self.failed(key, failure));
        }
        self.stats.bytes_up += write.size;
        self.known.record(&write.packed);
        Ok(write.packed)
    }
}

/// Splits blobs into packs of at most `limit` bytes before compression (a
/// larger blob gets a pack of its own).
fn chunks(blobs: &[(Digest, u64)], limit: u64) -> Vec<&[(Digest, u64)]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut size: u64 = 0;
    for (i, (_, blob)) in blobs.iter().enumerate() {
        if i > start && size.saturating_add(*blob) > limit {
            out.push(&blobs[start..i]);
            start = i;
            size = 0;
        }
        size = size.saturating_add(*blob);
    }
    if start < blobs.len() {
        out.push(&blobs[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_are_cut_at_the_limit() {
        let d = |b: &[u8]| Digest::of(b);
        let blobs = vec![(d(b"a"), 4), (d(b"b"), 4), (d(b"c"), 9), (d(b"d"), 1)];
        let sizes: Vec<usize> = chunks(&blobs, 8).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![2, 1, 1]);
        assert!(chunks(&[], 8).is_empty());
    }
}
