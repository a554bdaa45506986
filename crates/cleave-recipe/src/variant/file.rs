//! Reading variant files: `variants.yaml` and `conda_build_config.yaml`.
//!
//! Both end as keys with typed value lists. Selectors see the platform
//! variables only (`linux`, `x86_64`, `target_platform == "linux-64"`, ...);
//! a name that is not one (another variant key, conda-build's `py`) is
//! undefined and counts as false, as it does for conda-build and
//! rattler-build, so conda-forge's global pinning reads the same here.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use minijinja::value::{Object, Value};
use minijinja::{Environment, UndefinedBehavior};

use super::value::{VariantValue, normalize_key};
use super::{VariantConfig, VariantPlatforms, Zip};
use crate::error::{Problem, ProblemKind, RecipeErrors};
use crate::source::SourceFile;
use crate::yaml::{self, Node, NodeKind};

/// Keys that name the platform, which is never a variant choice: the
/// platform of a build is the one it is run for, whatever a file says.
const PLATFORM_KEYS: [&str; 3] = ["target_platform", "build_platform", "host_platform"];

/// conda-build's key for pinning run requirements to build versions; neither
/// conda-forge's v1 recipes nor rattler-build use it, so it is skipped.
const IGNORED_KEYS: [&str; 1] = ["pin_run_as_build"];

/// Parses a `variants.yaml`: lists of scalars, templates and selectors.
pub(super) fn parse_variants(
    source: &SourceFile,
    platforms: VariantPlatforms,
) -> Result<VariantConfig, RecipeErrors> {
    match document(source)? {
        Some(root) => read(source, &root, platforms, Style::Variants),
        None => Ok(VariantConfig::default()),
    }
}

/// Parses a `conda_build_config.yaml`. Lines whose `# [selector]` is false
/// are blanked before the YAML is read, and every comment is blanked, so
/// spans still point at the right place in the file.
pub(super) fn parse_conda_build_config(
    source: &SourceFile,
    platforms: VariantPlatforms,
) -> Result<VariantConfig, RecipeErrors> {
    let kept = SourceFile::new(
        source.name(),
        apply_line_selectors(source.text(), platforms),
    );
    match document(&kept).map_err(|errors| errors.in_source(source))? {
        Some(root) => read(source, &root, platforms, Style::CondaBuildConfig),
        None => Ok(VariantConfig::default()),
    }
}

/// The keys and values of a parsed variant file.
fn read(
    source: &SourceFile,
    root: &Node,
    platforms: VariantPlatforms,
    style: Style,
) -> Result<VariantConfig, RecipeErrors> {
    let mut reader = FileReader {
        source,
        platforms,
        style,
        problems: Vec::new(),
    };
    let config = reader.config(root);
    if reader.problems.is_empty() {
        Ok(config)
    } else {
        Err(RecipeErrors::new(reader.problems))
    }
}

/// The file's mapping; `None` for a file with nothing in it (all comments,
/// or every line switched off by selectors), which sets no key.
fn document(source: &SourceFile) -> Result<Option<Node>, RecipeErrors> {
    if source
        .text()
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---")
    {
        return Ok(None);
    }
    yaml::parse(source).map(Some)
}

/// Blanks lines whose selector is false and every comment, keeping each
/// byte's offset. Each distinct selector is evaluated once: a file repeats
/// a few of them on thousands of lines.
fn apply_line_selectors(text: &str, platforms: VariantPlatforms) -> String {
    let mut out = String::with_capacity(text.len());
    let mut truth: HashMap<&str, bool> = HashMap::new();
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let ending = &line[body.len()..];
        let Some(hash) = body.find('#') else {
            out.push_str(line);
            continue;
        };
        let comment = body[hash + 1..].trim();
        let keep = match comment.strip_prefix('[').and_then(|c| c.strip_suffix(']')) {
            Some(expr) => *truth
                .entry(expr)
                .or_insert_with(|| selector_is_true(&legacy_expression(expr), platforms)),
            None => true,
        };
        if keep {
            out.push_str(&body[..hash]);
            out.extend(std::iter::repeat_n(' ', body.len() - hash));
        } else {
            out.extend(std::iter::repeat_n(' ', body.len()));
        }
        out.push_str(ending);
    }
    out
}

/// conda-build selectors are Python; the two Python idioms they use are
/// turned into their template equivalents.
fn legacy_expression(expr: &str) -> String {
    expr.replace("os.environ.get(", "environ_get(")
        .replace(".startswith(", " is startingwith(")
}

/// A selector's truth; one that does not evaluate is false, as conda-build
/// treats it.
fn selector_is_true(expr: &str, platforms: VariantPlatforms) -> bool {
    evaluate(expr, platforms).unwrap_or(false)
}

/// Evaluates a selector over the platform variables, with undefined names
/// false.
pub(crate) fn evaluate(expr: &str, platforms: VariantPlatforms) -> Result<bool, String> {
    let context = Value::from_object(SelectorScope(platforms));
    crate::jinja::check_expression(expr)
        .and_then(|()| lenient_environment().compile_expression(expr))
        .and_then(|e| e.eval(context))
        .map(|v| v.is_true())
        .map_err(|e| e.detail().map_or_else(|| e.to_string(), str::to_string))
}

/// Renders a `${{ }}` template in a variant list over the platform variables.
fn render_template(text: &str, platforms: VariantPlatforms) -> Result<String, String> {
    let context = Value::from_object(SelectorScope(platforms));
    crate::jinja::environment()
        .render_str(text, context)
        .map_err(|e| e.detail().map_or_else(|| e.to_string(), str::to_string))
}

fn lenient_environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = crate::jinja::bounded_environment();
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.add_function("environ_get", |name: String, default: Option<String>| {
            std::env::var(name).ok().or(default).unwrap_or_default()
        });
        env
    })
}

/// The names a variant-file selector can read.
#[derive(Debug)]
struct SelectorScope(VariantPlatforms);

impl Object for SelectorScope {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        crate::platform::value(key.as_str()?, self.0.target, self.0.build)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Variants,
    CondaBuildConfig,
}

struct FileReader<'a> {
    source: &'a SourceFile,
    platforms: VariantPlatforms,
    style: Style,
    problems: Vec<Problem>,
}

impl FileReader<'_> {
    fn report(&mut self, kind: ProblemKind, span: miette::SourceSpan) {
        self.problems.push(Problem::new(self.source, kind, span));
    }

    fn config(&mut self, root: &Node) -> VariantConfig {
        let mut config = VariantConfig::default();
        for (key, value) in root.as_map().unwrap_or_default() {
            let name = normalize_key(&key.name);
            if key.name == "zip_keys" {
                config.has_zip_keys = true;
                config.zips = self.zips(value);
                continue;
            }
            if PLATFORM_KEYS.contains(&name.as_str())
                || IGNORED_KEYS.contains(&name.as_str())
                || value.is_null()
            {
                continue;
            }
            let mut values = Vec::new();
            self.flatten(value, &mut values);
            if !values.is_empty() {
                config.values.insert(name, values);
            }
        }
        config
    }

    fn zips(&mut self, node: &Node) -> Vec<Zip> {
        let mut zips = Vec::new();
        for group in items(node) {
            let keys: Vec<String> = items(group)
                .iter()
                .filter_map(|k| k.as_str().map(normalize_key))
                .collect();
            if keys.len() < 2 {
                self.report(
                    ProblemKind::InvalidValue {
                        what: "zip_keys group",
                        value: self.source.slice(group.span).to_string(),
                        reason: "a group zips at least two keys".into(),
                    },
                    group.span,
                );
                continue;
            }
            zips.push(Zip {
                keys,
                source: self.source.clone(),
                span: group.span,
            });
        }
        zips
    }

    fn flatten(&mut self, node: &Node, out: &mut Vec<VariantValue>) {
        // Numbers in conda-build's block lists are text, as conda-build
        // reads them; a flow list (`[3.10]`) is read as YAML types it.
        let flow = self.source.slice(node.span).starts_with('[');
        for item in items(node) {
            match &item.kind {
                NodeKind::Scalar(s) if s.value.contains("${{") => {
                    match render_template(&s.value, self.platforms) {
                        Ok(text) if text.trim().is_empty() => {}
                        Ok(text) => out.push(VariantValue::Str(text)),
                        Err(reason) => self.report(ProblemKind::Template(reason), item.span),
                    }
                }
                NodeKind::Scalar(s) if !s.plain => out.push(VariantValue::Str(s.value.clone())),
                // An empty item is a value, as the peer reads it: the empty
                // string in `variants.yaml`, YAML's null in conda-build's
                // file; both are part of the build string hash.
                NodeKind::Scalar(_) if item.is_null() => out.push(match self.style {
                    Style::Variants => VariantValue::Str(String::new()),
                    Style::CondaBuildConfig => VariantValue::Null,
                }),
                NodeKind::Scalar(s) => out.push(self.plain(&s.value, flow)),
                NodeKind::Map(_) if item.get("if").is_some() => self.selector(item, out),
                _ => self.report(
                    ProblemKind::WrongType {
                        expected: "a variant value (string or number)",
                        found: item.describe(),
                    },
                    item.span,
                ),
            }
        }
    }

    fn plain(&self, text: &str, flow: bool) -> VariantValue {
        let value = VariantValue::from_plain(text);
        if self.style == Style::Variants {
            return value;
        }
        match value {
            VariantValue::Int(_) if !flow => VariantValue::Str(text.to_string()),
            VariantValue::Str(_) if is_float(text) => {
                if flow {
                    text.parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                        .map_or_else(
                            || VariantValue::Str(text.to_string()),
                            |n| VariantValue::Float(n.to_string()),
                        )
                } else {
                    VariantValue::Str(text.to_string())
                }
            }
            other => other,
        }
    }

    fn selector(&mut self, item: &Node, out: &mut Vec<VariantValue>) {
        let cond = item.get("if").and_then(Node::as_str).unwrap_or_default();
        let expr = crate::jinja::whole_expression(cond).unwrap_or(cond);
        match evaluate(expr, self.platforms) {
            Ok(true) => {
                if let Some(then) = item.get("then") {
                    self.flatten(then, out);
                }
            }
            Ok(false) => {
                if let Some(otherwise) = item.get("else") {
                    self.flatten(otherwise, out);
                }
            }
            Err(reason) => self.report(ProblemKind::Template(reason), item.span),
        }
    }
}

/// YAML's float syntax: digits with a point or an exponent.
fn is_float(text: &str) -> bool {
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    body.bytes().any(|b| b.is_ascii_digit())
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && body.parse::<f64>().is_ok()
}

fn items(node: &Node) -> Vec<&Node> {
    match &node.kind {
        NodeKind::Seq(items) => items.iter().collect(),
        _ if node.is_null() => Vec::new(),
        _ => vec![node],
    }
}

#[cfg(test)]
mod tests {
    use rattler_conda_types::Subdir;

    use super::*;

    fn linux() -> VariantPlatforms {
        VariantPlatforms {
            target: Subdir::Linux64,
            build: Subdir::Linux64,
        }
    }

    fn values(config: &VariantConfig, key: &str) -> Vec<String> {
        config.values(key).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn line_selectors_keep_the_lines_that_apply() {
        let text = "c_compiler:\n  - gcc        # [linux]\n  - clang      # [osx]\n  - vs2022     # [win]\ncuda:\n  - 12         # [linux and x86_64]\n  - None       # [py >= 312]\nmpi:        # a comment\n  - openmpi\n";
        let source = SourceFile::new("conda_build_config.yaml", text);
        let config = parse_conda_build_config(&source, linux()).unwrap();
        assert_eq!(values(&config, "c_compiler"), ["gcc"]);
        // `py` is not a platform name: undefined, false.
        assert_eq!(config.values("cuda"), [VariantValue::Str("12".into())]);
        assert_eq!(values(&config, "mpi"), ["openmpi"]);
    }

    #[test]
    fn conda_build_config_numbers_are_text_in_block_lists() {
        let text = "a:\n  - 5\n  - 3.10\nb: [3.10, 7]\nc:\n  - true\n";
        let source = SourceFile::new("conda_build_config.yaml", text);
        let config = parse_conda_build_config(&source, linux()).unwrap();
        assert_eq!(
            config.values("a"),
            [
                VariantValue::Str("5".into()),
                VariantValue::Str("3.10".into())
            ]
        );
        assert_eq!(
            config.values("b"),
            [VariantValue::Float("3.1".into()), VariantValue::Int(7)]
        );
        assert_eq!(config.values("c"), [VariantValue::Bool(true)]);
    }

    #[test]
    fn variants_yaml_types_plain_values_and_renders_templates() {
        let text = "a: [5, 3.10, true, '7']\nb:\n  - ${{ 'x' if linux else 'y' }}\n  - if: undefined_name\n    then: z\nc:\n  - ${{ '' }}\n";
        let source = SourceFile::new("variants.yaml", text);
        let config = parse_variants(&source, linux()).unwrap();
        assert_eq!(
            config.values("a"),
            [
                VariantValue::Int(5),
                VariantValue::Str("3.10".into()),
                VariantValue::Bool(true),
                VariantValue::Str("7".into()),
            ]
        );
        assert_eq!(values(&config, "b"), ["x"]);
        assert!(!config.contains("c"));
    }

    #[test]
    fn a_file_of_comments_sets_nothing() {
        let source = SourceFile::new("conda_build_config.yaml", "# nothing\nc_stdlib:  # [win]\n");
        let config = parse_conda_build_config(&source, linux()).unwrap();
        assert_eq!(config.keys().count(), 0);
    }

    #[test]
    fn platform_keys_and_pin_run_as_build_are_not_variant_keys() {
        let text = "target_platform: [linux-64]\npin_run_as_build:\n  python: {min_pin: x.x}\nzlib: ['1.3']\n";
        let source = SourceFile::new("ci.yaml", text);
        let config = parse_variants(&source, linux()).unwrap();
        assert_eq!(config.keys().collect::<Vec<_>>(), ["zlib"]);
    }
}
