//! An entry's trip from a remote into the local store: its index read up
//! to [`limits::INDEX`] bytes and checked, then the packs it needs read as
//! streams, a few at a time, each frame decompressed straight into the
//! store (hashed on the way, never held whole).
//!
//! What goes wrong is told apart, because each costs something else: the
//! remote failing to deliver (down, stalled past the deadline) is the
//! service's failure and the remote is not asked again; bytes that are not
//! what the index and manifest promise are damage of that entry; a failure
//! to write into the local store (a full disk) is this machine's, and says
//! so with the system's error.

use std::collections::HashSet;
use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use opendal::ErrorKind as DalKind;

use super::RemoteError;
use super::backend::{Backend, Failure};
use super::pack::{self, Index, PackRead};
use super::tier::Tier;
use crate::digest::Digest;
use crate::error::{CacheError, ErrorKind};
use crate::foreign::{limits, printable};
use crate::progress::{Operation, Tracked};
use crate::store::{Entry, EntryFiles, Incoming, Store};

/// How many packs download at once.
const PARALLEL_READS: usize = 4;

/// One pack read done: its place in the list, the bytes it read, how it
/// went.
type PackDone = (usize, u64, Result<(), PackFailure>);

/// Why a pack's blobs did not all arrive.
enum PackFailure {
    /// The remote failed to deliver.
    Service(String),
    /// The pack is not what the index says.
    Damaged(String),
    /// The local store could not take a blob.
    Local(CacheError),
}

impl Tier {
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
        let backend = self.backend(runtime)?;
        let read = backend.read(pack::index_path(key), limits::INDEX);
        let bytes = self
            .request(runtime, "reading an index", read)
            .map_err(|f| self.failed(key, f))?;
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        self.stats.bytes_down += bytes.len() as u64;
        let damaged = |reason: String| RemoteError::Damaged {
            remote: shown.clone(),
            key: key.to_hex(),
            reason: printable(&reason).into_owned(),
        };
        let index = Index::from_json(&bytes).map_err(damaged)?;
        drop(bytes);
        let Index {
            entry,
            files,
            blobs: locations,
            ..
        } = index;
        let incoming = Incoming::check(
            key,
            EntryFiles {
                entry: entry.into_bytes(),
                files: files.into_bytes(),
            },
        )
        .map_err(|e| damaged(e.to_string()))?;
        let mut seen = HashSet::new();
        let wanted: Vec<(Digest, u64)> = incoming
            .manifest()
            .blobs()
            .filter(|(blob, _)| seen.insert(*blob) && !store.has_blob(blob))
            .collect();
        let reads = pack::plan(&locations, wanted).map_err(damaged)?;
        tracked.total(reads.iter().map(|r| r.end - r.start).sum());
        match self.take_packs(&backend, store, key, &reads, &tracked) {
            Ok(()) => {}
            Err(PackFailure::Service(reason)) => return Err(self.service(reason)),
            Err(PackFailure::Damaged(reason)) => return Err(damaged(reason)),
            Err(PackFailure::Local(e)) => return Err(RemoteError::Store(e)),
        }
        let fetched = reads
            .iter()
            .flat_map(|read| read.frames.iter().map(|(location, _)| location.blob))
            .collect();
        let entry = store.admit_fetched(incoming, &fetched)?;
        self.known.record(&locations);
        self.stats.hits += 1;
        Ok(Some(entry))
    }

    /// Runs `reads`, [`PARALLEL_READS`] at a time on threads of their own,
    /// each bounded by the deadline of one request. The first failure
    /// stops the reads not yet started.
    fn take_packs(
        &mut self,
        backend: &Backend,
        store: &Store,
        key: &Digest,
        reads: &[PackRead],
        tracked: &Tracked<'_>,
    ) -> Result<(), PackFailure> {
        if reads.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let deadline = self.deadline();
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let results: Mutex<Vec<PackDone>> = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..PARALLEL_READS.min(reads.len()) {
                scope.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(read) = reads.get(i) else {
                            break;
                        };
                        let (bytes, result) = take_pack(backend, store, key, read, deadline);
                        tracked.advance(bytes);
                        if result.is_err() {
                            stop.store(true, Ordering::Relaxed);
                        }
                        if let Ok(mut results) = results.lock() {
                            results.push((i, bytes, result));
                        }
                    }
                });
            }
        });
        let mut results = results.into_inner().unwrap_or_default();
        results.sort_by_key(|(i, _, _)| *i);
        self.stats.requests += results.len() as u64;
        self.stats.wait_ms += started.elapsed().as_millis() as u64;
        let mut first = None;
        for (_, bytes, result) in results {
            self.stats.bytes_down += bytes;
            if let Err(e) = result {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// A pack's stream, counted and bounded: a read past the deadline fails,
/// and the first failure of the remote is kept, so that what follows from
/// it (a frame that does not decompress) is blamed on the transfer.
struct Counted {
    inner: Box<dyn Read + Send>,
    read: u64,
    deadline: Instant,
    failed: Option<std::io::Error>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if Instant::now() > self.deadline {
            let late = std::io::Error::new(std::io::ErrorKind::TimedOut, "past the deadline");
            self.failed.get_or_insert(late);
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        match self.inner.read(buf) {
            Ok(n) => {
                self.read += n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let kind = e.kind();
                self.failed.get_or_insert(e);
                Err(kind.into())
            }
        }
    }
}

/// Reads one range of a pack and takes each of its frames into the store:
/// the bytes read, and how it went.
fn take_pack(
    backend: &Backend,
    store: &Store,
    key: &Digest,
    read: &PackRead,
    timeout: Duration,
) -> (u64, Result<(), PackFailure>) {
    let pack = read.pack;
    let missing = || PackFailure::Damaged(format!("pack {pack} is missing or truncated"));
    let stream = match backend.range(&pack::pack_path(&pack), read.start, read.end) {
        Ok(Some(stream)) => stream,
        Ok(None) => return (0, Err(missing())),
        Err(Failure::Service(reason)) => {
            return (
                0,
                Err(PackFailure::Service(format!("reading a pack: {reason}"))),
            );
        }
        Err(Failure::TooLarge(reason)) => return (0, Err(PackFailure::Damaged(reason))),
    };
    let mut source = Counted {
        inner: stream,
        read: 0,
        deadline: Instant::now() + timeout,
        failed: None,
    };
    let result = take_frames(&mut source, store, key, read);
    let result = match source.failed.take() {
        // The transfer's failure explains whatever followed from it.
        Some(e) if e.kind() == std::io::ErrorKind::NotFound || is_range_error(&e) => Err(missing()),
        Some(e) if e.kind() == std::io::ErrorKind::TimedOut => Err(PackFailure::Service(format!(
            "reading a pack: not done within {} s",
            timeout.as_secs()
        ))),
        // A service that answers a range past an object's end with what
        // there is reports a short read; the object's size tells a pack
        // that is too short (damage) from a transfer cut short.
        Some(_) if is_short(backend, &pack::pack_path(&pack), read.end) => Err(missing()),
        Some(e) => Err(PackFailure::Service(format!("reading a pack: {e}"))),
        None => result,
    };
    (source.read, result)
}

/// Whether the object at `path` ends before `end`.
fn is_short(backend: &Backend, path: &str, end: u64) -> bool {
    matches!(backend.size(path), Ok(Some(size)) if size < end)
}

/// A range past an object's end, as OpenDAL reports it through a stream.
fn is_range_error(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<opendal::Error>())
        .is_some_and(|e| e.kind() == DalKind::RangeNotSatisfied)
}

/// Takes each frame of `read` from `source` into the store.
fn take_frames(
    source: &mut Counted,
    store: &Store,
    key: &Digest,
    read: &PackRead,
) -> Result<(), PackFailure> {
    let pack = read.pack;
    let truncated = || PackFailure::Damaged(format!("pack {pack} is truncated"));
    let mut at = read.start;
    for (location, size) in &read.frames {
        // Frames of other entries in between are passed over.
        let gap = location.offset - at;
        if std::io::copy(&mut (&mut *source).take(gap), &mut std::io::sink())
            .map_err(|_| truncated())?
            != gap
        {
            return Err(truncated());
        }
        let frame = (&mut *source).take(location.length);
        let added = match zstd::stream::read::Decoder::new(frame) {
            Ok(mut decoder) => {
                let added = store.add_blob_from(key, &location.blob, *size, &mut decoder);
                // What the decoder left of the frame is passed over too.
                let mut rest = decoder.finish().into_inner();
                let _ = std::io::copy(&mut rest, &mut std::io::sink());
                added
            }
            Err(e) => Err(CacheError::Damaged {
                key: key.to_hex(),
                reason: format!("blob {}: {e}", location.blob),
            }),
        };
        at = location.offset + location.length;
        if read.start + source.read < at {
            return Err(truncated());
        }
        match added {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Damaged => {
                return Err(PackFailure::Damaged(format!("in pack {pack}: {e}")));
            }
            Err(e) => return Err(PackFailure::Local(e)),
        }
    }
    Ok(())
}
