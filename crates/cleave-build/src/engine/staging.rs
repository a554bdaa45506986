//! Staging builds: looked up by key, run and stored on a miss, and put
//! back for each output that inherits them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cleave_cache::lock::Lock;
use cleave_cache::manifest::{Item, Manifest};
use cleave_cache::store::{Capture, Entry, Select, Target, TreeSource};
use cleave_cache::{CacheError, Digest, ErrorKind, Inputs, Store};
use cleave_recipe::model::{FileSelection, PackageOutput, StagingCache, Test};
use rattler_conda_types::RepoDataRecord;

use super::script_env::ScriptVars;
use super::{Builder, Event, causes, recorded_time};
use crate::environment::EnvKind;
use crate::error::BuildError;
use crate::layout::OutputDirs;
use crate::package::capture::{Selector, storable_entries, storable_tree};
use crate::package::licenses::LicensePatterns;
use crate::source::fetch_all;

/// Which trees of a staging entry an inheriting output gets back.
#[derive(Debug, Clone, Copy)]
pub(super) enum Trees<'a> {
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
    pub(super) fn for_output(output: &PackageOutput, licenses: &'a LicensePatterns) -> Trees<'a> {
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

/// The build directory name of `name` under `key` (see
/// [`crate::layout::key_dir_name`]).
pub(super) fn key_id(name: &str, key: &Digest, what: &str) -> Result<String, BuildError> {
    crate::layout::key_dir_name(name, key).map_err(|source| BuildError::UnsafeName {
        what: what.to_string(),
        source,
    })
}

/// What an inheriting output takes from a finished staging build.
#[derive(Debug, Clone)]
pub(super) struct StagingResult {
    pub(super) build: Vec<RepoDataRecord>,
    pub(super) host: Vec<RepoDataRecord>,
    /// The shared libraries of the host environment by file name, with
    /// their packages: the linking checks of inheriting outputs, whose
    /// prefix does not hold that environment, need them.
    pub(super) libraries: BTreeMap<String, String>,
    pub(super) staging: StagingCache,
    pub(super) recipe_dir: PathBuf,
    pub(super) inputs: Inputs,
    pub(super) key: Digest,
    pub(super) dirs: OutputDirs,
}

/// What running a staging build found: its environments, with their run
/// exports, and the libraries of its host environment.
pub(super) struct Ran {
    build: Vec<RepoDataRecord>,
    host: Vec<RepoDataRecord>,
    libraries: BTreeMap<String, String>,
}

/// The library map a staging entry keeps (file name to package name);
/// anything that is not one is none.
fn libraries_from_entry(value: &serde_json::Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
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

/// Says which files were not stored, by tree: named pipes, sockets and
/// devices a script left behind have no contents to keep, and no package
/// holds them. `left_out` were never given to the store; `skipped` are what
/// it left out itself (one made after the build looked).
pub(super) fn warn_skipped(
    what: &str,
    left_out: &[(String, PathBuf)],
    skipped: &[(String, PathBuf)],
    on_event: &mut dyn FnMut(Event<'_>),
) {
    let mut paths: Vec<String> = left_out
        .iter()
        .chain(skipped)
        .map(|(tree, path)| format!("{tree}/{}", path.display()))
        .collect();
    if paths.is_empty() {
        return;
    }
    paths.sort();
    paths.dedup();
    on_event(Event::Warning(&format!(
        "{what}: not stored, being neither files, links nor directories (named pipes, sockets, devices): {}",
        paths.join(", ")
    )));
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

impl Builder {
    pub(super) fn key_inputs(
        &self,
        staging: &StagingCache,
        recipe_dir: &Path,
        build: &[RepoDataRecord],
        host: &[RepoDataRecord],
    ) -> Result<Inputs, BuildError> {
        let fingerprints = self.store.fingerprinter();
        let ctx = self.key_context(recipe_dir, (build, host), &fingerprints);
        crate::keys::inputs(staging, &ctx)
    }

    /// Looks the staging build up by its key and runs it on a miss.
    pub(super) fn build_staging(
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
        let id = key_id(&staging.name, &key, &what)?;
        let dirs = OutputDirs::new(&self.options.staging_root, &id);
        let lock_path = self.options.staging_root.join(format!("{id}.lock"));
        let (lock, _) = Lock::exclusive(&lock_path, || {
            on_event(Event::Waiting {
                what: &what,
                lock: &lock_path,
            })
        })?;
        self.locks.push(lock);
        self.made.push(dirs.root.clone());
        let mut result = StagingResult {
            build: Vec::new(),
            host: Vec::new(),
            libraries: BTreeMap::new(),
            staging: staging.clone(),
            recipe_dir: recipe_dir.to_path_buf(),
            inputs,
            key,
            dirs,
        };
        // No entry and an unreadable one are both a miss (the store drops
        // the unreadable one). An entry this process cannot read at all is
        // built again without the cache.
        let inputs = result.inputs.clone();
        let (cached, scratch) = match self.lookup(&key, (&staging.name, &inputs), &what, on_event) {
            Ok(found) => (found, false),
            Err(e) => {
                on_event(Event::Warning(&format!(
                    "{what}: {}; building it without the cache",
                    causes(&e)
                )));
                (None, true)
            }
        };
        match cached {
            Some(entry) => {
                // The environments are not installed on a hit: their run
                // exports come from the entry.
                let kept = &entry.meta().extra["run_exports"];
                exports_from_entry(&mut build, &kept["build"]);
                exports_from_entry(&mut host, &kept["host"]);
                let saved = recorded_time(&entry.meta().extra);
                result.libraries = libraries_from_entry(&entry.meta().extra["libraries"]);
                self.entries.insert(key, entry);
                on_event(Event::StagingCached {
                    staging: &staging.name,
                    key: &key,
                    saved,
                });
                result.build = build;
                result.host = host;
            }
            None => {
                let ran = self.run_staging(&result, build, host, scratch, on_event)?;
                result.build = ran.build;
                result.host = ran.host;
                result.libraries = ran.libraries;
            }
        }
        self.claims
            .entry(self.current)
            .or_default()
            .staging(&staging.name);
        self.staged.insert(
            (self.current, staging.name.clone(), staging.hash.clone()),
            result,
        );
        Ok(())
    }

    /// Runs a staging script in fresh directories and stores its result:
    /// in the cache, or with `scratch` in a store of this build only (for
    /// when the cache cannot serve it).
    pub(super) fn run_staging(
        &mut self,
        s: &StagingResult,
        build: Vec<RepoDataRecord>,
        host: Vec<RepoDataRecord>,
        scratch: bool,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<Ran, BuildError> {
        let started = Instant::now();
        let staging = &s.staging;
        let what = format!("staging `{}`", staging.name);
        let dirs = &s.dirs;
        let (build, host) = self.prepare(dirs, build, host, &what, on_event)?;
        let libraries =
            crate::check::linking::library_names(&dirs.host_prefix).map_err(|source| {
                BuildError::Linking {
                    what: what.clone(),
                    source,
                }
            })?;
        self.envs.runtime().block_on(fetch_all(
            &staging.sources,
            &s.recipe_dir,
            &dirs.work,
            &self.sources,
            self.options.guard.with_lock(&dirs.run_lock),
            &what,
        ))?;
        let vars = ScriptVars {
            package: None,
            recipe_version: staging.version.as_deref(),
            variant: &staging.variant,
            noarch_python: false,
        };
        self.run_script(&staging.script, &vars, dirs, &s.recipe_dir, &what, on_event)?;
        // `include_files` (the seeds' `cache:`) narrows what the entry keeps.
        let keep = Selector::new(&FileSelection {
            include: staging.include_files.clone(),
            exclude: Vec::new(),
        })?;
        // A FIFO, socket or device a build tool left behind (a jobserver's
        // pipe, a test server's socket) has no contents to keep: it is left
        // out of what the store is given, so that it is never opened, and
        // named in the warning with what the store itself skipped.
        let (prefix_entries, prefix_special) = storable_entries(&dirs.host_prefix)?;
        let entries: Vec<PathBuf> = prefix_entries
            .into_iter()
            .filter(|e| keep.takes(&e.path))
            .map(|e| e.path)
            .collect();
        let (work_items, work_special) = storable_tree(&dirs.work)?;
        let work_select = match work_special.is_empty() {
            true => Select::All,
            false => Select::Only(&work_items),
        };
        let left_out: Vec<(String, PathBuf)> = prefix_special
            .into_iter()
            .filter(|path| keep.takes(path))
            .map(|path| ("prefix".to_string(), path))
            .chain(
                work_special
                    .into_iter()
                    .map(|path| ("work".to_string(), path)),
            )
            .collect();
        let extra = serde_json::json!({
            "run_exports": {
                "build": exports_of(&build),
                "host": exports_of(&host),
            },
            // What a later hit saves.
            "seconds": started.elapsed().as_secs_f64(),
            "libraries": libraries,
        });
        let capture = Capture {
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
                    select: work_select,
                },
            ],
            roots: vec![("prefix", &dirs.host_prefix), ("root", &dirs.root)],
            extra,
        };
        // The cache is an optimisation: a staging build that ran is not
        // lost because the cache cannot take it (a full disk, permissions).
        // Its outputs get it from a store of this build only.
        let cached = if scratch {
            None
        } else {
            match self.store.put(&capture) {
                Ok(stored) => Some(stored),
                Err(e) => {
                    on_event(Event::Warning(&format!(
                        "{what}: not stored in the cache: {}; it is kept for this build only",
                        causes(&e)
                    )));
                    None
                }
            }
        };
        let entry = match cached {
            Some(stored) => {
                warn_skipped(&what, &left_out, &stored.skipped, on_event);
                self.share(&stored.entry, &what, on_event);
                on_event(Event::StagingStored {
                    staging: &staging.name,
                    key: &s.key,
                    items: stored.entry.meta().items,
                    bytes: stored.entry.meta().size,
                    duration: started.elapsed(),
                });
                stored.entry
            }
            None => {
                let stored = self.scratch_store()?.put(&capture)?;
                warn_skipped(&what, &left_out, &stored.skipped, on_event);
                stored.entry
            }
        };
        self.entries.insert(s.key, entry);
        Ok(Ran {
            build,
            host,
            libraries,
        })
    }

    /// Puts the staging files into `dirs` (the output's environments are
    /// installed there already). A damaged entry is dropped, the staging
    /// build runs again, and the output's directories are made afresh.
    pub(super) fn restore_staging(
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
            Trees::PrefixAndLicenses(patterns) => self.staged_manifest(&s.key).and_then(|m| {
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
        let progress = self.reporter.cache();
        let first =
            self.staged_entry(&s.key)?
                .restore_reporting(targets, &roots, progress.as_ref());
        let mut restored = match first {
            Ok(restored) => restored,
            Err(e) => {
                // Building again helps with anything but a target in the
                // way: the entry is gone (damaged, evicted), cannot be
                // restored here, or cannot be read by this process.
                let scratch = match e.kind() {
                    ErrorKind::Target | ErrorKind::Request => {
                        return Err(BuildError::Restore {
                            staging: s.staging.name.clone(),
                            what: what.to_string(),
                            source: Box::new(e),
                        });
                    }
                    ErrorKind::Damaged => {
                        on_event(Event::Warning(&format!(
                            "{}; discarding it and building again",
                            causes(&e)
                        )));
                        false
                    }
                    ErrorKind::Unusable => {
                        on_event(Event::Warning(&format!(
                            "{}; discarding it and building again",
                            causes(&e)
                        )));
                        // Replaced by one built here.
                        self.store.remove(&s.key)?;
                        false
                    }
                    ErrorKind::Evicted => {
                        on_event(Event::Warning(&format!(
                            "{}; building it again",
                            causes(&e)
                        )));
                        false
                    }
                    ErrorKind::Io => {
                        on_event(Event::Warning(&format!(
                            "{}; building staging `{}` again without the cache",
                            causes(&e),
                            s.staging.name
                        )));
                        true
                    }
                };
                self.run_staging(s, s.build.clone(), s.host.clone(), scratch, on_event)?;
                self.prepare(
                    dirs,
                    output_envs.0.to_vec(),
                    output_envs.1.to_vec(),
                    what,
                    on_event,
                )?;
                self.staged_entry(&s.key)?
                    .restore_reporting(targets, &roots, progress.as_ref())
                    .map_err(|source| BuildError::Restore {
                        staging: s.staging.name.clone(),
                        what: what.to_string(),
                        source: Box::new(source),
                    })?
            }
        };
        on_event(Event::Restored {
            from: &s.staging.name,
            bytes: restored.bytes,
        });
        Ok(restored.trees.remove("prefix").unwrap_or_default())
    }

    /// The store entry of a staging build of this build: found by
    /// [`Builder::build_staging`] or stored by [`Builder::run_staging`].
    fn staged_entry(&self, key: &Digest) -> Result<&Entry, BuildError> {
        self.entries
            .get(key)
            .ok_or_else(|| BuildError::Cache(CacheError::Evicted { key: key.to_hex() }))
    }

    /// A store of this build only, beside its build directories, for
    /// results the cache cannot take or give back; removed with the
    /// builder.
    fn scratch_store(&mut self) -> Result<&Store, BuildError> {
        let scratch = match self.scratch.take() {
            Some(scratch) => scratch,
            None => {
                let root = &self.options.staging_root;
                std::fs::create_dir_all(root)
                    .map_err(BuildError::io(format!("creating {}", root.display())))?;
                let dir = tempfile::Builder::new()
                    .prefix(".cleave-scratch-")
                    .tempdir_in(root)
                    .map_err(BuildError::io(format!(
                        "creating a scratch store in {}",
                        root.display()
                    )))?;
                let store = Store::open(dir.path())?;
                (dir, store)
            }
        };
        Ok(&self.scratch.insert(scratch).1)
    }

    /// The items of a staging build's entry, when they can be read.
    pub(super) fn staged_manifest(&self, key: &Digest) -> Option<Manifest> {
        self.entries.get(key)?.manifest().ok()
    }
}
