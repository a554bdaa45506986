//! An entry's trip from the server: its ActionResult, the two entry files,
//! the Trees of the trees whose blobs this store lacks, then those blobs,
//! a bounded number of requests in flight, each batch written into the
//! store (and checked against its BLAKE3 digest) while the next ones
//! download.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use prost::Message;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::client::{Client, Failure};
use super::layout::{self, Sha};
use super::transfer::{Caps, fits_batch, jobs};
use super::{Context, PARALLEL};
use crate::digest::Digest;
use crate::manifest::Item;
use crate::remote::RemoteError;
use crate::store::{EntryFiles, Incoming, Store};

/// What a lookup found.
pub enum Outcome {
    /// The server has no result for the key, or some blob of it was
    /// collected: the entry is built here.
    Miss,
    /// Every blob is in the store; the entry is ready to admit.
    Found(Box<Incoming>),
}

/// Reads `digests` whatever their size, in as few requests as the batch
/// limit allows: batches for those that fit, a ByteStream read for each
/// other. `None` where the server lacks one.
async fn read_any(
    client: &Client,
    caps: &Caps,
    digests: &[Sha],
) -> Result<Vec<Option<Vec<u8>>>, Failure> {
    let mut out = vec![None; digests.len()];
    let numbered = digests.iter().cloned().zip(0..).collect();
    for job in jobs(numbered, caps.batch_limit) {
        let asked: Vec<Sha> = job.iter().map(|(sha, _)| sha.clone()).collect();
        let read = match asked.as_slice() {
            [one] if !fits_batch(one.size, caps.batch_limit) => {
                vec![client.read_stream(one).await?]
            }
            _ => client.read_batch(&asked).await?,
        };
        for ((_, at), bytes) in job.into_iter().zip(read) {
            out[at] = bytes;
        }
    }
    Ok(out)
}

/// Looks the entry `key` up and downloads what `store` lacks of it.
pub async fn fetch(
    client: &Client,
    caps: &Caps,
    ctx: &Context,
    store: &Store,
    key: &Digest,
) -> Result<Outcome, RemoteError> {
    let [(action, _), _] = layout::action(key);
    let Some(result) = client
        .get_result(&action)
        .await
        .map_err(|e| ctx.service("reading the action cache", &e))?
    else {
        return Ok(Outcome::Miss);
    };
    let found = layout::found(&result).map_err(|e| ctx.damaged(e))?;
    // The entry's files and every Tree at once: a lookup is one request
    // for them, and one or a few for the blobs.
    let mut trees: Vec<(&String, &Sha)> = found.trees.iter().collect();
    trees.sort();
    let asked: Vec<Sha> = [found.entry_json.clone(), found.files_json.clone()]
        .into_iter()
        .chain(trees.iter().map(|(_, sha)| (*sha).clone()))
        .collect();
    let claimed = asked
        .iter()
        .fold(0u64, |sum, sha| sum.saturating_add(sha.size));
    if claimed > layout::MAX_LISTINGS {
        return Err(ctx.damaged(format!(
            "its entry files and Trees claim {claimed} bytes, more than the {} allowed",
            layout::MAX_LISTINGS
        )));
    }
    let read = read_any(client, caps, &asked)
        .await
        .map_err(|e| ctx.service("reading the entry", &e))?;
    let read: HashMap<&Sha, Vec<u8>> =
        match asked.iter().zip(read).map(|(d, b)| Some((d, b?))).collect() {
            Some(read) => read,
            None => return Ok(Outcome::Miss),
        };
    for (digest, bytes) in &read {
        if Sha::of(bytes) != **digest {
            return Err(ctx.damaged(format!("blob {digest} does not match its digest")));
        }
    }
    let (Some(entry_json), Some(files_json)) = (
        read.get(&found.entry_json).cloned(),
        read.get(&found.files_json).cloned(),
    ) else {
        return Ok(Outcome::Miss);
    };
    let incoming = Incoming::check(
        key,
        EntryFiles {
            entry: entry_json,
            files: files_json,
        },
    )
    .map_err(|e| ctx.damaged(e.to_string()))?;

    // The blobs this store lacks, by tree: a path of each, and its size.
    let mut seen = HashSet::new();
    let mut wanted: BTreeMap<&str, Vec<(&Path, Digest, u64)>> = BTreeMap::new();
    for (tree, items) in &incoming.manifest().trees {
        for item in items {
            if let Item::File {
                path, blob, size, ..
            } = item
                && !store.has_blob(blob)
                && seen.insert(*blob)
            {
                wanted.entry(tree).or_default().push((path, *blob, *size));
            }
        }
    }
    let mut blobs: Vec<(Sha, Digest)> = Vec::new();
    for (tree, files) in &wanted {
        let digest = found
            .trees
            .get(*tree)
            .ok_or_else(|| ctx.damaged(format!("the result has no Tree for `{tree}`")))?;
        let bytes = read.get(digest).map_or(&[][..], Vec::as_slice);
        let message = re::Tree::decode(bytes)
            .map_err(|e| ctx.damaged(format!("Tree {digest} does not parse: {e}")))?;
        let located = layout::locate(&message, files.iter().map(|(p, _, s)| (*p, *s)))
            .map_err(|e| ctx.damaged(format!("tree `{tree}`: {e}")))?;
        for (path, blob, _) in files {
            blobs.push((located[path].clone(), *blob));
        }
    }
    if download(client, caps, ctx, store, key, blobs).await? {
        Ok(Outcome::Found(Box::new(incoming)))
    } else {
        Ok(Outcome::Miss)
    }
}

/// What one download brought.
enum Got {
    /// Everything, written into the store.
    Stored,
    /// The server lacks a blob.
    Missing,
}

/// Downloads `blobs` into the store, a few requests at a time; false when
/// the server lacks one of them.
async fn download(
    client: &Client,
    caps: &Caps,
    ctx: &Context,
    store: &Store,
    key: &Digest,
    mut blobs: Vec<(Sha, Digest)>,
) -> Result<bool, RemoteError> {
    // Small blobs first, so that batches fill evenly.
    blobs.sort_by_key(|(sha, _)| sha.size);
    let jobs = jobs(blobs, caps.batch_limit);
    let permits = Arc::new(Semaphore::new(PARALLEL));
    let mut tasks: JoinSet<Result<Got, RemoteError>> = JoinSet::new();
    let mut outcome = Ok(true);
    for job in jobs {
        // A failure stops the queue; the tasks in flight are dropped.
        while let Some(done) = tasks.try_join_next() {
            outcome = merge(outcome, done, ctx);
        }
        if !matches!(outcome, Ok(true)) {
            break;
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let (client, caps, ctx, store, key) = (
            client.clone(),
            caps.clone(),
            ctx.clone(),
            store.clone(),
            *key,
        );
        tasks.spawn(async move {
            let _permit = permit;
            let digests: Vec<Sha> = job.iter().map(|(sha, _)| sha.clone()).collect();
            let read = if job.len() == 1 && !fits_batch(digests[0].size, caps.batch_limit) {
                client.read_stream(&digests[0]).await.map(|b| vec![b])
            } else {
                client.read_batch(&digests).await
            };
            let read = read.map_err(|e| ctx.service("reading blobs", &e))?;
            let mut bytes = Vec::with_capacity(read.len());
            for got in read {
                match got {
                    Some(b) => bytes.push(b),
                    None => return Ok(Got::Missing),
                }
            }
            let written = tokio::task::spawn_blocking(move || {
                for ((_, blob), bytes) in job.iter().zip(bytes) {
                    store.add_blob_from(&key, blob, bytes.len() as u64, &mut bytes.as_slice())?;
                }
                Ok::<(), crate::CacheError>(())
            })
            .await
            .map_err(|e| ctx.service("storing blobs", &e))?;
            written.map_err(|e| match e.kind() {
                crate::ErrorKind::Damaged => ctx.damaged(e.to_string()),
                _ => RemoteError::Store(e),
            })?;
            Ok(Got::Stored)
        });
    }
    while let Some(done) = tasks.join_next().await {
        outcome = merge(outcome, done, ctx);
    }
    outcome
}

/// Folds one finished download into the outcome so far: the first error
/// wins, then a missing blob.
fn merge(
    so_far: Result<bool, RemoteError>,
    done: Result<Result<Got, RemoteError>, tokio::task::JoinError>,
    ctx: &Context,
) -> Result<bool, RemoteError> {
    let done = match done {
        Ok(done) => done,
        Err(e) => Err(ctx.service("downloading", &e)),
    };
    match (so_far, done) {
        (Err(e), _) => Err(e),
        (_, Err(e)) => Err(e),
        (Ok(false), _) | (_, Ok(Got::Missing)) => Ok(false),
        (Ok(true), Ok(Got::Stored)) => Ok(true),
    }
}
