//! The cache helpers and remote stores behind the compile cache, for one
//! compiler call.
//!
//! A call asks them only after the local store missed, and hands over
//! only what it compiled: a hit in the local store runs no helper and
//! makes no request. The wrapper runs once per compile, so what one call
//! learns about a remote that does not answer, or a helper that fails, is
//! kept on disk (`remotes-down/`): the calls after it in the same build
//! (or, outside a recipe build, in the next minutes) skip that level
//! instead of each waiting out its timeout.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cleave_cache::helper::HelperConfig;
use cleave_cache::remote::{Mode, RemoteConfig, RemoteUrl, Remotes};
use cleave_cache::{Digest, Inputs, Store};
use serde::{Deserialize, Serialize};
use tempfile::TempPath;

use crate::stats;
use crate::wrapper::Config;

/// How long, outside a recipe build, a remote that did not answer is left
/// alone.
const DOWN_FOR: Duration = Duration::from_secs(300);

/// What the calls after one know of a remote that failed to answer.
#[derive(Debug, Serialize, Deserialize)]
struct Down {
    /// The recipe build it failed in (its start), if any.
    build: Option<i64>,
    /// When, in seconds since the epoch.
    at: u64,
}

/// The levels behind the local store a recipe build hands its compile
/// calls (see [`write_levels`]).
#[derive(Debug, Clone, Default)]
pub struct Levels {
    /// Remote stores, in the order they are asked.
    pub remotes: Vec<RemoteConfig>,
    /// Cache helpers, asked before the remotes.
    pub helpers: Vec<HelperConfig>,
    /// The platform helpers are told entries are for.
    pub platform: String,
}

impl Levels {
    /// True when there is nothing behind the local store.
    pub fn is_empty(&self) -> bool {
        self.remotes.is_empty() && self.helpers.is_empty()
    }
}

/// The helpers and remotes of one compiler call, opened when first needed:
/// a call the local store serves reads nothing of them, not even the down
/// markers.
pub(crate) struct Shared<'a> {
    configured: &'a Levels,
    /// Those not known to be down, once asked for.
    up: Option<Levels>,
    /// The compile cache's state: the down markers.
    state: PathBuf,
    /// Where this call's counts go.
    stats: PathBuf,
    build: Option<i64>,
    remotes: Option<Remotes>,
    /// True when the call was served by an entry a remote gave.
    served: bool,
    /// Where warnings go.
    warnings: Warnings,
}

/// Where a call's warnings go: stderr, or a log in the compile cache's
/// state for C and C++ compiles, whose stderr configure checks read (a
/// warning there can fail an `-Werror` probe).
#[derive(Debug, Clone)]
pub(crate) enum Warnings {
    Stderr,
    Log(PathBuf),
}

impl Warnings {
    fn emit(&self, message: String) {
        match self {
            Warnings::Stderr => warn(message),
            Warnings::Log(path) => {
                let line = format!("{} cleave: warning: {message}\n", unix_now());
                if let Some(dir) = path.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                let _ = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .and_then(|mut f| f.write_all(line.as_bytes()));
            }
        }
    }
}

impl<'a> Shared<'a> {
    /// The helpers and remotes of `config`; counts go to the stats in
    /// `stats`, warnings to `warnings`.
    pub(crate) fn new(config: &'a Config, stats: &Path, warnings: Warnings) -> Shared<'a> {
        Shared {
            configured: &config.levels,
            up: None,
            state: config.state.clone(),
            stats: stats.to_path_buf(),
            build: config.build_start_ns,
            remotes: None,
            served: false,
            warnings,
        }
    }

    /// The configured levels that are not known to be down, read once.
    fn up(&mut self) -> &Levels {
        let (configured, state, build) = (self.configured, &self.state, self.build);
        self.up.get_or_insert_with(|| {
            let down = state.join("remotes-down");
            let up = |shown: &str| !is_down(&down.join(marker_name(shown)), build);
            Levels {
                remotes: (configured.remotes.iter())
                    .filter(|r| up(r.url.without_password()))
                    .cloned()
                    .collect(),
                helpers: (configured.helpers.iter())
                    .filter(|h| up(&h.path.display().to_string()))
                    .cloned()
                    .collect(),
                platform: configured.platform.clone(),
            }
        })
    }

    /// True when a helper or remote may be asked.
    pub(crate) fn active(&mut self) -> bool {
        !self.configured.is_empty() && !self.up().is_empty()
    }

    fn remotes(&mut self, store: &Store) -> Option<&mut Remotes> {
        if !self.active() {
            return None;
        }
        let levels = self.up.as_ref()?;
        Some(self.remotes.get_or_insert_with(|| {
            Remotes::new(levels.remotes.clone(), store)
                .with_helpers(levels.helpers.clone(), &levels.platform)
                .unrecorded()
        }))
    }

    /// Takes the entry `key` from the first level that has it into
    /// `store`; true when one did. Helpers are asked when the entry's name
    /// and inputs are known (`named`).
    pub(crate) fn fetch(
        &mut self,
        store: &Store,
        key: &Digest,
        named: Option<(&str, &Inputs)>,
    ) -> bool {
        let sink = self.warnings.clone();
        let Some(remotes) = self.remotes(store) else {
            return false;
        };
        let found = remotes
            .fetch(store, key, named, &mut |m| sink.emit(m))
            .is_some();
        self.remember_failures();
        found
    }

    /// The `extra` of the entry a level holds under `key` (named
    /// `named`), read through a scratch store: the local `store` may hold
    /// another entry under that key (a manifest whose list differs), which
    /// must not be lost.
    pub(crate) fn fetch_extra(
        &mut self,
        store: &Store,
        key: &Digest,
        named: (&str, &Inputs),
    ) -> Option<serde_json::Value> {
        if !self.active() {
            return None;
        }
        let tmp = self.state.join("tmp");
        std::fs::create_dir_all(&tmp).ok()?;
        let scratch_dir = tempfile::tempdir_in(&tmp).ok()?;
        let scratch = Store::open(scratch_dir.path()).ok()?;
        // What the remotes are known to hold is kept with the local store.
        let sink = self.warnings.clone();
        let remotes = self.remotes(store)?;
        let fetched = remotes.fetch(&scratch, key, Some(named), &mut |m| sink.emit(m));
        self.remember_failures();
        Some(fetched?.0.meta().extra.clone())
    }

    /// Hands the entry `key` of `store` to the helpers and the writable
    /// remotes that lack it.
    pub(crate) fn push(&mut self, store: &Store, key: &Digest) {
        self.hand_over(store, key, false);
    }

    /// Hands the entry `key` of `store` over in place of what the helpers
    /// and writable remotes hold under it (a manifest that grew).
    pub(crate) fn replace(&mut self, store: &Store, key: &Digest) {
        self.hand_over(store, key, true);
    }

    fn hand_over(&mut self, store: &Store, key: &Digest, replace: bool) {
        let sink = self.warnings.clone();
        if let Ok(Some(entry)) = store.get(key)
            && let Some(remotes) = self.remotes(store)
        {
            let mut warn = |m| sink.emit(m);
            if replace {
                remotes.replace(&entry, &mut warn);
            } else {
                remotes.push(&entry, &mut warn);
            }
            self.remember_failures();
        }
    }

    /// Marks the levels that failed so far as down, at once: the compiles
    /// starting meanwhile skip them.
    fn remember_failures(&mut self) {
        let Some(remotes) = &self.remotes else {
            return;
        };
        let failed = remotes.disabled();
        let down = self.state.join("remotes-down");
        if failed.is_empty() || std::fs::create_dir_all(&down).is_err() {
            return;
        }
        let marker = Down {
            build: self.build,
            at: unix_now(),
        };
        let text = serde_json::to_vec(&marker).unwrap_or_default();
        for shown in &failed {
            let path = down.join(marker_name(shown));
            if !is_down(&path, self.build) {
                let _ = std::fs::write(path, &text);
            }
        }
    }

    /// Notes that the call was served by an entry a remote gave.
    pub(crate) fn served(&mut self) {
        self.served = true;
    }
}

/// The call's remote traffic joins the compile counts, and remotes that
/// failed to answer are remembered for the calls after it.
impl Drop for Shared<'_> {
    fn drop(&mut self) {
        if let Some(remotes) = self.remotes.take() {
            stats::record_remote(&self.stats, self.served, &remotes.levels());
        }
    }
}

/// A level's marker file: named by a remote's URL without its password,
/// or a helper's path.
fn marker_name(shown: &str) -> String {
    Digest::of(shown.as_bytes()).to_hex()
}

/// Whether the marker at `path` says to leave its remote alone: it failed
/// in this recipe build, or (outside recipe builds) a short while ago.
fn is_down(path: &Path, build: Option<i64>) -> bool {
    let Some(down) = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Down>(&b).ok())
    else {
        return false;
    };
    match build {
        Some(_) => down.build == build,
        None => unix_now().saturating_sub(down.at) < DOWN_FOR.as_secs(),
    }
}

fn warn(message: String) {
    let _ = writeln!(std::io::stderr(), "cleave: warning: {message}");
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A remote as a levels file holds it: no password, no credential from
/// cleave's environment.
#[derive(Debug, Serialize, Deserialize)]
struct RemoteSpec {
    url: String,
    mode: Mode,
    timeout_ms: u64,
    retries: usize,
    pack_size: u64,
}

/// What a levels file holds.
#[derive(Debug, Serialize, Deserialize)]
struct LevelsFile {
    remotes: Vec<RemoteSpec>,
    helpers: Vec<HelperConfig>,
    platform: String,
}

/// Writes the helpers and remotes of a recipe build where its compile
/// calls find them ([`crate::vars::LEVELS`] names the file), in `dir`.
/// Build scripts can read it, so it holds no secret: each remote's URL
/// goes without its password, and the compile calls read credentials
/// (`AWS_*`, ...) from their own environment, which holds only what the
/// recipe lets in (`build.secrets`). The file goes when the returned path
/// is dropped, at the end of the build; files left by builds that were
/// killed are removed after a day.
pub fn write_levels(dir: &Path, levels: &Levels) -> std::io::Result<TempPath> {
    let file = LevelsFile {
        remotes: (levels.remotes.iter())
            .map(|r| RemoteSpec {
                url: r.url.without_password().to_string(),
                mode: r.mode,
                timeout_ms: r.timeout.as_millis() as u64,
                retries: r.retries,
                pack_size: r.pack_size,
            })
            .collect(),
        helpers: levels.helpers.clone(),
        platform: levels.platform.clone(),
    };
    let text = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
    std::fs::create_dir_all(dir)?;
    remove_stale(dir);
    let mut file = tempfile::Builder::new()
        .prefix(LEVELS_PREFIX)
        .suffix(".json")
        .tempfile_in(dir)?;
    file.write_all(&text)?;
    file.flush()?;
    Ok(file.into_temp_path())
}

const LEVELS_PREFIX: &str = ".compile-levels-";

/// Removes levels files older than a day (of builds that were killed).
fn remove_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let day = Duration::from_secs(24 * 3600);
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > day));
        if old
            && entry
                .file_name()
                .to_string_lossy()
                .starts_with(LEVELS_PREFIX)
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The levels a recipe build wrote with [`write_levels`], each remote's
/// URL parsed with credentials from this process's environment. A remote
/// that does not parse here is left out, with a warning.
pub fn read_levels(path: &Path) -> std::io::Result<Levels> {
    let text = std::fs::read(path)?;
    let file: LevelsFile = serde_json::from_slice(&text).map_err(std::io::Error::other)?;
    let mut remotes = Vec::new();
    for spec in file.remotes {
        match RemoteUrl::parse(&spec.url) {
            Ok(url) => {
                let mut config = RemoteConfig::new(url);
                config.mode = spec.mode;
                config.timeout = Duration::from_millis(spec.timeout_ms);
                config.retries = spec.retries;
                config.pack_size = spec.pack_size;
                remotes.push(config);
            }
            Err(e) => warn(format!("{e}; compile entries do not use it")),
        }
    }
    Ok(Levels {
        remotes,
        helpers: file.helpers,
        platform: file.platform,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(dir: &Path, build: Option<i64>, age: u64) -> PathBuf {
        let path = dir.join(format!("{build:?}-{age}"));
        let down = Down {
            build,
            at: unix_now() - age,
        };
        std::fs::write(&path, serde_json::to_vec(&down).unwrap()).unwrap();
        path
    }

    #[test]
    fn a_levels_file_holds_no_password_and_no_credential_from_the_environment() {
        let env = |name: &str| match name {
            "AWS_ACCESS_KEY_ID" => Some("key-from-env".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret-from-env".to_string()),
            _ => None,
        };
        let s3 = RemoteUrl::parse_with("s3://b/p?endpoint=http://127.0.0.1:9", &env).unwrap();
        let redis = RemoteUrl::parse("redis://user:hunter22@127.0.0.1:6380/2").unwrap();
        let mut read_only = RemoteConfig::new(redis);
        read_only.mode = Mode::ReadOnly;
        let levels = Levels {
            remotes: vec![RemoteConfig::new(s3), read_only],
            helpers: vec![HelperConfig::new("/opt/helper".into())],
            platform: "linux-64".into(),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = write_levels(dir.path(), &levels).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        for secret in ["hunter22", "key-from-env", "secret-from-env"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        let back = read_levels(&path).unwrap();
        let shown: Vec<String> = back.remotes.iter().map(|r| r.url.to_string()).collect();
        assert_eq!(shown, ["s3://b/p", "redis://127.0.0.1:6380/2"]);
        assert_eq!(back.remotes[1].mode, Mode::ReadOnly);
        assert_eq!(back.helpers[0].path, Path::new("/opt/helper"));
        drop(path);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "removed");
    }

    #[test]
    fn a_remote_found_down_is_skipped_for_its_build_or_a_few_minutes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(!is_down(&d.join("none"), Some(1)), "no marker");
        assert!(is_down(&marker(d, Some(1), 3600), Some(1)), "same build");
        assert!(
            !is_down(&marker(d, Some(1), 0), Some(2)),
            "a new build asks again"
        );
        assert!(
            is_down(&marker(d, None, 10), None),
            "outside builds: recent"
        );
        assert!(!is_down(&marker(d, None, 600), None), "outside builds: old");
    }
}
