//! The calls cleave makes, each bounded and counted: capabilities, the
//! Action Cache, which blobs are missing, and blobs read and written in
//! batches (small ones) or through ByteStream (those a batch cannot hold).

use std::collections::HashSet;

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use bazel_remote_apis::google::bytestream::{ReadRequest, WriteRequest};
use tonic::{Code, Status};

use super::client::{Client, Counts, Failure};
use super::layout::Sha;

/// The SHA-256 digest function, as requests name it.
const SHA256: i32 = re::digest_function::Value::Sha256 as i32;

/// The most a batch may hold whatever the server allows, which bounds the
/// memory of the transfers in flight.
pub const MAX_BATCH: usize = 16 << 20;

/// What a request costs besides a blob's bytes (its digest and framing).
pub const PER_BLOB: usize = 160;

/// The bytes of one ByteStream write message.
const CHUNK: usize = 1 << 20;

/// How many digests one FindMissingBlobs asks about.
const FIND_CHUNK: usize = 10_000;

/// What cleave needs to know of a server.
#[derive(Debug, Clone)]
pub struct Caps {
    /// The most bytes of blobs one batch request may carry.
    pub batch_limit: usize,
    /// Whether entries may be stored.
    pub update_enabled: bool,
    /// Whether Trees may hold symlinks with absolute targets.
    pub absolute_links: bool,
    /// The largest blob the server takes, when it says.
    pub max_blob: Option<u64>,
}

/// One call of a generated client, as a future that owns its client (the
/// generated methods borrow theirs).
macro_rules! rpc {
    ($client:expr, $method:ident, $request:expr) => {{
        let mut client = $client.clone();
        let request = $request;
        async move { client.$method(request).await }
    }};
}

/// A protocol violation, as a failure.
fn garbage(what: String) -> Failure {
    Failure::Status(Status::new(Code::Internal, what))
}

impl Client {
    fn resource(&self, rest: &str) -> String {
        if self.instance.is_empty() {
            rest.to_string()
        } else {
            format!("{}/{rest}", self.instance)
        }
    }

    /// The server's capabilities, checked: SHA-256 must be among its digest
    /// functions (the error says which it offers instead).
    pub async fn capabilities(&self) -> Result<Result<Caps, String>, Failure> {
        let request = re::GetCapabilitiesRequest {
            instance_name: self.instance.clone(),
        };
        let caps = self
            .call(|| rpc!(self.capabilities, get_capabilities, request.clone()))
            .await?;
        let Some(cache) = caps.cache_capabilities else {
            return Ok(Err("the server offers no remote cache".into()));
        };
        if !cache.digest_functions.contains(&SHA256) {
            let offered: Vec<String> = (cache.digest_functions.iter())
                .map(|f| {
                    re::digest_function::Value::try_from(*f)
                        .map_or_else(|_| f.to_string(), |v| v.as_str_name().to_string())
                })
                .collect();
            return Ok(Err(format!(
                "the server offers no SHA-256 digests (it offers: {}); cleave needs SHA-256",
                if offered.is_empty() {
                    "none".to_string()
                } else {
                    offered.join(", ")
                }
            )));
        }
        let limit = match usize::try_from(cache.max_batch_total_size_bytes) {
            // No limit said: gRPC's default message size, less framing.
            Ok(0) | Err(_) => (4 << 20) - (64 << 10),
            Ok(limit) => limit.min(MAX_BATCH),
        };
        let allowed = re::symlink_absolute_path_strategy::Value::Allowed as i32;
        Ok(Ok(Caps {
            batch_limit: limit,
            update_enabled: cache
                .action_cache_update_capabilities
                .is_none_or(|c| c.update_enabled),
            absolute_links: cache.symlink_absolute_path_strategy == allowed,
            max_blob: u64::try_from(cache.max_cas_blob_size_bytes)
                .ok()
                .filter(|m| *m > 0),
        }))
    }

    /// The result stored under `action`, or `None`.
    pub async fn get_result(&self, action: &Sha) -> Result<Option<re::ActionResult>, Failure> {
        let request = re::GetActionResultRequest {
            instance_name: self.instance.clone(),
            action_digest: Some(action.to_proto()),
            digest_function: SHA256,
            ..Default::default()
        };
        match self
            .call(|| rpc!(self.ac, get_action_result, request.clone()))
            .await
        {
            Ok(result) => Ok(Some(result)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores `result` under `action`.
    pub async fn update_result(
        &self,
        action: &Sha,
        result: re::ActionResult,
    ) -> Result<(), Failure> {
        let request = re::UpdateActionResultRequest {
            instance_name: self.instance.clone(),
            action_digest: Some(action.to_proto()),
            action_result: Some(result),
            digest_function: SHA256,
            ..Default::default()
        };
        self.call(|| rpc!(self.ac, update_action_result, request.clone()))
            .await
            .map(|_| ())
    }

    /// Which of `digests` the server lacks.
    pub async fn find_missing(&self, digests: &[Sha]) -> Result<HashSet<Sha>, Failure> {
        let mut missing = HashSet::new();
        for chunk in digests.chunks(FIND_CHUNK) {
            let request = re::FindMissingBlobsRequest {
                instance_name: self.instance.clone(),
                blob_digests: chunk.iter().map(Sha::to_proto).collect(),
                digest_function: SHA256,
            };
            let asked: HashSet<&Sha> = chunk.iter().collect();
            let answer = self
                .call(|| rpc!(self.cas, find_missing_blobs, request.clone()))
                .await?;
            for digest in answer.missing_blob_digests {
                let digest = Sha::checked(Some(&digest), u64::MAX)
                    .map_err(|e| garbage(format!("FindMissingBlobs: {e}")))?;
                if asked.contains(&digest) {
                    missing.insert(digest);
                }
            }
        }
        Ok(missing)
    }

    /// Reads blobs that fit one batch: each one's bytes, or `None` where
    /// the server does not have it. Bytes are not checked here beyond their
    /// count.
    pub async fn read_batch(&self, digests: &[Sha]) -> Result<Vec<Option<Vec<u8>>>, Failure> {
        let request = re::BatchReadBlobsRequest {
            instance_name: self.instance.clone(),
            digests: digests.iter().map(Sha::to_proto).collect(),
            digest_function: SHA256,
            ..Default::default()
        };
        let answer = self
            .call(|| rpc!(self.cas, batch_read_blobs, request.clone()))
            .await?;
        let mut by_hash: std::collections::HashMap<String, Option<Vec<u8>>> = Default::default();
        for response in answer.responses {
            let code = response.status.as_ref().map_or(0, |s| s.code);
            let digest = response.digest.map(|d| d.hash).unwrap_or_default();
            let bytes = match Code::from_i32(code) {
                Code::Ok => Some(response.data),
                Code::NotFound => None,
                other => {
                    let message = response.status.map(|s| s.message).unwrap_or_default();
                    return Err(Failure::Status(Status::new(other, message)));
                }
            };
            by_hash.insert(digest, bytes);
        }
        let mut out = Vec::with_capacity(digests.len());
        for digest in digests {
            let bytes = by_hash
                .remove(&digest.hash)
                .ok_or_else(|| garbage(format!("BatchReadBlobs left out blob {digest}")))?;
            if let Some(bytes) = &bytes {
                Counts::add(&self.counts.bytes_down, bytes.len() as u64);
                if bytes.len() as u64 != digest.size {
                    return Err(garbage(format!(
                        "BatchReadBlobs gave {} bytes for blob {digest}",
                        bytes.len()
                    )));
                }
            }
            out.push(bytes);
        }
        Ok(out)
    }

    /// Reads one blob through ByteStream: its bytes, or `None` where the
    /// server does not have it. Each message must come within the timeout,
    /// and no more bytes than the digest's size are taken.
    pub async fn read_stream(&self, digest: &Sha) -> Result<Option<Vec<u8>>, Failure> {
        let request = ReadRequest {
            resource_name: self.resource(&format!("blobs/{}/{}", digest.hash, digest.size)),
            read_offset: 0,
            read_limit: 0,
        };
        let mut stream = match self
            .call(|| rpc!(self.bytestream, read, request.clone()))
            .await
        {
            Ok(stream) => stream,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut bytes = Vec::with_capacity(digest.size.min(MAX_BATCH as u64) as usize);
        // A server that drips bytes still ends: the whole read has the
        // budget of a write of its size.
        let ends = tokio::time::Instant::now() + self.budget(digest.size);
        loop {
            let next = tokio::time::timeout(self.timeout, stream.message());
            let message = match tokio::time::timeout_at(ends, next)
                .await
                .unwrap_or(Ok(Ok(None)))
            {
                Ok(Ok(Some(message))) => message,
                Ok(Ok(None)) => break,
                Ok(Err(status)) if status.code() == Code::NotFound => return Ok(None),
                Ok(Err(status)) => return Err(Failure::Status(status)),
                Err(_) => return Err(Failure::Timeout),
            };
            Counts::add(&self.counts.bytes_down, message.data.len() as u64);
            if (bytes.len() + message.data.len()) as u64 > digest.size {
                return Err(garbage(format!(
                    "ByteStream gave more than {} bytes for blob {digest}",
                    digest.size
                )));
            }
            bytes.extend_from_slice(&message.data);
        }
        if tokio::time::Instant::now() >= ends {
            return Err(Failure::Timeout);
        }
        if bytes.len() as u64 != digest.size {
            return Err(garbage(format!(
                "ByteStream gave {} bytes for blob {digest}",
                bytes.len()
            )));
        }
        Ok(Some(bytes))
    }

    /// Writes blobs that fit one batch.
    pub async fn write_batch(&self, blobs: Vec<(Sha, Vec<u8>)>) -> Result<(), Failure> {
        let sent: usize = blobs.iter().map(|(_, b)| b.len()).sum();
        let request = re::BatchUpdateBlobsRequest {
            instance_name: self.instance.clone(),
            requests: blobs
                .into_iter()
                .map(|(digest, data)| re::batch_update_blobs_request::Request {
                    digest: Some(digest.to_proto()),
                    data,
                    compressor: 0,
                })
                .collect(),
            digest_function: SHA256,
        };
        let answer = self
            .call(|| rpc!(self.cas, batch_update_blobs, request.clone()))
            .await?;
        for response in answer.responses {
            if let Some(status) = response.status
                && status.code != 0
            {
                return Err(Failure::Status(Status::new(
                    Code::from_i32(status.code),
                    status.message,
                )));
            }
        }
        Counts::add(&self.counts.bytes_up, sent as u64);
        Ok(())
    }

    /// How long a transfer of `size` bytes may take: the timeout once per
    /// 8 MiB, and once more. A long transfer is not cut short, a stalled
    /// one still ends.
    fn budget(&self, size: u64) -> std::time::Duration {
        let chunks = u32::try_from(size / (8 << 20)).unwrap_or(u32::MAX - 1);
        self.timeout.saturating_mul(chunks + 1)
    }

    /// Writes one blob through ByteStream, in 1 MiB messages, within the
    /// budget of its size.
    pub async fn write_stream(
        &self,
        digest: &Sha,
        bytes: &[u8],
        upload: &str,
    ) -> Result<(), Failure> {
        let resource = self.resource(&format!(
            "uploads/{upload}/blobs/{}/{}",
            digest.hash, digest.size
        ));
        let messages = || {
            let mut messages = Vec::new();
            let mut offset = 0;
            loop {
                let end = (offset + CHUNK).min(bytes.len());
                messages.push(WriteRequest {
                    resource_name: if offset == 0 {
                        resource.clone()
                    } else {
                        String::new()
                    },
                    write_offset: offset as i64,
                    finish_write: end == bytes.len(),
                    data: bytes[offset..end].to_vec(),
                });
                if end == bytes.len() {
                    break messages;
                }
                offset = end;
            }
        };
        let long = Client {
            timeout: self.budget(digest.size),
            ..self.clone()
        };
        let answer = long
            .call(|| rpc!(self.bytestream, write, tokio_stream::iter(messages())))
            .await?;
        if answer.committed_size != digest.size as i64 && answer.committed_size != -1 {
            return Err(garbage(format!(
                "ByteStream committed {} bytes of blob {digest}",
                answer.committed_size
            )));
        }
        Counts::add(&self.counts.bytes_up, bytes.len() as u64);
        Ok(())
    }
}

/// The largest a blob may be to travel in a batch of `limit` bytes.
pub fn fits_batch(size: u64, limit: usize) -> bool {
    size.saturating_add(PER_BLOB as u64) <= limit as u64
}

/// Groups blobs (in the order given) into jobs: batches of at most
/// `limit` bytes with their framing, then each blob too large for any
/// batch alone (for ByteStream).
pub fn jobs<T>(blobs: Vec<(Sha, T)>, limit: usize) -> Vec<Vec<(Sha, T)>> {
    let (mut jobs, mut large) = (Vec::new(), Vec::new());
    let mut current: Vec<(Sha, T)> = Vec::new();
    let mut size = 0u64;
    for (digest, value) in blobs {
        if !fits_batch(digest.size, limit) {
            large.push(vec![(digest, value)]);
            continue;
        }
        let cost = digest.size + PER_BLOB as u64;
        if !current.is_empty() && size + cost > limit as u64 {
            jobs.push(std::mem::take(&mut current));
            size = 0;
        }
        size += cost;
        current.push((digest, value));
    }
    if !current.is_empty() {
        jobs.push(current);
    }
    jobs.extend(large);
    jobs
}

/// A name for one upload, unique enough: the protocol asks for a UUID.
pub fn upload_id(digest: &Sha) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let seed = format!(
        "{}/{}/{:?}/{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now(),
        digest
    );
    let h = crate::digest::Digest::of(seed.as_bytes()).to_hex();
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(size: u64) -> Sha {
        Sha {
            hash: format!("{size:064x}"),
            size,
        }
    }

    #[test]
    fn batches_stay_under_the_limit_and_large_blobs_go_apart() {
        let blobs: Vec<(Sha, ())> = [100, 200, 700, 5000, 50, 600]
            .into_iter()
            .map(|s| (sha(s), ()))
            .collect();
        let jobs = jobs(blobs, 1000);
        let sizes: Vec<Vec<u64>> = jobs
            .iter()
            .map(|b| b.iter().map(|(d, _)| d.size).collect())
            .collect();
        assert_eq!(
            sizes,
            vec![vec![100, 200], vec![700], vec![50, 600], vec![5000]]
        );
        for batch in &jobs[..3] {
            let total: u64 = batch.iter().map(|(d, _)| d.size + PER_BLOB as u64).sum();
            assert!(total <= 1000);
        }
    }

    #[test]
    fn upload_ids_look_like_uuids_and_differ() {
        let (a, b) = (upload_id(&sha(1)), upload_id(&sha(1)));
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
    }
}
