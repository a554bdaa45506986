//! The final run requirements of a package: its own, `pin_compatible`
//! resolved against the host environment, plus the run exports of its build
//! and host dependencies with conda's rules.
//!
//! - From host dependencies: `weak` and `strong` become run requirements,
//!   `weak_constraints` and `strong_constraints` become constraints.
//! - From build dependencies: only `strong` and `strong_constraints`.
//! - A `noarch` package takes only the `noarch` exports of its host
//!   dependencies.
//! - Only packages named in the requirements export (not what the solver
//!   pulled in for them), and `ignore_run_exports` drops by exporting
//!   package (`from_package`) or by exported name (`by_name`).

use std::path::Path;

use cleave_recipe::model::{Dependency, IgnoreRunExports, PackageOutput, StagingCache};
use rattler_conda_types::package::{PackageFile, RunExportsJson};
use rattler_conda_types::{MatchSpec, ParseStrictness, PrefixRecord, RepoDataRecord};

use crate::error::BuildError;

/// Which environment a dependency was installed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportingEnv {
    /// `build`: strong exports only.
    Build,
    /// `host`: weak and strong exports.
    Host,
}

/// One solved environment whose direct dependencies export requirements.
#[derive(Debug, Clone, Copy)]
pub struct Exporter<'a> {
    /// Build or host.
    pub env: ExportingEnv,
    /// The solved packages.
    pub records: &'a [RepoDataRecord],
    /// The requirements it was solved for; only these export.
    pub requested: &'a [Dependency],
    /// What to ignore from it.
    pub ignore: &'a IgnoreRunExports,
    /// An environment of the inherited staging build rather than the
    /// output's own: its host exports are not checked for overdepending,
    /// because the staging build's binaries are spread over several
    /// outputs and most of them link none of those libraries.
    pub inherited: bool,
}

/// Run requirements and constraints of a package.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunRequirements {
    /// `depends` of index.json.
    pub depends: Vec<String>,
    /// `constrains` of index.json.
    pub constrains: Vec<String>,
    /// Names of the run requirements that the run exports of the output's
    /// own host dependencies added: a binary should link each of them
    /// (see [`crate::check::linking`]).
    pub from_host: Vec<String>,
}

/// The solved environments of the staging build an output inherits.
#[derive(Debug, Clone, Copy)]
pub struct Inherited<'a> {
    /// The staging build as rendered.
    pub staging: &'a StagingCache,
    /// Its build environment.
    pub build: &'a [RepoDataRecord],
    /// Its host environment.
    pub host: &'a [RepoDataRecord],
}

/// The run requirements of `output`: its own with pins resolved, plus the
/// run exports of its build and host environments and, unless its
/// `inherit` says otherwise, those of the staging build it inherits.
pub fn for_output(
    output: &PackageOutput,
    build: &[RepoDataRecord],
    host: &[RepoDataRecord],
    inherited: Option<Inherited<'_>>,
    what: &str,
) -> Result<RunRequirements, BuildError> {
    let reqs = &output.requirements;
    // Pins may refer to host packages of the staging build too.
    let mut pin_host: Vec<RepoDataRecord> = host.to_vec();
    if let Some(s) = inherited {
        pin_host.extend(s.host.iter().cloned());
    }
    let base = RunRequirements {
        depends: resolve_pins(&reqs.run, &pin_host, what)?,
        constrains: resolve_pins(&reqs.run_constraints, &pin_host, what)?,
        from_host: Vec::new(),
    };
    let mut exporters = vec![
        Exporter {
            env: ExportingEnv::Build,
            records: build,
            requested: &reqs.build,
            ignore: &reqs.ignore_run_exports,
            inherited: false,
        },
        Exporter {
            env: ExportingEnv::Host,
            records: host,
            requested: &reqs.host,
            ignore: &reqs.ignore_run_exports,
            inherited: false,
        },
    ];
    let inherit_exports = output.inherit.as_ref().is_some_and(|i| i.run_exports);
    if let (Some(s), true) = (inherited, inherit_exports) {
        let ignore: &IgnoreRunExports = &s.staging.requirements.ignore_run_exports;
        exporters.push(Exporter {
            env: ExportingEnv::Build,
            records: s.build,
            requested: &s.staging.requirements.build,
            ignore,
            inherited: true,
        });
        exporters.push(Exporter {
            env: ExportingEnv::Host,
            records: s.host,
            requested: &s.staging.requirements.host,
            ignore,
            inherited: true,
        });
    }
    let mut result = apply(
        base,
        &exporters,
        &reqs.ignore_run_exports,
        output.build.noarch.is_some(),
    )?;
    // A package does not depend on itself through its own run exports.
    let own = output.name.as_normalized();
    result
        .depends
        .retain(|d| d.split_whitespace().next() != Some(own));
    result.from_host.retain(|n| n != own);
    Ok(result)
}

/// Resolves `pin_compatible` in `deps` against the `host` packages.
pub fn resolve_pins(
    deps: &[Dependency],
    host: &[RepoDataRecord],
    what: &str,
) -> Result<Vec<String>, BuildError> {
    deps.iter()
        .map(|dep| match dep {
            Dependency::Spec(spec) => Ok(spec.to_string()),
            Dependency::PinCompatible(pin) => host
                .iter()
                .find(|r| r.package_record.name.as_normalized() == pin.name)
                .map(|r| {
                    let p = &r.package_record;
                    pin.spec_for(&p.version.to_string(), p.build.as_str())
                })
                .ok_or_else(|| BuildError::PinCompatible {
                    what: what.to_string(),
                    name: pin.name.clone(),
                }),
        })
        .collect()
}

/// Adds the run exports of `exporters` to `base`, which holds the package's
/// own run requirements.
pub fn apply(
    mut base: RunRequirements,
    exporters: &[Exporter<'_>],
    own_ignore: &IgnoreRunExports,
    noarch: bool,
) -> Result<RunRequirements, BuildError> {
    for exporter in exporters {
        for record in exporter.records {
            let name = &record.package_record.name;
            let requested = exporter
                .requested
                .iter()
                .any(|d| d.name().as_deref() == Some(name.as_normalized()));
            let ignored = [exporter.ignore, own_ignore]
                .iter()
                .any(|i| i.from_package.contains(name));
            if !requested || ignored {
                continue;
            }
            let Some(exports) = &record.package_record.run_exports else {
                continue;
            };
            let (deps, cons): (Vec<&String>, Vec<&String>) = match (noarch, exporter.env) {
                (true, ExportingEnv::Host) => (exports.noarch.iter().collect(), Vec::new()),
                (true, ExportingEnv::Build) => (Vec::new(), Vec::new()),
                (false, ExportingEnv::Host) => (
                    exports.weak.iter().chain(&exports.strong).collect(),
                    exports
                        .weak_constrains
                        .iter()
                        .chain(&exports.strong_constrains)
                        .collect(),
                ),
                (false, ExportingEnv::Build) => (
                    exports.strong.iter().collect(),
                    exports.strong_constrains.iter().collect(),
                ),
            };
            let keep = |spec: &&String| {
                !exported_name(spec).is_some_and(|n| {
                    [exporter.ignore, own_ignore]
                        .iter()
                        .any(|i| i.by_name.iter().any(|b| b.as_normalized() == n))
                })
            };
            let deps: Vec<&String> = deps.into_iter().filter(keep).collect();
            if exporter.env == ExportingEnv::Host && !exporter.inherited {
                base.from_host
                    .extend(deps.iter().filter_map(|spec| exported_name(spec)));
            }
            base.depends.extend(deps.into_iter().cloned());
            base.constrains
                .extend(cons.into_iter().filter(keep).cloned());
        }
    }
    dedup(&mut base.depends);
    dedup(&mut base.constrains);
    dedup(&mut base.from_host);
    Ok(base)
}

/// Fills in the run exports of installed packages whose repodata did not
/// carry them, from the extracted package each was installed from.
pub fn fill_from_prefix(records: &mut [RepoDataRecord], prefix: &Path) {
    for record in records
        .iter_mut()
        .filter(|r| r.package_record.run_exports.is_none())
    {
        let p = &record.package_record;
        let meta = prefix.join("conda-meta").join(format!(
            "{}-{}-{}.json",
            p.name.as_normalized(),
            p.version,
            p.build
        ));
        let exports = PrefixRecord::from_path(&meta)
            .ok()
            .and_then(|installed| installed.extracted_package_dir)
            .map(|dir| dir.join(RunExportsJson::package_path()))
            .and_then(|file| RunExportsJson::from_path(file).ok());
        record.package_record.run_exports = exports;
    }
}

/// The exact package name of a match spec, if it has one.
pub(crate) fn exported_name(spec: &str) -> Option<String> {
    MatchSpec::from_str(spec, ParseStrictness::Lenient)
        .ok()?
        .name
        .as_exact()
        .map(|n| n.as_normalized().to_string())
}

fn dedup(specs: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    specs.retain(|s| seen.insert(s.clone()));
}
