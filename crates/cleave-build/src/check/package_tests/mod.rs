//! Runs a package's tests.
//!
//! - `package_contents` checks the paths of the written archive
//!   ([`contents`]).
//! - `script` tests, and the `python`, `perl`, `r` and `ruby` tests made
//!   into scripts by [`language`], run in a fresh environment, solved from
//!   the output channel and the other channels, holding the package (by
//!   exact version and build) and the test's own requirements.
//! - `downstream` tests check that the named package installs together
//!   with this one ([`downstream`]).

mod contents;
mod downstream;
mod language;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cleave_recipe::model::{Dependency, PackageOutput, Script, ScriptContent, Test};
use rattler_conda_types::{MatchSpec, ParseStrictness, Subdir};

use crate::environment::{EnvKind, Environments, activated};
use crate::error::BuildError;
use crate::script::guard::Guarded;
use crate::script::{ScriptRun, run};

/// What a test run needs beyond the test itself.
pub struct TestContext<'a> {
    /// The package under test.
    pub output: &'a PackageOutput,
    /// Paths in the written archive.
    pub paths: &'a [PathBuf],
    /// A directory the tests may use; recreated.
    pub dir: &'a Path,
    /// The recipe directory, for `files.recipe`.
    pub recipe_dir: &'a Path,
    /// The work dir of the build, for `files.source`.
    pub work_dir: &'a Path,
    /// Runs the test scripts so that none outlives the build.
    pub guard: Guarded<'a>,
    /// The platform the package is for.
    pub target: Subdir,
    /// The platform tools run on.
    pub build_platform: Subdir,
    /// Variables every script gets (PATH and the like).
    pub base_env: &'a BTreeMap<String, String>,
}

/// Runs every test of the output, in order; the first failure stops.
pub fn run_tests(
    ctx: &TestContext<'_>,
    envs: &Environments,
    echo: &mut dyn FnMut(&str),
) -> Result<usize, BuildError> {
    let what = ctx.output.name.as_normalized();
    for (index, test) in ctx.output.tests.iter().enumerate() {
        let label = format!("test {} of {what}", index + 1);
        if let Some(runs) = language::runs(test) {
            for (n, lang) in runs?.into_iter().enumerate() {
                let dir = fresh(ctx.dir, &format!("test-{index}-{n}"))?;
                let env = EnvRun {
                    dir: &dir,
                    run: lang.specs,
                    build: Vec::new(),
                    text: lang.script,
                    script: &Script::default(),
                    what: format!("test {} of {what} ({})", index + 1, lang.label),
                };
                run_in_env(ctx, envs, env, echo)?;
            }
            continue;
        }
        match test {
            Test::PackageContents(contents) => {
                contents::check_contents(contents, ctx.paths, what, index)?
            }
            Test::Script {
                script,
                requirements,
                files,
            } => {
                if let Some(interpreter) = script.interpreter.as_deref().filter(|i| *i != "bash") {
                    return Err(BuildError::Unsupported {
                        what: label,
                        feature: format!("script interpreter `{interpreter}`"),
                    });
                }
                let dir = fresh(ctx.dir, &format!("test-{index}"))?;
                copy_matching(ctx.recipe_dir, &files.recipe, &dir.join("work"))?;
                copy_matching(ctx.work_dir, &files.source, &dir.join("work"))?;
                let env = EnvRun {
                    dir: &dir,
                    run: plain_specs(&requirements.run),
                    build: plain_specs(&requirements.build),
                    text: script_text(script, ctx.recipe_dir, what)?,
                    script,
                    what: label,
                };
                run_in_env(ctx, envs, env, echo)?;
            }
            Test::Downstream(spec) => {
                let dir = fresh(ctx.dir, &format!("test-{index}"))?;
                downstream::check(ctx, envs, spec, &dir, &label)?;
            }
            Test::Python { .. } | Test::Perl { .. } | Test::R { .. } | Test::Ruby { .. } => {}
        }
    }
    Ok(ctx.output.tests.len())
}

/// A fresh directory `root/name` with an empty `work/` in it.
fn fresh(root: &Path, name: &str) -> Result<PathBuf, BuildError> {
    let dir = root.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(BuildError::io(format!("clearing {}", dir.display())))?;
    }
    std::fs::create_dir_all(dir.join("work"))
        .map_err(BuildError::io(format!("creating {}", dir.display())))?;
    Ok(dir)
}

/// The text of a script: inline lines, or the file next to the recipe.
pub fn script_text(script: &Script, recipe_dir: &Path, what: &str) -> Result<String, BuildError> {
    match &script.content {
        ScriptContent::Commands(lines) => Ok(lines.join("\n")),
        ScriptContent::File(file) => {
            let path = recipe_dir.join(file);
            std::fs::read_to_string(&path).map_err(|_| BuildError::MissingSource {
                what: what.to_string(),
                path,
            })
        }
    }
}

/// `text` with the names left for the build (`${{ PREFIX }}`) filled in
/// from `env`, the environment the script runs in, when the script is
/// inline; a script file is a shell script and runs as it is.
pub fn fill_build_names(
    script: &Script,
    text: String,
    env: &BTreeMap<String, String>,
    what: &str,
) -> Result<String, BuildError> {
    match &script.content {
        ScriptContent::File(_) => Ok(text),
        ScriptContent::Commands(_) => {
            cleave_recipe::build_time::fill(&text, env).map_err(|source| BuildError::Template {
                what: what.to_string(),
                source,
            })
        }
    }
}

/// The spec of exactly the package under test.
fn itself(output: &PackageOutput) -> Result<MatchSpec, BuildError> {
    let text = format!(
        "{} =={} {}",
        output.name.as_normalized(),
        output.version,
        output.build.string
    );
    MatchSpec::from_str(&text, ParseStrictness::Lenient).map_err(|e| BuildError::Io {
        context: format!("the spec of {}", output.name.as_normalized()),
        source: std::io::Error::other(e.to_string()),
    })
}

/// One script in one test environment.
struct EnvRun<'a> {
    /// The test's directory (made by [`fresh`]).
    dir: &'a Path,
    /// Installed next to the package under test.
    run: Vec<MatchSpec>,
    /// A separate environment for build-platform tools, if not empty.
    build: Vec<MatchSpec>,
    /// The script.
    text: String,
    /// Its settings (`env`, `secrets`, `cwd`).
    script: &'a Script,
    /// The test, for messages.
    what: String,
}

fn run_in_env(
    ctx: &TestContext<'_>,
    envs: &Environments,
    test: EnvRun<'_>,
    echo: &mut dyn FnMut(&str),
) -> Result<(), BuildError> {
    let output = ctx.output;
    let what = test.what;
    let mut specs = vec![itself(output)?];
    specs.extend(test.run);
    let prefix = test.dir.join("test_env");
    let records = envs.solve(&specs, ctx.target, &what, EnvKind::Test)?;
    envs.install(&prefix, records, ctx.target, &what, EnvKind::Test)?;
    let mut prefixes = vec![prefix.clone()];
    if !test.build.is_empty() {
        let build_prefix = test.dir.join("test_build_env");
        let records = envs.solve(&test.build, ctx.build_platform, &what, EnvKind::Test)?;
        envs.install(
            &build_prefix,
            records,
            ctx.build_platform,
            &what,
            EnvKind::Test,
        )?;
        prefixes.insert(0, build_prefix);
    }
    let mut base = ctx.base_env.clone();
    base.insert("PREFIX".into(), prefix.display().to_string());
    base.insert("CONDA_PREFIX".into(), prefix.display().to_string());
    base.insert("PKG_NAME".into(), output.name.as_normalized().to_string());
    base.insert("PKG_VERSION".into(), output.version.to_string());
    base.insert("PKG_BUILDNUM".into(), output.build.number.to_string());
    for secret in &test.script.secrets {
        if let Ok(value) = std::env::var(secret) {
            base.insert(secret.clone(), value);
        }
    }
    base.extend(test.script.env.clone());
    let refs: Vec<&Path> = prefixes.iter().map(PathBuf::as_path).collect();
    let env = activated(&refs, ctx.target, base)?;
    let text = fill_build_names(test.script, test.text, &env, &what)?;
    let work = test.dir.join("work");
    let cwd = match &test.script.cwd {
        Some(cwd) => work.join(cwd),
        None => work.clone(),
    };
    run(
        &ScriptRun {
            text,
            cwd: &cwd,
            env,
            secrets: &test.script.secrets,
            log: &test.dir.join("test.log"),
            work_dir: test.dir.to_path_buf(),
            guard: ctx.guard,
            what,
        },
        echo,
    )
}

/// The plain specs of a requirement list (tests cannot pin_compatible).
fn plain_specs(deps: &[Dependency]) -> Vec<MatchSpec> {
    deps.iter()
        .filter_map(|d| match d {
            Dependency::Spec(spec) => Some(spec.clone()),
            Dependency::PinCompatible(_) => None,
        })
        .collect()
}

/// Copies the files under `root` that match `globs` into `to`.
fn copy_matching(root: &Path, globs: &[String], to: &Path) -> Result<(), BuildError> {
    for (entry, rel) in matching_files(root, globs)? {
        crate::fs::copy_entry(&entry, &to.join(rel))
            .map_err(BuildError::io(format!("copying {}", entry.display())))?;
    }
    Ok(())
}

/// The files below `root` that `globs` match, with their relative paths,
/// in path order.
pub(crate) fn matching_files(
    root: &Path,
    globs: &[String],
) -> Result<Vec<(PathBuf, PathBuf)>, BuildError> {
    if globs.is_empty() {
        return Ok(Vec::new());
    }
    let set = crate::package::capture::glob_set(globs)?;
    let mut out: Vec<(PathBuf, PathBuf)> = walk(root)?
        .into_iter()
        .filter_map(|entry| {
            let rel = entry.strip_prefix(root).ok()?.to_path_buf();
            set.is_match(&rel).then_some((entry, rel))
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

fn walk(root: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(BuildError::io(format!("reading {}", dir.display())))?;
        for entry in entries {
            let path = entry
                .map_err(BuildError::io(format!("reading {}", dir.display())))?
                .path();
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    Ok(out)
}
