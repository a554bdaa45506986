//! An entry's trip to the server: the SHA-256 of every blob, the Trees, one
//! FindMissingBlobs pass, the missing blobs in batches or ByteStream writes
//! (read from the store by one thread while the uploads of earlier ones are
//! in flight), and the ActionResult last, so a result that can be read
//! names blobs that were all there.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use rayon::prelude::*;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::client::Client;
use super::layout::{self, Sha};
use super::transfer::{Caps, fits_batch, jobs, upload_id};
use super::{Context, PARALLEL};
use crate::digest::Digest;
use crate::remote::RemoteError;
use crate::store::Entry;

/// Where an object's bytes come from.
#[derive(Clone)]
enum Source {
    /// A blob of the entry, read from the store when it is sent.
    Blob(Digest),
    /// Bytes made for the server (Trees, Directories, the entry's files).
    Bytes(Arc<Vec<u8>>),
}

/// Everything an entry is on the server.
pub struct Plan {
    /// The entry's Action digest.
    pub action: Sha,
    objects: Vec<(Sha, Source)>,
    result: re::ActionResult,
}

/// Works out what the entry is on the server: every blob's SHA-256 (each
/// read once, checked against its BLAKE3 digest), its Trees and its
/// ActionResult.
pub fn plan(entry: &Entry, caps: &Caps, ctx: &Context) -> Result<Plan, RemoteError> {
    let files = entry.files()?;
    let manifest = entry.manifest()?;
    let blobs: BTreeMap<Digest, u64> = manifest.blobs().collect();
    if let Some(max) = caps.max_blob
        && let Some((blob, size)) = blobs.iter().find(|(_, size)| **size > max)
    {
        return Err(ctx.refused(format!(
            "blob {blob} has {size} bytes, and the server takes at most {max}"
        )));
    }
    let shas: Vec<(Digest, Sha)> = blobs
        .par_iter()
        .map(|(blob, _)| Ok((*blob, Sha::of(&entry.blob(blob)?))))
        .collect::<Result<_, crate::CacheError>>()?;
    let sha_of: HashMap<Digest, Sha> = shas.into_iter().collect();
    let trees =
        layout::trees(&manifest, &sha_of, caps.absolute_links).map_err(|e| ctx.refused(e))?;
    let (entry_json, files_json) = (Sha::of(&files.entry), Sha::of(&files.files));
    let result = layout::action_result(&entry_json, &files_json, &trees);
    let [(action, action_bytes), command] = layout::action(&entry.meta().key);
    let mut objects: HashMap<Sha, Source> = sha_of
        .into_iter()
        .map(|(blob, sha)| (sha, Source::Blob(blob)))
        .collect();
    let mut made = |(sha, bytes): (Sha, Vec<u8>)| {
        objects
            .entry(sha)
            .or_insert_with(|| Source::Bytes(Arc::new(bytes)));
    };
    made((entry_json, files.entry));
    made((files_json, files.files));
    made(command);
    made((action.clone(), action_bytes));
    for tree in trees {
        made(tree.tree);
        tree.directories.into_iter().for_each(&mut made);
    }
    Ok(Plan {
        action,
        objects: objects.into_iter().collect(),
        result,
    })
}

/// Sends what the server lacks of `plan`, then its ActionResult.
pub fn upload(
    runtime: &tokio::runtime::Runtime,
    client: &Client,
    caps: &Caps,
    ctx: &Context,
    entry: &Entry,
    plan: Plan,
) -> Result<(), RemoteError> {
    let digests: Vec<Sha> = plan.objects.iter().map(|(sha, _)| sha.clone()).collect();
    let missing = runtime
        .block_on(client.find_missing(&digests))
        .map_err(|e| ctx.service("asking which blobs are missing", &e))?;
    let mut send: Vec<(Sha, Source)> = (plan.objects.into_iter())
        .filter(|(sha, _)| missing.contains(sha))
        .collect();
    send.sort_by_key(|(sha, _)| sha.size);
    let jobs = jobs(send, caps.batch_limit);
    // One thread reads the jobs' bytes from the store, a few jobs ahead of
    // the uploads.
    let (tx, mut rx) = mpsc::channel::<Result<Vec<(Sha, Vec<u8>)>, RemoteError>>(PARALLEL);
    let sent = std::thread::scope(|scope| {
        scope.spawn(move || {
            for job in jobs {
                let read: Result<Vec<(Sha, Vec<u8>)>, RemoteError> = job
                    .into_par_iter()
                    .map(|(sha, source)| match source {
                        Source::Blob(blob) => Ok((sha, entry.blob(&blob)?)),
                        Source::Bytes(bytes) => Ok((sha, bytes.to_vec())),
                    })
                    .collect();
                if tx.blocking_send(read).is_err() {
                    break;
                }
            }
        });
        runtime.block_on(async {
            let permits = Arc::new(Semaphore::new(PARALLEL));
            let mut tasks: JoinSet<Result<(), RemoteError>> = JoinSet::new();
            let mut outcome = Ok(());
            while let Some(job) = rx.recv().await {
                while let Some(done) = tasks.try_join_next() {
                    outcome = outcome.and(joined(done, ctx));
                }
                let job = match (job, &outcome) {
                    (Ok(job), Ok(())) => job,
                    (Err(e), Ok(())) => {
                        outcome = Err(e);
                        break;
                    }
                    (_, Err(_)) => break,
                };
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let (client, caps, ctx) = (client.clone(), caps.clone(), ctx.clone());
                tasks.spawn(async move {
                    let _permit = permit;
                    let sent = match job.as_slice() {
                        [(sha, bytes)] if !fits_batch(sha.size, caps.batch_limit) => {
                            client.write_stream(sha, bytes, &upload_id(sha)).await
                        }
                        _ => client.write_batch(job).await,
                    };
                    sent.map_err(|e| ctx.service("uploading blobs", &e))
                });
            }
            // The reader stops at the next job when this side has gone.
            drop(rx);
            while let Some(done) = tasks.join_next().await {
                outcome = outcome.and(joined(done, ctx));
            }
            outcome
        })
    });
    sent?;
    runtime
        .block_on(client.update_result(&plan.action, plan.result))
        .map_err(|e| ctx.service("storing the action result", &e))
}

/// A finished upload task's outcome.
fn joined(
    done: Result<Result<(), RemoteError>, tokio::task::JoinError>,
    ctx: &Context,
) -> Result<(), RemoteError> {
    done.map_err(|e| ctx.service("uploading", &e))?
}
