//! Staging builds: looked up by key, run and stored on a miss, and put
//! back for each output that inherits them.

use std::path::{Path, PathBuf};

use cleave_cache::lock::Lock;
use cleave_cache::manifest::Item;
use cleave_cache::store::{Capture, Select, Target, TreeSource};
use cleave_cache::{Digest, Inputs};
use cleave_recipe::model::{FileSelection, PackageOutput, StagingCache, Test};
use rattler_conda_types::RepoDataRecord;

use super::script_env::ScriptVars;
use super::{Builder, Event};
use crate::capture::{Selector, new_entries, storable_tree};
use crate::env::EnvKind;
use crate::error::BuildError;
use crate::keys::KeyContext;
use crate::layout::OutputDirs;
use crate::licenses::LicensePatterns;
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
    pub(super) staging: StagingCache,
    pub(super) recipe_dir: PathBuf,
    pub(super) inputs: Inputs,
    pub(super) key: Digest,
    pub(super) dirs: OutputDirs,
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

impl Builder {
    pub(super) fn key_inputs(
        &self,
        staging: &StagingCache,
        recipe_dir: &Path,
        build: &[RepoDataRecord],
        host: &[RepoDataRecord],
    ) -> Result<Inputs, BuildError> {
        crate::keys::inputs(
            staging,
            &KeyContext {
                recipe_dir,
                build,
                host,
                target_platform: self.options.target_platform,
                build_platform: self.options.build_platform,
                fingerprints: &self.store.fingerprinter(),
                siblings: &self.siblings,
            },
        )
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
    pub(super) fn run_staging(
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
            self.options.guard.with_lock(&dirs.run_lock),
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
        // A FIFO or socket a build tool left in the work dir cannot be
        // stored (reading it would block): left out, with a warning.
        let (work_items, special) = storable_tree(&dirs.work)?;
        if !special.is_empty() {
            let names: Vec<String> = special.iter().map(|p| p.display().to_string()).collect();
            on_event(Event::Warning(&format!(
                "{what}: the staging cache does not keep these FIFOs, sockets or devices of the work dir: {}",
                names.join(", ")
            )));
        }
        let work_select = match special.is_empty() {
            true => Select::All,
            false => Select::Only(&work_items),
        };
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
                    select: work_select,
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
}
