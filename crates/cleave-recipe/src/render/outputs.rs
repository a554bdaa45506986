//! Reading a rendered output tree into the typed model.

use std::collections::BTreeMap;

use rattler_conda_types::VersionWithSource;

use super::requirements::{resolve_self_pins, to_json};
use super::{Driver, Used};
use crate::error::ProblemKind;
use crate::model::{
    About, Build, Inherit, PackageOutput, Requirements, Script, Source, StagingCache,
    StagingRequirements, Test,
};
use crate::parse::{STAGING_BUILD, Unit};
use crate::read::Reader;
use crate::yaml::Node;

impl Driver<'_> {
    pub(super) fn read_staging(
        &self,
        r: &mut Reader<'_>,
        node: &Node,
        unit: &Unit,
        used: &Used,
        hash: &str,
    ) -> StagingCache {
        // Run-time keys were already reported by the parser as keys a
        // staging output cannot have.
        let mut requirement_keys = crate::model::REQUIREMENT_KEYS.to_vec();
        requirement_keys.push("extras");
        let requirements = node
            .get("requirements")
            .and_then(|n| r.map(n, "staging requirements", &requirement_keys))
            .inspect(|n| crate::model::reject_extras(r, n))
            .map(|n| StagingRequirements {
                build: crate::model::read_dependencies(r, n.get("build")),
                host: crate::model::read_dependencies(r, n.get("host")),
                ignore_run_exports: n
                    .get("ignore_run_exports")
                    .map(|i| crate::model::read_ignore_run_exports(r, i))
                    .unwrap_or_default(),
            })
            .unwrap_or_default();
        let mut build_keys = STAGING_BUILD.to_vec();
        build_keys.extend(["steps", "flags"]);
        let build = node
            .get("build")
            .and_then(|b| r.map(b, "staging build", &build_keys))
            .inspect(|b| crate::model::reject_unsupported_build(r, b));
        let script = build
            .and_then(|b| b.get("script"))
            .map(|s| Script::read(r, s))
            .unwrap_or_else(|| self.default_script());
        let include_files = build
            .and_then(|b| b.get("include_files"))
            .map(|n| r.globs(n))
            .unwrap_or_default();
        let name_node = node.get("staging").and_then(|s| s.get("name"));
        let name = name_node
            .and_then(Node::as_str)
            .unwrap_or_default()
            .to_string();
        if let (Some(reason), Some(name_node)) = (super::names::unsafe_in_path(&name), name_node) {
            r.report(
                ProblemKind::InvalidValue {
                    what: "staging name",
                    value: name.clone(),
                    reason: reason.into(),
                },
                name_node.span,
            );
        }
        let version = node
            .get("staging")
            .and_then(|s| s.get("version"))
            .and_then(|v| r.string(v))
            .map(|v| v.value);
        StagingCache {
            name,
            implicit: unit.implicit,
            hash: hash.to_string(),
            version,
            variant: display_variant(used),
            sources: node
                .get("source")
                .map(|s| Source::read_all(r, s))
                .unwrap_or_default(),
            requirements,
            script,
            include_files,
        }
    }

    /// `build.sh` next to the recipe, if there is one.
    fn default_script(&self) -> Script {
        if self.recipe.recipe_dir.join("build.sh").is_file() {
            Script::file("build.sh")
        } else {
            Script::default()
        }
    }

    pub(super) fn read_package(
        &self,
        r: &mut Reader<'_>,
        node: &mut Node,
        used: &Used,
        build_string: String,
        inherit: Option<Inherit>,
    ) -> Option<PackageOutput> {
        let package = node.get("package")?;
        let name_text = r.opt_string(package, "name")?;
        let name = crate::model::read_package_name(r, &name_text)?;
        let version_text = r.opt_string(package, "version")?;
        let parsed = if version_text.value.contains('-') {
            Err(
                "conda versions cannot contain `-` (it separates name, version and build)"
                    .to_string(),
            )
        } else {
            version_text
                .value
                .parse::<VersionWithSource>()
                .map_err(|e| e.to_string())
        };
        let version = match parsed {
            Ok(v) => v,
            Err(err) => {
                r.report(
                    ProblemKind::InvalidValue {
                        what: "version",
                        value: version_text.value.clone(),
                        reason: err,
                    },
                    version_text.span,
                );
                return None;
            }
        };
        let build_string_problem = if build_string.contains('-') {
            Some("build strings cannot contain `-`")
        } else {
            super::names::unsafe_in_path(&build_string)
        };
        if let Some(reason) = build_string_problem {
            let span = node
                .get("build")
                .and_then(|b| b.get("string"))
                .map_or(node.span, |s| s.span);
            r.report(
                ProblemKind::InvalidValue {
                    what: "build string",
                    value: build_string,
                    reason: reason.into(),
                },
                span,
            );
            return None;
        }
        resolve_self_pins(
            node,
            name.as_normalized(),
            &version_text.value,
            &build_string,
        );

        // As rattler-build: only a single-output recipe runs `build.sh`
        // by default; an output of a multi-output recipe runs the script
        // it names (or the top-level one it starts from), else none.
        let script = match node.get("build").and_then(|b| b.get("script")) {
            Some(script) => Script::read(r, script),
            None if inherit.is_some() || self.recipe.multi_output => Script::default(),
            None => self.default_script(),
        };
        let build = match node.get("build") {
            Some(b) => Build::read(r, b, build_string, script),
            None => Build::read(r, &Node::scalar("", true, node.span), build_string, script),
        };
        Some(PackageOutput {
            name,
            version,
            build,
            requirements: node
                .get("requirements")
                .map(|n| Requirements::read(r, n))
                .unwrap_or_default(),
            inherit,
            sources: node
                .get("source")
                .map(|s| Source::read_all(r, s))
                .unwrap_or_default(),
            tests: node
                .get("tests")
                .map(|t| Test::read_all(r, t))
                .unwrap_or_default(),
            about: node
                .get("about")
                .map(|a| About::read(r, a))
                .unwrap_or_default(),
            extra: node
                .get("extra")
                .map(to_json)
                .unwrap_or(serde_json::Value::Null),
            variant: display_variant(used),
        })
    }
}

/// The used variant as text, the way scripts and `cleave render` show it.
fn display_variant(used: &Used) -> BTreeMap<String, String> {
    used.iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect()
}
