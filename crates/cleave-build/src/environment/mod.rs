//! Solves and installs the build, host and test environments.
//!
//! Repodata comes through rattler's gateway from the channels in order (the
//! output directory first, so outputs of one recipe find each other), the
//! solve is resolvo's through rattler_solve, and packages are installed by
//! rattler's installer from a shared package cache.

pub mod run_exports;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;

use cleave_recipe::model::{Dependency, PackageOutput};
use rattler::install::Installer;
use rattler_cache::package_cache::PackageCache;
use rattler_conda_types::{
    Channel, GenericVirtualPackage, MatchSpec, PackageName, RepoDataRecord, Subdir,
};
use rattler_repodata_gateway::{CacheClearMode, Gateway, SubdirSelection};
use rattler_shell::activation::{ActivationVariables, Activator, PathModificationBehavior};
use rattler_shell::shell::Bash;
use rattler_solve::{SolverImpl, SolverTask};
use rattler_virtual_packages::{VirtualPackage, VirtualPackageOverrides};

use crate::error::BuildError;

/// Which environment is being made, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvKind {
    /// `$BUILD_PREFIX`.
    Build,
    /// `$PREFIX`.
    Host,
    /// The environment a package's tests run in.
    Test,
}

impl EnvKind {
    /// `build`, `host` or `test`.
    pub fn as_str(self) -> &'static str {
        match self {
            EnvKind::Build => "build",
            EnvKind::Host => "host",
            EnvKind::Test => "test",
        }
    }
}

/// Channels, caches and the machine's virtual packages, shared by every
/// environment of a build.
pub struct Environments {
    runtime: tokio::runtime::Runtime,
    gateway: Gateway,
    channels: Vec<Channel>,
    virtual_packages: Vec<GenericVirtualPackage>,
    package_cache: PackageCache,
    client: reqwest::Client,
    /// Where download and install progress goes.
    install_reporter: Option<Arc<dyn rattler::install::Reporter>>,
    /// Where repodata download progress goes.
    repodata_reporter: Option<Arc<dyn rattler_repodata_gateway::Reporter>>,
}

impl Environments {
    /// Environments solved against `channels`, in priority order.
    pub fn new(
        channels: Vec<Channel>,
        cache_dir: &Path,
        client: reqwest::Client,
    ) -> Result<Self, BuildError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(BuildError::io("starting the async runtime"))?;
        let virtual_packages = VirtualPackage::detect(&VirtualPackageOverrides::default(), None)
            .map_err(|e| BuildError::Channel {
                channel: "virtual packages".into(),
                reason: e.to_string(),
            })?
            .into_iter()
            .map(GenericVirtualPackage::from)
            .collect();
        let gateway = Gateway::builder()
            .with_cache_dir(cache_dir.join("repodata"))
            .with_client(client.clone())
            .finish();
        Ok(Environments {
            runtime,
            gateway,
            channels,
            virtual_packages,
            package_cache: PackageCache::new(cache_dir.join("pkgs")),
            client,
            install_reporter: None,
            repodata_reporter: None,
        })
    }

    /// Reports repodata downloads and installs to `reporter`.
    pub fn set_reporter(&mut self, reporter: Arc<dyn crate::engine::Reporter>) {
        self.install_reporter = reporter.install();
        self.repodata_reporter = reporter.repodata();
    }

    /// The async runtime, for the other async steps of a build.
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }

    /// The HTTP client, shared with source downloads.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Forgets repodata read so far, after the output channel changed.
    pub fn channel_changed(&self, channel: &Channel, subdirs: &[Subdir]) {
        let mut all = subdirs.to_vec();
        all.push(Subdir::NoArch);
        // Only the in-memory copy is dropped, which cannot fail.
        let _ = self.gateway.clear_repodata_cache(
            channel,
            SubdirSelection::Some(all.iter().map(|s| s.as_str().to_string()).collect()),
            CacheClearMode::InMemoryOnly,
        );
    }

    /// Solves `specs` for `platform`; an empty list is an empty environment.
    pub fn solve(
        &self,
        specs: &[MatchSpec],
        platform: Subdir,
        what: &str,
        kind: EnvKind,
    ) -> Result<Vec<RepoDataRecord>, BuildError> {
        self.solve_from(&[], specs, platform, what, kind)
    }

    /// [`Environments::solve`] with `first` searched before the build's
    /// channels: a package's tests find it in a channel of its own before
    /// it goes into the output channel.
    pub fn solve_from(
        &self,
        first: &[Channel],
        specs: &[MatchSpec],
        platform: Subdir,
        what: &str,
        kind: EnvKind,
    ) -> Result<Vec<RepoDataRecord>, BuildError> {
        if specs.is_empty() {
            return Ok(Vec::new());
        }
        tracing::debug!(%what, env = kind.as_str(), specs = ?specs.iter().map(ToString::to_string).collect::<Vec<_>>(), "solving");
        let channels: Vec<Channel> = first.iter().chain(&self.channels).cloned().collect();
        let mut query = self
            .gateway
            .query(
                channels.iter().cloned(),
                [platform, Subdir::NoArch],
                specs.iter().cloned(),
            )
            .recursive(true);
        if let Some(reporter) = &self.repodata_reporter {
            query = query.with_reporter(crate::engine::RepodataForward(reporter.clone()));
        }
        let query = query.execute();
        let output = self
            .runtime
            .block_on(query)
            .map_err(|e| unreadable(&channels, &e))?;
        let available: Vec<Vec<RepoDataRecord>> = output
            .repodata
            .iter()
            .map(|r| r.iter().cloned().collect())
            .collect();
        let task = SolverTask {
            specs: specs.to_vec(),
            virtual_packages: self.virtual_packages.clone(),
            ..SolverTask::from_iter(available.iter())
        };
        let solved = rattler_solve::resolvo::Solver
            .solve(task)
            .map_err(|e| BuildError::Solve {
                what: what.to_string(),
                env: kind.as_str(),
                reason: format!(
                    "{e}\n{}",
                    Self::searched(&channels, specs, platform, &available)
                ),
            })?;
        let mut records = solved.records;
        records.sort_by(|a, b| a.package_record.name.cmp(&b.package_record.name));
        Ok(records)
    }

    /// What a failed solve searched: the channels and subdirs asked, and
    /// the versions each requested name has there, so that a typo, a
    /// missing channel and a too-strict bound look different.
    fn searched(
        channels: &[Channel],
        specs: &[MatchSpec],
        platform: Subdir,
        available: &[Vec<RepoDataRecord>],
    ) -> String {
        const SHOWN: usize = 12;
        let channels: Vec<String> = channels.iter().map(|c| c.base_url.to_string()).collect();
        let mut text = format!(
            "channels asked ({platform} and noarch): {}\nversions found:",
            if channels.is_empty() {
                "none".to_string()
            } else {
                channels.join(", ")
            }
        );
        for spec in specs {
            let Some(name) = spec.name.as_exact() else {
                continue;
            };
            let mut versions: Vec<&rattler_conda_types::Version> = available
                .iter()
                .flatten()
                .filter(|r| &r.package_record.name == name)
                .map(|r| r.package_record.version.version())
                .collect();
            versions.sort();
            versions.dedup();
            let listed = if versions.is_empty() {
                "none".to_string()
            } else {
                let skipped = versions.len().saturating_sub(SHOWN);
                let last: Vec<String> = versions[skipped..]
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                if skipped > 0 {
                    format!("{} (and {skipped} older)", last.join(", "))
                } else {
                    last.join(", ")
                }
            };
            text.push_str(&format!(
                "\n  {} (asked `{spec}`): {listed}",
                name.as_normalized()
            ));
        }
        text
    }

    /// The packages of `names` that `channels` hold for `platform` (and
    /// `noarch`), as `name-version-build`, each with the first channel
    /// holding it.
    pub fn existing(
        &self,
        channels: &[Channel],
        names: &[PackageName],
        platform: Subdir,
    ) -> Result<BTreeMap<String, String>, BuildError> {
        let mut found = BTreeMap::new();
        if names.is_empty() || channels.is_empty() {
            return Ok(found);
        }
        let specs = names.iter().cloned().map(MatchSpec::from);
        let query = self
            .gateway
            .query(channels.iter().cloned(), [platform, Subdir::NoArch], specs)
            .recursive(false)
            .execute();
        let output = self
            .runtime
            .block_on(query)
            .map_err(|e| unreadable(channels, &e))?;
        for record in output.repodata.iter().flat_map(|r| r.iter()) {
            let p = &record.package_record;
            let id = format!("{}-{}-{}", p.name.as_normalized(), p.version, p.build);
            found
                .entry(id)
                .or_insert_with(|| record.channel.clone().unwrap_or_default());
        }
        Ok(found)
    }

    /// Installs `records` into `prefix` (created when missing).
    pub fn install(
        &self,
        prefix: &Path,
        records: Vec<RepoDataRecord>,
        platform: Subdir,
        what: &str,
        kind: EnvKind,
    ) -> Result<(), BuildError> {
        std::fs::create_dir_all(prefix)
            .map_err(BuildError::io(format!("creating {}", prefix.display())))?;
        if records.is_empty() {
            return Ok(());
        }
        let mut installer = Installer::new()
            .with_package_cache(self.package_cache.clone())
            .with_download_client(self.client.clone())
            .with_target_platform(platform)
            .with_execute_link_scripts(true);
        if let Some(reporter) = &self.install_reporter {
            installer = installer.with_reporter(crate::engine::InstallForward(reporter.clone()));
        }
        self.runtime
            .block_on(installer.install(prefix, records))
            .map(drop)
            .map_err(|e| BuildError::Install {
                what: what.to_string(),
                env: kind.as_str(),
                reason: error_chain(&e),
            })
    }
}

/// The requirements of an output's build and host environments. With
/// `build.merge_build_and_host_envs` there is one environment, the host
/// one, solved for the host requirements and the build ones together, as
/// rattler-build solves it. Run exports still come from the requirements'
/// own sections ([`crate::environment::run_exports`]): the host ones export as usual,
/// and the build ones, having no build environment, export nothing (so
/// with rattler-build).
pub fn requirements(output: &PackageOutput) -> (Vec<Dependency>, Vec<Dependency>) {
    let reqs = &output.requirements;
    if output.build.merge_build_and_host_envs {
        let merged = reqs.host.iter().chain(&reqs.build).cloned().collect();
        (Vec::new(), merged)
    } else {
        (reqs.build.clone(), reqs.host.clone())
    }
}

/// The environment a script sees with `prefixes` activated, the first one
/// last (so its `bin/` comes first on `PATH`), on top of `base`. A prefix
/// listed twice (`$BUILD_PREFIX` is `$PREFIX` when the environments are
/// merged) is activated once.
pub fn activated(
    prefixes: &[&Path],
    platform: Subdir,
    base: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, BuildError> {
    let mut env = base;
    for (i, prefix) in prefixes.iter().enumerate().rev() {
        if prefixes[..i].contains(prefix) {
            continue;
        }
        if !prefix.join("conda-meta").is_dir() {
            // Nothing installed: only its bin/ matters, for tools a script
            // built into it.
            let path = env.get("PATH").cloned().unwrap_or_default();
            env.insert(
                "PATH".into(),
                format!("{}:{path}", prefix.join("bin").display()),
            );
            continue;
        }
        let failed = |e: String| BuildError::Activation {
            prefix: prefix.to_path_buf(),
            reason: e,
        };
        let activator = Activator::from_path(prefix, Bash::default(), platform)
            .map_err(|e| failed(e.to_string()))?;
        let variables = ActivationVariables {
            conda_prefix: None,
            path: None,
            path_modification_behavior: PathModificationBehavior::Prepend,
            current_env: env.clone().into_iter().collect::<HashMap<_, _>>(),
        };
        let os_env: HashMap<&OsStr, &OsStr> = env
            .iter()
            .map(|(k, v)| (OsStr::new(k.as_str()), OsStr::new(v.as_str())))
            .collect();
        let after = activator
            .run_activation(variables, Some(os_env))
            .map_err(|e| failed(e.to_string()))?;
        env.extend(after);
    }
    Ok(env)
}

/// The channels' repodata could not be read: which channels, and why.
fn unreadable(channels: &[Channel], err: &dyn std::error::Error) -> BuildError {
    BuildError::Channel {
        channel: channels
            .iter()
            .map(|c| c.base_url.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        reason: error_chain(err),
    }
}

/// An error with its causes, one per line, for messages.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}
