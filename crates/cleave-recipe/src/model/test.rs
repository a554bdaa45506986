use serde::Serialize;

use super::requirements::{Dependency, dependencies};
use super::script::Script;
use crate::read::Reader;
use crate::yaml::Node;

/// A check run against a built package.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Test {
    /// A script run in a fresh environment with the package installed.
    Script {
        /// What to run.
        script: Script,
        /// Extra packages for the test environment.
        requirements: TestRequirements,
        /// Files copied next to the test.
        files: TestFiles,
    },
    /// Assertions about which files the package contains.
    PackageContents(PackageContents),
    /// Python modules that must import.
    Python {
        /// Module names.
        imports: Vec<String>,
        /// Run `pip check` too.
        pip_check: bool,
    },
}

/// Packages a script test needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TestRequirements {
    /// Installed next to the package under test.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub run: Vec<Dependency>,
    /// Tools for the build platform.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub build: Vec<Dependency>,
}

/// Files a script test copies from the source or recipe directory.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TestFiles {
    /// Globs relative to the work dir.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source: Vec<String>,
    /// Globs relative to the recipe directory.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recipe: Vec<String>,
}

/// Globs that must (or must not) match files in the package.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PackageContents {
    /// Paths relative to the prefix that must exist.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// Paths that must not exist.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files_absent: Vec<String>,
    /// Python modules under site-packages.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub site_packages: Vec<String>,
    /// Executables under `bin/`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bin: Vec<String>,
    /// Libraries under `lib/` (name without prefix or extension).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lib: Vec<String>,
    /// Headers under `include/`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Fail if the package holds files no glob matches.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub strict: bool,
}

impl Test {
    pub(crate) fn read_all(r: &mut Reader<'_>, node: &Node) -> Vec<Test> {
        r.items(node)
            .into_iter()
            .filter_map(|item| Test::read(r, item))
            .collect()
    }

    fn read(r: &mut Reader<'_>, node: &Node) -> Option<Test> {
        if node.get("script").is_some() {
            let node = r.map(node, "script test", &["script", "requirements", "files"])?;
            let requirements = node
                .get("requirements")
                .and_then(|n| r.map(n, "test requirements", &["run", "build"]))
                .map(|n| TestRequirements {
                    run: dependencies(r, n.get("run")),
                    build: dependencies(r, n.get("build")),
                })
                .unwrap_or_default();
            let files = node
                .get("files")
                .and_then(|n| r.map(n, "test files", &["source", "recipe"]))
                .map(|n| TestFiles {
                    source: n.get("source").map(|g| r.globs(g)).unwrap_or_default(),
                    recipe: n.get("recipe").map(|g| r.globs(g)).unwrap_or_default(),
                })
                .unwrap_or_default();
            let script = node
                .get("script")
                .map(|s| Script::read(r, s))
                .unwrap_or_default();
            Some(Test::Script {
                script,
                requirements,
                files,
            })
        } else if let Some(contents) = node.get("package_contents") {
            r.map(node, "test", &["package_contents"])?;
            let keys = ["files", "site_packages", "bin", "lib", "include", "strict"];
            let contents = r.map(contents, "package_contents", &keys)?;
            let globs =
                |r: &mut Reader<'_>, key| contents.get(key).map(|n| r.globs(n)).unwrap_or_default();
            let (files, files_absent) = match contents.get("files") {
                Some(files) if files.as_map().is_some() => {
                    let files =
                        r.map(files, "package_contents.files", &["exists", "not_exists"])?;
                    (
                        files.get("exists").map(|n| r.globs(n)).unwrap_or_default(),
                        files
                            .get("not_exists")
                            .map(|n| r.globs(n))
                            .unwrap_or_default(),
                    )
                }
                _ => (globs(r, "files"), Vec::new()),
            };
            let site_packages = globs(r, "site_packages");
            let bin = globs(r, "bin");
            let lib = globs(r, "lib");
            let include = globs(r, "include");
            Some(Test::PackageContents(PackageContents {
                files,
                files_absent,
                site_packages,
                bin,
                lib,
                include,
                strict: r.opt_bool(contents, "strict").unwrap_or(false),
            }))
        } else if let Some(python) = node.get("python") {
            r.map(node, "test", &["python"])?;
            let python = r.map(python, "python test", &["imports", "pip_check"])?;
            Some(Test::Python {
                imports: r
                    .opt_strings(python, "imports")
                    .into_iter()
                    .map(|s| s.value)
                    .collect(),
                pip_check: r.opt_bool(python, "pip_check").unwrap_or(true),
            })
        } else {
            r.map(node, "test", &["script", "package_contents", "python"]);
            None
        }
    }
}
