use serde::Serialize;
use url::Url;

use crate::error::ProblemKind;
use crate::read::{Reader, Spanned};
use crate::yaml::Node;

/// Descriptive metadata that ends up in `info/about.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct About {
    /// Project home page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub homepage: Option<Url>,
    /// Source repository.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<Url>,
    /// Documentation site.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documentation: Option<Url>,
    /// SPDX license expression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// License files, relative to the source or recipe directory.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub license_file: Vec<String>,
    /// License family (MIT, BSD, GPL, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license_family: Option<String>,
    /// One-line summary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Longer description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

const KEYS: &[&str] = &[
    "homepage",
    "repository",
    "documentation",
    "license",
    "license_file",
    "license_family",
    "summary",
    "description",
];

impl About {
    pub(crate) fn read(r: &mut Reader<'_>, node: &Node) -> About {
        let Some(node) = r.map(node, "about", KEYS) else {
            return About::default();
        };
        let mut url = |key| {
            let value = r.opt_string(node, key)?;
            read_url(r, value)
        };
        let homepage = url("homepage");
        let repository = url("repository");
        let documentation = url("documentation");
        About {
            homepage,
            repository,
            documentation,
            license: r.opt_string(node, "license").map(|s| s.value),
            // License files are looked for in the work dir and the recipe dir.
            license_file: r.late_bound_paths(
                node,
                "license_file",
                &["SRC_DIR", "RECIPE_DIR"],
                "license files",
            ),
            license_family: r.opt_string(node, "license_family").map(|s| s.value),
            summary: r.opt_string(node, "summary").map(|s| s.value),
            description: r.opt_string(node, "description").map(|s| s.value),
        }
    }
}

pub(crate) fn read_url(r: &mut Reader<'_>, value: Spanned) -> Option<Url> {
    match Url::parse(&value.value) {
        Ok(url) => Some(url),
        Err(err) => {
            r.report(
                ProblemKind::InvalidValue {
                    what: "URL",
                    value: value.value,
                    reason: err.to_string(),
                },
                value.span,
            );
            None
        }
    }
}
