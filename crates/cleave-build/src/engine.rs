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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use cleave_cache::lock::Lock;
use cleave_cache::manifest::Item;
use cleave_cache::store::{Capture, GcPolicy, Select, Target, TreeSource};
use cleave_cache::{Digest, Inputs, Store};
use cleave_recipe::RenderedRecipe;
use cleave_recipe::model::{
    Dependency, FileSelection, PackageOutput, RenderedOutput, Script, StagingCache, Test,
};
use rattler_conda_types::{Channel, MatchSpec, RepoDataRecord, Subdir};

use crate::capture::{NewEntry, Selector, new_entries};
use crate::check::{TestContext, fill_build_names, run_tests, script_text};
use crate::claims::Claims;
use crate::env::{EnvKind, Environments, activated};
use crate::error::BuildError;
use crate::layout::OutputDirs;
use crate::licenses::LicensePatterns;
use crate::package::{PackageContents, PackageFormat, WrittenPackage, write};
use crate::run_exports::{Inherited, fill_from_prefix, for_output};
use crate::script::{ScriptRun, run};
use crate::source::{SourceCache, fetch_all};
use crate::staging_key::KeyContext;

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
    /// Per-output build directories go below this.
    pub build_root: PathBuf,
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

/// Something the build did, for the caller's progress display.
#[derive(Debug)]
pub enum Event<'a> {
    /// A staging build or package output starts.
    Started {
        /// `staging` or `package`.
        kind: &'static str,
        /// Its name (and build string for packages).
        what: &'a str,
    },
    /// An environment was solved and installed.
    Environment {
        /// Build, host or test.
        kind: EnvKind,
        /// How many packages it holds.
        packages: usize,
    },
    /// The staging files were put back for an inheriting output.
    Restored {
        /// The staging name.
        from: &'a str,
        /// Bytes of file contents written.
        bytes: u64,
    },
    /// The staging build is in the cache; its script does not run.
    StagingCached {
        /// The staging name.
        staging: &'a str,
        /// Its key.
        key: &'a Digest,
    },
    /// The staging build ran and its result is stored.
    StagingStored {
        /// The staging name.
        staging: &'a str,
        /// Its key.
        key: &'a Digest,
        /// Files, links and directories kept.
        items: usize,
        /// Bytes of file contents.
        bytes: u64,
    },
    /// Another process builds the same staging build; this one waits.
    Waiting {
        /// The staging name.
        staging: &'a str,
        /// The lock file.
        lock: &'a Path,
    },
    /// Something the user should know that does not stop the build.
    Warning(&'a str),
    /// Staging files no package took.
    Unclaimed {
        /// The staging name.
        staging: &'a str,
        /// The files, relative to the prefix.
        files: &'a [&'a PathBuf],
    },
    /// Staging files more than one package took.
    Overlapping {
        /// The staging name.
        staging: &'a str,
        /// Each file with the packages that took it.
        files: &'a [(&'a PathBuf, &'a Vec<String>)],
    },
    /// Old staging entries were evicted to keep the cache under its cap.
    Evicted {
        /// How many entries.
        entries: usize,
        /// Bytes freed.
        bytes: u64,
    },
    /// A line of script output.
    Line(&'a str),
    /// A package was written and indexed.
    Packaged(&'a BuiltPackage),
    /// A package's tests passed.
    Tested {
        /// The package.
        what: &'a str,
        /// How many tests ran.
        count: usize,
    },
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
}

/// Which trees of a staging entry an inheriting output gets back.
#[derive(Debug, Clone, Copy)]
enum Trees<'a> {
    /// The prefix only: the output just takes its share of the files.
    Prefix,
    /// The prefix and the work dir's license files.
    PrefixAndLicenses(&'a LicensePatterns),
    /// The prefix and the work dir, for a script that continues the build.
    PrefixAndWork,
}

impl<'a> Trees<'a> {
    /// The work dir goes back to an output that uses it: its script may
    /// continue the build there, and its tests may copy source files from
    /// it. The others skip restoring the source and build trees.
    ///
    /// An output that only needs its license files from the work dir gets
    /// back just those files (see [`LicensePatterns::needed`]): they are in
    /// the entry's listing, and restoring a whole build tree per output for
    /// them would cost what skipping it saves (the zstd split builds in
    /// 0.7 s warm instead of 3.0 s).
    fn for_output(output: &PackageOutput, licenses: &'a LicensePatterns) -> Trees<'a> {
        let uses_work = !output.build.script.is_empty()
            || output.tests.iter().any(|test| match test {
                Test::Script { files, .. } => !files.source.is_empty(),
                _ => false,
            });
        if uses_work {
            Trees::PrefixAndWork
        } else if !licenses.is_empty() {
            Trees::PrefixAndLicenses(licenses)
        } else {
            Trees::Prefix
        }
    }
}

/// `name-key`: the directory name of a staging build, the same wherever
/// the same staging build runs.
fn staging_id(name: &str, key: &Digest) -> String {
    format!("{name}-{}", &key.to_hex()[..16])
}

/// What an inheriting output takes from a finished staging build.
#[derive(Debug, Clone)]
struct StagingResult {
    build: Vec<RepoDataRecord>,
    host: Vec<RepoDataRecord>,
    staging: StagingCache,
    recipe_dir: PathBuf,
    inputs: Inputs,
    key: Digest,
    dirs: OutputDirs,
}

/// The key of a staging build and what it was computed from.
#[derive(Debug, Clone)]
pub struct StagingKey {
    /// The staging name.
    pub name: String,
    /// The key.
    pub key: Digest,
    /// Its inputs.
    pub inputs: Inputs,
}

/// Builds the outputs of one rendered recipe.
pub struct Builder {
    options: BuildOptions,
    envs: Environments,
    sources: SourceCache,
    store: Store,
    /// The scratch store's directory with the cache off, removed on drop.
    _scratch: Option<tempfile::TempDir>,
    output_channel: Channel,
    staged: HashMap<(String, String), StagingResult>,
    claims: Claims,
    /// Locks of the staging builds in use, held until the build ends.
    locks: Vec<Lock>,
    /// Build directories made so far, removed after a successful build.
    made: Vec<PathBuf>,
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
        crate::index::index_channel(&output_dir, &[options.target_platform])?;
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
        Ok(Builder {
            options: BuildOptions {
                output_dir,
                ..options
            },
            envs,
            sources,
            store,
            _scratch: scratch,
            output_channel,
            staged: HashMap::new(),
            claims: Claims::default(),
            locks: Vec::new(),
            made: Vec::new(),
        })
    }

    /// Builds every output of `recipe` in order; `recipe_file` goes into
    /// each package's `info/recipe/`.
    pub fn build(
        &mut self,
        recipe: &RenderedRecipe,
        recipe_file: &Path,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<Vec<BuiltPackage>, BuildError> {
        let inherited: BTreeSet<(&str, &str)> = recipe
            .outputs
            .iter()
            .filter_map(|o| match o {
                RenderedOutput::Package(p) => p
                    .inherit
                    .as_ref()
                    .map(|i| (i.from.as_str(), i.hash.as_str())),
                RenderedOutput::Staging(_) => None,
            })
            .collect();
        // Every output's settings, before the first one builds.
        for output in &recipe.outputs {
            if let RenderedOutput::Package(package) = output {
                crate::preflight::check(package)?;
            }
        }
        let mut built = Vec::new();
        let result = (|| {
            for output in &recipe.outputs {
                match output {
                    RenderedOutput::Staging(staging) => {
                        on_event(Event::Started {
                            kind: "staging",
                            what: &staging.name,
                        });
                        if !inherited.contains(&(staging.name.as_str(), staging.hash.as_str())) {
                            on_event(Event::Warning(&format!(
                                "staging `{}` is inherited by no output; it is built, and all its files are unclaimed",
                                staging.name
                            )));
                        }
                        self.build_staging(staging, &recipe.recipe_dir, on_event)?;
                    }
                    RenderedOutput::Package(package) => {
                        let id = format!(
                            "{}-{}-{}",
                            package.name.as_normalized(),
                            package.version,
                            package.build.string
                        );
                        on_event(Event::Started {
                            kind: "package",
                            what: &id,
                        });
                        built.push(self.build_package(package, recipe, recipe_file, on_event)?);
                    }
                }
            }
            self.claims.report(
                self.options.error_unclaimed,
                self.options.error_overlapping,
                on_event,
            )
        })();
        if result.is_ok() && !self.options.keep_build {
            // Only what this build made: the build root may be a directory
            // the user also keeps other things in.
            for dir in &self.made {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        self.locks.clear();
        result?;
        if let (Some(max), CacheMode::ReadWrite) =
            (self.options.max_cache_size, self.options.cache_mode)
        {
            // Cheap bound first: reading every manifest is for when it matters.
            if self.store.size_upper_bound()? > max {
                let report = self.store.gc(GcPolicy {
                    max_size: Some(max),
                    older_than: None,
                })?;
                if !report.removed.is_empty() {
                    on_event(Event::Evicted {
                        entries: report.removed.len(),
                        bytes: report.freed,
                    });
                }
            }
        }
        Ok(built)
    }

    /// The keys of the recipe's staging builds, solving their environments
    /// but building nothing.
    pub fn staging_keys(&mut self, recipe: &RenderedRecipe) -> Result<Vec<StagingKey>, BuildError> {
        let mut keys = Vec::new();
        for output in &recipe.outputs {
            if let RenderedOutput::Staging(staging) = output {
                let what = format!("staging `{}`", staging.name);
                let reqs = &staging.requirements;
                let build = self.solve(&reqs.build, EnvKind::Build, &what)?;
                let host = self.solve(&reqs.host, EnvKind::Host, &what)?;
                let inputs = self.key_inputs(staging, &recipe.recipe_dir, &build, &host)?;
                keys.push(StagingKey {
                    name: staging.name.clone(),
                    key: inputs.key(),
                    inputs,
                });
            }
        }
        Ok(keys)
    }

    /// The staging store this builder uses.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn key_inputs(
        &self,
        staging: &StagingCache,
        recipe_dir: &Path,
        build: &[RepoDataRecord],
        host: &[RepoDataRecord],
    ) -> Result<Inputs, BuildError> {
        crate::staging_key::inputs(
            staging,
            &KeyContext {
                recipe_dir,
                build,
                host,
                target_platform: self.options.target_platform,
                build_platform: self.options.build_platform,
                fingerprints: &self.store.fingerprinter(),
            },
        )
    }

    /// Looks the staging build up by its key and runs it on a miss.
    fn build_staging(
        &mut self,
        staging: &StagingCache,
        recipe_dir: &Path,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), BuildError> {
        let what = format!("staging `{}`", staging.name);
        let reqs = &staging.requirements;
        let mut build = self.solve(&reqs.build, EnvKind::Build, &what)?;
        let mut host = self.solve(&reqs.host, EnvKind::Host, &what)?;
        let inputs = self.key_inputs(staging, recipe_dir, &build, &host)?;
        let key = inputs.key();
        let id = staging_id(&staging.name, &key);
        let dirs = OutputDirs::new(&self.options.staging_root, &id);
        let lock_path = self.options.staging_root.join(format!("{id}.lock"));
        let (lock, _) = Lock::exclusive(&lock_path, || {
            on_event(Event::Waiting {
                staging: &staging.name,
                lock: &lock_path,
            })
        })?;
        self.locks.push(lock);
        self.made.push(dirs.root.clone());
        let mut result = StagingResult {
            build: Vec::new(),
            host: Vec::new(),
            staging: staging.clone(),
            recipe_dir: recipe_dir.to_path_buf(),
            inputs,
            key,
            dirs,
        };
        // No entry and an unreadable one are both a miss.
        let cached = self.store.meta(&key).ok();
        match cached {
            Some(meta) => {
                // The environments are not installed on a hit: their run
                // exports come from the entry.
                exports_from_entry(&mut build, &meta.extra["run_exports"]["build"]);
                exports_from_entry(&mut host, &meta.extra["run_exports"]["host"]);
                on_event(Event::StagingCached {
                    staging: &staging.name,
                    key: &key,
                });
                result.build = build;
                result.host = host;
            }
            None => {
                let (build, host) = self.run_staging(&result, build, host, on_event)?;
                result.build = build;
                result.host = host;
            }
        }
        self.claims.staging(&staging.name);
        self.staged
            .insert((staging.name.clone(), staging.hash.clone()), result);
        Ok(())
    }

    /// Runs a staging script in fresh directories and stores its result.
    fn run_staging(
        &mut self,
        s: &StagingResult,
        build: Vec<RepoDataRecord>,
        host: Vec<RepoDataRecord>,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<(Vec<RepoDataRecord>, Vec<RepoDataRecord>), BuildError> {
        let staging = &s.staging;
        let what = format!("staging `{}`", staging.name);
        let dirs = &s.dirs;
        let (build, host) = self.prepare(dirs, build, host, &what, on_event)?;
        self.envs.runtime().block_on(fetch_all(
            &staging.sources,
            &s.recipe_dir,
            &dirs.work,
            &self.sources,
            &what,
        ))?;
        let vars = ScriptVars {
            name: &staging.name,
            version: None,
            build_number: None,
            build_string: None,
            hash: &staging.hash,
            variant: &staging.variant,
        };
        self.run_script(&staging.script, &vars, dirs, &s.recipe_dir, &what, on_event)?;
        // `include_files` (the seeds' `cache:`) narrows what the entry keeps.
        let keep = Selector::new(&FileSelection {
            include: staging.include_files.clone(),
            exclude: Vec::new(),
        })?;
        let entries: Vec<PathBuf> = new_entries(&dirs.host_prefix)?
            .into_iter()
            .filter(|e| keep.takes(&e.path))
            .map(|e| e.path)
            .collect();
        let extra = serde_json::json!({
            "run_exports": {
                "build": exports_of(&build),
                "host": exports_of(&host),
            }
        });
        let meta = self.store.put(&Capture {
            key: s.key,
            name: &staging.name,
            inputs: &s.inputs,
            trees: vec![
                TreeSource {
                    name: "prefix",
                    dir: &dirs.host_prefix,
                    select: Select::Only(&entries),
                },
                TreeSource {
                    name: "work",
                    dir: &dirs.work,
                    select: Select::All,
                },
            ],
            roots: vec![("prefix", &dirs.host_prefix), ("root", &dirs.root)],
            extra,
        })?;
        on_event(Event::StagingStored {
            staging: &staging.name,
            key: &s.key,
            items: meta.items,
            bytes: meta.size,
        });
        Ok((build, host))
    }

    /// Puts the staging files into `dirs` (the output's environments are
    /// installed there already). A damaged entry is dropped, the staging
    /// build runs again, and the output's directories are made afresh.
    fn restore_staging(
        &mut self,
        s: &StagingResult,
        output_envs: (&[RepoDataRecord], &[RepoDataRecord]),
        trees: Trees<'_>,
        what: &str,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<Vec<PathBuf>, BuildError> {
        let dirs = &s.dirs;
        // An unreadable listing means the whole tree: the restore then
        // meets the same problem and handles it below.
        let licenses = match trees {
            Trees::PrefixAndLicenses(patterns) => self.store.manifest(&s.key).ok().and_then(|m| {
                let items = m.trees.get("work")?;
                patterns.needed(
                    items
                        .iter()
                        .map(|i| (i.path(), matches!(i, Item::Symlink { .. }))),
                )
            }),
            _ => None,
        };
        let work_select = match &licenses {
            Some(paths) => Select::Only(paths),
            None => Select::All,
        };
        let all = [
            Target {
                tree: "prefix",
                dir: &dirs.host_prefix,
                select: Select::All,
            },
            Target {
                tree: "work",
                dir: &dirs.work,
                select: work_select,
            },
        ];
        let targets = match trees {
            Trees::Prefix => &all[..1],
            Trees::PrefixAndLicenses(_) | Trees::PrefixAndWork => &all[..],
        };
        let roots = [
            ("prefix", dirs.host_prefix.as_path()),
            ("root", dirs.root.as_path()),
        ];
        let mut restored = match self.store.restore(&s.key, targets, &roots) {
            Err(e) if e.is_entry_problem() => {
                on_event(Event::Warning(&format!(
                    "{e}; discarding it and building again"
                )));
                self.store.remove(&s.key)?;
                self.run_staging(s, s.build.clone(), s.host.clone(), on_event)?;
                self.prepare(
                    dirs,
                    output_envs.0.to_vec(),
                    output_envs.1.to_vec(),
                    what,
                    on_event,
                )?;
                self.store.restore(&s.key, targets, &roots)?
            }
            other => other?,
        };
        on_event(Event::Restored {
            from: &s.staging.name,
            bytes: restored.bytes,
        });
        Ok(restored.trees.remove("prefix").unwrap_or_default())
    }

    fn build_package(
        &mut self,
        output: &PackageOutput,
        recipe: &RenderedRecipe,
        recipe_file: &Path,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<BuiltPackage, BuildError> {
        let name = output.name.as_normalized().to_string();
        let what = format!("{name}-{}-{}", output.version, output.build.string);
        let staged = match &output.inherit {
            Some(inherit) => Some(
                self.staged
                    .get(&(inherit.from.clone(), inherit.hash.clone()))
                    .cloned()
                    .ok_or_else(|| BuildError::MissingStaging {
                        what: what.clone(),
                        from: inherit.from.clone(),
                    })?,
            ),
            None => None,
        };
        // Inheriting outputs build in the staging build's own directories.
        let dirs = match &staged {
            Some(s) => s.dirs.clone(),
            None => {
                let dirs = OutputDirs::new(&self.options.build_root, &what);
                self.made.push(dirs.root.clone());
                dirs
            }
        };
        let licenses =
            LicensePatterns::new(&output.about.license_file).map_err(BuildError::license(&what))?;
        let reqs = &output.requirements;
        let build = self.solve(&reqs.build, EnvKind::Build, &what)?;
        let host = self.solve(&reqs.host, EnvKind::Host, &what)?;
        let (build, host) = self.prepare(&dirs, build, host, &what, on_event)?;
        let staging_files = match &staged {
            Some(s) => {
                let trees = Trees::for_output(output, &licenses);
                self.restore_staging(s, (&build, &host), trees, &what, on_event)?
            }
            None => Vec::new(),
        };
        self.envs.runtime().block_on(fetch_all(
            &output.sources,
            &recipe.recipe_dir,
            &dirs.work,
            &self.sources,
            &what,
        ))?;
        let vars = ScriptVars {
            name: &name,
            version: Some(output.version.to_string()),
            build_number: Some(output.build.number),
            build_string: Some(&output.build.string),
            hash: output.build.string.split('_').next().unwrap_or_default(),
            variant: &output.variant,
        };
        self.run_script(
            &output.build.script,
            &vars,
            &dirs,
            &recipe.recipe_dir,
            &what,
            on_event,
        )?;

        let selector = Selector::new(&output.build.files)?;
        let entries: Vec<NewEntry> = new_entries(&dirs.host_prefix)?
            .into_iter()
            .filter(|e| selector.takes(&e.path))
            .collect();
        if let Some(s) = &staged {
            let taken = entries.iter().map(|e| &e.path);
            self.claims
                .record(&s.staging.name, &staging_files, &name, taken);
        }

        let license_files = licenses
            .find(&dirs.work, &recipe.recipe_dir)
            .map_err(BuildError::license(&what))?;
        for dest in &license_files.overridden {
            on_event(Event::Warning(&format!(
                "{what}: license file {} of the recipe dir replaces the work dir's",
                dest.display()
            )));
        }
        let python =
            crate::python::prepare(output, &dirs.host_prefix, entries).map_err(|source| {
                BuildError::Python {
                    what: what.clone(),
                    source,
                }
            })?;
        let inherited = staged.as_ref().map(|s| Inherited {
            staging: &s.staging,
            build: &s.build,
            host: &s.host,
        });
        let requirements = for_output(output, &build, &host, inherited, &what)?;
        let rendered = rendered_yaml(output)?;
        let contents = PackageContents {
            output,
            target: self.options.target_platform,
            depends: requirements.depends,
            constrains: requirements.constrains,
            prefix: &dirs.host_prefix,
            build_prefix: &dirs.build_prefix,
            from_host: &requirements.from_host,
            entries: &python.entries,
            moved: &python.moved,
            link: python.link.as_ref(),
            recipe_file,
            rendered,
            timestamp: self.options.timestamp,
            licenses: &license_files.files,
        };
        let written: WrittenPackage = write(
            &contents,
            &self.options.output_dir,
            &dirs.root.join("package"),
            self.options.format,
        )?;
        for warning in &written.warnings {
            on_event(Event::Warning(&format!("{what}: {warning}")));
        }
        let subdir = written
            .path
            .parent()
            .and_then(Path::file_name)
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        crate::index::index_channel(&self.options.output_dir, &[self.options.target_platform])?;
        self.envs
            .channel_changed(&self.output_channel, &[self.options.target_platform]);
        let package = BuiltPackage {
            name: name.clone(),
            version: output.version.to_string(),
            build: output.build.string.clone(),
            subdir,
            size: written.size,
            files: written.paths.len(),
            path: written.path.clone(),
        };
        on_event(Event::Packaged(&package));

        if self.options.test == TestMode::Native && !output.tests.is_empty() {
            let ctx = TestContext {
                output,
                paths: &written.paths,
                dir: &dirs.root.join("test"),
                recipe_dir: &recipe.recipe_dir,
                work_dir: &dirs.work,
                target: self.options.target_platform,
                build_platform: self.options.build_platform,
                base_env: &self.options.base_env,
            };
            let count = run_tests(&ctx, &self.envs, &mut |line| on_event(Event::Line(line)))?;
            on_event(Event::Tested { what: &name, count });
        }
        Ok(package)
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
        dirs.recreate()
            .map_err(BuildError::io(format!("creating {}", dirs.root.display())))?;
        for (records, kind) in [(&mut build, EnvKind::Build), (&mut host, EnvKind::Host)] {
            let (prefix, platform) = match kind {
                EnvKind::Build => (&dirs.build_prefix, self.options.build_platform),
                _ => (&dirs.host_prefix, self.options.target_platform),
            };
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
        self.envs.solve(&specs, platform, what, kind)
    }

    fn run_script(
        &self,
        script: &Script,
        vars: &ScriptVars<'_>,
        dirs: &OutputDirs,
        recipe_dir: &Path,
        what: &str,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), BuildError> {
        if script.is_empty() {
            return Ok(());
        }
        if let Some(interpreter) = script.interpreter.as_deref().filter(|i| *i != "bash") {
            return Err(BuildError::Unsupported {
                what: what.to_string(),
                feature: format!("script interpreter `{interpreter}`"),
            });
        }
        let env = self.script_env(script, vars, dirs, recipe_dir)?;
        let text = fill_build_names(script, script_text(script, recipe_dir, what)?, &env, what)?;
        let cwd = match &script.cwd {
            Some(cwd) => dirs.work.join(cwd),
            None => dirs.work.clone(),
        };
        run(
            &ScriptRun {
                text,
                cwd: &cwd,
                env,
                log: &dirs.log,
                work_dir: dirs.work.clone(),
                what: what.to_string(),
            },
            &mut |line| on_event(Event::Line(line)),
        )
    }

    /// The variables a build script sees, with build and host activated.
    fn script_env(
        &self,
        script: &Script,
        vars: &ScriptVars<'_>,
        dirs: &OutputDirs,
        recipe_dir: &Path,
    ) -> Result<BTreeMap<String, String>, BuildError> {
        let o = &self.options;
        let mut env = o.base_env.clone();
        let path = |p: &Path| p.display().to_string();
        let shlib = match o.target_platform.as_str() {
            s if s.starts_with("osx") => ".dylib",
            s if s.starts_with("win") => ".dll",
            _ => ".so",
        };
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let fixed = [
            ("PREFIX", path(&dirs.host_prefix)),
            ("BUILD_PREFIX", path(&dirs.build_prefix)),
            ("SRC_DIR", path(&dirs.work)),
            ("RECIPE_DIR", path(recipe_dir)),
            ("BUILD_DIR", path(&dirs.root)),
            ("PKG_NAME", vars.name.to_string()),
            ("PKG_HASH", vars.hash.to_string()),
            ("CPU_COUNT", cpus.to_string()),
            ("target_platform", o.target_platform.to_string()),
            ("host_platform", o.target_platform.to_string()),
            ("build_platform", o.build_platform.to_string()),
            ("SUBDIR", o.target_platform.to_string()),
            ("ARCH", arch_name(o.target_platform)),
            ("SHLIB_EXT", shlib.to_string()),
            (
                "PYTHON",
                path(&python_path(&dirs.host_prefix, o.target_platform)),
            ),
            ("CONDA_BUILD", "1".to_string()),
            ("CONDA_BUILD_STATE", "BUILD".to_string()),
            (
                "CONDA_BUILD_CROSS_COMPILATION",
                u8::from(o.target_platform != o.build_platform).to_string(),
            ),
        ];
        env.extend(fixed.into_iter().map(|(k, v)| (k.to_string(), v)));
        if let Some(version) = &vars.version {
            env.insert("PKG_VERSION".into(), version.clone());
        }
        if let Some(number) = vars.build_number {
            env.insert("PKG_BUILDNUM".into(), number.to_string());
        }
        if let Some(build_string) = vars.build_string {
            env.insert("PKG_BUILD_STRING".into(), build_string.to_string());
        }
        if let Some((version, stdlib)) = host_python(&dirs.host_prefix) {
            env.insert("PY_VER".into(), version);
            env.insert("SP_DIR".into(), path(&stdlib.join("site-packages")));
            env.insert("STDLIB_DIR".into(), path(&stdlib));
        }
        env.extend(crate::python::build_env(&dirs.root));
        for (key, value) in vars.variant {
            if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                env.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        for secret in &script.secrets {
            if let Ok(value) = std::env::var(secret) {
                env.insert(secret.clone(), value);
            }
        }
        env.extend(script.env.clone());
        activated(
            &[&dirs.build_prefix, &dirs.host_prefix],
            o.target_platform,
            env,
        )
    }
}

/// conda-build's `ARCH`: `64` and `32` for x86, else the architecture.
fn arch_name(platform: Subdir) -> String {
    match platform.arch() {
        Some(rattler_conda_types::Arch::X86_64) => "64".into(),
        Some(rattler_conda_types::Arch::X86) => "32".into(),
        Some(arch) => arch.as_str().into(),
        None => String::new(),
    }
}

/// Where the host environment's python is (or would be).
fn python_path(prefix: &Path, platform: Subdir) -> PathBuf {
    if platform.is_windows() {
        prefix.join("python.exe")
    } else {
        prefix.join("bin/python")
    }
}

/// The version (`3.12`) and standard library directory of a python
/// installed in `prefix`, if there is one.
fn host_python(prefix: &Path) -> Option<(String, PathBuf)> {
    std::fs::read_dir(prefix.join("lib"))
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.path().join("site-packages").is_dir())
        .find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let version = name.strip_prefix("python")?;
            let valid = version.split('.').count() == 2
                && version.split('.').all(|p| p.parse::<u32>().is_ok());
            valid.then(|| (version.to_string(), e.path()))
        })
}

/// Package identity as the script sees it.
struct ScriptVars<'a> {
    name: &'a str,
    version: Option<String>,
    build_number: Option<u64>,
    build_string: Option<&'a str>,
    hash: &'a str,
    variant: &'a BTreeMap<String, String>,
}

/// The output as YAML, for `info/recipe/rendered_recipe.yaml`. Going
/// through JSON values gives plain mappings instead of YAML enum tags.
fn rendered_yaml(output: &PackageOutput) -> Result<String, BuildError> {
    serde_json::to_value(output)
        .map_err(|e| e.to_string())
        .and_then(|v| serde_yaml_ng::to_string(&v).map_err(|e| e.to_string()))
        .map_err(|e| BuildError::Io {
            context: "rendering the recipe for info/recipe".into(),
            source: std::io::Error::other(e),
        })
}

/// The run exports of each record that has them, by package name.
fn exports_of(records: &[RepoDataRecord]) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = records
        .iter()
        .filter_map(|r| {
            let exports = r.package_record.run_exports.as_ref()?;
            Some((
                r.package_record.name.as_normalized().to_string(),
                serde_json::to_value(exports).ok()?,
            ))
        })
        .collect();
    serde_json::Value::Object(map)
}

/// Fills in run exports kept in a cache entry, for records whose repodata
/// did not carry them.
fn exports_from_entry(records: &mut [RepoDataRecord], kept: &serde_json::Value) {
    for record in records
        .iter_mut()
        .filter(|r| r.package_record.run_exports.is_none())
    {
        let name = record.package_record.name.as_normalized();
        record.package_record.run_exports = kept
            .get(name)
            .and_then(|v| serde_json::from_value(v.clone()).ok());
    }
}
