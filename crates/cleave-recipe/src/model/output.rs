use std::collections::BTreeMap;

use rattler_conda_types::{PackageName, VersionWithSource};
use serde::Serialize;

use super::about::About;
use super::build::Build;
use super::requirements::{Dependency, IgnoreRunExports, Requirements};
use super::script::Script;
use super::source::Source;
use super::test::Test;

/// One node of the build plan: a staging cache or a package.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RenderedOutput {
    /// A build whose result other outputs inherit; produces no package.
    Staging(Box<StagingCache>),
    /// A conda package.
    Package(Box<PackageOutput>),
}

impl RenderedOutput {
    /// The output's name (package name or staging name).
    pub fn name(&self) -> &str {
        match self {
            RenderedOutput::Staging(s) => &s.name,
            RenderedOutput::Package(p) => p.name.as_normalized(),
        }
    }

    /// The variant keys this output uses, with their values.
    pub fn variant(&self) -> &BTreeMap<String, String> {
        match self {
            RenderedOutput::Staging(s) => &s.variant,
            RenderedOutput::Package(p) => &p.variant,
        }
    }
}

/// A staging build: runs once, and its new prefix files and work dir are
/// restored for every output that inherits it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StagingCache {
    /// The staging name `inherit:` refers to.
    pub name: String,
    /// True for the top-level `cache:` section, which every output inherits.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub implicit: bool,
    /// Hash of the used variant; tells the instances of one staging apart.
    pub hash: String,
    /// The recipe's version (`recipe.version`), which its script sees as
    /// `PKG_VERSION`; the same for every output that inherits it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The variant keys the staging build uses.
    pub variant: BTreeMap<String, String>,
    /// Sources fetched into its work dir.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Source>,
    /// Its build and host environments.
    pub requirements: StagingRequirements,
    /// What it runs.
    pub script: Script,
    /// Which new prefix files it keeps (a directory keeps what is below
    /// it); empty keeps every new file.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include_files: Vec<String>,
}

/// A staging build has environments but no runtime requirements.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StagingRequirements {
    /// Tools for the build machine.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub build: Vec<Dependency>,
    /// Libraries for the target platform.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub host: Vec<Dependency>,
    /// Run exports of build/host deps that no inheriting output should get.
    #[serde(skip_serializing_if = "IgnoreRunExports::is_empty")]
    pub ignore_run_exports: IgnoreRunExports,
}

/// Which staging cache an output starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inherit {
    /// The staging name.
    pub from: String,
    /// Hash of the staging instance (its used variant).
    pub hash: String,
    /// Whether run exports of the staging environments apply to this output.
    pub run_exports: bool,
}

/// A conda package to build.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PackageOutput {
    /// Package name.
    pub name: PackageName,
    /// Package version.
    pub version: VersionWithSource,
    /// Build settings, with the final build string.
    pub build: Build,
    /// Its environments and runtime requirements.
    pub requirements: Requirements,
    /// The staging cache it starts from, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inherit: Option<Inherit>,
    /// Its own sources (on top of the inherited work dir, if any).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<Source>,
    /// Tests of the built package.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<Test>,
    /// Descriptive metadata.
    pub about: About,
    /// Free-form `extra:` section.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub extra: serde_json::Value,
    /// The variant keys the output uses, with their values.
    pub variant: BTreeMap<String, String>,
}
