//! Running a build script: its text, its environment, its log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cleave_recipe::model::Script;
use rattler_conda_types::Subdir;

use super::{Builder, Event};
use crate::check::package_tests::{fill_build_names, script_text};
use crate::environment::activated;
use crate::error::BuildError;
use crate::layout::OutputDirs;
use crate::script::{ScriptRun, env, run};

impl Builder {
    pub(super) fn run_script(
        &self,
        script: &Script,
        vars: &ScriptVars<'_>,
        dirs: &OutputDirs,
        recipe_dir: &Path,
        what: &str,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), BuildError> {
        if script.is_empty() {
            return Ok(());
        }
        if let Some(interpreter) = script.interpreter.as_deref().filter(|i| *i != "bash") {
            return Err(BuildError::Unsupported {
                what: what.to_string(),
                feature: format!("script interpreter `{interpreter}`"),
            });
        }
        let env = self.script_env(script, vars, dirs, recipe_dir)?;
        let text = fill_build_names(script, script_text(script, recipe_dir, what)?, &env, what)?;
        let cwd = match &script.cwd {
            Some(cwd) => dirs.work.join(cwd),
            None => dirs.work.clone(),
        };
        on_event(Event::ScriptStarted {
            what,
            dir: &dirs.root,
        });
        let started = std::time::Instant::now();
        let ran = run(
            &ScriptRun {
                text,
                cwd: &cwd,
                env,
                secrets: &script.secrets,
                log: &dirs.log,
                work_dir: dirs.work.clone(),
                guard: self.options.guard.with_lock(&dirs.run_lock),
                what: format!("the build script of {what}"),
            },
            &mut |line| on_event(Event::Line(line)),
        );
        on_event(Event::ScriptFinished {
            what,
            duration: started.elapsed(),
            success: ran.is_ok(),
        });
        ran
    }

    /// The variables a build script sees, with build and host activated.
    pub(super) fn script_env(
        &self,
        script: &Script,
        vars: &ScriptVars<'_>,
        dirs: &OutputDirs,
        recipe_dir: &Path,
    ) -> Result<BTreeMap<String, String>, BuildError> {
        let o = &self.options;
        let mut env = o.base_env.clone();
        let path = |p: &Path| p.display().to_string();
        env.extend(env::os_vars(
            &dirs.host_prefix,
            &dirs.work,
            o.target_platform,
            o.build_platform,
        ));
        env.extend(env::platform_vars(o.target_platform, o.build_platform));
        let fixed = [
            ("PREFIX", path(&dirs.host_prefix)),
            ("CONDA_DEFAULT_ENV", path(&dirs.host_prefix)),
            ("BUILD_PREFIX", path(&dirs.build_prefix)),
            ("SRC_DIR", path(&dirs.work)),
            ("RECIPE_DIR", path(recipe_dir)),
            ("BUILD_DIR", path(&dirs.root)),
            (
                "PYTHON",
                path(&python_path(&dirs.host_prefix, o.target_platform)),
            ),
            ("CONDA_BUILD", "1".to_string()),
            ("CONDA_BUILD_STATE", "BUILD".to_string()),
            (
                "SOURCE_DATE_EPOCH",
                o.timestamp.as_second().max(0).to_string(),
            ),
        ];
        env.extend(fixed.into_iter().map(|(k, v)| (k.to_string(), v)));
        // A staging build belongs to no package: as with rattler-build, it
        // gets no package's name or build string. It gets the recipe's
        // version, which is the same for every output that inherits it and
        // part of its key.
        match &vars.package {
            Some(package) => {
                env.insert("PKG_NAME".into(), package.name.to_string());
                env.insert("PKG_VERSION".into(), package.version.clone());
                env.insert("PKG_BUILDNUM".into(), package.build_number.to_string());
                env.insert("PKG_BUILD_STRING".into(), package.build_string.to_string());
                env.insert("PKG_HASH".into(), package.hash.to_string());
            }
            None => {
                if let Some(version) = vars.recipe_version {
                    env.insert("PKG_VERSION".into(), version.to_string());
                }
            }
        }
        if vars.noarch_python {
            env.insert("PYTHONDONTWRITEBYTECODE".into(), "1".into());
        }
        if let Some((version, stdlib)) = host_python(&dirs.host_prefix) {
            env.insert(
                "PY3K".into(),
                u8::from(version.starts_with("3.")).to_string(),
            );
            env.insert("PY_VER".into(), version);
            env.insert("SP_DIR".into(), path(&stdlib.join("site-packages")));
            env.insert("STDLIB_DIR".into(), path(&stdlib));
        }
        if let Some(numpy) = vars.variant.get("numpy") {
            env.insert("NPY_VER".into(), two_parts(numpy));
            env.insert("NPY_DISTUTILS_APPEND_FLAGS".into(), "1".into());
        }
        if let Some(r) = vars.variant.get("r_base") {
            env.insert("R_VER".into(), r.clone());
            env.insert("R".into(), path(&dirs.host_prefix.join("bin/R")));
            env.insert("R_USER".into(), path(&dirs.host_prefix.join("Libs/R")));
        }
        env.extend(crate::package::python::build_env(&dirs.root));
        for (key, value) in env::variant_vars(vars.variant) {
            env.entry(key).or_insert(value);
        }
        for secret in &script.secrets {
            if let Ok(value) = std::env::var(secret) {
                env.insert(secret.clone(), value);
            }
        }
        env.extend(script.env.clone());
        let mut env = activated(
            &[&dirs.build_prefix, &dirs.host_prefix],
            o.target_platform,
            env,
        )?;
        super::compile_env::install(
            &o.compile_cache,
            &mut env,
            dirs,
            (recipe_dir, &o.cache_dir),
            self.compile_levels.as_deref(),
        )?;
        Ok(env)
    }
}

/// The first two parts of a version (`1.26.4` → `1.26`).
fn two_parts(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// Where the host environment's python is (or would be).
fn python_path(prefix: &Path, platform: Subdir) -> PathBuf {
    if platform.is_windows() {
        prefix.join("python.exe")
    } else {
        prefix.join("bin/python")
    }
}

/// The version (`3.12`) and standard library directory of a python
/// installed in `prefix`, if there is one.
fn host_python(prefix: &Path) -> Option<(String, PathBuf)> {
    std::fs::read_dir(prefix.join("lib"))
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.path().join("site-packages").is_dir())
        .find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let version = name.strip_prefix("python")?;
            let valid = version.split('.').count() == 2
                && version.split('.').all(|p| p.parse::<u32>().is_ok());
            valid.then(|| (version.to_string(), e.path()))
        })
}

/// What a script sees of the build it runs for.
pub(super) struct ScriptVars<'a> {
    /// The package being built; `None` for a staging build.
    pub(super) package: Option<PackageVars<'a>>,
    /// A staging build's recipe version.
    pub(super) recipe_version: Option<&'a str>,
    pub(super) variant: &'a BTreeMap<String, String>,
    /// A `noarch: python` package: python writes no bytecode.
    pub(super) noarch_python: bool,
}

/// Package identity as the script sees it.
pub(super) struct PackageVars<'a> {
    pub(super) name: &'a str,
    pub(super) version: String,
    pub(super) build_number: u64,
    pub(super) build_string: &'a str,
    pub(super) hash: &'a str,
}
