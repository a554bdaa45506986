//! The shape of a recipe: its context and the outputs it declares.
//!
//! This step checks what does not depend on rendering (top-level keys,
//! output kinds, keys a staging output cannot have, `inherit` targets
//! written out) and builds, for each output, one YAML tree with the
//! top-level sections merged in. Rendering later works on those trees alone.

mod merge;
mod outputs;

use std::path::{Path, PathBuf};

use miette::SourceSpan;

use crate::error::{Problem, ProblemKind, RecipeErrors, unknown_keys};
use crate::input::ReadFileError;
use crate::source::SourceFile;
use crate::yaml::{self, Key, Node, NodeKind};

use merge::{entry, first_key_span, map_node, name_span};
pub(crate) use outputs::{STAGING_BUILD, unknown_staging_help};

/// A parsed recipe, ready to render for any platform and variant.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub(crate) source: SourceFile,
    pub(crate) recipe_dir: PathBuf,
    pub(crate) context: Vec<(String, Node)>,
    pub(crate) units: Vec<Unit>,
    /// Whether the recipe has `outputs:`.
    pub(crate) multi_output: bool,
    pub(crate) warnings: Vec<Problem>,
}

impl Recipe {
    /// What the recipe does that works but should be written differently
    /// (deprecated forms), each pointing at the text.
    pub fn warnings(&self) -> &[Problem] {
        &self.warnings
    }
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
    pub(crate) inherit: Option<InheritDecl>,
}

/// An `inherit:` as written.
#[derive(Debug, Clone)]
pub(crate) struct InheritDecl {
    pub(crate) target: InheritTarget,
    pub(crate) run_exports: bool,
}

/// The staging output an `inherit:` names.
#[derive(Debug, Clone)]
pub(crate) enum InheritTarget {
    /// Known while parsing: the top-level `cache:`, or a name written out.
    Unit(usize),
    /// A name with a template, or naming a staging output whose name is a
    /// template: found by name once names are rendered.
    Name(Node),
}

const TOP_KEYS: &[&str] = &[
    "schema_version",
    "context",
    "package",
    "recipe",
    "version",
    "source",
    "build",
    "requirements",
    "about",
    "extra",
    "tests",
    "outputs",
    "cache",
];
/// The name of the implicit staging cache of a top-level `cache:` section.
pub const IMPLICIT_CACHE_NAME: &str = "cache";

/// Reads `recipe.yaml` from a directory, or the given file.
pub fn load(path: &Path) -> Result<Recipe, LoadError> {
    let file = if path.is_dir() {
        path.join("recipe.yaml")
    } else {
        path.to_path_buf()
    };
    let text = crate::input::read_file(&file)?;
    let recipe_dir = recipe_dir(&file);
    let source = SourceFile::new(file.display().to_string(), text);
    Ok(parse(source, recipe_dir)?)
}

/// The directory of the recipe file `file`: its parent, or `.` for a bare
/// file name (whose parent is the empty path, which no later step can use).
pub fn recipe_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Failure to read or parse a recipe file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read (see [`crate::read_file`]).
    #[error("cannot read recipe")]
    Read(#[from] ReadFileError),
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
        warnings: Vec::new(),
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
    let multi_output = root.get("outputs").is_some();
    let units = match root.get("outputs") {
        Some(outputs) => p.multi_output(&root, outputs),
        None => p.single_output(&root),
    };
    let (mut problems, warnings) = (p.problems, p.warnings);
    let recipe = Recipe {
        source,
        recipe_dir,
        context,
        units,
        multi_output,
        warnings,
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
    warnings: Vec<Problem>,
}

impl Parser<'_> {
    fn push(&mut self, kind: ProblemKind, span: SourceSpan) -> &mut Problem {
        self.problems.push(Problem::new(self.source, kind, span));
        self.problems.last_mut().expect("just pushed")
    }

    fn warn(&mut self, kind: ProblemKind, span: SourceSpan, help: String) {
        self.warnings.push(
            Problem::new(self.source, kind, span)
                .with_help(help)
                .into_warning(),
        );
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
        for key in ["recipe", "version"] {
            if let Some(k) = root.key(key) {
                let problem = self.push(
                    ProblemKind::Conflict {
                        first: key,
                        second: "package",
                    },
                    k.span,
                );
                problem.help = Some(
                    "a single-output recipe names itself with `package: {name, version}`".into(),
                );
            }
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
            inherit: cache.map(|unit| InheritDecl {
                target: InheritTarget::Unit(unit),
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
}
