//! The outputs of a recipe: the top-level `cache:`, `staging:` outputs and
//! package outputs with what they inherit.
//!
//! Besides the current syntax, the form proposed before it (seed 002: a
//! package output with `build: {cache-only: true}`, and outputs with
//! `build: {needs-cache: [NAME]}` that start where it stopped) is read as
//! the staging output and `inherit:` it describes, with a warning naming
//! the current form.

use super::merge::{
    entry, first_key_span, implicit_name_entry, joined_skip, map_node, merged_list, merged_section,
    name_span, staging_name_entry, without,
};
use super::{IMPLICIT_CACHE_NAME, InheritDecl, InheritTarget, Parser, Unit};
use crate::error::{ProblemKind, suggest};
use crate::model::{BUILD_KEYS, REQUIREMENT_KEYS};
use crate::yaml::{Key, Node, NodeKind};

const PACKAGE_OUTPUT_KEYS: &[&str] = &[
    "package",
    "source",
    "build",
    "requirements",
    "about",
    "extra",
    "tests",
    "inherit",
];
const STAGING_OUTPUT_KEYS: &[&str] = &["staging", "source", "build", "requirements"];
const STAGING_FORBIDDEN: &[&str] = &["about", "tests", "extra", "inherit"];
const STAGING_REQUIREMENTS: &[&str] = &["build", "host", "ignore_run_exports"];
/// Keys of a staging build: its script, and which new prefix files it keeps.
pub(crate) const STAGING_BUILD: &[&str] = &["script", "include_files"];
/// The build keys of the proposal that preceded `staging:` (seed 002).
const LEGACY_BUILD_KEYS: &[&str] = &["cache-only", "needs-cache"];

/// A staging output's name as written, and whether it is a template.
struct StagingName {
    name: String,
    unit: usize,
    templated: bool,
}

impl Parser<'_> {
    /// The top-level `cache:` as a staging unit every output inherits.
    pub(super) fn implicit_cache(&mut self, root: &Node, units: &mut Vec<Unit>) -> Option<usize> {
        let cache = root.get("cache")?;
        let key = root.key("cache")?;
        if cache.as_map().is_none() {
            self.wrong_type("a mapping", cache);
            return None;
        }
        self.keys(cache, "cache", &["source", "requirements", "build"]);
        self.staging_sections(cache);
        let mut entries = vec![with_recipe_version(implicit_name_entry(key), root)];
        entries.extend(merged_list(root, cache, "source"));
        for section in ["requirements", "build"] {
            if let Some(e) = entry(cache, section) {
                entries.push(e);
            }
        }
        units.push(Unit {
            staging: true,
            implicit: true,
            name_span: key.span,
            node: map_node(entries, cache.span),
            inherit: None,
        });
        Some(units.len() - 1)
    }

    fn staging_sections(&mut self, node: &Node) {
        if let Some(reqs) = node.get("requirements") {
            for (key, _) in reqs.as_map().unwrap_or_default() {
                if REQUIREMENT_KEYS.contains(&key.name.as_str())
                    && !STAGING_REQUIREMENTS.contains(&key.name.as_str())
                {
                    let problem = self.push(
                        ProblemKind::StagingKey {
                            key: key.name.clone(),
                        },
                        key.span,
                    );
                    problem.help = Some(
                        "a staging output produces no package; put runtime requirements on the outputs that inherit it"
                            .into(),
                    );
                }
            }
        }
        if let Some(build) = node.get("build") {
            for (key, _) in build.as_map().unwrap_or_default() {
                if BUILD_KEYS.contains(&key.name.as_str())
                    && !STAGING_BUILD.contains(&key.name.as_str())
                {
                    let problem = self.push(
                        ProblemKind::StagingKey {
                            key: format!("build.{}", key.name),
                        },
                        key.span,
                    );
                    problem.help = Some(
                        "a staging build has a `script` and `include_files`; package settings go on the outputs"
                            .into(),
                    );
                }
            }
        }
    }

    pub(super) fn multi_output(&mut self, root: &Node, outputs: &Node) -> Vec<Unit> {
        if let Some(key) = root.key("package") {
            let problem = self.push(
                ProblemKind::Conflict {
                    first: "package",
                    second: "outputs",
                },
                key.span,
            );
            problem.help =
                Some("a multi-output recipe names itself with `recipe: {name, version}`".into());
        }
        if let Some(recipe) = root.get("recipe") {
            if recipe.as_map().is_none() {
                self.wrong_type("a mapping with `name` and `version`", recipe);
            } else {
                self.keys(recipe, "recipe", &["name", "version"]);
            }
        }
        let NodeKind::Seq(items) = &outputs.kind else {
            self.wrong_type("a list of outputs", outputs);
            return Vec::new();
        };
        let mut units = Vec::new();
        let cache = self.implicit_cache(root, &mut units);
        let first_output = units.len();
        // Staging names first, so `inherit` can refer to a later staging output.
        let mut staging_names: Vec<StagingName> = Vec::new();
        for (offset, item) in items.iter().enumerate() {
            let name = match legacy_staging(item) {
                true => item.get("package").and_then(|p| p.get("name")),
                false => item.get("staging").and_then(|s| s.get("name")),
            };
            let Some(name) = name.and_then(Node::as_str) else {
                continue;
            };
            if staging_names.iter().any(|n| n.name == name) {
                let span = item
                    .get("staging")
                    .and_then(|s| s.get("name"))
                    .map_or(item.span, |n| n.span);
                self.push(
                    ProblemKind::DuplicateOutput {
                        name: name.to_string(),
                    },
                    span,
                );
            }
            staging_names.push(StagingName {
                name: name.to_string(),
                unit: first_output + offset,
                templated: name.contains("${{"),
            });
        }
        if let Some(unit) = cache {
            staging_names.push(StagingName {
                name: IMPLICIT_CACHE_NAME.to_string(),
                unit,
                templated: false,
            });
        }
        for item in items {
            let unit = if item.as_map().is_none() {
                self.wrong_type("an output mapping with `package:` or `staging:`", item);
                None
            } else {
                match (item.key("package"), item.key("staging")) {
                    (Some(_), Some(staging)) => {
                        self.push(
                            ProblemKind::Conflict {
                                first: "staging",
                                second: "package",
                            },
                            staging.span,
                        );
                        None
                    }
                    (None, None) => {
                        let problem = self.push(
                            ProblemKind::MissingKey {
                                key: "package".into(),
                                section: "output".into(),
                            },
                            first_key_span(item),
                        );
                        problem.help = Some(
                            "every output starts with `package: {name}` or `staging: {name}`"
                                .into(),
                        );
                        None
                    }
                    (None, Some(key)) => Some(self.staging_output(root, item, key)),
                    (Some(key), None) if legacy_staging(item) => {
                        Some(self.legacy_staging_output(root, item, key))
                    }
                    (Some(key), None) => {
                        Some(self.package_output(root, item, key, &staging_names, cache))
                    }
                }
            };
            // Keep unit indices equal to item positions, as staging names
            // recorded them; an empty unit is skipped by rendering.
            units.push(unit.unwrap_or_else(|| Unit {
                staging: false,
                implicit: false,
                node: map_node(Vec::new(), item.span),
                name_span: item.span,
                inherit: None,
            }));
        }
        units
    }

    fn staging_output(&mut self, root: &Node, item: &Node, key: &Key) -> Unit {
        self.staging_forbidden(item);
        self.keys(
            item,
            "a staging output",
            &[STAGING_OUTPUT_KEYS, STAGING_FORBIDDEN].concat(),
        );
        self.staging_sections(item);
        let staging = item.get("staging").expect("checked by caller");
        if staging.as_map().is_none() {
            self.wrong_type("a mapping with `name`", staging);
        } else {
            self.keys(staging, "staging", &["name"]);
            if staging.get("name").is_none_or(Node::is_null) {
                self.push(
                    ProblemKind::MissingKey {
                        key: "name".into(),
                        section: "staging".into(),
                    },
                    key.span,
                );
            }
        }
        let mut entries: Vec<(Key, Node)> = entry(item, "staging")
            .map(|e| with_recipe_version(e, root))
            .into_iter()
            .collect();
        entries.extend(merged_list(root, item, "source"));
        for section in ["requirements", "build"] {
            if let Some(e) = entry(item, section) {
                entries.push(e);
            }
        }
        Unit {
            staging: true,
            implicit: false,
            name_span: name_span(staging, Some(key)),
            node: map_node(entries, item.span),
            inherit: None,
        }
    }

    fn staging_forbidden(&mut self, item: &Node) {
        for forbidden in STAGING_FORBIDDEN {
            if let Some(k) = item.key(forbidden) {
                let problem = self.push(
                    ProblemKind::StagingKey {
                        key: k.name.clone(),
                    },
                    k.span,
                );
                problem.help = Some(match *forbidden {
                    "inherit" => {
                        "staging outputs cannot inherit; merge the two staging steps".into()
                    }
                    _ => format!(
                        "a staging output produces no package; put `{forbidden}` on the outputs that inherit it"
                    ),
                });
            }
        }
    }

    /// A package output with `build: {cache-only: true}`: a staging output
    /// named by its package name.
    fn legacy_staging_output(&mut self, root: &Node, item: &Node, key: &Key) -> Unit {
        let package = item.get("package").expect("checked by caller");
        let name = package
            .get("name")
            .cloned()
            .unwrap_or_else(|| Node::scalar("", false, key.span));
        let flag = item
            .get("build")
            .and_then(|b| b.key("cache-only"))
            .map_or(key.span, |k| k.span);
        let name_text = name.as_str().unwrap_or_default().to_string();
        self.warn(
            ProblemKind::Deprecated {
                what: "`build: {cache-only: true}`".into(),
            },
            flag,
            format!("write this output as `- staging: {{name: {name_text}}}`"),
        );
        self.staging_forbidden(item);
        self.keys(
            item,
            "a cache-only output",
            &[
                "package",
                "source",
                "build",
                "requirements",
                "about",
                "tests",
                "extra",
                "inherit",
            ],
        );
        self.keys(package, "package", &["name", "version"]);
        let build = item.get("build").map(|b| without(b, LEGACY_BUILD_KEYS));
        let mut entries = vec![with_recipe_version(staging_name_entry(key, name), root)];
        entries.extend(merged_list(root, item, "source"));
        if let Some(e) = entry(item, "requirements") {
            entries.push(e);
        }
        if let (Some(build), Some(build_key)) = (build, item.key("build")) {
            self.staging_sections(&map_node(
                vec![(build_key.clone(), build.clone())],
                item.span,
            ));
            entries.push((build_key.clone(), build));
        }
        Unit {
            staging: true,
            implicit: false,
            name_span: name_span(package, Some(key)),
            node: map_node(entries, item.span),
            inherit: None,
        }
    }

    fn package_output(
        &mut self,
        root: &Node,
        item: &Node,
        key: &Key,
        staging_names: &[StagingName],
        cache: Option<usize>,
    ) -> Unit {
        self.keys(item, "an output", PACKAGE_OUTPUT_KEYS);
        let package = item.get("package").expect("checked by caller");
        let recipe_version = recipe_version(root);
        self.package_fields(package, Some(key), recipe_version.is_none());
        let needs_cache = item.get("build").and_then(|b| b.get("needs-cache"));
        let inherit = match (item.get("inherit"), needs_cache) {
            (Some(_), Some(needs)) => {
                self.push(
                    ProblemKind::Conflict {
                        first: "needs-cache",
                        second: "inherit",
                    },
                    needs.span,
                );
                None
            }
            (Some(node), _) if node.is_null() || node.as_str() == Some("") => None,
            (Some(node), _) => self.inherit(node, staging_names),
            (None, Some(needs)) => self.needs_cache(item, needs, staging_names),
            (None, None) => cache.map(|unit| InheritDecl {
                target: InheritTarget::Unit(unit),
                run_exports: true,
            }),
        };
        // Package settings: recipe-level sections are defaults for every output.
        let mut package_entries = package.as_map().unwrap_or_default().to_vec();
        if package.get("version").is_none()
            && let Some((version_key, version)) = recipe_version
        {
            let version_key = version_key.cloned().unwrap_or(Key {
                name: "version".into(),
                span: version.span,
            });
            package_entries.push((version_key, version.clone()));
        }
        let mut entries = vec![(key.clone(), map_node(package_entries, package.span))];
        if inherit.is_none() {
            entries.extend(merged_list(root, item, "source"));
        } else if let Some(e) = entry(item, "source") {
            entries.push(e);
        }
        let item = &without_legacy_keys(item);
        for section in ["build", "requirements", "about", "extra"] {
            let skip_script = section == "build" && inherit.is_some();
            if let Some(e) = merged_section(root, item, section, skip_script) {
                entries.push(if section == "build" {
                    joined_skip(root, item, e)
                } else {
                    e
                });
            }
        }
        entries.extend(merged_list(root, item, "tests"));
        if let Some(e) = entry(item, "inherit") {
            entries.push(e);
        }
        Unit {
            staging: false,
            implicit: false,
            name_span: name_span(package, Some(key)),
            node: map_node(entries, item.span),
            inherit,
        }
    }

    /// `build: {needs-cache: [NAME]}`: inherits NAME.
    fn needs_cache(
        &mut self,
        item: &Node,
        needs: &Node,
        staging_names: &[StagingName],
    ) -> Option<InheritDecl> {
        let flag = item
            .get("build")
            .and_then(|b| b.key("needs-cache"))
            .map_or(needs.span, |k| k.span);
        let names: Vec<&Node> = match &needs.kind {
            NodeKind::Seq(items) => items.iter().collect(),
            _ => vec![needs],
        };
        let [name] = names.as_slice() else {
            self.push(
                ProblemKind::InvalidValue {
                    what: "needs-cache",
                    value: self.source.slice(needs.span).to_string(),
                    reason: "an output starts from exactly one staging build".into(),
                },
                needs.span,
            );
            return None;
        };
        self.warn(
            ProblemKind::Deprecated {
                what: "`build: {needs-cache: [...]}`".into(),
            },
            flag,
            format!(
                "write `inherit: {}` on this output",
                name.as_str().unwrap_or("NAME")
            ),
        );
        self.inherit(name, staging_names)
    }

    fn inherit(&mut self, node: &Node, staging_names: &[StagingName]) -> Option<InheritDecl> {
        let (name_node, run_exports) = match &node.kind {
            NodeKind::Scalar(_) => (node, true),
            NodeKind::Map(_) => {
                self.keys(node, "inherit", &["from", "run_exports"]);
                let Some(from) = node.get("from") else {
                    self.push(
                        ProblemKind::MissingKey {
                            key: "from".into(),
                            section: "inherit".into(),
                        },
                        node.span,
                    );
                    return None;
                };
                let run_exports = match node.get("run_exports").and_then(Node::as_str) {
                    None => true,
                    Some("true") => true,
                    Some("false") => false,
                    Some(_) => {
                        let value = node.get("run_exports").expect("just read");
                        self.wrong_type("true or false", value);
                        true
                    }
                };
                (from, run_exports)
            }
            NodeKind::Seq(_) => {
                self.wrong_type(
                    "a staging name, `{from: NAME, run_exports: BOOL}` or null",
                    node,
                );
                return None;
            }
        };
        let name = name_node.as_str().unwrap_or_default();
        if let Some(found) = staging_names.iter().find(|n| n.name == name) {
            return Some(InheritDecl {
                target: InheritTarget::Unit(found.unit),
                run_exports,
            });
        }
        if name.contains("${{") || staging_names.iter().any(|n| n.templated) {
            // Decided once names are rendered.
            return Some(InheritDecl {
                target: InheritTarget::Name(name_node.clone()),
                run_exports,
            });
        }
        let known: Vec<&str> = staging_names.iter().map(|n| n.name.as_str()).collect();
        let problem = self.push(
            ProblemKind::UnknownStaging {
                name: name.to_string(),
            },
            name_node.span,
        );
        problem.help = Some(unknown_staging_help(name, &known));
        None
    }
}

/// The hint for an `inherit` that names no staging output.
pub(crate) fn unknown_staging_help(name: &str, known: &[&str]) -> String {
    match suggest(name, known.iter().copied()) {
        Some(close) => format!("did you mean `{close}`?"),
        None if known.is_empty() => {
            "the recipe has no staging outputs; add `- staging: {name: ...}` to `outputs`".into()
        }
        None => format!("staging outputs: {}", known.join(", ")),
    }
}

/// The output without the proposal's keys, which were turned into
/// staging and inheritance.
fn without_legacy_keys(item: &Node) -> Node {
    let NodeKind::Map(entries) = &item.kind else {
        return item.clone();
    };
    let entries = entries
        .iter()
        .map(|(k, v)| match k.name.as_str() {
            "build" => (k.clone(), without(v, LEGACY_BUILD_KEYS)),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    map_node(entries, item.span)
}

/// A package output written as seed 002's `cache-only` output.
fn legacy_staging(item: &Node) -> bool {
    item.get("package").is_some()
        && item
            .get("build")
            .and_then(|b| b.get("cache-only"))
            .and_then(Node::as_str)
            .is_some_and(|v| matches!(v.trim(), "true" | "True"))
}

/// The recipe-level version and the key it is written under:
/// `recipe.version`, or the older top-level `version`.
fn recipe_version(root: &Node) -> Option<(Option<&Key>, &Node)> {
    root.get("recipe")
        .and_then(|r| r.get("version"))
        .map(|v| (root.get("recipe").and_then(|r| r.key("version")), v))
        .or_else(|| root.get("version").map(|v| (root.key("version"), v)))
}

/// A staging output's `staging:` entry with the recipe's version added, so
/// that it is rendered with the rest (its script sees it as `PKG_VERSION`).
fn with_recipe_version((key, staging): (Key, Node), root: &Node) -> (Key, Node) {
    let Some((version_key, version)) = recipe_version(root) else {
        return (key, staging);
    };
    let Some(entries) = staging.as_map() else {
        return (key, staging);
    };
    let mut entries = entries.to_vec();
    entries.retain(|(k, _)| k.name != "version");
    entries.push((
        version_key.cloned().unwrap_or(Key {
            name: "version".into(),
            span: version.span,
        }),
        version.clone(),
    ));
    let span = staging.span;
    (key, map_node(entries, span))
}
