//! Builds every output of a rendered recipe, in order.
//!
//! A staging build is looked up in the content-addressed store by its key
//! (see [`crate::staging_key`]). On a miss its script runs and its result
//! (new prefix files and the work dir) is stored; on a hit nothing runs.
//! Each output that inherits it is built in directories derived from the
//! key alone, under the staging root: its environments are installed, the
//! store puts the staging files back, and its own script continues from
//! there. Paths baked into the staging build (cmake caches, ninja command
//! lines, binaries) are the same in every invocation and on every machine
//! with the same staging root, so nothing is rewritten and nothing
//! recompiles. Restoring under another root rewrites the paths instead.
//!
//! A per-key lock held from the lookup until the last inheriting output is
//! built makes a concurrent build of the same staging wait, then hit.
//!
//! After each package the output directory is re-indexed, so the next
//! output of the recipe can depend on it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cleave_cache::fingerprint::Fingerprinter;
use cleave_cache::helper::HelperConfig;
use cleave_cache::lock::Lock;
use cleave_cache::remote::{RemoteConfig, Remotes, TierStats};
use cleave_cache::store::{Entry, GcPolicy, GcReport};
use cleave_cache::{CacheError, Digest, Inputs, Store};
use cleave_compile::remote::{Levels, write_levels};
use cleave_recipe::RenderedRecipe;
use cleave_recipe::model::{Dependency, RenderedOutput};
use rattler_conda_types::{Channel, MatchSpec, RepoDataRecord, Subdir};

use crate::environment::run_exports::fill_from_prefix;
use crate::environment::{EnvKind, Environments};
use crate::error::BuildError;
use crate::keys::KeyContext;
use crate::layout::OutputDirs;
use crate::package::PackageFormat;
use crate::package::claims::Claims;
use crate::script::guard::Guard;
use crate::source::SourceCache;

mod compile_env;
mod event;
mod output;
pub mod plan;
mod reporter;
mod run;
mod script_env;
mod staging;

pub use compile_env::CompileCache;
pub use event::Event;
pub use plan::{Plan, PlanError, PlannedRecipe, Step};
pub(crate) use reporter::{InstallForward, RepodataForward};
pub use reporter::{Reporter, Silent};
pub use run::{BuildReport, Outcome, OutputReport};
use staging::StagingResult;

/// A cache error with its causes, for a warning on one line: the store's
/// errors keep the operating system's error as their source.
fn causes(error: &CacheError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The time a stored entry says its build took (`seconds` of its extra
/// data), for what the cache saved. The entry may come from a remote: a
/// value that is no plausible duration is ignored.
fn recorded_time(extra: &serde_json::Value) -> Option<Duration> {
    const YEAR: f64 = 365.0 * 24.0 * 3600.0;
    extra["seconds"]
        .as_f64()
        .filter(|s| s.is_finite() && (0.0..YEAR).contains(s))
        .map(Duration::from_secs_f64)
}

/// Whether to run the packages' tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TestMode {
    /// Run them on this machine after each package.
    #[default]
    Native,
    /// Do not run them.
    Skip,
}

/// Where and how to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The output channel; packages go to its subdirs.
    pub output_dir: PathBuf,
    /// Channels searched after the output channel, in priority order.
    pub channels: Vec<Channel>,
    /// Package cache, repodata cache and source cache live here.
    pub cache_dir: PathBuf,
    /// Archive format.
    pub format: PackageFormat,
    /// Whether tests run.
    pub test: TestMode,
    /// Keep build directories after a successful build.
    pub keep_build: bool,
    /// The `timestamp` of every package (fixed for reproducible builds).
    pub timestamp: jiff::Timestamp,
    /// The platform packages are for.
    pub target_platform: Subdir,
    /// The platform the build runs on.
    pub build_platform: Subdir,
    /// Variables every script sees (the caller's PATH, HOME, ...).
    pub base_env: BTreeMap<String, String>,
    /// Staging builds and the outputs inheriting them run below this, in
    /// directories named by key: keep it the same across machines so that
    /// restored build trees need no rewriting.
    pub staging_root: PathBuf,
    /// Fail when a staging file goes into no package.
    pub error_unclaimed: bool,
    /// Fail when a staging file goes into two packages.
    pub error_overlapping: bool,
    /// Evict least recently used staging entries above this many bytes.
    pub max_cache_size: Option<u64>,
    /// Whether staging results outlive the build.
    pub cache_mode: CacheMode,
    /// Whether scripts' compiler calls go through the compile cache.
    pub compile_cache: CompileCache,
    /// Remote stores behind the local one, in the order they are asked
    /// (none with the cache off).
    pub remotes: Vec<RemoteConfig>,
    /// Cache helpers, asked after the local store and before the remotes
    /// (none with the cache off).
    pub helpers: Vec<HelperConfig>,
    /// Runs scripts and tools so that none outlives the build.
    pub guard: Guard,
    /// Go on after a failed output with what does not need it.
    pub keep_going: bool,
    /// Which outputs are skipped because their package exists.
    pub skip_existing: SkipExisting,
}

/// Which outputs are not built because their package exists already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SkipExisting {
    /// Build every output.
    #[default]
    None,
    /// Skip an output whose package (name, version, build string) is in the
    /// output channel.
    Local,
    /// Skip it when the output channel or any other channel has it.
    All,
}

/// Whether the staging cache is kept between builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// Look staging builds up in the store under the cache directory and
    /// keep what runs there.
    #[default]
    ReadWrite,
    /// Run every staging build, in a scratch store removed after the build:
    /// what a tool without a staging cache does, for comparison and for
    /// suspected cache problems.
    Off,
}

/// A package in the output channel.
#[derive(Debug, Clone)]
pub struct BuiltPackage {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Build string.
    pub build: String,
    /// `linux-64`, `noarch`, ...
    pub subdir: String,
    /// The archive.
    pub path: PathBuf,
    /// Archive size in bytes.
    pub size: u64,
    /// Paths in the package.
    pub files: usize,
    /// Taken from the cache rather than built.
    pub reused: bool,
    /// How long it took here: its build, or its reuse.
    pub duration: Duration,
    /// With `reused`, how long the build that made the entry took, when
    /// the entry says: the time the cache saved.
    pub saved: Option<Duration>,
}

/// The cache key of a staging build or package output and what it was
/// computed from.
#[derive(Debug, Clone)]
pub struct CacheKey {
    /// `staging` or `package`.
    pub kind: &'static str,
    /// The staging name or package name (what store entries are named).
    pub name: String,
    /// The key its entry is stored under and its inputs, or why they could
    /// not be computed (an environment that does not solve yet).
    pub key: Result<(Digest, Inputs), String>,
}

/// Builds the outputs of one rendered recipe.
pub struct Builder {
    options: BuildOptions,
    envs: Environments,
    sources: SourceCache,
    store: Store,
    /// The remote stores behind `store`.
    remotes: Remotes,
    /// The file telling compile calls the helpers and remotes, removed on
    /// drop.
    compile_levels: Option<tempfile::TempPath>,
    /// The scratch store's directory with the cache off, removed on drop.
    _scratch: Option<tempfile::TempDir>,
    output_channel: Channel,
    /// The recipe whose output is being built, by its place in the plan.
    current: usize,
    /// Finished staging builds by recipe, name and variant hash.
    staged: HashMap<(usize, String, String), StagingResult>,
    /// The packages built or reused so far, by archive file name, with
    /// their output keys: later keys name them by key (see [`crate::keys`]).
    siblings: HashMap<String, Digest>,
    /// Which staging files each recipe's packages took.
    claims: BTreeMap<usize, Claims>,
    /// Locks of the staging builds in use, held until the build ends.
    locks: Vec<Lock>,
    /// The store entries of the staging builds in use, by key.
    entries: HashMap<Digest, Entry>,
    /// A store of this build only, for staging results the cache cannot
    /// take or give back (see `scratch_store`).
    scratch: Option<(tempfile::TempDir, Store)>,
    /// Build directories made so far, removed after a successful build.
    made: Vec<PathBuf>,
    /// Where events and progress go.
    reporter: Arc<dyn Reporter>,
}

impl Builder {
    /// A builder with its environments and caches set up.
    pub fn new(options: BuildOptions) -> Result<Self, BuildError> {
        std::fs::create_dir_all(&options.output_dir).map_err(BuildError::io(format!(
            "creating {}",
            options.output_dir.display()
        )))?;
        let output_dir = std::fs::canonicalize(&options.output_dir).map_err(BuildError::io(
            format!("reading {}", options.output_dir.display()),
        ))?;
        cleave_channel::index::index_channel(&output_dir, &[options.target_platform.as_str()])?;
        let output_channel =
            Channel::try_from_directory(&output_dir).map_err(|e| BuildError::Channel {
                channel: output_dir.display().to_string(),
                reason: e.to_string(),
            })?;
        let mut channels = vec![output_channel.clone()];
        channels.extend(options.channels.iter().cloned());
        let client = reqwest::Client::builder()
            .user_agent(concat!("cleave/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BuildError::Channel {
                channel: "http".into(),
                reason: e.to_string(),
            })?;
        let envs = Environments::new(channels, &options.cache_dir, client.clone())?;
        let sources = SourceCache::new(options.cache_dir.join("src"), client);
        let (store, scratch) = match options.cache_mode {
            CacheMode::ReadWrite => (Store::open(options.cache_dir.join("staging"))?, None),
            CacheMode::Off => {
                std::fs::create_dir_all(&options.cache_dir).map_err(BuildError::io(format!(
                    "creating {}",
                    options.cache_dir.display()
                )))?;
                // Beside the real store, so that restores can still clone.
                let dir = tempfile::Builder::new()
                    .prefix("staging-scratch-")
                    .tempdir_in(&options.cache_dir)
                    .map_err(BuildError::io(format!(
                        "creating a scratch store in {}",
                        options.cache_dir.display()
                    )))?;
                (Store::open(dir.path())?, Some(dir))
            }
        };
        let levels = Levels {
            remotes: options.remotes.clone(),
            helpers: options.helpers.clone(),
            platform: options.target_platform.to_string(),
        };
        let compile_levels = match options.cache_mode {
            CacheMode::ReadWrite if options.compile_cache.enabled && !levels.is_empty() => {
                let file =
                    write_levels(&options.cache_dir, &levels).map_err(BuildError::io(format!(
                        "writing the cache levels for compile calls into {}",
                        options.cache_dir.display()
                    )))?;
                Some(file)
            }
            _ => None,
        };
        let remotes = match options.cache_mode {
            CacheMode::ReadWrite => Remotes::new(options.remotes.clone(), &store)
                .with_helpers(options.helpers.clone(), options.target_platform.as_str()),
            CacheMode::Off => Remotes::new(Vec::new(), &store),
        };
        Ok(Builder {
            options: BuildOptions {
                output_dir,
                ..options
            },
            envs,
            sources,
            store,
            remotes,
            compile_levels,
            _scratch: scratch,
            output_channel,
            current: 0,
            staged: HashMap::new(),
            siblings: HashMap::new(),
            claims: BTreeMap::new(),
            locks: Vec::new(),
            entries: HashMap::new(),
            scratch: None,
            made: Vec::new(),
            reporter: Arc::new(Silent),
        })
    }

    /// Reports events and progress to `reporter` (nothing is reported by
    /// default).
    pub fn with_reporter(mut self, reporter: Arc<dyn Reporter>) -> Self {
        if let Some(cache) = reporter.cache() {
            self.remotes.set_reporter(cache);
        }
        self.envs.set_reporter(reporter.clone());
        self.reporter = reporter;
        self
    }

    /// The keys of the recipe's staging builds and package outputs, in
    /// build order, solving their environments but building nothing.
    pub fn keys(&mut self, recipe: &RenderedRecipe) -> Vec<CacheKey> {
        let mut keys = Vec::new();
        let mut staging_keys: HashMap<(String, String), Digest> = HashMap::new();
        for output in &recipe.outputs {
            match output {
                RenderedOutput::Staging(staging) => {
                    let what = format!("staging `{}`", staging.name);
                    let reqs = &staging.requirements;
                    let key = self
                        .solve(&reqs.build, EnvKind::Build, &what)
                        .and_then(|build| {
                            let host = self.solve(&reqs.host, EnvKind::Host, &what)?;
                            self.key_inputs(staging, &recipe.recipe_dir, &build, &host)
                        })
                        .map(|inputs| (inputs.key(), inputs))
                        .map_err(|e| e.to_string());
                    if let Ok((key, _)) = &key {
                        staging_keys.insert((staging.name.clone(), staging.hash.clone()), *key);
                    }
                    keys.push(CacheKey {
                        kind: "staging",
                        name: staging.name.clone(),
                        key,
                    });
                }
                RenderedOutput::Package(package) => {
                    let staging = package
                        .inherit
                        .as_ref()
                        .and_then(|i| staging_keys.get(&(i.from.clone(), i.hash.clone())))
                        .copied();
                    let key = self
                        .package_key(package, staging.as_ref(), &recipe.recipe_dir)
                        .map_err(|e| e.to_string());
                    keys.push(CacheKey {
                        kind: "package",
                        name: package.name.as_normalized().to_string(),
                        key,
                    });
                }
            }
        }
        keys
    }

    /// What a key is computed from besides the section itself: the recipe
    /// dir, the solved environments, the platforms, the siblings so far.
    fn key_context<'a>(
        &'a self,
        recipe_dir: &'a Path,
        (build, host): (&'a [RepoDataRecord], &'a [RepoDataRecord]),
        fingerprints: &'a Fingerprinter,
    ) -> KeyContext<'a> {
        KeyContext {
            recipe_dir,
            build,
            host,
            target_platform: self.options.target_platform,
            build_platform: self.options.build_platform,
            fingerprints,
            siblings: &self.siblings,
        }
    }

    /// Evicts least recently used entries until the store fits in `max`.
    fn trim(&self, max: u64) -> Result<GcReport, CacheError> {
        // Cheap bound first: reading every manifest is for when it matters.
        if self.store.size_upper_bound()? <= max {
            return Ok(GcReport::default());
        }
        self.store.gc(GcPolicy {
            max_size: Some(max),
            older_than: None,
        })
    }

    /// The staging store this builder uses.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// What each remote store did in this build.
    pub fn remote_stats(&self) -> Vec<TierStats> {
        self.remotes.stats()
    }

    /// Looks an entry up in the local store, then in each remote: a remote
    /// hit is in the local store when this returns. A remote's failure is a
    /// warning and a miss.
    fn lookup(
        &mut self,
        key: &Digest,
        named: (&str, &Inputs),
        what: &str,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<Option<Entry>, CacheError> {
        let local = self.store.get(key)?;
        self.remotes.count_local(local.is_some());
        if let Some(found) = local {
            return Ok(Some(found));
        }
        let fetched = self
            .remotes
            .fetch(&self.store, key, Some(named), &mut |warning| {
                on_event(Event::Warning(&format!("{what}: {warning}")));
            });
        Ok(fetched.map(|(entry, remote)| {
            on_event(Event::Fetched {
                what,
                remote: &remote,
                bytes: entry.meta().size,
            });
            entry
        }))
    }

    /// Uploads an entry just stored to the writable remotes; a failure is
    /// a warning.
    fn share(&mut self, entry: &Entry, what: &str, on_event: &mut dyn FnMut(Event<'_>)) {
        self.remotes.push(entry, &mut |warning| {
            on_event(Event::Warning(&format!("{what}: {warning}")));
        });
    }

    /// Fresh build directories with the build and host environments
    /// installed; returns the records with their run exports filled in.
    fn prepare(
        &mut self,
        dirs: &OutputDirs,
        mut build: Vec<RepoDataRecord>,
        mut host: Vec<RepoDataRecord>,
        what: &str,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<(Vec<RepoDataRecord>, Vec<RepoDataRecord>), BuildError> {
        dirs.recreate(|| {
            on_event(Event::Waiting {
                what: "the processes of an earlier build of this key to end",
                lock: &dirs.run_lock,
            })
        })?;
        for (records, kind) in [(&mut build, EnvKind::Build), (&mut host, EnvKind::Host)] {
            let (prefix, platform) = match kind {
                EnvKind::Build => (&dirs.build_prefix, self.options.build_platform),
                _ => (&dirs.host_prefix, self.options.target_platform),
            };
            if !records.is_empty() {
                on_event(Event::Installing {
                    what,
                    kind,
                    packages: records.len(),
                });
            }
            self.envs
                .install(prefix, records.clone(), platform, what, kind)?;
            fill_from_prefix(records, prefix);
            on_event(Event::Environment {
                kind,
                packages: records.len(),
            });
        }
        Ok((build, host))
    }

    /// Solves one environment of a build.
    fn solve(
        &self,
        deps: &[Dependency],
        kind: EnvKind,
        what: &str,
    ) -> Result<Vec<RepoDataRecord>, BuildError> {
        let platform = match kind {
            EnvKind::Build => self.options.build_platform,
            _ => self.options.target_platform,
        };
        let specs: Vec<MatchSpec> = deps
            .iter()
            .filter_map(|d| match d {
                Dependency::Spec(spec) => Some(spec.clone()),
                Dependency::PinCompatible(_) => None,
            })
            .collect();
        if specs.is_empty() {
            return Ok(Vec::new());
        }
        self.reporter.event(Event::Solving { what, kind });
        let started = Instant::now();
        let records = self.envs.solve(&specs, platform, what, kind)?;
        self.reporter.event(Event::Solved {
            what,
            kind,
            packages: records.len(),
            duration: started.elapsed(),
        });
        Ok(records)
    }
}
