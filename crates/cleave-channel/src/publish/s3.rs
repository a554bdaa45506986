//! Publishing into a channel below a prefix of an S3-compatible bucket.
//!
//! Each package is uploaded whole under `<subdir>/<file>` with a
//! conditional write (`If-None-Match: *`), so two publishers of the same
//! name cannot overwrite each other: the second finds the first's file, and
//! it is the same package or an error (`--force` writes over it). Then
//! rattler_index indexes the subdir with its precondition checks on:
//! `repodata.json` is read with its ETag and written back only if it still
//! has that ETag (`If-Match`, or `If-None-Match: *` for the first one), and
//! a publisher that lost the race reads it again and retries, keeping every
//! record the winner wrote. S3 has offered these conditional writes since
//! 2024 (MinIO, moto and R2 too), so no lock object is needed, and there is
//! no lock to be left behind by a killed publisher. rattler_index keeps
//! records by file name, which is right here: a published name keeps its
//! contents unless `--force` replaces it, and then the subdir is indexed
//! from scratch. Last, `repodata.json` is read back and must list every
//! package published: a channel is never reported published when it is
//! not.

use std::collections::BTreeSet;

use cleave_cache::remote::RemoteUrl;
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{ErrorKind, Operator};
use rattler_conda_types::Subdir;
use rattler_digest::Sha256;
use rattler_index::{PackageRevisionAssignment, PreconditionChecks};
use tokio::io::AsyncReadExt;

use super::Published;
use crate::error::ChannelError;
use crate::index::SubdirIndexed;
use crate::local::{Overwrite, Placed};
use crate::package::PackageFile;

/// The longest an S3 request may take.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);
/// The part size of an upload.
const CHUNK: usize = 8 << 20;
/// The most of a `repodata.json` read back.
const MAX_REPODATA_BYTES: u64 = 1 << 30;

/// Uploads `files` to the channel at `url` and indexes their subdirs.
pub fn publish(
    url: &RemoteUrl,
    files: &[PackageFile],
    overwrite: Overwrite,
) -> Result<Published, ChannelError> {
    let shown = url.to_string();
    let (op, secrets) = url.service().map_err(|e| ChannelError::Remote {
        target: shown.clone(),
        reason: e.to_string(),
    })?;
    // A bucket that stops answering costs a bounded wait, and a passing
    // failure a retry.
    let op = op
        .layer(
            TimeoutLayer::new()
                .with_timeout(TIMEOUT)
                .with_io_timeout(TIMEOUT),
        )
        .layer(RetryLayer::new().with_max_times(3));
    let failed = |what: &str, reason: String| ChannelError::Remote {
        target: shown.clone(),
        reason: secrets
            .iter()
            .fold(format!("{what}: {reason}"), |text, secret| {
                text.replace(secret, "***")
            }),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ChannelError::io("starting the async runtime"))?;
    runtime.block_on(async {
        rattler_index::ensure_channel_initialized(&op)
            .await
            .map_err(|e| failed("creating noarch/repodata.json", format!("{e:#}")))?;
        let mut packages = Vec::new();
        for file in files {
            let key = format!("{}/{}", file.subdir, file.file_name);
            let placed = upload(&op, file, &key, overwrite)
                .await
                .map_err(|e| match e {
                    Upload::Exists => ChannelError::Exists {
                        target: shown.clone(),
                        file: key.clone(),
                    },
                    Upload::Failed(reason) => failed(&format!("uploading {key}"), reason),
                })?;
            packages.push((key, placed));
        }
        let replaced = packages.iter().any(|(_, p)| *p == Placed::Replaced);
        let subdirs: BTreeSet<&str> = files.iter().map(|f| f.subdir.as_str()).collect();
        let mut indexed = Vec::new();
        for subdir in subdirs {
            let platform: Subdir = subdir
                .parse()
                .map_err(|_| failed("indexing", format!("`{subdir}` is not a subdir")))?;
            rattler_index::index(
                Some(platform),
                op.clone(),
                None,
                false,
                false,
                Vec::new(),
                PackageRevisionAssignment::default(),
                replaced,
                4,
                None,
                PreconditionChecks::Enabled,
            )
            .await
            .map_err(|e| failed(&format!("indexing {subdir}"), format!("{e:#}")))?;
            let listed = listed(&op, subdir)
                .await
                .map_err(|e| failed(&format!("reading {subdir}/repodata.json"), e))?;
            let missing: Vec<&str> = files
                .iter()
                .filter(|f| f.subdir == subdir && !listed.contains(&f.file_name))
                .map(|f| f.file_name.as_str())
                .collect();
            if !missing.is_empty() {
                return Err(failed(
                    &format!("indexing {subdir}"),
                    format!("repodata.json does not list {}", missing.join(", ")),
                ));
            }
            indexed.push(SubdirIndexed {
                subdir: subdir.to_string(),
                packages: listed.len(),
                read: files.iter().filter(|f| f.subdir == subdir).count(),
            });
        }
        Ok(Published { packages, indexed })
    })
}

/// Why an upload did not happen.
enum Upload {
    /// A different package of the same name is there.
    Exists,
    /// The service failed.
    Failed(String),
}

/// Uploads one package unless the same bytes are there already.
async fn upload(
    op: &Operator,
    file: &PackageFile,
    key: &str,
    overwrite: Overwrite,
) -> Result<Placed, Upload> {
    let failed = |e: &dyn std::fmt::Display| Upload::Failed(e.to_string());
    let there = match op.stat(key).await {
        Ok(meta) => Some(meta.content_length()),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(failed(&e)),
    };
    if let Some(size) = there {
        if same(op, file, key, size).await? {
            return Ok(Placed::Same);
        }
        if overwrite == Overwrite::Refuse {
            return Err(Upload::Exists);
        }
    }
    let mut writer = op
        .writer_with(key)
        .if_not_exists(there.is_none())
        .chunk(CHUNK)
        .await
        .map_err(|e| failed(&e))?;
    let written: Result<(), opendal::Error> = async {
        let io = |e: std::io::Error| opendal::Error::new(ErrorKind::Unexpected, e.to_string());
        let mut source = tokio::fs::File::open(&file.path).await.map_err(io)?;
        let mut buffer = vec![0u8; CHUNK];
        loop {
            let n = source.read(&mut buffer).await.map_err(io)?;
            if n == 0 {
                break;
            }
            writer.write(buffer[..n].to_vec()).await?;
        }
        writer.close().await.map(drop)
    }
    .await;
    match written {
        Ok(()) => Ok(if there.is_some() {
            Placed::Replaced
        } else {
            Placed::New
        }),
        Err(e) if e.kind() == ErrorKind::ConditionNotMatch => {
            // Another publisher put a file there since the look: the same
            // package is fine, another one is not.
            let size = op.stat(key).await.map_err(|e| failed(&e))?.content_length();
            if same(op, file, key, size).await? {
                Ok(Placed::Same)
            } else {
                Err(Upload::Exists)
            }
        }
        Err(e) => Err(failed(&e)),
    }
}

/// Whether the object at `key` (of `size` bytes) holds the file's bytes.
async fn same(op: &Operator, file: &PackageFile, key: &str, size: u64) -> Result<bool, Upload> {
    let local = std::fs::metadata(&file.path)
        .map_err(|e| Upload::Failed(e.to_string()))?
        .len();
    if local != size {
        return Ok(false);
    }
    let remote = op
        .read(key)
        .await
        .map_err(|e| Upload::Failed(e.to_string()))?;
    let ours = rattler_digest::compute_file_digest::<Sha256>(&file.path)
        .map_err(|e| Upload::Failed(e.to_string()))?;
    Ok(rattler_digest::compute_bytes_digest::<Sha256>(remote.to_bytes()) == ours)
}

/// The package file names `subdir/repodata.json` lists.
async fn listed(op: &Operator, subdir: &str) -> Result<BTreeSet<String>, String> {
    let key = format!("{subdir}/repodata.json");
    let size = op
        .stat(&key)
        .await
        .map_err(|e| e.to_string())?
        .content_length();
    if size > MAX_REPODATA_BYTES {
        return Err(format!("it is {size} bytes"));
    }
    let bytes = op.read(&key).await.map_err(|e| e.to_string())?.to_bytes();
    let repodata: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    Ok(["packages", "packages.conda"]
        .iter()
        .filter_map(|k| repodata.get(*k).and_then(|v| v.as_object()))
        .flat_map(|m| m.keys().cloned())
        .collect())
}
