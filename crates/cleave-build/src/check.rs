//! Runs a package's tests.
//!
//! - `package_contents` checks the paths of the written archive.
//! - `script` and `python` tests run in a fresh environment, solved from the
//!   output channel and the other channels, holding the package (by exact
//!   version and build) and the test's own requirements.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cleave_recipe::model::{
    Dependency, PackageContents, PackageOutput, Script, ScriptContent, Test,
};
use rattler_conda_types::{MatchSpec, ParseStrictness, Subdir};

use crate::env::{EnvKind, Environments, activated};
use crate::error::BuildError;
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
        match test {
            Test::PackageContents(contents) => check_contents(contents, ctx.paths, what, index)?,
            Test::Script {
                script,
                requirements,
                files,
            } => {
                let dir = fresh(ctx.dir, index)?;
                copy_matching(ctx.recipe_dir, &files.recipe, &dir.join("work"))?;
                copy_matching(ctx.work_dir, &files.source, &dir.join("work"))?;
                run_in_env(
                    ctx,
                    envs,
                    &dir,
                    &requirements.run,
                    &requirements.build,
                    script,
                    index,
                    echo,
                )?;
            }
            Test::Python { imports, pip_check } => {
                let dir = fresh(ctx.dir, index)?;
                let mut text: Vec<String> = imports
                    .iter()
                    .map(|m| format!("python -c 'import {m}'"))
                    .collect();
                let mut run_deps = vec![spec_dep("python")?];
                if *pip_check {
                    text.push("python -m pip check".into());
                    run_deps.push(spec_dep("pip")?);
                }
                let script = Script {
                    content: ScriptContent::Commands(text),
                    ..Script::default()
                };
                run_in_env(ctx, envs, &dir, &run_deps, &[], &script, index, echo)?;
            }
        }
    }
    Ok(ctx.output.tests.len())
}

fn spec_dep(text: &str) -> Result<Dependency, BuildError> {
    MatchSpec::from_str(text, ParseStrictness::Lenient)
        .map(Dependency::Spec)
        .map_err(|e| BuildError::Io {
            context: format!("parsing `{text}`"),
            source: std::io::Error::other(e.to_string()),
        })
}

fn fresh(root: &Path, index: usize) -> Result<PathBuf, BuildError> {
    let dir = root.join(format!("test-{index}"));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(BuildError::io(format!("clearing {}", dir.display())))?;
    }
    std::fs::create_dir_all(dir.join("work"))
        .map_err(BuildError::io(format!("creating {}", dir.display())))?;
    Ok(dir)
}

/// The text of a script: inline lines, or the file next to the recipe.
/// Inline lines get the names left for the build (`${{ PREFIX }}`) filled
/// in from `env`, the environment the script runs in; a file is a shell
/// script, run as it is.
pub fn script_text(
    script: &Script,
    recipe_dir: &Path,
    env: &BTreeMap<String, String>,
    what: &str,
) -> Result<String, BuildError> {
    match &script.content {
        ScriptContent::Commands(lines) => cleave_recipe::build_time::fill(&lines.join("\n"), env)
            .map_err(|source| BuildError::Template {
                what: what.to_string(),
                source,
            }),
        ScriptContent::File(file) => {
            let path = recipe_dir.join(file);
            std::fs::read_to_string(&path).map_err(|_| BuildError::MissingSource {
                what: what.to_string(),
                path,
            })
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run_in_env(
    ctx: &TestContext<'_>,
    envs: &Environments,
    dir: &Path,
    run_deps: &[Dependency],
    build_deps: &[Dependency],
    script: &Script,
    index: usize,
    echo: &mut dyn FnMut(&str),
) -> Result<(), BuildError> {
    let output = ctx.output;
    let what = format!("{} (test {})", output.name.as_normalized(), index + 1);
    let itself = MatchSpec::from_str(
        &format!(
            "{} =={} {}",
            output.name.as_normalized(),
            output.version,
            output.build.string
        ),
        ParseStrictness::Lenient,
    )
    .map_err(|e| BuildError::Io {
        context: format!("the spec of {what}"),
        source: std::io::Error::other(e.to_string()),
    })?;
    let mut specs = vec![itself];
    specs.extend(plain_specs(run_deps));
    let prefix = dir.join("test_env");
    let records = envs.solve(&specs, ctx.target, &what, EnvKind::Test)?;
    envs.install(&prefix, records, ctx.target, &what, EnvKind::Test)?;
    let mut prefixes = vec![prefix.clone()];
    let build_specs = plain_specs(build_deps);
    if !build_specs.is_empty() {
        let build_prefix = dir.join("test_build_env");
        let records = envs.solve(&build_specs, ctx.build_platform, &what, EnvKind::Test)?;
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
    base.extend(script.env.clone());
    let refs: Vec<&Path> = prefixes.iter().map(PathBuf::as_path).collect();
    let env = activated(&refs, ctx.target, base)?;
    let text = script_text(script, ctx.recipe_dir, &env, &what)?;
    let work = dir.join("work");
    run(
        &ScriptRun {
            text,
            cwd: &work,
            env,
            log: &dir.join("test.log"),
            work_dir: dir.to_path_buf(),
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
    if globs.is_empty() {
        return Ok(());
    }
    let set = crate::capture::glob_set(globs)?;
    for entry in walk(root)? {
        let rel = entry.strip_prefix(root).expect("below root");
        if set.is_match(rel) {
            crate::fsutil::copy_entry(&entry, &to.join(rel))
                .map_err(BuildError::io(format!("copying {}", entry.display())))?;
        }
    }
    Ok(())
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

/// Checks a `package_contents` test against the archive's paths.
fn check_contents(
    contents: &PackageContents,
    paths: &[PathBuf],
    what: &str,
    index: usize,
) -> Result<(), BuildError> {
    let mut problems = Vec::new();
    let mut expected: Vec<(String, Vec<String>)> = Vec::new();
    for glob in &contents.files {
        expected.push((glob.clone(), vec![glob.clone()]));
    }
    for name in &contents.bin {
        expected.push((format!("bin: {name}"), vec![format!("bin/{name}")]));
    }
    for name in &contents.lib {
        expected.push((
            format!("lib: {name}"),
            vec![
                format!("lib/lib{name}.so"),
                format!("lib/lib{name}.so.*"),
                format!("lib/lib{name}.dylib"),
                format!("lib/lib{name}.*.dylib"),
                format!("lib/lib{name}.a"),
            ],
        ));
    }
    for glob in &contents.include {
        expected.push((format!("include: {glob}"), vec![format!("include/{glob}")]));
    }
    for glob in &contents.site_packages {
        let module = glob.replace('.', "/");
        expected.push((
            format!("site_packages: {glob}"),
            vec![
                format!("lib/python*/site-packages/{module}"),
                format!("lib/python*/site-packages/{module}/**"),
                format!("lib/python*/site-packages/{module}.py"),
                format!("lib/python*/site-packages/{module}.*.so"),
                format!("site-packages/{module}"),
                format!("site-packages/{module}/**"),
                format!("site-packages/{module}.py"),
            ],
        ));
    }
    let mut matchers = Vec::new();
    for (label, globs) in &expected {
        let set = crate::capture::glob_set(globs)?;
        if !paths.iter().any(|p| set.is_match(p)) {
            problems.push(format!("no file matches `{label}`"));
        }
        matchers.push(set);
    }
    for glob in &contents.files_absent {
        let set = crate::capture::glob_set(std::slice::from_ref(glob))?;
        for path in paths.iter().filter(|p| set.is_match(p)) {
            problems.push(format!(
                "`{}` is present but must not be (`{glob}`)",
                path.display()
            ));
        }
    }
    if contents.strict {
        for path in paths {
            if !matchers.iter().any(|m| m.is_match(path)) {
                problems.push(format!(
                    "`{}` is not listed (the test is strict)",
                    path.display()
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(BuildError::TestFailed {
            what: format!("{what} (test {}: package_contents)", index + 1),
            problems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(list: &[&str]) -> Vec<PathBuf> {
        list.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn contents_checks_report_every_missing_and_forbidden_path() {
        let contents = PackageContents {
            files: vec!["include/*.h".into(), "share/doc/**".into()],
            files_absent: vec!["lib/*.a".into()],
            lib: vec!["greet".into()],
            bin: vec!["greet".into()],
            ..PackageContents::default()
        };
        let have = paths(&["include/greet.h", "lib/libgreet.so.1", "lib/libgreet.a"]);
        let Err(BuildError::TestFailed { problems, .. }) = check_contents(&contents, &have, "x", 0)
        else {
            panic!("expected a failure")
        };
        assert_eq!(
            problems,
            [
                "no file matches `share/doc/**`",
                "no file matches `bin: greet`",
                "`lib/libgreet.a` is present but must not be (`lib/*.a`)",
            ]
        );
    }

    #[test]
    fn strict_contents_reject_unlisted_files() {
        let contents = PackageContents {
            files: vec!["lib/*.so*".into()],
            strict: true,
            ..PackageContents::default()
        };
        let have = paths(&["lib/libgreet.so", "lib/extra.txt"]);
        let Err(BuildError::TestFailed { problems, .. }) = check_contents(&contents, &have, "x", 0)
        else {
            panic!("expected a failure")
        };
        assert_eq!(
            problems,
            ["`lib/extra.txt` is not listed (the test is strict)"]
        );
        assert!(check_contents(&contents, &paths(&["lib/libgreet.so.1"]), "x", 0).is_ok());
    }
}
