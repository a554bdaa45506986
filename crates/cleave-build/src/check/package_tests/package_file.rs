//! `cleave test --package-file`: runs the tests a package file carries
//! ([`stored`](super::stored)), whichever tool wrote it, with no recipe.
//!
//! The package goes into a channel of its own, searched before the given
//! channels, so that each test environment holds exactly this file, as in
//! a build. A script test's files are package files (installed with it),
//! and its `cwd` is relative to the test environment's prefix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cleave_channel::local::{Overwrite, Transfer};
use cleave_recipe::model::{PackageContents, Test};
use rattler_conda_types::package::{IndexJson, PathsJson};
use rattler_conda_types::{Channel, MatchSpec, Subdir};
use serde::Deserialize;

use super::stored::{self, CommandsTest, StoredTest};
use super::{
    Cwd, EnvRun, Settings, Subject, TestEnv, contents, downstream, fresh, language, run_in_env,
};
use crate::engine::{Event, Reporter};
use crate::environment::Environments;
use crate::error::BuildError;
use crate::script::guard::Guard;

/// What `cleave test --package-file` needs.
pub struct PackageFileTests {
    /// The package file (`.conda` or `.tar.bz2`).
    pub package: PathBuf,
    /// Channels the test environments solve from, after the package's own.
    pub channels: Vec<Channel>,
    /// rattler's caches of repodata and packages.
    pub cache_dir: PathBuf,
    /// This run's directory: the package's channel and the test
    /// environments, kept for a failed test's log.
    pub dir: PathBuf,
    /// Variables every script gets (PATH and the like).
    pub base_env: BTreeMap<String, String>,
    /// Runs the test scripts so that none outlives cleave.
    pub guard: Guard,
    /// The machine's platform: tests run here.
    pub platform: Subdir,
}

/// Runs every test `options.package` stores, in order; the first failure
/// stops. Returns how many ran, for the caller to report, as a build's
/// engine reports its outputs' tests. `reporter` sees each test as a
/// build's (`test N of NAME`), and the test environments' downloads and
/// installs.
pub fn test_package_file(
    options: &PackageFileTests,
    reporter: Arc<dyn Reporter>,
) -> Result<usize, BuildError> {
    let file = cleave_channel::package::inspect(&options.package)?;
    let index: IndexJson = rattler_package_streaming::seek::read_package_file(&options.package)
        .map_err(|e| BuildError::InvalidMetadata {
            what: options.package.display().to_string(),
            reason: format!("no readable info/index.json: {e}"),
        })?;
    let tests = stored::read_archive(&options.package)?;
    let target = if file.subdir == "noarch" {
        options.platform
    } else {
        match file.subdir.parse::<Subdir>() {
            Ok(subdir) if subdir == options.platform => subdir,
            _ => {
                return Err(BuildError::Unsupported {
                    what: file.identifier.clone(),
                    feature: format!(
                        "running the tests of a {} package on {}",
                        file.subdir, options.platform
                    ),
                });
            }
        }
    };
    if tests.is_empty() {
        return Ok(0);
    }
    let channel_dir = options.dir.join("channel");
    cleave_channel::local::add(&channel_dir, &file, Transfer::Copy, Overwrite::Replace)?;
    cleave_channel::index::index_channel(&channel_dir, &[file.subdir.as_str()])?;
    let own = Channel::try_from_directory(&channel_dir).map_err(|e| BuildError::Channel {
        channel: channel_dir.display().to_string(),
        reason: e.to_string(),
    })?;
    let client = reqwest::Client::builder()
        .user_agent(concat!("cleave/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| BuildError::Channel {
            channel: "http".into(),
            reason: e.to_string(),
        })?;
    let mut envs = Environments::new(options.channels.clone(), &options.cache_dir, client)?;
    envs.set_reporter(reporter.clone());
    let subject = Subject {
        name: index.name.as_normalized().to_string(),
        version: index.version.to_string(),
        build: index.build.to_string(),
        build_number: index.build_number,
        variant: variant(&options.package)?,
    };
    let lock = options.dir.join("run.lock");
    let env = TestEnv {
        subject: &subject,
        dir: &options.dir.join("test"),
        guard: options.guard.with_lock(&lock),
        target,
        build_platform: options.platform,
        base_env: &options.base_env,
        channels: std::slice::from_ref(&own),
    };
    reporter.event(Event::Started {
        kind: "test",
        what: &file.identifier,
    });
    reporter.event(Event::Testing {
        what: &subject.name,
        count: tests.len(),
    });
    let echo = &mut |line: &str| reporter.event(Event::Line(line));
    let mut ran = 0;
    for (index, test) in tests.iter().enumerate() {
        let label = format!("test {} of {}", index + 1, subject.name);
        match test {
            StoredTest::PackageContents { package_contents } => {
                let contents = stored_contents(package_contents, &label)?;
                let paths: PathsJson = rattler_package_streaming::seek::read_package_file(
                    &options.package,
                )
                .map_err(|e| BuildError::InvalidMetadata {
                    what: file.identifier.clone(),
                    reason: format!("no readable info/paths.json: {e}"),
                })?;
                let paths: Vec<PathBuf> = paths
                    .paths
                    .into_iter()
                    .map(|entry| entry.relative_path)
                    .collect();
                contents::check_contents(&contents, &paths, &subject.name, index)?;
            }
            StoredTest::Downstream(test) => {
                let dir = fresh(env.dir, &format!("test-{index}"))?;
                downstream::check(&env, &envs, &test.downstream, &dir, &label)?;
            }
            StoredTest::Commands(test) => {
                let dir = fresh(env.dir, &format!("test-{index}"))?;
                run_script(&env, &envs, test, &dir, &label, echo)?;
            }
            StoredTest::Python { .. }
            | StoredTest::Perl { .. }
            | StoredTest::R { .. }
            | StoredTest::Ruby { .. } => {
                let Some(runs) = as_language_test(test).as_ref().and_then(language::runs) else {
                    continue;
                };
                for (n, run) in runs?.into_iter().enumerate() {
                    let dir = fresh(env.dir, &format!("test-{index}-{n}"))?;
                    let what = format!("{label} ({})", run.label);
                    let env_run = EnvRun {
                        dir: &dir,
                        run: run.specs,
                        build: Vec::new(),
                        text: run.script,
                        settings: Settings::default(),
                        what,
                    };
                    run_in_env(&env, &envs, env_run, echo)?;
                }
            }
        }
        ran += 1;
        reporter.event(Event::TestPassed { test: &label });
    }
    Ok(ran)
}

/// The variant the package was built with, as both tools record it in
/// `info/hash_input.json` (a flat object of keys and values); empty when
/// it records none or something else (the tests do not depend on it).
/// Values that are not text, numbers or booleans, or that hold a NUL,
/// cannot be variables and are left out.
fn variant(package: &Path) -> Result<BTreeMap<String, String>, BuildError> {
    let Some(text) = stored::read_info_member(package, "info/hash_input.json")? else {
        return Ok(BTreeMap::new());
    };
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).unwrap_or_default();
    Ok(object
        .into_iter()
        .filter_map(|(key, value)| match value {
            serde_json::Value::String(text) => Some((key, text)),
            serde_json::Value::Number(n) => Some((key, n.to_string())),
            serde_json::Value::Bool(b) => Some((key, b.to_string())),
            _ => None,
        })
        .filter(|(key, value)| !key.contains('\0') && !value.contains('\0'))
        .collect())
}

/// A stored `package_contents` test as a recipe's, from either layout:
/// `files` a list, or rattler-build's `{exists, not_exists}`.
fn stored_contents(
    value: &serde_yaml_ng::Value,
    what: &str,
) -> Result<PackageContents, BuildError> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Files {
        List(Vec<String>),
        Split {
            #[serde(default)]
            exists: Vec<String>,
            #[serde(default)]
            not_exists: Vec<String>,
        },
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Stored {
        files: Option<Files>,
        #[serde(default)]
        site_packages: Vec<String>,
        #[serde(default)]
        bin: Vec<String>,
        #[serde(default)]
        lib: Vec<String>,
        #[serde(default)]
        include: Vec<String>,
        #[serde(default)]
        strict: bool,
    }
    let stored: Stored =
        serde_yaml_ng::from_value(value.clone()).map_err(|e| BuildError::InvalidMetadata {
            what: what.to_string(),
            reason: format!("a stored package_contents test: {e}"),
        })?;
    let (files, files_absent) = match stored.files {
        None => (Vec::new(), Vec::new()),
        Some(Files::List(files)) => (files, Vec::new()),
        Some(Files::Split { exists, not_exists }) => (exists, not_exists),
    };
    Ok(PackageContents {
        files,
        files_absent,
        site_packages: stored.site_packages,
        bin: stored.bin,
        lib: stored.lib,
        include: stored.include,
        strict: stored.strict,
    })
}

/// A stored language test as the recipe test it came from.
fn as_language_test(test: &StoredTest) -> Option<Test> {
    Some(match test {
        StoredTest::Python { python } => Test::Python {
            imports: python.imports.clone(),
            pip_check: python.pip_check,
            python_version: python.python_version.specs(),
        },
        StoredTest::Perl { perl } => Test::Perl {
            uses: perl.uses.clone(),
        },
        StoredTest::R { r } => Test::R {
            libraries: r.libraries.clone(),
        },
        StoredTest::Ruby { ruby } => Test::Ruby {
            requires: ruby.requires.clone(),
        },
        _ => return None,
    })
}

/// Runs a stored script test in `dir`.
fn run_script(
    env: &TestEnv<'_>,
    envs: &Environments,
    test: &CommandsTest,
    dir: &Path,
    label: &str,
    echo: &mut dyn FnMut(&str),
) -> Result<(), BuildError> {
    let script = &test.script;
    let specs = |texts: &[String]| -> Result<Vec<MatchSpec>, BuildError> {
        texts.iter().map(|t| language::spec(t)).collect()
    };
    let run = EnvRun {
        dir,
        run: specs(&test.requirements.run)?,
        build: specs(&test.requirements.build)?,
        text: script.content.text(),
        settings: Settings {
            interpreter: script.interpreter.as_deref(),
            env: &script.env,
            secrets: &script.secrets,
            cwd: match &script.cwd {
                Some(cwd) => Cwd::Prefix(cwd),
                None => Cwd::Work(None),
            },
            fill_names: false,
        },
        what: label.to_string(),
    };
    run_in_env(env, envs, run, echo)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(text: &str) -> Result<PackageContents, BuildError> {
        stored_contents(&serde_yaml_ng::from_str(text).unwrap(), "test 1 of demo")
    }

    #[test]
    fn stored_package_contents_read_in_either_layout() {
        let list = contents("files: [share/a.txt]\nbin: [demo]\nstrict: true").unwrap();
        assert_eq!(list.files, ["share/a.txt"]);
        assert_eq!(list.bin, ["demo"]);
        assert!(list.strict);
        let split = contents("files:\n  exists: [a]\n  not_exists: [b]\nlib: [z]").unwrap();
        assert_eq!(split.files, ["a"]);
        assert_eq!(split.files_absent, ["b"]);
        assert_eq!(split.lib, ["z"]);
    }

    #[test]
    fn an_unknown_package_contents_check_is_an_error_not_skipped() {
        let err = contents("files: [a]\nlicenses: [COPYING]").unwrap_err();
        assert!(err.to_string().contains("test 1 of demo"), "{err}");
    }
}
