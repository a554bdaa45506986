//! One package output: its environments, the staging files it inherits,
//! its script, the files it takes, the package and its tests.
//!
//! A package output is a cached action as a staging build is: its key (see
//! [`crate::keys::output_inputs`]) names the archive it produces. When the
//! store has the archive, it is put into the output channel as it was built
//! and nothing runs; otherwise the output is built in directories named by
//! its key under the staging root (never below the output dir), so that its
//! paths, and with them its package's bytes, are the same for any output
//! dir. An archive is stored only after its tests passed, or under a key
//! that says they did not run: an untested package never passes as tested.

use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use cleave_cache::foreign::printable;
use cleave_cache::lock::Lock;
use cleave_cache::manifest::Item;
use cleave_cache::store::{Capture, Entry, Select, Target, TreeSource};
use cleave_cache::{CacheError, Digest, ErrorKind, Inputs};
use cleave_channel::local::{Overwrite, Transfer};
use cleave_recipe::RenderedRecipe;
use cleave_recipe::model::PackageOutput;
use rattler_conda_types::{Channel, RepoDataRecord};

use super::script_env::{PackageVars, ScriptVars};
use super::staging::{StagingResult, Trees, key_id};
use super::{Builder, BuiltPackage, Event, TestMode, causes, recorded_time};
use crate::check::package_tests::{Subject, TestContext, TestEnv, run_tests};
use crate::environment::EnvKind;
use crate::environment::run_exports::{Inherited, for_output};
use crate::error::BuildError;
use crate::layout::OutputDirs;
use crate::package::capture::{NewEntry, package_entries};
use crate::package::licenses::LicensePatterns;
use crate::package::{PackageContents, WrittenPackage, write};
use crate::source::fetch_all;

/// The store key of a package output's archive: its key, and whether its
/// tests ran.
fn entry_inputs(inputs: &Inputs, tested: bool) -> Inputs {
    let mut inputs = inputs.clone();
    inputs.insert("tests", if tested { "passed" } else { "not run" });
    inputs
}

impl Builder {
    pub(super) fn build_package(
        &mut self,
        output: &PackageOutput,
        recipe: &RenderedRecipe,
        recipe_file: &Path,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<BuiltPackage, BuildError> {
        let started = Instant::now();
        let name = output.name.as_normalized().to_string();
        let what = format!("{name}-{}-{}", output.version, output.build.string);
        let staged = match &output.inherit {
            Some(inherit) => Some(
                self.staged
                    .get(&(self.current, inherit.from.clone(), inherit.hash.clone()))
                    .cloned()
                    .ok_or_else(|| BuildError::MissingStaging {
                        what: what.clone(),
                        from: inherit.from.clone(),
                    })?,
            ),
            None => None,
        };
        let (build_reqs, host_reqs) = crate::environment::requirements(output);
        let build = self.solve(&build_reqs, EnvKind::Build, &what)?;
        let host = self.solve(&host_reqs, EnvKind::Host, &what)?;
        let inputs = self.output_inputs(
            output,
            staged.as_ref().map(|s| &s.key),
            &recipe.recipe_dir,
            (&build, &host),
        )?;
        let key = inputs.key();
        tracing::debug!(output = %what, key = %key.to_hex(), "cache key");
        let id = key_id(&name, &key, &what)?;
        let lock_path = self.options.staging_root.join(format!("{id}.lock"));
        let label = format!("package {what}");
        let (lock, _) = Lock::exclusive(&lock_path, || {
            on_event(Event::Waiting {
                what: &label,
                lock: &lock_path,
            })
        })?;
        self.locks.push(lock);
        // Without tests to run, a package is as tested as it gets.
        let tested = self.options.test == TestMode::Native || output.tests.is_empty();
        if let Some(package) =
            self.reuse(output, &key, &inputs, tested, staged.as_ref(), on_event)?
        {
            return Ok(package);
        }

        // Inheriting outputs build in the staging build's own directories,
        // the others in their own, named by key.
        let dirs = match &staged {
            Some(s) => s.dirs.clone(),
            None => {
                let dirs = OutputDirs::new(&self.options.staging_root, &id);
                self.made.push(dirs.root.clone());
                dirs
            }
        };
        let dirs = if output.build.merge_build_and_host_envs {
            dirs.merged()
        } else {
            dirs
        };
        let licenses =
            LicensePatterns::new(&output.about.license_file).map_err(BuildError::license(&what))?;
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
            self.options.guard.with_lock(&dirs.run_lock),
            &what,
        ))?;
        let vars = ScriptVars {
            package: Some(PackageVars {
                name: &name,
                version: output.version.to_string(),
                build_number: output.build.number,
                build_string: &output.build.string,
                hash: output.build.string.split('_').next().unwrap_or_default(),
            }),
            recipe_version: None,
            variant: &output.variant,
            noarch_python: output.build.noarch == Some(cleave_recipe::model::NoArch::Python),
        };
        self.run_script(
            &output.build.script,
            &vars,
            &dirs,
            &recipe.recipe_dir,
            &what,
            on_event,
        )?;

        let entries: Vec<NewEntry> = package_entries(
            &dirs.host_prefix,
            output.build.files.as_ref(),
            &output.build.always_include_files,
        )?;
        // The staging files this package took, kept with its entry so that
        // a reuse still counts them for the unclaimed-files report.
        let claimed: Vec<PathBuf> = match &staged {
            Some(s) => {
                let from_staging: std::collections::BTreeSet<&PathBuf> =
                    staging_files.iter().collect();
                let taken: Vec<PathBuf> = entries
                    .iter()
                    .filter(|e| from_staging.contains(&e.path))
                    .map(|e| e.path.clone())
                    .collect();
                self.claims.entry(self.current).or_default().record(
                    &s.staging.name,
                    &staging_files,
                    &name,
                    taken.iter(),
                );
                taken
            }
            None => Vec::new(),
        };

        let license_files = licenses
            .find(&dirs.work, &recipe.recipe_dir)
            .map_err(BuildError::license(&what))?;
        for dest in &license_files.overridden {
            on_event(Event::Warning(&format!(
                "{what}: license file {} of the recipe dir replaces the work dir's",
                dest.display()
            )));
        }
        let python = crate::package::python::prepare(output, &dirs.host_prefix, entries).map_err(
            |source| BuildError::Python {
                what: what.clone(),
                source,
            },
        )?;
        let inherited = staged.as_ref().map(|s| Inherited {
            staging: &s.staging,
            build: &s.build,
            host: &s.host,
        });
        let requirements = for_output(output, &build, &host, inherited, &what)?;
        let rendered = rendered_yaml(output)?;
        let channels = crate::package::metadata::about_channels(&self.options.channels);
        let no_libraries = std::collections::BTreeMap::new();
        let contents = PackageContents {
            output,
            target: self.options.target_platform,
            depends: requirements.depends,
            constrains: requirements.constrains,
            prefix: &dirs.host_prefix,
            build_prefix: &dirs.build_prefix,
            from_host: &requirements.from_host,
            inherited_libraries: staged.as_ref().map_or(&no_libraries, |s| &s.libraries),
            entries: &python.entries,
            moved: &python.moved,
            link: python.link.as_ref(),
            recipe_file,
            recipe_dir: &recipe.recipe_dir,
            work_dir: &dirs.work,
            rendered,
            timestamp: self.options.timestamp,
            licenses: &license_files.files,
            channels: &channels,
        };
        // A package with tests to run is written into a channel of its own
        // and goes into the output channel only once they pass: a solve
        // from the output channel never sees a package that failed them.
        let testing = self.options.test == TestMode::Native && !output.tests.is_empty();
        let pending = dirs.root.join("pending");
        if pending.exists() {
            std::fs::remove_dir_all(&pending)
                .map_err(BuildError::io(format!("clearing {}", pending.display())))?;
        }
        let mut written: WrittenPackage = write(
            &contents,
            if testing {
                &pending
            } else {
                &self.options.output_dir
            },
            &dirs.root.join("package"),
            self.options.format,
        )?;
        for warning in &written.warnings {
            on_event(Event::Warning(&format!("{what}: {warning}")));
        }
        if testing {
            on_event(Event::Testing {
                what: &name,
                count: output.tests.len(),
            });
            let count = self.test_pending(output, recipe, &dirs, &written, &pending, on_event)?;
            on_event(Event::Tested { what: &name, count });
            let file = cleave_channel::package::inspect(&written.path)?;
            let added = cleave_channel::local::add(
                &self.options.output_dir,
                &file,
                Transfer::Move,
                Overwrite::Replace,
            )?;
            written.path = added.path;
        }
        let package = self.published(
            output,
            &written.path,
            written.size,
            written.paths.len(),
            false,
        )?;
        on_event(Event::Packaged(&package));

        // The package is in the channel: a cache that cannot take it (a
        // full disk) costs a rebuild next time, not this build.
        let built = (&written, &claimed[..], started.elapsed());
        match self.store_package(&name, &key, &inputs, tested, built) {
            Ok((entry_key, stored)) => {
                on_event(Event::PackageStored {
                    what: &what,
                    key: &entry_key,
                });
                if let Some(entry) = stored {
                    self.share(&entry, &what, on_event);
                }
            }
            Err(e) => on_event(Event::Warning(&format!(
                "{what}: not stored in the cache: {}",
                causes(&e)
            ))),
        }
        Ok(package)
    }

    /// Runs the tests of the package written into the channel `pending`;
    /// a failure moves it to `<output>/broken/`, out of every channel.
    fn test_pending(
        &mut self,
        output: &PackageOutput,
        recipe: &RenderedRecipe,
        dirs: &OutputDirs,
        written: &WrittenPackage,
        pending: &Path,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<usize, BuildError> {
        let subdir = written
            .path
            .parent()
            .and_then(Path::file_name)
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        cleave_channel::index::index_channel(pending, &[subdir.as_str()])?;
        let channel = Channel::try_from_directory(pending).map_err(|e| BuildError::Channel {
            channel: pending.display().to_string(),
            reason: e.to_string(),
        })?;
        // The same directory served an earlier output of this staging
        // build: what was read of it then is stale.
        self.envs
            .channel_changed(&channel, &[self.options.target_platform]);
        let subject = Subject::of(output);
        let ctx = TestContext {
            output,
            paths: &written.paths,
            recipe_dir: &recipe.recipe_dir,
            work_dir: &dirs.work,
            env: TestEnv {
                subject: &subject,
                dir: &dirs.root.join("test"),
                guard: self.options.guard.with_lock(&dirs.run_lock),
                target: self.options.target_platform,
                build_platform: self.options.build_platform,
                base_env: &self.options.base_env,
                channels: std::slice::from_ref(&channel),
            },
        };
        match run_tests(&ctx, &self.envs, on_event) {
            Ok(count) => Ok(count),
            Err(failure) => {
                let broken = self.options.output_dir.join("broken");
                let file = written.path.file_name().unwrap_or_default();
                let path = broken.join(file);
                std::fs::create_dir_all(&broken)
                    .and_then(|()| std::fs::rename(&written.path, &path))
                    .map_err(BuildError::io(format!(
                        "moving {} to {}",
                        written.path.display(),
                        broken.display()
                    )))?;
                Err(BuildError::Broken {
                    what: format!(
                        "{}-{}-{}",
                        output.name.as_normalized(),
                        output.version,
                        output.build.string
                    ),
                    path,
                    source: Box::new(failure),
                })
            }
        }
    }

    /// The key a package output's entry has (with whether its tests run)
    /// and its inputs, for `cleave cache explain`; records it as a sibling
    /// of the outputs after it.
    pub(super) fn package_key(
        &mut self,
        output: &PackageOutput,
        staging: Option<&Digest>,
        recipe_dir: &Path,
    ) -> Result<(Digest, Inputs), BuildError> {
        let what = format!(
            "{}-{}-{}",
            output.name.as_normalized(),
            output.version,
            output.build.string
        );
        let (build_reqs, host_reqs) = crate::environment::requirements(output);
        let build = self.solve(&build_reqs, EnvKind::Build, &what)?;
        let host = self.solve(&host_reqs, EnvKind::Host, &what)?;
        let inputs = self.output_inputs(output, staging, recipe_dir, (&build, &host))?;
        let file_name = format!("{what}{}", self.options.format.extension());
        self.siblings.insert(file_name, inputs.key());
        let tested = self.options.test == TestMode::Native || output.tests.is_empty();
        let entry = entry_inputs(&inputs, tested);
        Ok((entry.key(), entry))
    }

    fn output_inputs(
        &self,
        output: &PackageOutput,
        staging: Option<&Digest>,
        recipe_dir: &Path,
        (build, host): (&[RepoDataRecord], &[RepoDataRecord]),
    ) -> Result<Inputs, BuildError> {
        let fingerprints = self.store.fingerprinter();
        let format = self.options.format.extension().trim_start_matches('.');
        let ctx = self.key_context(recipe_dir, (build, host), &fingerprints);
        crate::keys::output_inputs(output, staging, format, &ctx)
    }

    /// The package from the store, when it has it (tested, if tests run),
    /// put into the output channel.
    fn reuse(
        &mut self,
        output: &PackageOutput,
        key: &Digest,
        inputs: &Inputs,
        tested: bool,
        staged: Option<&StagingResult>,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<Option<BuiltPackage>, BuildError> {
        let name = output.name.as_normalized();
        let what = format!("{name}-{}-{}", output.version, output.build.string);
        let candidates: Vec<bool> = if tested {
            vec![true]
        } else {
            vec![true, false]
        };
        for tested in candidates {
            let entry_inputs = entry_inputs(inputs, tested);
            let entry = entry_inputs.key();
            // No entry and an unreadable one are both a miss (the store
            // drops the unreadable one); one this process cannot read is
            // built again.
            let found = match self.lookup(&entry, (name, &entry_inputs), &what, on_event) {
                Ok(found) => found,
                Err(e) => {
                    on_event(Event::Warning(&format!(
                        "{}; building {what} again",
                        causes(&e)
                    )));
                    None
                }
            };
            let Some(found) = found else {
                continue;
            };
            let meta = found.meta();
            let subdir = if output.build.noarch.is_some() {
                "noarch"
            } else {
                self.options.target_platform.as_str()
            };
            let file_name = format!("{what}{}", self.options.format.extension());
            if let Err(reason) = holds_archive(&found, subdir, &file_name) {
                // Sealed, so written as it is: dropped, or it would stand
                // in the way of the package built now.
                let _ = self.store.remove(&entry);
                on_event(Event::Warning(&format!(
                    "cache entry {entry} is refused: {reason}; building {what} again"
                )));
                continue;
            }
            let dir = self.options.output_dir.join(subdir);
            // Restored beside its final name and renamed into place: a
            // damaged blob must not leave half a package in the channel.
            std::fs::create_dir_all(&dir)
                .map_err(BuildError::io(format!("creating {}", dir.display())))?;
            let scratch = cleave_channel::partial::PartialDir::new(&dir)
                .map_err(BuildError::io(format!("restoring into {}", dir.display())))?;
            let target = Target {
                tree: "package",
                dir: scratch.path(),
                select: Select::All,
            };
            if let Err(e) = found.restore(&[target], &[]) {
                match e.kind() {
                    // The restore went to a directory of its own in the
                    // output channel: a conflict there is no cache problem.
                    ErrorKind::Target | ErrorKind::Request => return Err(e.into()),
                    // The store has dropped a damaged entry; an evicted or
                    // unreadable one is built again.
                    _ => {
                        on_event(Event::Warning(&format!(
                            "{}; building {what} again",
                            causes(&e)
                        )));
                        continue;
                    }
                }
            }
            let path = dir.join(&file_name);
            std::fs::rename(scratch.path().join(&file_name), &path)
                .map_err(BuildError::io(format!("writing {}", path.display())))?;
            let size = std::fs::metadata(&path)
                .map_err(BuildError::io(format!("reading {}", path.display())))?
                .len();
            if let Some(s) = staged {
                // Only compared with the staging build's paths: one that
                // could not be one of them is dropped.
                let claimed: Vec<PathBuf> = meta.extra["claimed"]
                    .as_array()
                    .map(|paths| {
                        paths
                            .iter()
                            .filter_map(|p| p.as_str().map(PathBuf::from))
                            .filter(|p| p.components().all(|c| matches!(c, Component::Normal(_))))
                            .collect()
                    })
                    .unwrap_or_default();
                let staging_files: Vec<PathBuf> = self
                    .staged_manifest(&s.key)
                    .and_then(|m| m.trees.get("prefix").cloned())
                    .unwrap_or_default()
                    .iter()
                    .filter(|item| !matches!(item, Item::Dir { .. }))
                    .map(|item| item.path().to_path_buf())
                    .collect();
                self.claims.entry(self.current).or_default().record(
                    &s.staging.name,
                    &staging_files,
                    name,
                    claimed.iter(),
                );
            }
            let files = meta.extra["files"].as_u64().unwrap_or_default() as usize;
            let mut package = self.published(output, &path, size, files, true)?;
            package.saved = recorded_time(&meta.extra);
            self.siblings.insert(file_name, *key);
            on_event(Event::Reused {
                what: &what,
                key: &entry,
                saved: package.saved,
            });
            return Ok(Some(package));
        }
        Ok(None)
    }

    /// Indexes the channel after `path` landed in it, so that the next
    /// output can depend on the package.
    fn published(
        &mut self,
        output: &PackageOutput,
        path: &Path,
        size: u64,
        files: usize,
        reused: bool,
    ) -> Result<BuiltPackage, BuildError> {
        cleave_channel::index::index_channel(
            &self.options.output_dir,
            &[self.options.target_platform.as_str()],
        )?;
        self.envs
            .channel_changed(&self.output_channel, &[self.options.target_platform]);
        let subdir = path
            .parent()
            .and_then(Path::file_name)
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(BuiltPackage {
            name: output.name.as_normalized().to_string(),
            version: output.version.to_string(),
            build: output.build.string.clone(),
            subdir,
            path: path.to_path_buf(),
            size,
            files,
            reused,
            duration: Duration::ZERO,
            saved: None,
        })
    }

    /// Keeps the archive in the store under the output's key (and whether
    /// its tests ran); returns the entry's key.
    fn store_package(
        &mut self,
        name: &str,
        key: &Digest,
        inputs: &Inputs,
        tested: bool,
        (written, claimed, took): (&WrittenPackage, &[PathBuf], Duration),
    ) -> Result<(Digest, Option<Entry>), CacheError> {
        let entry_inputs = entry_inputs(inputs, tested);
        let (Some(dir), Some(file_name)) = (written.path.parent(), written.path.file_name()) else {
            return Ok((entry_inputs.key(), None));
        };
        // A later output names this package by its key, stored or not.
        self.siblings
            .insert(file_name.to_string_lossy().into_owned(), *key);
        let subdir = dir
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let only = [PathBuf::from(file_name)];
        let stored = self.store.put(&Capture {
            name,
            inputs: &entry_inputs,
            trees: vec![TreeSource {
                name: "package",
                dir,
                select: Select::Only(&only),
            }],
            // An archive is stored as it is: nothing in it is rewritten.
            roots: Vec::new(),
            extra: serde_json::json!({
                "kind": "package",
                "file": format!("{subdir}/{}", file_name.to_string_lossy()),
                "files": written.paths.len(),
                "claimed": claimed,
                // What a later reuse saves.
                "seconds": took.as_secs_f64(),
            }),
        })?;
        Ok((entry_inputs.key(), Some(stored.entry)))
    }
}

/// Whether a package entry holds exactly the archive the output's package
/// is, `<subdir>/<file_name>`: what its metadata names (where the archive
/// goes in the channel), and the only item of its tree, a regular file.
/// Checked where it is read, before anything is written: an entry's seal
/// says who wrote it, not that it is safe (`../../.ssh/authorized_keys`
/// would be sealed as well).
fn holds_archive(found: &Entry, subdir: &str, file_name: &str) -> Result<(), String> {
    let expected = format!("{subdir}/{file_name}");
    let named = found.meta().extra["file"].as_str().unwrap_or_default();
    if named != expected {
        return Err(format!(
            "it names its package {:?}, not {expected:?}",
            printable(named)
        ));
    }
    let manifest = found.manifest().map_err(|e| e.to_string())?;
    let trees: Vec<&str> = manifest.trees.keys().map(String::as_str).collect();
    let items: Vec<&Item> = manifest.trees.values().flatten().collect();
    match (trees.as_slice(), items.as_slice()) {
        (["package"], [Item::File { path, .. }]) if path == Path::new(file_name) => Ok(()),
        _ => Err(format!("it holds more or other than the file {file_name}")),
    }
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
