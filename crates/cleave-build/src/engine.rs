//! Builds every output of a rendered recipe, in order.
//!
//! A staging build runs its script in its own directories and hands the
//! result (new prefix files and the work dir) to a [`StagingStore`]. Each
//! output that inherits it is built in the *same* directories: its
//! environments are installed, the store puts the staging files back, and
//! its own script continues from there. Paths baked into the staging build
//! (cmake caches, ninja command lines, binaries) stay valid, so nothing is
//! rewritten and nothing recompiles.
//!
//! After each package the output directory is re-indexed, so the next
//! output of the recipe can depend on it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use cleave_recipe::RenderedRecipe;
use cleave_recipe::model::{
    Dependency, IgnoreRunExports, PackageOutput, RenderedOutput, Script, StagingCache,
};
use rattler_conda_types::{Channel, MatchSpec, RepoDataRecord, Subdir};

use crate::capture::{NewEntry, Selector, new_entries};
use crate::check::{TestContext, run_tests, script_text};
use crate::env::{EnvKind, Environments, activated};
use crate::error::BuildError;
use crate::layout::OutputDirs;
use crate::package::{PackageContents, PackageFormat, WrittenPackage, write};
use crate::run_exports::{
    Exporter, ExportingEnv, RunRequirements, apply, fill_from_prefix, resolve_pins,
};
use crate::script::{ScriptRun, run};
use crate::source::{SourceCache, fetch_all};

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

/// Keeps finished staging builds for the outputs that inherit them.
///
/// The engine calls [`StagingStore::put`] after a staging script succeeded
/// and [`StagingStore::restore`] in each inheriting output's directories,
/// which are the staging build's own. The content-addressed cache of
/// cleave-cache implements this; [`ScratchStore`] is the plain version.
pub trait StagingStore {
    /// Keeps `entries` (relative to `dirs.host_prefix`) and the work dir.
    fn put(
        &mut self,
        staging: &StagingCache,
        dirs: &OutputDirs,
        entries: &[NewEntry],
    ) -> Result<(), BuildError>;

    /// Puts the kept files back into `dirs`; `false` when nothing is kept.
    fn restore(&mut self, staging: &StagingCache, dirs: &OutputDirs) -> Result<bool, BuildError>;
}

/// A staging store in a scratch directory of one invocation: every staging
/// build runs once per invocation.
#[derive(Debug)]
pub struct ScratchStore {
    dir: PathBuf,
}

impl ScratchStore {
    /// A store in `dir` (removed when the store is dropped).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ScratchStore { dir: dir.into() }
    }

    fn entry(&self, staging: &StagingCache) -> PathBuf {
        self.dir.join(staging_id(staging))
    }
}

impl Drop for ScratchStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl StagingStore for ScratchStore {
    fn put(
        &mut self,
        staging: &StagingCache,
        dirs: &OutputDirs,
        entries: &[NewEntry],
    ) -> Result<(), BuildError> {
        let entry = self.entry(staging);
        let io = |e| BuildError::io(format!("keeping the staging build in {}", entry.display()))(e);
        if entry.exists() {
            std::fs::remove_dir_all(&entry).map_err(io)?;
        }
        crate::fsutil::copy_tree(&dirs.work, &entry.join("work")).map_err(io)?;
        for e in entries {
            crate::fsutil::copy_entry(
                &dirs.host_prefix.join(&e.path),
                &entry.join("prefix").join(&e.path),
            )
            .map_err(io)?;
        }
        std::fs::create_dir_all(entry.join("prefix")).map_err(io)?;
        Ok(())
    }

    fn restore(&mut self, staging: &StagingCache, dirs: &OutputDirs) -> Result<bool, BuildError> {
        let entry = self.entry(staging);
        if !entry.is_dir() {
            return Ok(false);
        }
        let io = |e| {
            BuildError::io(format!(
                "restoring the staging build from {}",
                entry.display()
            ))(e)
        };
        crate::fsutil::copy_tree(&entry.join("work"), &dirs.work).map_err(io)?;
        crate::fsutil::copy_tree(&entry.join("prefix"), &dirs.host_prefix).map_err(io)?;
        Ok(true)
    }
}

/// `name-hash`: the directory name of a staging build.
fn staging_id(staging: &StagingCache) -> String {
    format!("{}-{}", staging.name, staging.hash)
}

/// What an inheriting output takes from a finished staging build.
#[derive(Debug, Clone)]
struct StagingResult {
    build: Vec<RepoDataRecord>,
    host: Vec<RepoDataRecord>,
    staging: StagingCache,
}

/// Builds the outputs of one rendered recipe.
pub struct Builder<'s> {
    options: BuildOptions,
    envs: Environments,
    sources: SourceCache,
    store: &'s mut dyn StagingStore,
    output_channel: Channel,
    staged: HashMap<(String, String), StagingResult>,
    /// Build directories made so far, removed after a successful build.
    made: Vec<PathBuf>,
}

impl<'s> Builder<'s> {
    /// A builder with its environments and caches set up.
    pub fn new(options: BuildOptions, store: &'s mut dyn StagingStore) -> Result<Self, BuildError> {
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
        Ok(Builder {
            options: BuildOptions {
                output_dir,
                ..options
            },
            envs,
            sources,
            store,
            output_channel,
            staged: HashMap::new(),
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
        let mut built = Vec::new();
        for output in &recipe.outputs {
            match output {
                RenderedOutput::Staging(staging) => {
                    on_event(Event::Started {
                        kind: "staging",
                        what: &staging.name,
                    });
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
        if !self.options.keep_build {
            // Only what this build made: the build root may be a directory
            // the user also keeps other things in.
            for dir in &self.made {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        Ok(built)
    }

    fn build_staging(
        &mut self,
        staging: &StagingCache,
        recipe_dir: &Path,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), BuildError> {
        let what = format!("staging `{}`", staging.name);
        let reqs = &staging.requirements;
        let (dirs, build, host) = self.prepare(
            &staging_id(staging),
            &reqs.build,
            &reqs.host,
            &what,
            on_event,
        )?;
        self.envs.runtime().block_on(fetch_all(
            &staging.sources,
            recipe_dir,
            &dirs.work,
            &self.sources,
            &what,
        ))?;
        let vars = ScriptVars {
            name: &staging.name,
            version: None,
            build_number: None,
            hash: &staging.hash,
            variant: &staging.variant,
        };
        self.run_script(&staging.script, &vars, &dirs, recipe_dir, &what, on_event)?;
        let entries = new_entries(&dirs.host_prefix)?;
        self.store.put(staging, &dirs, &entries)?;
        self.staged.insert(
            (staging.name.clone(), staging.hash.clone()),
            StagingResult {
                build,
                host,
                staging: staging.clone(),
            },
        );
        Ok(())
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
        let id = staged
            .as_ref()
            .map_or_else(|| what.clone(), |s| staging_id(&s.staging));
        let reqs = &output.requirements;
        let (dirs, build, host) = self.prepare(&id, &reqs.build, &reqs.host, &what, on_event)?;
        if let Some(s) = &staged {
            if !self.store.restore(&s.staging, &dirs)? {
                return Err(BuildError::MissingStaging {
                    what: what.clone(),
                    from: s.staging.name.clone(),
                });
            }
            on_event(Event::Restored {
                from: &s.staging.name,
            });
        }
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

        let requirements = self.run_requirements(output, &build, &host, staged.as_ref(), &what)?;
        let rendered = rendered_yaml(output)?;
        let contents = PackageContents {
            output,
            target: self.options.target_platform,
            depends: requirements.depends,
            constrains: requirements.constrains,
            prefix: &dirs.host_prefix,
            entries: &entries,
            recipe_file,
            rendered,
            timestamp: self.options.timestamp,
        };
        let written: WrittenPackage = write(
            &contents,
            &self.options.output_dir,
            &dirs.root.join("package"),
            self.options.format,
        )?;
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

    /// Run requirements with pins resolved and run exports applied.
    fn run_requirements(
        &self,
        output: &PackageOutput,
        build: &[RepoDataRecord],
        host: &[RepoDataRecord],
        staged: Option<&StagingResult>,
        what: &str,
    ) -> Result<RunRequirements, BuildError> {
        let reqs = &output.requirements;
        // Pins may refer to host packages of the staging build too.
        let mut pin_host: Vec<RepoDataRecord> = host.to_vec();
        if let Some(s) = staged {
            pin_host.extend(s.host.iter().cloned());
        }
        let base = RunRequirements {
            depends: resolve_pins(&reqs.run, &pin_host, what)?,
            constrains: resolve_pins(&reqs.run_constraints, &pin_host, what)?,
        };
        let mut exporters = vec![
            Exporter {
                env: ExportingEnv::Build,
                records: build,
                requested: &reqs.build,
                ignore: &reqs.ignore_run_exports,
            },
            Exporter {
                env: ExportingEnv::Host,
                records: host,
                requested: &reqs.host,
                ignore: &reqs.ignore_run_exports,
            },
        ];
        let inherit_exports = output.inherit.as_ref().is_some_and(|i| i.run_exports);
        if let (Some(s), true) = (staged, inherit_exports) {
            let ignore: &IgnoreRunExports = &s.staging.requirements.ignore_run_exports;
            exporters.push(Exporter {
                env: ExportingEnv::Build,
                records: &s.build,
                requested: &s.staging.requirements.build,
                ignore,
            });
            exporters.push(Exporter {
                env: ExportingEnv::Host,
                records: &s.host,
                requested: &s.staging.requirements.host,
                ignore,
            });
        }
        let mut result = apply(
            base,
            &exporters,
            &reqs.ignore_run_exports,
            output.build.noarch.is_some(),
        )?;
        // A package does not depend on itself through its own run exports.
        result
            .depends
            .retain(|d| d.split_whitespace().next() != Some(output.name.as_normalized()));
        Ok(result)
    }

    /// Fresh build directories for `id`, with the build and host
    /// environments installed; returns the solved packages of each.
    fn prepare(
        &mut self,
        id: &str,
        build: &[Dependency],
        host: &[Dependency],
        what: &str,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<(OutputDirs, Vec<RepoDataRecord>, Vec<RepoDataRecord>), BuildError> {
        let dirs = OutputDirs::new(&self.options.build_root, id);
        self.made.push(dirs.root.clone());
        dirs.recreate()
            .map_err(BuildError::io(format!("creating {}", dirs.root.display())))?;
        let build = self.environment(build, &dirs, EnvKind::Build, what, on_event)?;
        let host = self.environment(host, &dirs, EnvKind::Host, what, on_event)?;
        Ok((dirs, build, host))
    }

    /// Solves and installs one environment of a build.
    fn environment(
        &self,
        deps: &[Dependency],
        dirs: &OutputDirs,
        kind: EnvKind,
        what: &str,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<Vec<RepoDataRecord>, BuildError> {
        let (prefix, platform) = match kind {
            EnvKind::Build => (&dirs.build_prefix, self.options.build_platform),
            _ => (&dirs.host_prefix, self.options.target_platform),
        };
        let specs: Vec<MatchSpec> = deps
            .iter()
            .filter_map(|d| match d {
                Dependency::Spec(spec) => Some(spec.clone()),
                Dependency::PinCompatible(_) => None,
            })
            .collect();
        let mut records = self.envs.solve(&specs, platform, what, kind)?;
        self.envs
            .install(prefix, records.clone(), platform, what, kind)?;
        fill_from_prefix(&mut records, prefix);
        on_event(Event::Environment {
            kind,
            packages: records.len(),
        });
        Ok(records)
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
        let text = script_text(script, recipe_dir, what)?;
        let env = self.script_env(script, vars, dirs, recipe_dir)?;
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
            ("PKG_NAME", vars.name.to_string()),
            ("PKG_HASH", vars.hash.to_string()),
            ("CPU_COUNT", cpus.to_string()),
            ("target_platform", o.target_platform.to_string()),
            ("build_platform", o.build_platform.to_string()),
            ("SHLIB_EXT", shlib.to_string()),
            ("CONDA_BUILD", "1".to_string()),
            ("CONDA_BUILD_STATE", "BUILD".to_string()),
        ];
        env.extend(fixed.into_iter().map(|(k, v)| (k.to_string(), v)));
        if let Some(version) = &vars.version {
            env.insert("PKG_VERSION".into(), version.clone());
        }
        if let Some(number) = vars.build_number {
            env.insert("PKG_BUILDNUM".into(), number.to_string());
        }
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

/// Package identity as the script sees it.
struct ScriptVars<'a> {
    name: &'a str,
    version: Option<String>,
    build_number: Option<u64>,
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
