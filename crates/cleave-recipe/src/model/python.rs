use std::path::{Component, Path};

use serde::Serialize;

use super::build::FileSelection;
use crate::error::ProblemKind;
use crate::read::Reader;
use crate::yaml::Node;

/// `build.python`: how a package holding Python code is laid out.
///
/// Read and validated here so that a recipe using them renders with their
/// values; which of them the build engine acts on is its business (see
/// docs/recipe.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PythonSettings {
    /// Console scripts to create, `name = module:function`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entry_points: Vec<String>,
    /// Python files not to compile to `.pyc`.
    #[serde(skip_serializing_if = "FileSelection::is_all")]
    pub skip_pyc_compilation: FileSelection,
    /// On macOS, entry points run through `python.app`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub use_python_app_entrypoint: bool,
    /// The package works with every Python version (abi3 extensions).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub version_independent: bool,
    /// For the `python` package itself: where its site-packages directory
    /// is, relative to the prefix (CEP 17).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site_packages_path: Option<String>,
}

const PYTHON_KEYS: &[&str] = &[
    "entry_points",
    "skip_pyc_compilation",
    "use_python_app_entrypoint",
    "version_independent",
    "site_packages_path",
];

impl PythonSettings {
    pub(crate) fn is_default(&self) -> bool {
        *self == PythonSettings::default()
    }

    pub(crate) fn read(r: &mut Reader<'_>, node: &Node) -> PythonSettings {
        let Some(node) = r.map(node, "build.python", PYTHON_KEYS) else {
            return PythonSettings::default();
        };
        PythonSettings {
            entry_points: r
                .opt_strings(node, "entry_points")
                .into_iter()
                .map(|s| s.value)
                .collect(),
            skip_pyc_compilation: node
                .get("skip_pyc_compilation")
                .map(|n| FileSelection::read_section(r, n, "skip_pyc_compilation"))
                .unwrap_or_default(),
            use_python_app_entrypoint: r
                .opt_bool(node, "use_python_app_entrypoint")
                .unwrap_or(false),
            version_independent: r.opt_bool(node, "version_independent").unwrap_or(false),
            site_packages_path: r.opt_string(node, "site_packages_path").and_then(|path| {
                let relative = Path::new(&path.value)
                    .components()
                    .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
                if relative && !path.value.trim().is_empty() {
                    Some(path.value)
                } else {
                    r.report(
                        ProblemKind::InvalidValue {
                            what: "site_packages_path",
                            value: path.value,
                            reason: "expected a path relative to the prefix, without `..`".into(),
                        },
                        path.span,
                    );
                    None
                }
            }),
        }
    }
}
