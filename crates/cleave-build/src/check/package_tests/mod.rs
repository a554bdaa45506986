//! Runs a package's tests.
//!
//! - `package_contents` checks the paths of the written archive
//!   ([`contents`]).
//! - `script` tests, and the `python`, `perl`, `r` and `ruby` tests made
//!   into scripts by [`language`], run in a fresh environment, solved from
//!   a channel holding only the package under test (it goes into the
//!   output channel only once its tests passed), the output channel and
//!   the other channels, holding the package (by exact version and build)
//!   and the test's own requirements.
//! - `downstream` tests check that the named package installs together
//!   with this one ([`downstream`]).
//!
//! The package carries its tests as [`stored`] writes them.

mod contents;
mod downstream;
mod language;
mod package_file;
pub mod stored;

pub use package_file::{PackageFileTests, test_package_file};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cleave_recipe::model::{Dependency, PackageOutput, Script, ScriptContent, Test};
use rattler_conda_types::{Channel, MatchSpec, ParseStrictness, Subdir};

use crate::engine::Event;
use crate::environment::{EnvKind, Environments, activated};
use crate::error::BuildError;
use crate::script::guard::Guarded;
use crate::script::{ScriptRun, env, run};

/// The package a test runs against: its exact identity, and the variant
/// it was built for, which its test scripts see.
#[derive(Debug, Clone)]
pub struct Subject {
    /// The package name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its build string.
    pub build: String,
    /// Its build number.
    pub build_number: u64,
    /// The variant keys and values it was built with.
    pub variant: BTreeMap<String, String>,
}

impl Subject {
    /// The package a recipe output makes.
    pub fn of(output: &PackageOutput) -> Subject {
        Subject {
            name: output.name.as_normalized().to_string(),
            version: output.version.to_string(),
            build: output.build.string.clone(),
            build_number: output.build.number,
            variant: output.variant.clone(),
        }
    }

    /// The spec of exactly this package.
    fn spec(&self) -> Result<MatchSpec, BuildError> {
        let text = format!("{} =={} {}", self.name, self.version, self.build);
        MatchSpec::from_str(&text, ParseStrictness::Lenient).map_err(|e| BuildError::Io {
            context: format!("the spec of {}", self.name),
            source: std::io::Error::other(e.to_string()),
        })
    }
}

/// Where and how a package's tests run, whether they come from its
/// recipe or from the package itself.
pub struct TestEnv<'a> {
    /// The package under test.
    pub subject: &'a Subject,
    /// A directory the tests may use; recreated.
    pub dir: &'a Path,
    /// Runs the test scripts so that none outlives cleave.
    pub guard: Guarded<'a>,
    /// The platform the package is for.
    pub target: Subdir,
    /// The platform tools run on.
    pub build_platform: Subdir,
    /// Variables every script gets (PATH and the like).
    pub base_env: &'a BTreeMap<String, String>,
    /// Channels searched before the others: the one holding the package
    /// under test.
    pub channels: &'a [Channel],
}

/// What a test run of a recipe's output needs beyond the test itself.
pub struct TestContext<'a> {
    /// The package under test.
    pub output: &'a PackageOutput,
    /// Paths in the written archive.
    pub paths: &'a [PathBuf],
    /// The recipe directory, for `files.recipe`.
    pub recipe_dir: &'a Path,
    /// The work dir of the build, for `files.source`.
    pub work_dir: &'a Path,
    /// Where and how the tests run.
    pub env: TestEnv<'a>,
}

/// Runs every test of the output, in order; the first failure stops.
/// Reports each line the tests print and each test that passed.
pub fn run_tests(
    ctx: &TestContext<'_>,
    envs: &Environments,
    on_event: &mut dyn FnMut(Event<'_>),
) -> Result<usize, BuildError> {
    let what = ctx.output.name.as_normalized();
    for (index, test) in ctx.output.tests.iter().enumerate() {
        let label = format!("test {} of {what}", index + 1);
        run_test(ctx, envs, test, index, &label, &mut |line| {
            on_event(Event::Line(line))
        })?;
        on_event(Event::TestPassed { test: &label });
    }
    Ok(ctx.output.tests.len())
}

/// Runs test `index` of the output.
fn run_test(
    ctx: &TestContext<'_>,
    envs: &Environments,
    test: &Test,
    index: usize,
    label: &str,
    echo: &mut dyn FnMut(&str),
) -> Result<(), BuildError> {
    let what = ctx.output.name.as_normalized();
    if let Some(runs) = language::runs(test) {
        for (n, lang) in runs?.into_iter().enumerate() {
            let dir = fresh(ctx.env.dir, &format!("test-{index}-{n}"))?;
            let env = EnvRun {
                dir: &dir,
                run: lang.specs,
                build: Vec::new(),
                text: lang.script,
                settings: Settings::default(),
                what: format!("{label} ({})", lang.label),
            };
            run_in_env(&ctx.env, envs, env, echo)?;
        }
        return Ok(());
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
            let dir = fresh(ctx.env.dir, &format!("test-{index}"))?;
            copy_matching(ctx.recipe_dir, &files.recipe, &dir.join("work"))?;
            copy_matching(ctx.work_dir, &files.source, &dir.join("work"))?;
            let env = EnvRun {
                dir: &dir,
                run: plain_specs(&requirements.run),
                build: plain_specs(&requirements.build),
                text: script_text(script, ctx.recipe_dir, what)?,
                settings: Settings {
                    interpreter: script.interpreter.as_deref(),
                    env: &script.env,
                    secrets: &script.secrets,
                    cwd: Cwd::Work(script.cwd.as_deref()),
                    fill_names: matches!(script.content, ScriptContent::Commands(_)),
                },
                what: label.to_string(),
            };
            run_in_env(&ctx.env, envs, env, echo)?;
        }
        Test::Downstream(spec) => {
            let dir = fresh(ctx.env.dir, &format!("test-{index}"))?;
            downstream::check(&ctx.env, envs, spec, &dir, label)?;
        }
        Test::Python { .. } | Test::Perl { .. } | Test::R { .. } | Test::Ruby { .. } => {}
    }
    Ok(())
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
    /// Its variables and directory.
    settings: Settings<'a>,
    /// The test, for messages.
    what: String,
}

/// A test script's interpreter, variables, secrets and directory.
struct Settings<'a> {
    /// `bash` when absent.
    interpreter: Option<&'a str>,
    /// Variables of the script.
    env: &'a BTreeMap<String, String>,
    /// Names of variables passed through from cleave's environment.
    secrets: &'a [String],
    /// Where it runs.
    cwd: Cwd<'a>,
    /// Whether the names left for the build (`${{ PREFIX }}`) are filled
    /// in: for a recipe's inline script, not for a script file or the
    /// text a package stores.
    fill_names: bool,
}

/// Where a test script runs.
enum Cwd<'a> {
    /// The test's `work/` (with the files it copied), or a directory
    /// below it.
    Work(Option<&'a str>),
    /// A directory below the test environment's prefix: where a package
    /// carries the files of its script tests.
    Prefix(&'a Path),
}

/// No variables of its own.
static NO_VARIABLES: BTreeMap<String, String> = BTreeMap::new();

impl Default for Settings<'_> {
    /// An inline script of generated commands, run in `work/`.
    fn default() -> Self {
        Settings {
            interpreter: None,
            env: &NO_VARIABLES,
            secrets: &[],
            cwd: Cwd::Work(None),
            fill_names: false,
        }
    }
}

fn run_in_env(
    ctx: &TestEnv<'_>,
    envs: &Environments,
    test: EnvRun<'_>,
    echo: &mut dyn FnMut(&str),
) -> Result<(), BuildError> {
    let subject = ctx.subject;
    let what = test.what;
    let mut specs = vec![subject.spec()?];
    specs.extend(test.run);
    let prefix = test.dir.join("test_env");
    let records = envs.solve_from(ctx.channels, &specs, ctx.target, &what, EnvKind::Test)?;
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
    // What rattler-build gives a test script: the system's variables, the
    // platforms, the variant and the package's identity.
    let mut base = ctx.base_env.clone();
    base.extend(env::os_vars(
        &prefix,
        test.dir,
        ctx.target,
        ctx.build_platform,
    ));
    base.extend(env::platform_vars(ctx.target, ctx.build_platform));
    base.extend(env::variant_vars(&subject.variant));
    base.insert("CONDA_BUILD_STATE".into(), "TEST".into());
    base.insert("PREFIX".into(), prefix.display().to_string());
    base.insert("CONDA_PREFIX".into(), prefix.display().to_string());
    base.insert("PKG_NAME".into(), subject.name.clone());
    base.insert("PKG_VERSION".into(), subject.version.clone());
    base.insert("PKG_BUILDNUM".into(), subject.build_number.to_string());
    base.insert("PKG_BUILD_NUMBER".into(), subject.build_number.to_string());
    base.insert("PKG_BUILD_STRING".into(), subject.build.clone());
    let settings = &test.settings;
    for secret in settings.secrets {
        if let Ok(value) = std::env::var(secret) {
            base.insert(secret.clone(), value);
        }
    }
    base.extend(settings.env.clone());
    let refs: Vec<&Path> = prefixes.iter().map(PathBuf::as_path).collect();
    let env = activated(&refs, ctx.target, base)?;
    let text = if settings.fill_names {
        cleave_recipe::build_time::fill(&test.text, &env).map_err(|source| {
            BuildError::Template {
                what: what.clone(),
                source,
            }
        })?
    } else {
        test.text
    };
    let text = interpreted(settings.interpreter, text, test.dir, &what)?;
    let work = test.dir.join("work");
    let cwd = match settings.cwd {
        Cwd::Work(Some(cwd)) => work.join(cwd),
        Cwd::Work(None) => work.clone(),
        Cwd::Prefix(cwd) => prefix.join(cwd),
    };
    run(
        &ScriptRun {
            text,
            cwd: &cwd,
            env,
            secrets: settings.secrets,
            log: &test.dir.join("test.log"),
            work_dir: test.dir.to_path_buf(),
            guard: ctx.guard,
            what: format!("the test script of {what}"),
        },
        echo,
    )
}

/// The program that runs a script file for each interpreter a test
/// script may name (rattler-build's names) and the file's extension;
/// `Some(None)` for bash, which runs the text itself; `None` for a name
/// cleave does not know.
fn interpreter_command(interpreter: &str) -> Option<Option<(&'static str, &'static str)>> {
    Some(match interpreter {
        "bash" | "sh" => None,
        "python" => Some(("python", "py")),
        "perl" => Some(("perl", "pl")),
        "ruby" => Some(("ruby", "rb")),
        "rscript" => Some(("Rscript", "R")),
        "nodejs" => Some(("node", "js")),
        _ => return None,
    })
}

/// The bash text that runs `text` with `interpreter`: `text` itself for
/// bash, else the interpreter (found on the test environment's PATH, so
/// the test must require it) given `text` as a file in `dir`.
fn interpreted(
    interpreter: Option<&str>,
    text: String,
    dir: &Path,
    what: &str,
) -> Result<String, BuildError> {
    let interpreter = interpreter.unwrap_or("bash");
    match interpreter_command(interpreter) {
        None => Err(BuildError::Unsupported {
            what: what.to_string(),
            feature: format!("script interpreter `{interpreter}`"),
        }),
        Some(None) => Ok(text),
        Some(Some((program, extension))) => {
            let file = dir.join(format!("test-script.{extension}"));
            std::fs::write(&file, text)
                .map_err(BuildError::io(format!("writing {}", file.display())))?;
            Ok(format!(
                "{program} {}",
                language::shell_quote(&file.display().to_string())
            ))
        }
    }
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
