//! One remote: its operator with timeouts and retries, and an entry's trip
//! to it and back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{ErrorKind as DalKind, Operator};
use rayon::prelude::*;

use super::known::Known;
use super::pack::{self, Index, Location, PackWriter};
use super::reapi;
use super::{Mode, RemoteConfig, RemoteError, TierStats, scrub};
use crate::digest::Digest;
use crate::progress::{Operation, Reporter, Tracked};
use crate::store::{Entry, EntryFiles, Incoming, Store};

/// How many packs download at once.
const PARALLEL_READS: usize = 4;

/// One configured remote, as a build uses it.
pub(super) struct Tier {
    pub(super) config: RemoteConfig,
    op: Option<Operator>,
    /// The connection of a REAPI remote, which is no OpenDAL service.
    reapi: Option<reapi::Session>,
    known: Known,
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
            op: None,
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

    fn operator(&mut self) -> Result<Operator, RemoteError> {
        if let Some(op) = &self.op {
            return Ok(op.clone());
        }
        // HTTP services need the process-wide transport; installing it
        // twice keeps the first.
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
        self.op = Some(op.clone());
        Ok(op)
    }

    /// The most one call may wait, retries and backoff included: a
    /// service that never answers costs this, and no more.
    fn deadline(&self) -> Duration {
        let tries = self.config.retries as u32 + 1;
        self.config.timeout * tries + Duration::from_secs(2) * tries
    }

    /// Runs one request on the runtime, bounded by the deadline, counting
    /// it and the time spent waiting.
    fn request<T>(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        what: &str,
        call: impl std::future::IntoFuture<Output = opendal::Result<T>>,
    ) -> Result<Option<T>, RemoteError> {
        let started = Instant::now();
        let deadline = self.deadline();
        let result = runtime.block_on(async { tokio::time::timeout(deadline, call).await });
        self.stats.requests += 1;
        self.stats.wait_ms += started.elapsed().as_millis() as u64;
        let secrets = self.config.url.secrets();
        match result {
            Ok(Ok(value)) => Ok(Some(value)),
            // A range past the end is a truncated object: the caller
            // finds less than it needs, as with a missing one.
            Ok(Err(e)) if matches!(e.kind(), DalKind::NotFound | DalKind::RangeNotSatisfied) => {
                Ok(None)
            }
            Ok(Err(e)) => Err(RemoteError::Service {
                remote: self.shown(),
                reason: scrub(&format!("{what}: {e}"), &secrets),
            }),
            Err(_) => Err(RemoteError::Service {
                remote: self.shown(),
                reason: format!("{what}: no answer within {} s", deadline.as_secs()),
            }),
        }
    }

    /// Reads byte ranges of several objects at once: each one's bytes, or
    /// `None` where the object is missing or shorter than the range.
    fn read_ranges(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        op: &Operator,
        ranges: &[(String, u64, u64)],
    ) -> Result<Vec<Option<Vec<u8>>>, RemoteError> {
        let started = Instant::now();
        let deadline = self.deadline();
        let results = runtime.block_on(async {
            let handles: Vec<_> = ranges
                .iter()
                .cloned()
                .map(|(path, start, end)| {
                    let op = op.clone();
                    tokio::spawn(async move {
                        let read = async { op.read_with(&path).range(start..end).await };
                        tokio::time::timeout(deadline, read).await
                    })
                })
                .collect();
            let mut out = Vec::with_capacity(handles.len());
            for handle in handles {
                out.push(handle.await);
            }
            out
        });
        self.stats.requests += ranges.len() as u64;
        self.stats.wait_ms += started.elapsed().as_millis() as u64;
        let secrets = self.config.url.secrets();
        results
            .into_iter()
            .map(|result| match result {
                Ok(Ok(Ok(buffer))) => Ok(Some(buffer.to_vec())),
                Ok(Ok(Err(e)))
                    if matches!(e.kind(), DalKind::NotFound | DalKind::RangeNotSatisfied) =>
                {
                    Ok(None)
                }
                Ok(Ok(Err(e))) => Err(RemoteError::Service {
                    remote: self.shown(),
                    reason: scrub(&format!("reading a pack: {e}"), &secrets),
                }),
                Ok(Err(_)) => Err(RemoteError::Service {
                    remote: self.shown(),
                    reason: format!("reading a pack: no answer within {} s", deadline.as_secs()),
                }),
                Err(e) => Err(RemoteError::Service {
                    remote: self.shown(),
                    reason: format!("reading a pack: {e}"),
                }),
            })
            .collect()
    }

    /// Looks `key` up and takes the entry into `store`: `None` when the
    /// remote does not have it.
    pub(super) fn fetch(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        store: &Store,
        key: &Digest,
    ) -> Result<Option<Entry>, RemoteError> {
        let shown = self.shown();
        let hex = key.to_hex();
        let reporter = self.reporter.clone();
        let tracked = Tracked::start(
            reporter.as_ref(),
            &Operation::Download {
                remote: &shown,
                key: &hex,
            },
            None,
        );
        if self.config.url.reapi().is_some() {
            let session = self.reapi.get_or_insert_with(Default::default);
            return session.fetch(runtime, &self.config, &mut self.stats, store, key);
        }
        let op = self.operator()?;
        let path = pack::index_path(key);
        let Some(bytes) = self.request(runtime, "reading an index", op.read(&path))? else {
            return Ok(None);
        };
        let bytes = bytes.to_vec();
        self.stats.bytes_down += bytes.len() as u64;
        let damaged = |reason: String| RemoteError::Damaged {
            remote: shown.clone(),
            key: key.to_hex(),
            reason,
        };
        let index: Index = serde_json::from_slice(&bytes)
            .map_err(|e| damaged(format!("its index does not parse: {e}")))?;
        if index.format != 1 {
            return Err(damaged(format!("index format {} is not 1", index.format)));
        }
        let incoming = Incoming::check(
            key,
            EntryFiles {
                entry: index.entry.into_bytes(),
                files: index.files.into_bytes(),
            },
        )
        .map_err(|e| damaged(e.to_string()))?;
        let located: HashMap<Digest, &Location> = index.blobs.iter().map(|l| (l.blob, l)).collect();
        // The blobs this store lacks, grouped by pack.
        let mut wanted: BTreeMap<Digest, Vec<(&Location, u64)>> = BTreeMap::new();
        let mut seen = HashSet::new();
        for (blob, size) in incoming.manifest().blobs() {
            if !seen.insert(blob) || store.has_blob(&blob) {
                continue;
            }
            let location = located
                .get(&blob)
                .ok_or_else(|| damaged(format!("its index does not locate blob {blob}")))?;
            wanted
                .entry(location.pack)
                .or_default()
                .push((location, size));
        }
        // Packs travel a few at a time (each up to `pack_size`), and each
        // is unpacked on every core while the next ones download.
        let packs: Vec<(Digest, Vec<(&Location, u64)>)> = wanted.into_iter().collect();
        tracked.total(
            packs
                .iter()
                .flat_map(|(_, blobs)| blobs.iter().map(|(l, _)| l.length))
                .sum(),
        );
        for batch in packs.chunks(PARALLEL_READS) {
            let ranges: Vec<(String, u64, u64)> = batch
                .iter()
                .map(|(pack, blobs)| {
                    let start = blobs.iter().map(|(l, _)| l.offset).min().unwrap_or(0);
                    let end = blobs
                        .iter()
                        .map(|(l, _)| l.offset.saturating_add(l.length))
                        .max()
                        .unwrap_or(0);
                    (pack::pack_path(pack), start, end)
                })
                .collect();
            let buffers = self.read_ranges(runtime, &op, &ranges)?;
            for (((pack, blobs), (_, start, end)), buffer) in batch.iter().zip(&ranges).zip(buffers)
            {
                let Some(buffer) = buffer else {
                    return Err(damaged(format!("pack {pack} is missing or truncated")));
                };
                self.stats.bytes_down += buffer.len() as u64;
                if buffer.len() as u64 != end - start {
                    return Err(damaged(format!("pack {pack} is truncated")));
                }
                blobs
                    .par_iter()
                    .map(|(l, size)| {
                        let from = (l.offset - start) as usize;
                        let frame = &buffer[from..from + l.length as usize];
                        let bytes = pack::decompress(frame, *size).ok_or_else(|| {
                            format!("blob {} in pack {pack} does not decompress", l.blob)
                        })?;
                        store
                            .add_blob(key, &l.blob, &bytes)
                            .map_err(|e| e.to_string())
                    })
                    .collect::<Result<Vec<()>, String>>()
                    .map_err(damaged)?;
                tracked.advance(blobs.iter().map(|(l, _)| l.length).sum());
            }
        }
        let entry = store.admit(incoming)?;
        self.known.record(&index.blobs);
        self.stats.hits += 1;
        Ok(Some(entry))
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
        let op = self.operator()?;
        let key = entry.meta().key;
        let index_path = pack::index_path(&key);
        if !replace
            && self
                .request(runtime, "looking an index up", op.stat(&index_path))?
                .is_some()
        {
            return Ok(Pushed::AlreadyThere);
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
                    let path = pack::pack_path(&location.pack);
                    let stat = op.stat(&path);
                    let present = self.request(runtime, "looking a pack up", stat)?.is_some();
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
            let size = bytes.len() as u64;
            self.request(
                runtime,
                "writing a pack",
                op.write(&pack::pack_path(&pack), bytes),
            )?;
            self.stats.bytes_up += size;
            tracked.advance(chunk.iter().map(|(_, size)| size).sum());
            self.known.record(&packed);
            locations.extend(packed);
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
        self.request(runtime, "writing an index", op.write(&index_path, bytes))?;
        self.stats.bytes_up += size;
        self.stats.uploads += 1;
        Ok(Pushed::Uploaded)
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
