//! Tests as a package carries them, in the layout rattler-build 0.73
//! writes, so that its `test --package-file` (and py-rattler-build's
//! `Package.tests`) run a cleave package's tests, and cleave can run the
//! tests a package from either tool carries.
//!
//! - `info/tests/tests.yaml` is a YAML list with one entry per test, as
//!   rattler-build serializes its tests: `python`, `perl`, `r`, `ruby`,
//!   `downstream`, or `script` with its `requirements` and `files`.
//!   `package_contents` tests are checked when the package is built and
//!   not stored.
//! - A script is stored as it will run: a script file's text (its
//!   interpreter named when its extension implies one), one command as
//!   `{content: COMMAND}`, several as a list; a script left with nothing
//!   to run, no requirements and no files is dropped.
//! - The files a script test copies (`files.recipe` from the recipe dir,
//!   `files.source` from the work dir) are package files below
//!   `etc/conda/test-files/NAME/N/`, `N` the test's place in the list,
//!   and the script's `cwd` is that directory.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use cleave_recipe::model::{Dependency, PackageOutput, ScriptContent, Test};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::matching_files;
use crate::error::BuildError;
use crate::fs::confined::{Tree, open_regular};

/// Where the list of tests is, relative to the package root.
pub const TESTS_YAML: &str = "info/tests/tests.yaml";

/// Where the files of script tests go, relative to the package root.
pub const TEST_FILES: &str = "etc/conda/test-files";

/// The largest `tests.yaml` read: far more than any recipe's tests.
const MAX_TESTS_YAML: u64 = 16 << 20;

/// One stored test.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum StoredTest {
    /// Python modules that must import.
    Python {
        /// What to import, and whether to `pip check`.
        python: PythonTest,
    },
    /// Perl modules that must load.
    Perl {
        /// The modules.
        perl: PerlTest,
    },
    /// R libraries that must load.
    R {
        /// The libraries.
        r: RTest,
    },
    /// Ruby libraries that must load.
    Ruby {
        /// The libraries.
        ruby: RubyTest,
    },
    /// A script run in a fresh environment.
    Commands(CommandsTest),
    /// A package that must install together with this one.
    Downstream(DownstreamTest),
    /// Checks of the package's paths, as another tool may store them.
    PackageContents {
        /// The checks, as written.
        package_contents: serde_yaml_ng::Value,
    },
}

/// The keys that make an entry one kind of test, in the order rattler-build
/// tries them.
const KINDS: [&str; 7] = [
    "python",
    "perl",
    "r",
    "ruby",
    "script",
    "downstream",
    "package_contents",
];

impl<'de> Deserialize<'de> for StoredTest {
    /// By the key that names the kind, so that what is wrong inside an
    /// entry is said rather than "no variant matched".
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_yaml_ng::Value::deserialize(deserializer)?;
        let Some(map) = value.as_mapping() else {
            return Err(D::Error::custom("a test is a mapping"));
        };
        let kind = KINDS
            .iter()
            .find(|k| map.contains_key(**k))
            .ok_or_else(|| {
                D::Error::custom(format!("a test has one of the keys {}", KINDS.join(", ")))
            })?;
        let parsed =
            match *kind {
                "script" => serde_yaml_ng::from_value(value).map(StoredTest::Commands),
                "downstream" => serde_yaml_ng::from_value(value).map(StoredTest::Downstream),
                "python" => serde_yaml_ng::from_value(map[*kind].clone())
                    .map(|python| StoredTest::Python { python }),
                "perl" => serde_yaml_ng::from_value(map[*kind].clone())
                    .map(|perl| StoredTest::Perl { perl }),
                "r" => serde_yaml_ng::from_value(map[*kind].clone()).map(|r| StoredTest::R { r }),
                "ruby" => serde_yaml_ng::from_value(map[*kind].clone())
                    .map(|ruby| StoredTest::Ruby { ruby }),
                _ => Ok(StoredTest::PackageContents {
                    package_contents: map[*kind].clone(),
                }),
            };
        parsed.map_err(|e| D::Error::custom(format!("{kind}: {e}")))
    }
}

/// `python:` of a stored test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PythonTest {
    /// Modules to import.
    pub imports: Vec<String>,
    /// Whether to run `pip check` (stored only when `false`).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub pip_check: bool,
    /// One spec or a list; absent for any Python.
    #[serde(default, skip_serializing_if = "PythonVersion::is_none")]
    pub python_version: PythonVersion,
}

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

/// The Python versions a Python test runs with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PythonVersion {
    /// One spec.
    Single(String),
    /// Once per spec.
    Multiple(Vec<String>),
    /// Any Python.
    #[default]
    None,
}

impl PythonVersion {
    fn is_none(&self) -> bool {
        matches!(self, PythonVersion::None)
    }

    /// The specs, one per run (none: one run with any Python).
    pub fn specs(&self) -> Vec<String> {
        match self {
            PythonVersion::Single(spec) => vec![spec.clone()],
            PythonVersion::Multiple(specs) => specs.clone(),
            PythonVersion::None => Vec::new(),
        }
    }
}

/// `perl:` of a stored test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerlTest {
    /// Modules for `use`.
    pub uses: Vec<String>,
}

/// `r:` of a stored test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RTest {
    /// Libraries for `library()`.
    pub libraries: Vec<String>,
}

/// `ruby:` of a stored test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RubyTest {
    /// Names for `require`.
    pub requires: Vec<String>,
}

/// `downstream:` of a stored test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DownstreamTest {
    /// The package spec.
    pub downstream: String,
}

/// A stored script test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandsTest {
    /// What runs.
    pub script: StoredScript,
    /// Packages of the test environments.
    #[serde(default, skip_serializing_if = "Requirements::is_empty")]
    pub requirements: Requirements,
    /// The globs the files were copied with (the copies are in the package).
    #[serde(default, skip_serializing_if = "Files::is_empty")]
    pub files: Files,
}

/// Match specs of a script test's environments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Requirements {
    /// Installed with the package.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub run: Vec<String>,
    /// Tools for the build platform.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub build: Vec<String>,
}

impl Requirements {
    fn is_empty(&self) -> bool {
        self.run.is_empty() && self.build.is_empty()
    }
}

/// The globs of a script test's files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Files {
    /// From the work dir.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source: Vec<String>,
    /// From the recipe dir.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipe: Vec<String>,
}

impl Files {
    fn is_empty(&self) -> bool {
        self.source.is_empty() && self.recipe.is_empty()
    }
}

/// A stored script: what runs, with what and where.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredScript {
    /// `bash` when absent.
    pub interpreter: Option<String>,
    /// Variables of the script.
    pub env: BTreeMap<String, String>,
    /// Names of variables passed through from the caller.
    pub secrets: Vec<String>,
    /// The text.
    pub content: StoredContent,
    /// Where it runs, relative to the test's prefix (the test files).
    pub cwd: Option<PathBuf>,
}

/// The text of a stored script.
#[derive(Debug, Clone, PartialEq)]
pub enum StoredContent {
    /// One script text.
    Command(String),
    /// Lines, run in order by one shell.
    Commands(Vec<String>),
}

impl Default for StoredContent {
    fn default() -> Self {
        StoredContent::Command(String::new())
    }
}

impl StoredContent {
    /// The script text.
    pub fn text(&self) -> String {
        match self {
            StoredContent::Command(text) => text.clone(),
            StoredContent::Commands(lines) => lines.join("\n"),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            StoredContent::Command(text) => text.is_empty(),
            StoredContent::Commands(lines) => lines.is_empty(),
        }
    }
}

/// The mapping form of a script, as rattler-build writes and reads it.
#[derive(Serialize, Deserialize)]
struct ScriptMap {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interpreter: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    secrets: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content: Option<ContentValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cwd: Option<PathBuf>,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum ContentValue {
    One(String),
    Many(Vec<String>),
}

impl Serialize for StoredScript {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let only_content = self.interpreter.is_none()
            && self.env.is_empty()
            && self.secrets.is_empty()
            && self.cwd.is_none();
        if let (true, StoredContent::Commands(lines)) = (only_content, &self.content) {
            return lines.serialize(serializer);
        }
        ScriptMap {
            interpreter: self.interpreter.clone(),
            env: self.env.clone(),
            secrets: self.secrets.clone(),
            content: Some(match &self.content {
                StoredContent::Command(text) => ContentValue::One(text.clone()),
                StoredContent::Commands(lines) => ContentValue::Many(lines.clone()),
            }),
            file: None,
            cwd: self.cwd.clone(),
        }
        .serialize(serializer)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ScriptValue {
    One(String),
    Many(Vec<String>),
    Map(ScriptMap),
}

impl<'de> Deserialize<'de> for StoredScript {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match ScriptValue::deserialize(deserializer)? {
            ScriptValue::One(text) => StoredScript {
                content: StoredContent::Command(text),
                ..StoredScript::default()
            },
            ScriptValue::Many(lines) => StoredScript {
                content: StoredContent::Commands(lines),
                ..StoredScript::default()
            },
            ScriptValue::Map(map) => {
                let content = match (map.content, map.file) {
                    (Some(ContentValue::One(text)), None) => StoredContent::Command(text),
                    (Some(ContentValue::Many(lines)), None) => StoredContent::Commands(lines),
                    (None, Some(file)) => {
                        return Err(D::Error::custom(format!(
                            "a stored script names the file {}, which a package cannot hold",
                            file.display()
                        )));
                    }
                    (None, None) => StoredContent::default(),
                    (Some(_), Some(_)) => {
                        return Err(D::Error::custom(
                            "a stored script has both `content` and `file`",
                        ));
                    }
                };
                if let Some(cwd) = &map.cwd
                    && !is_below(cwd)
                {
                    return Err(D::Error::custom(format!(
                        "a stored script's cwd `{}` leaves the test's prefix",
                        cwd.display()
                    )));
                }
                StoredScript {
                    interpreter: map.interpreter,
                    env: map.env,
                    secrets: map.secrets,
                    content,
                    cwd: map.cwd,
                }
            }
        })
    }
}

/// A relative path that stays below where it starts.
fn is_below(path: &Path) -> bool {
    path.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// The interpreter a script file's extension implies, as rattler-build
/// infers it; `None` for a shell script.
fn interpreter_of(file: &str) -> Option<String> {
    let ext = Path::new(file).extension()?.to_str()?.to_lowercase();
    let name = match ext.as_str() {
        "py" => "python",
        "rb" => "ruby",
        "js" => "nodejs",
        "pl" => "perl",
        "r" => "rscript",
        "bat" | "cmd" => "cmd",
        "ps1" => "powershell",
        "nu" => "nushell",
        _ => return None,
    };
    Some(name.to_string())
}

/// A requirement as a stored spec: a `pin_compatible` (which needs the
/// build's host environment) is the bare name, as rattler-build stores it.
fn spec(dependency: &Dependency) -> String {
    match dependency {
        Dependency::Spec(spec) => spec.to_string(),
        Dependency::PinCompatible(pin) => pin.name.clone(),
    }
}

/// Writes the tests of `output` into the package tree (`info/tests/tests.yaml`,
/// and the script tests' files), taking script files and `files.recipe`
/// from `recipe_dir` and `files.source` from `work_dir`. Returns the test
/// files written outside `info/`, relative to the tree's root: they are
/// package files like any other.
pub fn write(
    output: &PackageOutput,
    recipe_dir: &Path,
    work_dir: &Path,
    tree: &mut Tree,
) -> Result<Vec<PathBuf>, BuildError> {
    let name = output.name.as_normalized();
    let what = format!("{name}-{}-{}", output.version, output.build.string);
    let mut stored = Vec::new();
    let mut files = Vec::new();
    let kept = output
        .tests
        .iter()
        .filter(|t| !matches!(t, Test::PackageContents(_)));
    for (index, test) in kept.enumerate() {
        let test = match test {
            Test::Python {
                imports,
                pip_check,
                python_version,
            } => StoredTest::Python {
                python: PythonTest {
                    imports: imports.clone(),
                    pip_check: *pip_check,
                    python_version: match python_version.as_slice() {
                        [] => PythonVersion::None,
                        [one] => PythonVersion::Single(one.clone()),
                        many => PythonVersion::Multiple(many.to_vec()),
                    },
                },
            },
            Test::Perl { uses } => StoredTest::Perl {
                perl: PerlTest { uses: uses.clone() },
            },
            Test::R { libraries } => StoredTest::R {
                r: RTest {
                    libraries: libraries.clone(),
                },
            },
            Test::Ruby { requires } => StoredTest::Ruby {
                ruby: RubyTest {
                    requires: requires.clone(),
                },
            },
            Test::Downstream(spec) => StoredTest::Downstream(DownstreamTest {
                downstream: spec.clone(),
            }),
            Test::PackageContents(_) => continue,
            Test::Script {
                script,
                requirements,
                files: globs,
            } => {
                let cwd = Path::new(TEST_FILES).join(name).join(index.to_string());
                let copied = copy_test_files(
                    &[(recipe_dir, &globs.recipe), (work_dir, &globs.source)],
                    tree,
                    &cwd,
                    &what,
                )?;
                let mut interpreter = script.interpreter.clone();
                let content = match &script.content {
                    ScriptContent::Commands(lines) if lines.len() == 1 => {
                        StoredContent::Command(lines[0].clone())
                    }
                    ScriptContent::Commands(lines) => StoredContent::Commands(lines.clone()),
                    ScriptContent::File(file) => {
                        interpreter = interpreter.or_else(|| interpreter_of(file));
                        StoredContent::Command(super::script_text(script, recipe_dir, &what)?)
                    }
                };
                let test = CommandsTest {
                    script: StoredScript {
                        interpreter,
                        env: script.env.clone(),
                        secrets: script.secrets.clone(),
                        cwd: if copied.is_empty() {
                            script.cwd.as_ref().map(PathBuf::from)
                        } else {
                            Some(cwd)
                        },
                        content,
                    },
                    requirements: Requirements {
                        run: requirements.run.iter().map(spec).collect(),
                        build: requirements.build.iter().map(spec).collect(),
                    },
                    files: Files {
                        source: globs.source.clone(),
                        recipe: globs.recipe.clone(),
                    },
                };
                files.extend(copied);
                // Nothing to run, install or copy: a test whose every line
                // a selector took away.
                if test.script.content.is_empty()
                    && test.requirements.is_empty()
                    && test.files.is_empty()
                {
                    continue;
                }
                StoredTest::Commands(test)
            }
        };
        stored.push(test);
    }
    let text = serde_yaml_ng::to_string(&stored).map_err(|e| BuildError::Io {
        context: format!("writing the tests of {what}"),
        source: std::io::Error::other(e),
    })?;
    tree.write(Path::new(TESTS_YAML), 0o644, text.as_bytes())
        .map_err(|source| BuildError::PackageFiles {
            what: what.clone(),
            source: Box::new(source),
        })?;
    Ok(files)
}

/// Copies what each (directory, globs) pair matches into `dir` of the
/// package tree (links as links); returns the copies' paths in the tree.
fn copy_test_files(
    sources: &[(&Path, &Vec<String>)],
    tree: &mut Tree,
    dir: &Path,
    what: &str,
) -> Result<Vec<PathBuf>, BuildError> {
    let failed = |source| BuildError::PackageFiles {
        what: what.to_string(),
        source: Box::new(source),
    };
    let mut copied = Vec::new();
    for (from, globs) in sources {
        for (entry, rel) in matching_files(from, globs)? {
            let dest = dir.join(&rel);
            if copied.contains(&dest) {
                continue;
            }
            match std::fs::read_link(&entry) {
                Ok(target) => tree.symlink(&target, &dest).map_err(failed)?,
                Err(_) => tree.copy_file(&entry, &dest).map_err(failed)?,
            }
            copied.push(dest);
        }
    }
    copied.sort();
    Ok(copied)
}

/// Why the tests a package stores cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum StoredError {
    /// The file is missing, not a regular file, or unreadable.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Larger than any list of tests (or other metadata file).
    #[error("{path} is larger than {MAX_TESTS_YAML} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// Not a list of tests.
    #[error("{path} is not a list of tests: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The tests stored in the extracted package at `root`; none when it has
/// no `info/tests/tests.yaml`.
pub fn read(root: &Path) -> Result<Vec<StoredTest>, StoredError> {
    let path = root.join(TESTS_YAML);
    if std::fs::symlink_metadata(&path).is_err() {
        return Ok(Vec::new());
    }
    let io = |source| StoredError::Io {
        path: path.clone(),
        source,
    };
    let (file, meta) = open_regular(&path).map_err(|e| io(std::io::Error::other(e.to_string())))?;
    if meta.len() > MAX_TESTS_YAML {
        return Err(StoredError::TooLarge { path });
    }
    let text = read_bounded(file, &path)?;
    parse(&text, &path)
}

/// The tests stored in the package file at `package` (`.conda` or
/// `.tar.bz2`), read from the archive without unpacking it; none when it
/// stores none. Only a regular file `info/tests/tests.yaml` counts.
pub fn read_archive(package: &Path) -> Result<Vec<StoredTest>, StoredError> {
    match read_info_member(package, TESTS_YAML)? {
        Some(text) => parse(&text, &package.join(TESTS_YAML)),
        None => Ok(Vec::new()),
    }
}

/// The text of the regular file `member` (below `info/`) of the package
/// file at `package`, at most [`MAX_TESTS_YAML`] bytes; `None` when the
/// package has no such member.
pub fn read_info_member(package: &Path, member: &str) -> Result<Option<String>, StoredError> {
    let io = |source| StoredError::Io {
        path: package.to_path_buf(),
        source,
    };
    let (file, _) = open_regular(package).map_err(|e| io(std::io::Error::other(e.to_string())))?;
    let name = package.to_string_lossy();
    if name.ends_with(".conda") {
        let archive = rattler_package_streaming::seek::stream_conda_info(file)
            .map_err(|e| io(std::io::Error::other(e.to_string())))?;
        find_in_archive(archive, package, member)
    } else if name.ends_with(".tar.bz2") {
        find_in_archive(
            rattler_package_streaming::read::stream_tar_bz2(file),
            package,
            member,
        )
    } else {
        Err(StoredError::Invalid {
            path: package.to_path_buf(),
            reason: "a package file name ends in .conda or .tar.bz2".into(),
        })
    }
}

/// The text of `member` in a package's (info) tar stream.
fn find_in_archive<R: Read>(
    mut archive: tar::Archive<R>,
    package: &Path,
    member: &str,
) -> Result<Option<String>, StoredError> {
    let path = package.join(member);
    let io = |source| StoredError::Io {
        path: package.to_path_buf(),
        source,
    };
    for entry in archive.entries().map_err(io)? {
        let entry = entry.map_err(io)?;
        if entry.path().map_err(io)?.as_ref() != Path::new(member) {
            continue;
        }
        if !entry.header().entry_type().is_file() {
            return Err(StoredError::Invalid {
                path,
                reason: "not a regular file".into(),
            });
        }
        if entry.size() > MAX_TESTS_YAML {
            return Err(StoredError::TooLarge { path });
        }
        return read_bounded(entry, &path).map(Some);
    }
    Ok(None)
}

/// At most [`MAX_TESTS_YAML`] bytes of text from `reader`.
fn read_bounded(reader: impl Read, path: &Path) -> Result<String, StoredError> {
    let mut text = String::new();
    reader
        .take(MAX_TESTS_YAML + 1)
        .read_to_string(&mut text)
        .map_err(|source| StoredError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if text.len() as u64 > MAX_TESTS_YAML {
        return Err(StoredError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(text)
}

fn parse(text: &str, path: &Path) -> Result<Vec<StoredTest>, StoredError> {
    serde_yaml_ng::from_str::<Option<Vec<StoredTest>>>(text)
        .map(Option::unwrap_or_default)
        .map_err(|e| StoredError::Invalid {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests;
