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
use crate::script::{ScriptRun, run};

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
                what: what.to_string(),
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
        let shlib = match o.target_platform.as_str() {
            s if s.starts_with("osx") => ".dylib",
            s if s.starts_with("win") => ".dll",
            _ => ".so",
        };
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let fixed = [
            ("PREFIX", path(&dirs.host_prefix)),
            ("BUILD_PREFIX", path(&dirs.build_prefix)),
            ("SRC_DIR", path(&dirs.work)),
            ("RECIPE_DIR", path(recipe_dir)),
            ("BUILD_DIR", path(&dirs.root)),
            ("PKG_NAME", vars.name.to_string()),
            ("PKG_HASH", vars.hash.to_string()),
            ("CPU_COUNT", cpus.to_string()),
            ("target_platform", o.target_platform.to_string()),
            ("host_platform", o.target_platform.to_string()),
            ("build_platform", o.build_platform.to_string()),
            ("SUBDIR", o.target_platform.to_string()),
            ("ARCH", arch_name(o.target_platform)),
            ("SHLIB_EXT", shlib.to_string()),
            (
                "PYTHON",
                path(&python_path(&dirs.host_prefix, o.target_platform)),
            ),
            ("CONDA_BUILD", "1".to_string()),
            ("CONDA_BUILD_STATE", "BUILD".to_string()),
            (
                "CONDA_BUILD_CROSS_COMPILATION",
                u8::from(o.target_platform != o.build_platform).to_string(),
            ),
        ];
        env.extend(fixed.into_iter().map(|(k, v)| (k.to_string(), v)));
        if let Some(version) = &vars.version {
            env.insert("PKG_VERSION".into(), version.clone());
        }
        if let Some(number) = vars.build_number {
            env.insert("PKG_BUILDNUM".into(), number.to_string());
        }
        if let Some(build_string) = vars.build_string {
            env.insert("PKG_BUILD_STRING".into(), build_string.to_string());
        }
        if let Some((version, stdlib)) = host_python(&dirs.host_prefix) {
            env.insert("PY_VER".into(), version);
            env.insert("SP_DIR".into(), path(&stdlib.join("site-packages")));
            env.insert("STDLIB_DIR".into(), path(&stdlib));
        }
        env.extend(crate::package::python::build_env(&dirs.root));
        for (key, value) in vars.variant {
            if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                env.entry(key.clone()).or_insert_with(|| value.clone());
            }
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

/// conda-build's `ARCH`: `64` and `32` for x86, else the architecture.
fn arch_name(platform: Subdir) -> String {
    match platform.arch() {
        Some(rattler_conda_types::Arch::X86_64) => "64".into(),
        Some(rattler_conda_types::Arch::X86) => "32".into(),
        Some(arch) => arch.as_str().into(),
        None => String::new(),
    }
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

/// Package identity as the script sees it.
pub(super) struct ScriptVars<'a> {
    pub(super) name: &'a str,
    pub(super) version: Option<String>,
    pub(super) build_number: Option<u64>,
    pub(super) build_string: Option<&'a str>,
    pub(super) hash: &'a str,
    pub(super) variant: &'a BTreeMap<String, String>,
}
