//! The remotes of one build, in priority order, behind the local store.

use super::backend::chain;
use super::tier::{Pushed, Tier};
use super::{RemoteConfig, RemoteError, TierStats, stats::SavedStats};
use crate::digest::Digest;
use crate::helper::{Helper, HelperConfig, HelperError};
use crate::key::Inputs;
use crate::shared_dir::SharedDir;
use crate::store::{Entry, Store};

/// The remotes of one process, in the order they are asked.
pub struct Remotes {
    /// Lookups in the local store, counted here so that one record holds
    /// every level.
    local: TierStats,
    /// Cache helpers, asked before the remotes.
    helpers: Vec<Helper>,
    tiers: Vec<Tier>,
    runtime: Option<tokio::runtime::Runtime>,
    store_root: std::path::PathBuf,
    /// Whether the counters join those kept in the store when it goes.
    recorded: bool,
}

impl std::fmt::Debug for Remotes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.tiers.iter().map(Tier::shown))
            .finish()
    }
}

impl Remotes {
    /// The remotes `configs` name, for the local store `store` (which keeps
    /// what this machine knows each remote holds, and their counters).
    pub fn new(configs: Vec<RemoteConfig>, store: &Store) -> Remotes {
        Remotes {
            local: TierStats::new("local"),
            helpers: Vec::new(),
            tiers: configs.into_iter().map(|c| Tier::new(c, store)).collect(),
            runtime: None,
            store_root: store.root().to_path_buf(),
            recorded: true,
        }
    }

    /// Remotes whose counters are not kept in the store's build record: a
    /// compile call's lookups are counted by the compile cache, and must not
    /// stand for the last build.
    pub fn unrecorded(mut self) -> Remotes {
        self.recorded = false;
        self
    }

    /// Adds cache helpers, asked in order after the local store and
    /// before the remotes, for builds of `platform`.
    pub fn with_helpers(mut self, helpers: Vec<HelperConfig>, platform: &str) -> Remotes {
        self.helpers = helpers
            .into_iter()
            .map(|c| Helper::new(c, platform))
            .collect();
        self
    }

    /// Reports the progress of every transfer to `reporter`.
    pub fn set_reporter(&mut self, reporter: std::sync::Arc<dyn crate::progress::Reporter>) {
        for tier in &mut self.tiers {
            tier.reporter = Some(reporter.clone());
        }
    }

    /// True when no remote or helper is configured.
    pub fn is_empty(&self) -> bool {
        self.tiers.is_empty() && self.helpers.is_empty()
    }

    fn runtime(
        runtime: &mut Option<tokio::runtime::Runtime>,
    ) -> Result<&tokio::runtime::Runtime, String> {
        if runtime.is_none() {
            let built = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| format!("remote stores: cannot start their runtime: {e}"))?;
            *runtime = Some(built);
        }
        runtime.as_ref().ok_or_else(String::new)
    }

    /// Asks each helper, then each remote in order for `key`. A hit is
    /// taken into `store`, written back to the writable remotes asked
    /// before, and returned with the level that had it. Helpers are asked
    /// only when the entry's name and inputs are known (`named`): the
    /// protocol hands them over.
    /// Failures are passed to `warn` and end in `None`: the caller builds.
    pub fn fetch(
        &mut self,
        store: &Store,
        key: &Digest,
        named: Option<(&str, &Inputs)>,
        warn: &mut dyn FnMut(String),
    ) -> Option<(Entry, String)> {
        if let Some((name, inputs)) = named {
            for helper in self.helpers.iter_mut().filter(|h| h.usable()) {
                match helper.lookup(store, key, name, inputs) {
                    Ok(Some(entry)) => {
                        let from = helper.stats.remote.clone();
                        return Some((entry, from));
                    }
                    Ok(None) => {}
                    Err(e) => helper_failed(helper, &e, warn, "the entry is built here"),
                }
            }
        }
        if self.tiers.iter().all(|t| !t.readable()) {
            return None;
        }
        let runtime = match Self::runtime(&mut self.runtime) {
            Ok(runtime) => runtime,
            Err(e) => {
                warn(e);
                return None;
            }
        };
        for i in 0..self.tiers.len() {
            let (before, rest) = self.tiers.split_at_mut(i);
            let tier = &mut rest[0];
            if !tier.readable() {
                continue;
            }
            match tier.fetch(runtime, store, key) {
                Ok(Some(entry)) => {
                    for higher in before.iter_mut().filter(|t| t.writable()) {
                        push_one(higher, runtime, &entry, false, warn);
                    }
                    return Some((entry, tier.shown()));
                }
                Ok(None) => tier.stats.misses += 1,
                Err(e) => failed(tier, &e, warn, "the entry is built here"),
            }
        }
        None
    }

    /// Hands `entry` to every helper and uploads it to every writable
    /// remote that lacks it.
    pub fn push(&mut self, entry: &Entry, warn: &mut dyn FnMut(String)) {
        self.upload(entry, false, warn);
    }

    /// Hands `entry` to every helper and uploads it to every writable
    /// remote, replacing what they hold under its key: for an entry that
    /// grows under one key (a compile manifest, which lists what earlier
    /// compiles read), where the newer one holds the older's contents.
    pub fn replace(&mut self, entry: &Entry, warn: &mut dyn FnMut(String)) {
        self.upload(entry, true, warn);
    }

    /// Hands `entry` to every helper and uploads it to every writable
    /// remote (see [`Tier::push`] for `replace`).
    fn upload(&mut self, entry: &Entry, replace: bool, warn: &mut dyn FnMut(String)) {
        for helper in self.helpers.iter_mut().filter(|h| h.usable()) {
            match helper.store(entry, replace) {
                Ok(Some(to)) => {
                    record_relocation(&self.store_root, entry, &helper.stats.remote, &to)
                }
                Ok(None) => {}
                Err(e) => helper_failed(helper, &e, warn, "the entry stays local"),
            }
        }
        if self.tiers.iter().all(|t| !t.writable()) {
            return;
        }
        let runtime = match Self::runtime(&mut self.runtime) {
            Ok(runtime) => runtime,
            Err(e) => {
                warn(e);
                return;
            }
        };
        for tier in self.tiers.iter_mut().filter(|t| t.writable()) {
            push_one(tier, runtime, entry, replace, warn);
        }
    }

    /// The remotes that failed to answer and the helpers that failed in
    /// this process: a remote by its URL without password (two endpoints
    /// of one bucket stay apart), a helper by its path. A caller that runs
    /// once per compile remembers them across processes.
    pub fn disabled(&self) -> Vec<String> {
        let helpers = self.helpers.iter().filter(|h| !h.usable());
        let tiers = self.tiers.iter().filter(|t| t.disabled);
        let tiers = tiers.map(|t| t.config.url.without_password().to_string());
        helpers.map(Helper::shown).chain(tiers).collect()
    }

    /// Uploads `entry` to the first remote, whatever its mode, failing
    /// loudly: for `cleave cache push`.
    pub fn push_first(&mut self, entry: &Entry) -> Result<bool, RemoteError> {
        let runtime = Self::runtime(&mut self.runtime).map_err(|reason| RemoteError::Service {
            remote: String::new(),
            reason,
        })?;
        let Some(tier) = self.tiers.first_mut() else {
            return Ok(false);
        };
        Ok(tier.push(runtime, entry, false)? == Pushed::Uploaded)
    }

    /// Downloads `key` from the first remote, failing loudly: for
    /// `cleave cache pull`.
    pub fn fetch_first(
        &mut self,
        store: &Store,
        key: &Digest,
    ) -> Result<Option<Entry>, RemoteError> {
        let runtime = Self::runtime(&mut self.runtime).map_err(|reason| RemoteError::Service {
            remote: String::new(),
            reason,
        })?;
        match self.tiers.first_mut() {
            Some(tier) => tier.fetch(runtime, store, key),
            None => Ok(None),
        }
    }

    /// Counts a lookup in the local store.
    pub fn count_local(&mut self, hit: bool) {
        if hit {
            self.local.hits += 1;
        } else {
            self.local.misses += 1;
        }
    }

    /// What each remote did in this process.
    pub fn stats(&self) -> Vec<TierStats> {
        self.tiers.iter().map(|t| t.stats.clone()).collect()
    }

    /// What each level did in this process: the local store first, then
    /// the remotes in order.
    pub fn levels(&self) -> Vec<TierStats> {
        std::iter::once(self.local.clone())
            .chain(self.helpers.iter().map(|h| h.stats.clone()))
            .chain(self.stats())
            .collect()
    }
}

/// A process's counters join those kept in the store when its remotes go,
/// whether its build succeeded or not. The runtime is let go without
/// waiting: a request given up at its deadline may still sit in a blocking
/// thread (a shared directory on a dead network mount), and must not hold
/// the process.
impl Drop for Remotes {
    fn drop(&mut self) {
        if self.recorded {
            SavedStats::record(&self.store_root, &self.levels());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Counters of earlier builds, as kept in the store at `root`.
pub fn saved_stats(root: &std::path::Path) -> SavedStats {
    SavedStats::load(root)
}

fn push_one(
    tier: &mut Tier,
    runtime: &tokio::runtime::Runtime,
    entry: &Entry,
    replace: bool,
    warn: &mut dyn FnMut(String),
) {
    if let Err(e) = tier.push(runtime, entry, replace) {
        failed(tier, &e, warn, "the entry stays local");
    }
}

/// Counts a helper's failure and says what it costs.
fn helper_failed(
    helper: &mut Helper,
    error: &HelperError,
    warn: &mut dyn FnMut(String),
    cost: &str,
) {
    helper.stats.errors += 1;
    // With its causes: a full disk says so.
    let text = chain(error);
    if error.is_broken() {
        helper.disable();
        warn(format!(
            "{text}; {cost}, and the helper is not run again in this build"
        ));
    } else {
        warn(format!("{text}; {cost}"));
    }
}

/// Where a helper said it put an entry, kept beside the store for
/// `cleave cache info`, in `relocated/<key>`: written and read without
/// following a link another user of the store may have put there. Best
/// effort: the entry is stored either way.
fn record_relocation(root: &std::path::Path, entry: &Entry, helper: &str, to: &str) {
    let text = serde_json::json!({ "helper": helper, "relocated_to": to });
    let path = format!("relocated/{}", entry.meta().key.to_hex());
    let _ = SharedDir::new(root.to_path_buf()).write(&path, text.to_string().as_bytes());
}

/// Where helpers said they put the entry `key`, if one did: the helper
/// and the place, as text to be shown (escaped when printed, see
/// [`crate::foreign::printable`]).
pub fn relocation(root: &std::path::Path, key: &Digest) -> Option<(String, String)> {
    let path = format!("relocated/{}", key.to_hex());
    let text = SharedDir::new(root.to_path_buf())
        .read(&path, crate::foreign::limits::RECORD)
        .ok()??;
    let value: serde_json::Value = serde_json::from_slice(&text).ok()?;
    Some((
        value["helper"].as_str()?.to_string(),
        value["relocated_to"].as_str()?.to_string(),
    ))
}

/// Counts a failure and says what it costs.
fn failed(tier: &mut Tier, error: &RemoteError, warn: &mut dyn FnMut(String), cost: &str) {
    tier.stats.errors += 1;
    let text = chain(error);
    if error.is_service() {
        tier.disabled = true;
        warn(format!(
            "{text}; {cost}, and the remote is not used again in this build"
        ));
    } else {
        warn(format!("{text}; {cost}"));
    }
}
