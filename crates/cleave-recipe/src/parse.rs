//! The shape of a recipe: its context and the outputs it declares.
//!
//! This step checks what does not depend on rendering (top-level keys,
//! output kinds, keys a staging output cannot have, `inherit` targets) and
//! builds, for each output, one YAML tree with the top-level sections merged
//! in. Rendering later works on those trees alone.

use std::path::{Path, PathBuf};

use miette::SourceSpan;

use crate::error::{Problem, ProblemKind, RecipeErrors, suggest, unknown_keys};
use crate::model::{BUILD_KEYS, REQUIREMENT_KEYS};
use crate::source::SourceFile;
use crate::yaml::{self, Key, Node, NodeKind};

/// A parsed recipe, ready to render for any platform and variant.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub(crate) source: SourceFile,
    pub(crate) recipe_dir: PathBuf,
    pub(crate) context: Vec<(String, Node)>,
    pub(crate) units: Vec<Unit>,
}

/// An output as declared: a staging cache or a package.
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    pub(crate) staging: bool,
    /// The top-level `cache:` section.
    pub(crate) implicit: bool,
    /// The output with top-level sections merged in.
    pub(crate) node: Node,
    /// Where the output's name is written, for errors about the output.
    pub(crate) name_span: SourceSpan,
    pub(crate) inherit: Option<InheritSpec>,
}

/// A resolved `inherit:`.
#[derive(Debug, Clone)]
pub(crate) struct InheritSpec {
    pub(crate) unit: usize,
    pub(crate) run_exports: bool,
}

const TOP_KEYS: &[&str] = &[
    "schema_version",
    "context",
    "package",
    "recipe",
    "source",
    "build",
    "requirements",
    "about",
    "extra",
    "tests",
    "outputs",
    "cache",
];
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
const STAGING_BUILD: &[&str] = &["script"];
/// The name of the implicit staging cache of a top-level `cache:` section.
pub const IMPLICIT_CACHE_NAME: &str = "cache";

/// Reads `recipe.yaml` from a directory, or the given file.
pub fn load(path: &Path) -> Result<Recipe, LoadError> {
    let file = if path.is_dir() {
        path.join("recipe.yaml")
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file).map_err(|source| LoadError::Read {
        path: file.clone(),
        source,
    })?;
    let recipe_dir = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let source = SourceFile::new(file.display().to_string(), text);
    Ok(parse(source, recipe_dir)?)
}

/// Failure to read or parse a recipe file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read recipe {}", path.display())]
    Read {
        /// The file tried.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file has errors.
    #[error(transparent)]
    Invalid(#[from] RecipeErrors),
}

/// Checks a recipe's structure and prepares its outputs for rendering.
pub fn parse(source: SourceFile, recipe_dir: PathBuf) -> Result<Recipe, RecipeErrors> {
    let root = yaml::parse(&source)?;
    let mut p = Parser {
        source: &source,
        problems: Vec::new(),
    };
    p.keys(&root, "the recipe", TOP_KEYS);
    if let Some(version) = root.get("schema_version")
        && version.as_str().map(str::trim) != Some("1")
    {
        p.push(
            ProblemKind::SchemaVersion {
                found: source.slice(version.span).to_string(),
            },
            version.span,
        );
    }
    let context = match root.get("context") {
        Some(ctx) if ctx.is_null() => Vec::new(),
        Some(ctx) => match &ctx.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .map(|(k, v)| (k.name.clone(), v.clone()))
                .collect(),
            _ => {
                p.wrong_type("a mapping of names to values", ctx);
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    let units = match root.get("outputs") {
        Some(outputs) => p.multi_output(&root, outputs),
        None => p.single_output(&root),
    };
    let mut problems = p.problems;
    let recipe = Recipe {
        source,
        recipe_dir,
        context,
        units,
    };
    if problems.is_empty() {
        return Ok(recipe);
    }
    // Render what could be understood, so errors inside the outputs are
    // reported in the same run as the structural ones.
    if let Err(more) = crate::render(&recipe, &crate::RenderConfig::native()) {
        problems.extend(more.problems().iter().cloned());
    }
    Err(RecipeErrors::new(problems))
}

struct Parser<'a> {
    source: &'a SourceFile,
    problems: Vec<Problem>,
}

impl Parser<'_> {
    fn push(&mut self, kind: ProblemKind, span: SourceSpan) -> &mut Problem {
        self.problems.push(Problem::new(self.source, kind, span));
        self.problems.last_mut().expect("just pushed")
    }

    fn wrong_type(&mut self, expected: &'static str, node: &Node) {
        self.push(
            ProblemKind::WrongType {
                expected,
                found: node.describe(),
            },
            node.span,
        );
    }

    fn keys(&mut self, node: &Node, section: &str, known: &[&str]) {
        let problems = unknown_keys(self.source, node, section, known);
        self.problems.extend(problems);
    }

    fn single_output(&mut self, root: &Node) -> Vec<Unit> {
        let Some(package) = root.get("package") else {
            let span = first_key_span(root);
            let problem = self.push(
                ProblemKind::MissingKey {
                    key: "package".into(),
                    section: "the recipe".into(),
                },
                span,
            );
            problem.help = Some(
                "a single-output recipe has `package: {name, version}`; \
                 a multi-output recipe has `recipe:` and `outputs:`"
                    .into(),
            );
            return Vec::new();
        };
        if let Some(key) = root.key("recipe") {
            let problem = self.push(
                ProblemKind::Conflict {
                    first: "recipe",
                    second: "package",
                },
                key.span,
            );
            problem.help =
                Some("`recipe:` is for multi-output recipes, which also have `outputs:`".into());
        }
        self.package_fields(package, root.key("package"), true);
        let mut units = Vec::new();
        let cache = self.implicit_cache(root, &mut units);
        let mut entries = Vec::new();
        for key in [
            "package",
            "source",
            "build",
            "requirements",
            "about",
            "extra",
            "tests",
        ] {
            if let Some((k, v)) = entry(root, key) {
                entries.push((k, v));
            }
        }
        units.push(Unit {
            staging: false,
            implicit: false,
            name_span: name_span(package, root.key("package")),
            node: map_node(entries, root.span),
            inherit: cache.map(|unit| InheritSpec {
                unit,
                run_exports: true,
            }),
        });
        units
    }

    fn package_fields(&mut self, package: &Node, key: Option<&Key>, need_version: bool) {
        if package.as_map().is_none() {
            self.wrong_type("a mapping with `name` and `version`", package);
            return;
        }
        self.keys(package, "package", &["name", "version"]);
        let required: &[&str] = if need_version {
            &["name", "version"]
        } else {
            &["name"]
        };
        for field in required {
            if package.get(field).is_none_or(Node::is_null) {
                self.push(
                    ProblemKind::MissingKey {
                        key: field.to_string(),
                        section: "package".into(),
                    },
                    key.map_or(package.span, |k| k.span),
                );
            }
        }
    }

    /// The top-level `cache:` as a staging unit every output inherits.
    fn implicit_cache(&mut self, root: &Node, units: &mut Vec<Unit>) -> Option<usize> {
        let cache = root.get("cache")?;
        let key = root.key("cache")?;
        if cache.as_map().is_none() {
            self.wrong_type("a mapping", cache);
            return None;
        }
        self.keys(cache, "cache", &["source", "requirements", "build"]);
        self.staging_sections(cache);
        let mut entries = vec![staging_name_entry(key)];
        entries.extend(merged_sources(root, cache));
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
                        "a staging build only has a `script`; package settings go on the outputs"
                            .into(),
                    );
                }
            }
        }
    }

    fn multi_output(&mut self, root: &Node, outputs: &Node) -> Vec<Unit> {
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
        let mut staging_names: Vec<(String, usize)> = Vec::new();
        let mut pending: Vec<(usize, &Node)> = Vec::new();
        for item in items {
            let index = first_output + pending.len();
            if let Some(name) = item
                .get("staging")
                .and_then(|s| s.get("name"))
                .and_then(Node::as_str)
            {
                if staging_names.iter().any(|(n, _)| n == name) {
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
                staging_names.push((name.to_string(), index));
            }
            pending.push((index, item));
        }
        if let Some(unit) = cache {
            staging_names.push((IMPLICIT_CACHE_NAME.to_string(), unit));
        }
        for (_, item) in pending {
            if item.as_map().is_none() {
                self.wrong_type("an output mapping with `package:` or `staging:`", item);
                continue;
            }
            match (item.key("package"), item.key("staging")) {
                (Some(_), Some(staging)) => {
                    self.push(
                        ProblemKind::Conflict {
                            first: "staging",
                            second: "package",
                        },
                        staging.span,
                    );
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
                        "every output starts with `package: {name}` or `staging: {name}`".into(),
                    );
                }
                (None, Some(key)) => {
                    let unit = self.staging_output(root, item, key);
                    units.push(unit);
                }
                (Some(key), None) => {
                    let unit = self.package_output(root, item, key, &staging_names, cache);
                    units.push(unit);
                }
            }
        }
        units
    }

    fn staging_output(&mut self, root: &Node, item: &Node, key: &Key) -> Unit {
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
        let mut entries: Vec<(Key, Node)> = entry(item, "staging").into_iter().collect();
        entries.extend(merged_sources(root, item));
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

    fn package_output(
        &mut self,
        root: &Node,
        item: &Node,
        key: &Key,
        staging_names: &[(String, usize)],
        cache: Option<usize>,
    ) -> Unit {
        self.keys(item, "an output", PACKAGE_OUTPUT_KEYS);
        let package = item.get("package").expect("checked by caller");
        let has_recipe_version = root.get("recipe").and_then(|r| r.get("version")).is_some();
        self.package_fields(package, Some(key), !has_recipe_version);
        let inherit = match item.get("inherit") {
            None => cache.map(|unit| InheritSpec {
                unit,
                run_exports: true,
            }),
            Some(node) if node.is_null() => None,
            Some(node) => self.inherit(node, staging_names),
        };
        // Package settings: recipe-level sections are defaults for every output.
        let mut package_entries = package.as_map().unwrap_or_default().to_vec();
        if package.get("version").is_none()
            && let Some(version) = root.get("recipe").and_then(|r| r.get("version"))
        {
            let version_key = root
                .get("recipe")
                .and_then(|r| r.key("version"))
                .cloned()
                .unwrap_or(Key {
                    name: "version".into(),
                    span: version.span,
                });
            package_entries.push((version_key, version.clone()));
        }
        let mut entries = vec![(key.clone(), map_node(package_entries, package.span))];
        if inherit.is_none() {
            entries.extend(merged_sources(root, item));
        } else if let Some(e) = entry(item, "source") {
            entries.push(e);
        }
        for section in ["build", "requirements", "about", "extra"] {
            let skip_script = section == "build" && inherit.is_some();
            if let Some(e) = merged_section(root, item, section, skip_script) {
                entries.push(e);
            }
        }
        if let Some(e) = entry(item, "tests") {
            entries.push(e);
        }
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

    fn inherit(&mut self, node: &Node, staging_names: &[(String, usize)]) -> Option<InheritSpec> {
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
        match staging_names.iter().find(|(n, _)| n == name) {
            Some((_, unit)) => Some(InheritSpec {
                unit: *unit,
                run_exports,
            }),
            None => {
                let known = staging_names.iter().map(|(n, _)| n.as_str());
                let help = match suggest(name, known) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None if staging_names.is_empty() => {
                        "the recipe has no staging outputs; add `- staging: {name: ...}` to `outputs`".into()
                    }
                    None => format!(
                        "staging outputs: {}",
                        staging_names.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                };
                let problem = self.push(
                    ProblemKind::UnknownStaging {
                        name: name.to_string(),
                    },
                    name_node.span,
                );
                problem.help = Some(help);
                None
            }
        }
    }
}

fn entry(node: &Node, key: &str) -> Option<(Key, Node)> {
    node.as_map()?
        .iter()
        .find(|(k, _)| k.name == key)
        .map(|(k, v)| (k.clone(), v.clone()))
}

fn map_node(entries: Vec<(Key, Node)>, span: SourceSpan) -> Node {
    Node {
        kind: NodeKind::Map(entries),
        span,
    }
}

fn first_key_span(node: &Node) -> SourceSpan {
    node.as_map()
        .and_then(|m| m.first())
        .map_or(node.span, |(k, _)| k.span)
}

fn name_span(section: &Node, key: Option<&Key>) -> SourceSpan {
    section
        .get("name")
        .map(|n| n.span)
        .or(key.map(|k| k.span))
        .unwrap_or(section.span)
}

fn staging_name_entry(key: &Key) -> (Key, Node) {
    let name = Node::scalar(IMPLICIT_CACHE_NAME, false, key.span);
    let staging = map_node(
        vec![(
            Key {
                name: "name".into(),
                span: key.span,
            },
            name,
        )],
        key.span,
    );
    (
        Key {
            name: "staging".into(),
            span: key.span,
        },
        staging,
    )
}

/// The recipe's sources followed by the output's own.
fn merged_sources(root: &Node, item: &Node) -> Option<(Key, Node)> {
    let top = entry(root, "source");
    let own = entry(item, "source");
    match (top, own) {
        (None, None) => None,
        (Some(e), None) | (None, Some(e)) => Some(e),
        (Some((_, top)), Some((key, own))) => {
            let mut items = as_items(top);
            items.extend(as_items(own.clone()));
            Some((
                key,
                Node {
                    kind: NodeKind::Seq(items),
                    span: own.span,
                },
            ))
        }
    }
}

fn as_items(node: Node) -> Vec<Node> {
    match node.kind {
        NodeKind::Seq(items) => items,
        _ if node.is_null() => Vec::new(),
        _ => vec![node],
    }
}

/// A recipe-level section with the output's keys on top of it.
fn merged_section(
    root: &Node,
    item: &Node,
    section: &str,
    skip_script: bool,
) -> Option<(Key, Node)> {
    let top = entry(root, section);
    let own = entry(item, section);
    let top_entries: Vec<(Key, Node)> = top
        .as_ref()
        .and_then(|(_, n)| n.as_map())
        .unwrap_or_default()
        .iter()
        .filter(|(k, _)| !(skip_script && k.name == "script"))
        .cloned()
        .collect();
    match own {
        Some((key, own)) if own.as_map().is_some() => {
            let own_entries = own.as_map().unwrap_or_default();
            let mut entries: Vec<(Key, Node)> = top_entries
                .into_iter()
                .filter(|(k, _)| !own_entries.iter().any(|(o, _)| o.name == k.name))
                .collect();
            entries.extend(own_entries.iter().cloned());
            Some((key, map_node(entries, own.span)))
        }
        Some(own) => Some(own),
        None => {
            let (key, top) = top?;
            if top_entries.is_empty() && top.as_map().is_some() {
                return None;
            }
            match top.as_map() {
                Some(_) => Some((key, map_node(top_entries, top.span))),
                None => Some((key, top)),
            }
        }
    }
}
