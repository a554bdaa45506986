use std::fmt;

use rattler_conda_types::{MatchSpec, PackageName, ParseStrictness};
use serde::{Serialize, Serializer};

use super::pin::{PIN_COMPATIBLE_MARK, PIN_SUBPACKAGE_MARK, Pin, PinArgs};
use crate::error::ProblemKind;
use crate::read::{Reader, Spanned};
use crate::yaml::Node;

/// One entry of a requirements list.
// Nearly every entry is a spec, so boxing it would allocate for each one
// without saving memory.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Dependency {
    /// A conda match spec, with variant pins and sibling pins already applied.
    Spec(MatchSpec),
    /// A `pin_compatible(...)`, known only once the host env is solved.
    PinCompatible(Pin),
}

impl Dependency {
    /// The package name this dependency is about.
    pub fn name(&self) -> Option<String> {
        match self {
            Dependency::Spec(spec) => spec.name.as_exact().map(|n| n.as_normalized().to_string()),
            Dependency::PinCompatible(pin) => Some(pin.name.clone()),
        }
    }
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dependency::Spec(spec) => write!(f, "{spec}"),
            Dependency::PinCompatible(pin) => {
                write!(f, "pin_compatible({}", pin.name)?;
                if let Some(lower) = &pin.lower_bound {
                    write!(f, ", lower_bound={lower}")?;
                }
                if let Some(upper) = &pin.upper_bound {
                    write!(f, ", upper_bound={upper}")?;
                }
                if pin.exact {
                    write!(f, ", exact=true")?;
                }
                write!(f, ")")
            }
        }
    }
}

impl Serialize for Dependency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Dependency::Spec(spec) => serializer.collect_str(spec),
            Dependency::PinCompatible(pin) => {
                use serde::ser::SerializeMap;
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("pin_compatible", pin)?;
                map.end()
            }
        }
    }
}

/// Run exports a package imposes on packages built against it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunExports {
    /// Applied when the package is in the host environment.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub weak: Vec<Dependency>,
    /// Applied from the build and host environments.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub strong: Vec<Dependency>,
    /// Applied to noarch packages.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub noarch: Vec<Dependency>,
    /// Weak, as run constraints.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub weak_constraints: Vec<Dependency>,
    /// Strong, as run constraints.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub strong_constraints: Vec<Dependency>,
}

impl RunExports {
    /// True when nothing is exported.
    pub fn is_empty(&self) -> bool {
        self.weak.is_empty()
            && self.strong.is_empty()
            && self.noarch.is_empty()
            && self.weak_constraints.is_empty()
            && self.strong_constraints.is_empty()
    }
}

/// Which run exports of dependencies to drop.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IgnoreRunExports {
    /// Drop every run export that these packages export.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub from_package: Vec<PackageName>,
    /// Drop run exports that would add these package names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_name: Vec<PackageName>,
}

impl IgnoreRunExports {
    /// True when nothing is ignored.
    pub fn is_empty(&self) -> bool {
        self.from_package.is_empty() && self.by_name.is_empty()
    }
}

/// The requirements of a package output.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Requirements {
    /// Tools that run on the build machine.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub build: Vec<Dependency>,
    /// Libraries built against, for the target platform.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub host: Vec<Dependency>,
    /// Runtime dependencies.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub run: Vec<Dependency>,
    /// Constraints on optional runtime packages.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub run_constraints: Vec<Dependency>,
    /// Run exports this package imposes downstream.
    #[serde(skip_serializing_if = "RunExports::is_empty")]
    pub run_exports: RunExports,
    /// Run exports of dependencies to drop.
    #[serde(skip_serializing_if = "IgnoreRunExports::is_empty")]
    pub ignore_run_exports: IgnoreRunExports,
}

pub(crate) const REQUIREMENT_KEYS: &[&str] = &[
    "build",
    "host",
    "run",
    "run_constraints",
    "run_exports",
    "ignore_run_exports",
];

impl Requirements {
    pub(crate) fn read(r: &mut Reader<'_>, node: &Node) -> Requirements {
        // `extras` is known here only to be reported as unsupported; it is
        // not in REQUIREMENT_KEYS, which also lists what staging may have.
        let mut known = REQUIREMENT_KEYS.to_vec();
        known.push("extras");
        let Some(node) = r.map(node, "requirements", &known) else {
            return Requirements::default();
        };
        reject_extras(r, node);
        Requirements {
            build: dependencies(r, node.get("build")),
            host: dependencies(r, node.get("host")),
            run: dependencies(r, node.get("run")),
            run_constraints: dependencies(r, node.get("run_constraints")),
            run_exports: node
                .get("run_exports")
                .map(|n| read_run_exports(r, n))
                .unwrap_or_default(),
            ignore_run_exports: node
                .get("ignore_run_exports")
                .map(|n| read_ignore_run_exports(r, n))
                .unwrap_or_default(),
        }
    }
}

/// Reports `extras`, which cleave does not implement, in a requirements
/// mapping of a package or staging output.
pub(crate) fn reject_extras(r: &mut Reader<'_>, node: &Node) {
    r.unsupported(
        node,
        "extras",
        "`requirements.extras` (optional dependency groups of rattler-build's --v3 repodata)",
        "put each group's packages in an output of its own that depends on this one, \
         or constrain them with `run_constraints`",
    );
}

pub(crate) fn dependencies(r: &mut Reader<'_>, node: Option<&Node>) -> Vec<Dependency> {
    let Some(node) = node else {
        return Vec::new();
    };
    r.strings(node)
        .into_iter()
        .filter_map(|s| dependency(r, s))
        .collect()
}

fn dependency(r: &mut Reader<'_>, text: Spanned) -> Option<Dependency> {
    let value = text.value.trim();
    if let Some(json) = value.strip_prefix(PIN_COMPATIBLE_MARK) {
        let args: PinArgs = serde_json::from_str(json).ok()?;
        return Some(Dependency::PinCompatible(args.into()));
    }
    if value.starts_with(PIN_SUBPACKAGE_MARK) {
        r.report_with_help(
            ProblemKind::InvalidValue {
                what: "dependency",
                value: "pin_subpackage(...)".into(),
                reason: "an output can pin itself only in its own package output".into(),
            },
            text.span,
            "staging outputs have no version or build string to pin".into(),
        );
        return None;
    }
    match MatchSpec::from_str(value, ParseStrictness::Strict) {
        Ok(spec) if spec.name.as_exact().is_some() => Some(Dependency::Spec(spec)),
        Ok(_) => {
            r.report(
                ProblemKind::MatchSpec {
                    spec: value.to_string(),
                    reason: "a dependency needs an exact package name".into(),
                },
                text.span,
            );
            None
        }
        Err(err) => match conda_build_spec(value) {
            Some((spec, meaning)) => {
                r.problems.push(
                    crate::error::Problem::new(
                        r.source,
                        ProblemKind::MatchSpec {
                            spec: value.to_string(),
                            reason: format!("read as {meaning}, as conda-build reads it"),
                        },
                        text.span,
                    )
                    .with_help(format!("write `{spec}`, which every tool reads the same"))
                    .into_warning(),
                );
                Some(Dependency::Spec(spec))
            }
            None => {
                r.report(
                    ProblemKind::MatchSpec {
                        spec: value.to_string(),
                        reason: err.to_string(),
                    },
                    text.span,
                );
                None
            }
        },
    }
}

/// conda-build's space-separated forms with a bare version, which strict
/// parsing refuses as ambiguous: `python 3.11` is that series
/// (`python 3.11.*`), and `zlib 1.3.1 *_2`, with a build string, is exact
/// (`zlib ==1.3.1 *_2`). Returns the spec and what it was read as.
pub(crate) fn conda_build_spec(value: &str) -> Option<(MatchSpec, &'static str)> {
    let words: Vec<&str> = value.split_whitespace().collect();
    let (text, meaning) = match words.as_slice() {
        [name, version] if is_bare_version(version) => {
            (format!("{name} {version}.*"), "that version series")
        }
        [name, version, build] if is_bare_version(version) => {
            (format!("{name} =={version} {build}"), "an exact version")
        }
        _ => return None,
    };
    MatchSpec::from_str(&text, ParseStrictness::Strict)
        .ok()
        .filter(|spec| spec.name.as_exact().is_some())
        .map(|spec| (spec, meaning))
}

/// A version without operator or wildcard: `3.11`, `1.3.1`, `2!1.0_post1`.
pub(crate) fn is_bare_version(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '!'))
}

fn read_run_exports(r: &mut Reader<'_>, node: &Node) -> RunExports {
    if node.as_map().is_none() {
        return RunExports {
            weak: dependencies(r, Some(node)),
            ..RunExports::default()
        };
    }
    let keys = [
        "weak",
        "strong",
        "noarch",
        "weak_constraints",
        "strong_constraints",
    ];
    let Some(node) = r.map(node, "run_exports", &keys) else {
        return RunExports::default();
    };
    RunExports {
        weak: dependencies(r, node.get("weak")),
        strong: dependencies(r, node.get("strong")),
        noarch: dependencies(r, node.get("noarch")),
        weak_constraints: dependencies(r, node.get("weak_constraints")),
        strong_constraints: dependencies(r, node.get("strong_constraints")),
    }
}

pub(crate) fn read_ignore_run_exports(r: &mut Reader<'_>, node: &Node) -> IgnoreRunExports {
    let Some(node) = r.map(node, "ignore_run_exports", &["from_package", "by_name"]) else {
        return IgnoreRunExports::default();
    };
    // Entries are match specs: `${{ compiler('cxx') }}` renders to
    // `gxx_linux-64 =14`, of which the package name counts.
    let mut names = |key| {
        r.opt_strings(node, key)
            .into_iter()
            .filter_map(|mut s| {
                if let Some((name, _)) = s.value.trim().split_once(char::is_whitespace) {
                    s.value = name.to_string();
                }
                package_name(r, &s)
            })
            .collect()
    };
    let from_package = names("from_package");
    let by_name = names("by_name");
    IgnoreRunExports {
        from_package,
        by_name,
    }
}

/// A validated conda package name.
pub(crate) fn package_name(r: &mut Reader<'_>, text: &Spanned) -> Option<PackageName> {
    match PackageName::try_from(text.value.as_str()) {
        Ok(name) if name.as_source() == name.as_normalized() => Some(name),
        Ok(name) => {
            r.report_with_help(
                ProblemKind::InvalidValue {
                    what: "package name",
                    value: text.value.clone(),
                    reason: "conda package names are lowercase".into(),
                },
                text.span,
                format!("write `{}`", name.as_normalized()),
            );
            None
        }
        Err(err) => {
            r.report(
                ProblemKind::InvalidValue {
                    what: "package name",
                    value: text.value.clone(),
                    reason: err.to_string(),
                },
                text.span,
            );
            None
        }
    }
}
