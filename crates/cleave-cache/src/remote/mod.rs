//! Remote stores: the local store's entries shared through storage services
//! a team already runs (S3 and compatible servers, Redis, WebDAV, a shared
//! directory, GCS, Azure Blob, the GitHub Actions cache), through OpenDAL,
//! and Remote Execution API servers ([`reapi`]'s `grpc://` remotes).
//!
//! [`Remotes`] is the tier behind the local store: a lookup that misses
//! locally asks each remote in order; a hit is checked ([`pack`] says how),
//! taken into the local store, and written back to the remotes before it
//! that may be written; an entry stored locally is pushed to every
//! writable remote. A remote is an optimisation and is treated as one: any
//! failure (refused, down, slow, garbage) is a warning, and a remote that
//! failed to answer is not asked again in this process, so it costs one
//! bounded wait at most.

use std::time::Duration;

use crate::error::CacheError;

mod backend;
mod fetch;
mod known;
pub mod pack;
mod reapi;
mod stats;
mod tier;
mod tiers;
mod url;

pub use reapi::action_digest;
pub use stats::{SavedStats, TierStats};
pub use tiers::{Remotes, relocation, saved_stats};
pub use url::RemoteUrl;

/// What cleave may do with a remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Look entries up and store new ones.
    #[default]
    ReadWrite,
    /// Look entries up only (CI of forks, say).
    ReadOnly,
    /// Configured but not used.
    Off,
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "read-write" => Ok(Mode::ReadWrite),
            "read-only" => Ok(Mode::ReadOnly),
            "off" => Ok(Mode::Off),
            other => Err(format!(
                "`{other}` is not a remote mode (read-write, read-only, off)"
            )),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::ReadWrite => "read-write",
            Mode::ReadOnly => "read-only",
            Mode::Off => "off",
        })
    }
}

/// One configured remote.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// Where it is.
    pub url: RemoteUrl,
    /// What may be done with it.
    pub mode: Mode,
    /// How long one request may take, including a stalled transfer, before
    /// it is given up (and retried).
    pub timeout: Duration,
    /// How many times a failed request is tried again, with backoff.
    pub retries: usize,
    /// The most bytes of blobs one pack holds before compression.
    pub pack_size: u64,
}

impl RemoteConfig {
    /// A remote with the default mode, timeouts and pack size: 128 MiB
    /// packs, except 16 MiB for Redis, whose client gives up on a reply
    /// after half a second.
    pub fn new(url: RemoteUrl) -> RemoteConfig {
        let pack_size = if url.kind() == "redis" { 16 } else { 128 } * 1024 * 1024;
        RemoteConfig {
            url,
            mode: Mode::ReadWrite,
            timeout: Duration::from_secs(10),
            retries: 2,
            pack_size,
        }
    }
}

/// What can go wrong with a remote.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// A remote URL that cannot be used.
    #[error("remote {url}: {reason}")]
    Url {
        /// The URL, without credentials.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The service did not answer as it should (down, refusing, too slow).
    #[error("remote {remote}: {reason}")]
    Service {
        /// The remote, without credentials.
        remote: String,
        /// What went wrong, without credentials.
        reason: String,
    },
    /// An object read from the remote is not what it should be.
    #[error("remote {remote}: entry {key} is damaged: {reason}")]
    Damaged {
        /// The remote, without credentials.
        remote: String,
        /// The entry.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The remote cannot hold this entry (a REAPI server that takes no
    /// results, a blob larger than it allows, a name it cannot spell).
    #[error("remote {remote}: entry {key} cannot be stored there: {reason}")]
    Refused {
        /// The remote, without credentials.
        remote: String,
        /// The entry.
        key: String,
        /// Why.
        reason: String,
    },
    /// An entry that no remote may take: its index would be larger than
    /// any reader accepts.
    #[error("entry {key} is not uploaded: {reason}")]
    Unsendable {
        /// The entry.
        key: String,
        /// Why.
        reason: String,
    },
    /// The local store could not take or give the entry: this machine's
    /// problem (a full disk, say), not the remote's.
    #[error("the local cache could not take or give the entry")]
    Store(#[from] CacheError),
}

impl RemoteError {
    /// True when the remote itself failed to answer: asking it again in
    /// this process would only add waiting.
    pub fn is_service(&self) -> bool {
        matches!(self, RemoteError::Service { .. })
    }
}

/// Removes every secret from a message (a service's error may quote a
/// request).
fn scrub(message: &str, secrets: &[String]) -> String {
    secrets.iter().fold(message.to_string(), |text, secret| {
        text.replace(secret, "***")
    })
}
