//! A Remote Execution API (REAPI v2) server as a remote store: the cache
//! protocol of Bazel, served by bazel-remote, BuildBuddy, BuildGrid,
//! Buildbarn, EngFlow and NativeLink. cleave uses its Action Cache and CAS
//! only, through the published protos ([`bazel_remote_apis`]) and tonic.
//!
//! [`layout`] says how an entry maps onto Actions, ActionResults, Trees
//! and CAS blobs; [`fetch`] and [`push`] carry it; [`client`] and
//! [`transfer`] bound every call in time and size.
//!
//! What is read back is checked as an OpenDAL remote's index is: the
//! entry's files by their seal, key and digests, every path before it is
//! written, every blob against its BLAKE3 digest before the store takes
//! it. A result whose blobs the server has since collected is a miss, not
//! damage: the entry is built here and stored again in full.

use std::collections::HashSet;
use std::fmt::Display;
use std::time::Instant;

use super::tier::Pushed;
use super::{RemoteConfig, RemoteError, TierStats, scrub};
use crate::digest::Digest;
use crate::store::{Entry, Store};

mod client;
mod fetch;
mod layout;
mod push;
mod settings;
mod transfer;

pub use settings::ReapiSettings;

use client::{Client, Counts};
use transfer::{Caps, MAX_BATCH};

/// How many requests one transfer keeps in flight.
const PARALLEL: usize = 8;

/// The Action digest (`HASH/SIZE`) under which a REAPI server keeps the
/// entry `key`: what a server's own tools look it up by (`bgd actioncache
/// get`, `bb_clientd`, a BuildBuddy or EngFlow cache browser).
pub fn action_digest(key: &Digest) -> String {
    let [(action, _), _] = layout::action(key);
    action.to_string()
}

/// What errors of one operation name.
#[derive(Clone)]
pub(crate) struct Context {
    shown: String,
    secrets: Vec<String>,
    key: String,
}

impl Context {
    /// The server failed to answer as it should.
    fn service(&self, what: &str, failure: &dyn Display) -> RemoteError {
        RemoteError::Service {
            remote: self.shown.clone(),
            reason: scrub(&format!("{what}: {failure}"), &self.secrets),
        }
    }

    /// What the server gave is not what cleave stored.
    fn damaged(&self, reason: String) -> RemoteError {
        RemoteError::Damaged {
            remote: self.shown.clone(),
            key: self.key.clone(),
            reason: scrub(&reason, &self.secrets),
        }
    }

    /// The server cannot hold this entry.
    fn refused(&self, reason: String) -> RemoteError {
        RemoteError::Refused {
            remote: self.shown.clone(),
            key: self.key.clone(),
            reason,
        }
    }
}

/// One REAPI remote as a process uses it: the connection and the server's
/// capabilities, read on first use.
#[derive(Default)]
pub(super) struct Session {
    server: Option<(Client, Caps)>,
    /// Entries whose result named blobs the server no longer had: a push of
    /// one stores it again rather than trusting the result.
    stale: HashSet<Digest>,
    /// Set when the server said it takes no results.
    read_only: bool,
}

impl Session {
    /// True once the server said it stores no action results.
    pub(super) fn read_only(&self) -> bool {
        self.read_only
    }

    /// The client and capabilities, asked for once.
    fn server(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        config: &RemoteConfig,
        ctx: &Context,
    ) -> Result<(Client, Caps), RemoteError> {
        if let Some(server) = &self.server {
            return Ok(server.clone());
        }
        let Some(settings) = config.url.reapi() else {
            return Err(ctx.service("settings", &"not a REAPI remote"));
        };
        let client = {
            let _in_runtime = runtime.enter();
            Client::new(settings, config.timeout, config.retries, MAX_BATCH)
        }
        .map_err(|e| RemoteError::Url {
            url: ctx.shown.clone(),
            reason: e,
        })?;
        let caps = runtime
            .block_on(client.capabilities())
            .map_err(|e| ctx.service("asking its capabilities", &e))?
            .map_err(|e| ctx.service("its capabilities", &e))?;
        self.server = Some((client.clone(), caps.clone()));
        Ok((client, caps))
    }

    fn context(config: &RemoteConfig, key: &Digest) -> Context {
        Context {
            shown: config.url.to_string(),
            secrets: config.url.secrets(),
            key: key.to_hex(),
        }
    }

    /// Looks `key` up and takes the entry into `store`: `None` when the
    /// server has no result for it, or no longer has all its blobs.
    pub(super) fn fetch(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        config: &RemoteConfig,
        stats: &mut TierStats,
        store: &Store,
        key: &Digest,
    ) -> Result<Option<Entry>, RemoteError> {
        let ctx = Self::context(config, key);
        let started = Instant::now();
        let server = self.server(runtime, config, &ctx);
        let outcome = server.and_then(|(client, caps)| {
            let outcome = runtime.block_on(fetch::fetch(&client, &caps, &ctx, store, key));
            count(&client.counts, stats);
            outcome
        });
        stats.wait_ms += started.elapsed().as_millis() as u64;
        match outcome? {
            fetch::Outcome::Miss => {
                self.stale.insert(*key);
                Ok(None)
            }
            fetch::Outcome::Found(incoming) => {
                let entry = store.admit(*incoming)?;
                stats.hits += 1;
                Ok(Some(entry))
            }
        }
    }

    /// Stores `entry` unless the server has a result for it (with
    /// `replace`, or after a lookup found the result stale, whatever it
    /// has).
    pub(super) fn push(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        config: &RemoteConfig,
        stats: &mut TierStats,
        entry: &Entry,
        replace: bool,
    ) -> Result<Pushed, RemoteError> {
        let key = entry.meta().key;
        let ctx = Self::context(config, &key);
        let started = Instant::now();
        let outcome = self
            .server(runtime, config, &ctx)
            .and_then(|(client, caps)| {
                let outcome = self.push_to(runtime, &client, &caps, &ctx, entry, replace);
                count(&client.counts, stats);
                outcome
            });
        stats.wait_ms += started.elapsed().as_millis() as u64;
        if outcome? == Pushed::Uploaded {
            stats.uploads += 1;
            self.stale.remove(&key);
            return Ok(Pushed::Uploaded);
        }
        Ok(Pushed::AlreadyThere)
    }

    fn push_to(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        client: &Client,
        caps: &Caps,
        ctx: &Context,
        entry: &Entry,
        replace: bool,
    ) -> Result<Pushed, RemoteError> {
        if !caps.update_enabled {
            self.read_only = true;
            return Err(ctx.refused(
                "the server takes no action results (its action cache is read-only)".into(),
            ));
        }
        let key = entry.meta().key;
        if !replace && !self.stale.contains(&key) {
            let [(action, _), _] = layout::action(&key);
            let there = runtime
                .block_on(client.get_result(&action))
                .map_err(|e| ctx.service("reading the action cache", &e))?;
            if there.is_some() {
                return Ok(Pushed::AlreadyThere);
            }
        }
        let plan = push::plan(entry, caps, ctx)?;
        push::upload(runtime, client, caps, ctx, entry, plan)?;
        Ok(Pushed::Uploaded)
    }
}

/// Moves an operation's counts into the tier's.
fn count(counts: &Counts, stats: &mut TierStats) {
    use std::sync::atomic::Ordering::Relaxed;
    stats.requests += counts.requests.swap(0, Relaxed);
    stats.bytes_down += counts.bytes_down.swap(0, Relaxed);
    stats.bytes_up += counts.bytes_up.swap(0, Relaxed);
}
