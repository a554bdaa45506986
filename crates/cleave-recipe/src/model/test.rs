use rattler_conda_types::{MatchSpec, ParseStrictness};
use serde::Serialize;

use super::requirements::{Dependency, conda_build_spec, dependencies, is_bare_version};
use super::script::Script;
use crate::error::ProblemKind;
use crate::read::{Reader, Spanned};
use crate::yaml::{Node, NodeKind};

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
        /// Version specs of Python (`3.12`, `>=3.10`); the test runs once
        /// per spec, or once with any Python when there is none.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        python_version: Vec<String>,
    },
    /// Perl modules that must load (`perl -e 'use X;'`).
    Perl {
        /// Module names, e.g. `Data::Dumper`.
        uses: Vec<String>,
    },
    /// R libraries that must load (`Rscript -e 'library(X)'`).
    R {
        /// Library names.
        libraries: Vec<String>,
    },
    /// Ruby libraries that must load (`ruby -e 'require "x"'`).
    Ruby {
        /// Names as `require` takes them.
        requires: Vec<String>,
    },
    /// A package that must install together with this one: a spec, solved
    /// with the package under test in one environment.
    Downstream(String),
}

/// The keys that give a test item its type, in the order rattler-build
/// looks for them.
const TEST_KINDS: &[&str] = &[
    "python",
    "perl",
    "r",
    "ruby",
    "script",
    "downstream",
    "package_contents",
];

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
        let kinds: Vec<&'static str> = TEST_KINDS
            .iter()
            .copied()
            .filter(|kind| node.get(kind).is_some())
            .collect();
        let kind = match kinds.as_slice() {
            [] => {
                if r.map(node, "test", TEST_KINDS).is_some() {
                    r.report_with_help(
                        ProblemKind::MissingKey {
                            key: "script".into(),
                            section: "test".into(),
                        },
                        node.span,
                        format!("a test is one of: {}", TEST_KINDS.join(", ")),
                    );
                }
                return None;
            }
            [kind] => *kind,
            [first, others @ ..] => {
                // rattler-build keeps one of them and drops the others
                // without a word; a test that silently does not run is
                // worse than an error.
                for other in others {
                    if let Some(key) = node.key(other) {
                        r.report_with_help(
                            ProblemKind::Conflict {
                                first: other,
                                second: first,
                            },
                            key.span,
                            format!(
                                "a test item has one type; write `- {first}: ...` and `- {other}: ...` as two items of `tests`"
                            ),
                        );
                    }
                }
                return None;
            }
        };
        let (section, keys): (&str, &[&str]) = match kind {
            "script" => ("script test", &["script", "requirements", "files"]),
            _ => ("test", &[kind]),
        };
        let body = r.map(node, section, keys)?.get(kind)?;
        // `- perl:` with nothing under it is a test with default settings,
        // not a test to leave out.
        let empty = Node {
            kind: NodeKind::Map(Vec::new()),
            span: body.span,
        };
        let body = if body.is_null() && kind != "downstream" {
            &empty
        } else {
            body
        };
        match kind {
            "script" => Some(read_script_test(r, node)),
            "package_contents" => read_package_contents(r, body).map(Test::PackageContents),
            "python" => {
                let python = r.map(
                    body,
                    "python test",
                    &["imports", "pip_check", "python_version"],
                )?;
                Some(Test::Python {
                    imports: names(r, python, "imports"),
                    pip_check: r.opt_bool(python, "pip_check").unwrap_or(true),
                    python_version: r
                        .opt_strings(python, "python_version")
                        .into_iter()
                        .filter_map(|v| python_version(r, v))
                        .collect(),
                })
            }
            "perl" => {
                let perl = r.map(body, "perl test", &["uses"])?;
                Some(Test::Perl {
                    uses: names(r, perl, "uses"),
                })
            }
            "r" => {
                let rtest = r.map(body, "r test", &["libraries"])?;
                Some(Test::R {
                    libraries: names(r, rtest, "libraries"),
                })
            }
            "ruby" => {
                let ruby = r.map(body, "ruby test", &["requires"])?;
                Some(Test::Ruby {
                    requires: names(r, ruby, "requires"),
                })
            }
            _ => {
                let spec = r.string(body)?;
                downstream(r, spec).map(Test::Downstream)
            }
        }
    }
}

fn names(r: &mut Reader<'_>, node: &Node, key: &str) -> Vec<String> {
    r.opt_strings(node, key)
        .into_iter()
        .map(|s| s.value)
        .collect()
}

fn read_script_test(r: &mut Reader<'_>, node: &Node) -> Test {
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
    Test::Script {
        script,
        requirements,
        files,
    }
}

fn read_package_contents(r: &mut Reader<'_>, contents: &Node) -> Option<PackageContents> {
    let keys = ["files", "site_packages", "bin", "lib", "include", "strict"];
    let contents = r.map(contents, "package_contents", &keys)?;
    let globs = |r: &mut Reader<'_>, key| contents.get(key).map(|n| r.globs(n)).unwrap_or_default();
    let (files, files_absent) = match contents.get("files") {
        Some(files) if files.as_map().is_some() => {
            let files = r.map(files, "package_contents.files", &["exists", "not_exists"])?;
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
    Some(PackageContents {
        files,
        files_absent,
        site_packages,
        bin,
        lib,
        include,
        strict: r.opt_bool(contents, "strict").unwrap_or(false),
    })
}

/// A version spec for Python, as the test environment will ask for it
/// (`python <spec>`). A bare version is its series, as the peer reads it
/// (`python=3.11`) and as every requirement list reads `python 3.11`:
/// `3.11` is kept as `3.11.*`.
fn python_version(r: &mut Reader<'_>, text: Spanned) -> Option<String> {
    let value = text.value.trim();
    let value = if is_bare_version(value) {
        format!("{value}.*")
    } else {
        value.to_string()
    };
    match MatchSpec::from_str(&format!("python {value}"), ParseStrictness::Strict) {
        Ok(_) if !value.is_empty() => Some(value),
        Ok(_) => None,
        Err(err) => {
            r.report(
                ProblemKind::InvalidValue {
                    what: "python_version",
                    value: text.value,
                    reason: err.to_string(),
                },
                text.span,
            );
            None
        }
    }
}

/// The spec of a downstream package: a name, optionally with a version.
fn downstream(r: &mut Reader<'_>, text: Spanned) -> Option<String> {
    let value = text.value.trim().to_string();
    let parsed = MatchSpec::from_str(&value, ParseStrictness::Strict).or_else(|_| {
        conda_build_spec(&value)
            .map(|(spec, _)| Ok(spec))
            .unwrap_or_else(|| MatchSpec::from_str(&value, ParseStrictness::Lenient))
    });
    match parsed {
        Ok(spec) if spec.name.as_exact().is_some() => Some(spec.to_string()),
        Ok(_) => {
            r.report(
                ProblemKind::MatchSpec {
                    spec: value,
                    reason: "a downstream test needs an exact package name".into(),
                },
                text.span,
            );
            None
        }
        Err(err) => {
            r.report(
                ProblemKind::MatchSpec {
                    spec: value,
                    reason: err.to_string(),
                },
                text.span,
            );
            None
        }
    }
}
