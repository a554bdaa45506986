//! Filling in what a rendered recipe leaves for the build.
//!
//! A build script may use names only the build knows (`${{ PREFIX }}`,
//! `${{ PYTHON }}`, a variable of the script's `env`), and patch and
//! license paths may start at `${{ SRC_DIR }}` or `${{ RECIPE_DIR }}`.
//! Rendering keeps those as `${{ NAME }}` (see [`token`]) and the build
//! engine fills them in with [`fill`] from the environment the script runs
//! in. A name the environment lacks becomes empty, as it does for
//! conda-build and rattler-build. Script *files* are never filled in: they
//! are shell scripts, not templates.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use minijinja::{Environment, UndefinedBehavior};

/// Variables a build script's environment has whatever the recipe: the
/// ones cleave sets (see the build engine) and the ones it passes through.
/// A script template naming anything else gets a warning while rendering:
/// it is most likely a typo of a recipe variable.
pub const BUILD_VARIABLES: &[&str] = &[
    "PREFIX",
    "BUILD_PREFIX",
    "SRC_DIR",
    "BUILD_DIR",
    "RECIPE_DIR",
    "PYTHON",
    "PY_VER",
    "SP_DIR",
    "STDLIB_DIR",
    "PKG_NAME",
    "PKG_VERSION",
    "PKG_BUILDNUM",
    "PKG_BUILD_STRING",
    "PKG_HASH",
    "CPU_COUNT",
    "SHLIB_EXT",
    "ARCH",
    "SUBDIR",
    "CONDA_BUILD",
    "CONDA_BUILD_STATE",
    "CONDA_BUILD_CROSS_COMPILATION",
    "target_platform",
    "build_platform",
    "host_platform",
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "TERM",
    "TMPDIR",
    "SOURCE_DATE_EPOCH",
];

/// The text a rendered recipe holds for a name the build fills in.
pub fn token(name: &str) -> String {
    format!("${{{{ {name} }}}}")
}

/// A template left in a rendered field could not be filled in.
#[derive(Debug, thiserror::Error)]
#[error("cannot fill in `{text}`: {reason}")]
pub struct FillError {
    /// The text, shortened to its first line.
    pub text: String,
    /// What the template engine said.
    pub reason: String,
}

/// Renders what is left of a field's templates with `vars`; text without
/// `${{` is returned unchanged.
pub fn fill(text: &str, vars: &BTreeMap<String, String>) -> Result<String, FillError> {
    if !text.contains("${{") && !text.contains("${%") {
        return Ok(text.to_string());
    }
    environment().render_str(text, vars).map_err(|e| FillError {
        text: text.lines().next().unwrap_or_default().to_string(),
        reason: e.detail().map_or_else(|| e.to_string(), str::to_string),
    })
}

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = crate::jinja::bounded_environment();
        env.set_syntax(crate::jinja::syntax());
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.set_keep_trailing_newline(true);
        env
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_fill_from_the_environment() {
        let vars = BTreeMap::from([("PYTHON".to_string(), "/p/bin/python".to_string())]);
        let text = format!("{} -m pip install . # {}", token("PYTHON"), token("UNSET"));
        assert_eq!(
            fill(&text, &vars).unwrap(),
            "/p/bin/python -m pip install . # "
        );
        assert_eq!(fill("echo $PREFIX", &vars).unwrap(), "echo $PREFIX");
    }
}
