//! What recipe reading bounds: nesting depth and template steps. A recipe
//! or variant file nested as deep as allowed renders (every step that walks
//! the tree fits the stack of a test thread, 2 MiB, in a debug build); one
//! nested deeper is an error at its place, never a crash. A template that
//! would run for ever, recurse without end or build a value too deep to
//! walk is stopped with an error.

use std::path::PathBuf;

use cleave_recipe::{
    MAX_DEPTH, ProblemKind, RenderConfig, SourceFile, VariantConfig, VariantPlatforms,
};
use rattler_conda_types::Subdir;

const LINUX: VariantPlatforms = VariantPlatforms {
    target: Subdir::Linux64,
    build: Subdir::Linux64,
};

/// A flow list nested `depth` deep around `inner`.
fn nested(depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", "[".repeat(depth), "]".repeat(depth))
}

/// Selectors nested `levels` deep: each level is a mapping and a list.
fn nested_selectors(levels: usize) -> String {
    let mut text = String::from("zlib");
    for _ in 0..levels {
        text = format!("{{if: linux, then: [{text}]}}");
    }
    text
}

fn render(text: &str) -> Result<usize, cleave_recipe::RecipeErrors> {
    let recipe = cleave_recipe::parse(SourceFile::new("recipe.yaml", text), PathBuf::from("."))?;
    let mut config = RenderConfig::native();
    config.target_platform = Subdir::Linux64;
    Ok(cleave_recipe::render(&recipe, &config)?.outputs.len())
}

#[test]
fn a_recipe_nested_up_to_the_limit_renders() {
    // `extra`, a context value and host requirements, each as deep as the
    // limit allows: the top mapping and the section count.
    let text = format!(
        "context:\n  deep: {}\npackage: {{name: deep, version: '1'}}\n\
         requirements:\n  host:\n    - {}\nextra:\n  deep: {}\n",
        nested(MAX_DEPTH - 2, "x"),
        nested_selectors((MAX_DEPTH - 4) / 2),
        nested(MAX_DEPTH - 2, "'${{ deep }}'"),
    );
    assert_eq!(render(&text).unwrap(), 1);
}

#[test]
fn a_recipe_nested_deeper_is_an_error_at_its_place() {
    // Block lists 20,000 deep: 40 KB.
    let text = format!(
        "package: {{name: deep, version: '1'}}\nrequirements:\n  host:\n    - {}zlib\n",
        "- ".repeat(20_000)
    );
    let errors = render(&text).unwrap_err();
    let problem = &errors.problems()[0];
    assert_eq!(problem.kind, ProblemKind::TooDeep { limit: MAX_DEPTH });
    assert_eq!(problem.source_name(), "recipe.yaml");
    let source = SourceFile::new("recipe.yaml", text.as_str());
    assert_eq!(
        source.line_col(problem.span.offset()),
        (4, 5 + 2 * (MAX_DEPTH - 2))
    );
    assert_eq!(source.slice(problem.span), "-");
    // Flow collections stop earlier, at the YAML scanner's own limit.
    let text = format!(
        "package: {{name: deep, version: '1'}}\nrequirements:\n  host:\n    - {}\n",
        nested_selectors(20_000)
    );
    let errors = render(&text).unwrap_err();
    let problem = &errors.problems()[0];
    assert!(
        matches!(&problem.kind, ProblemKind::Yaml(m) if m.contains("recursion limit")),
        "{problem}"
    );
    assert_eq!(source.line_col(problem.span.offset()).0, 4);
}

#[test]
fn variant_files_nested_deeper_are_an_error_at_their_place() {
    for name in ["variants.yaml", "conda_build_config.yaml"] {
        let deep = format!("python:\n  - {}\n", "- ".repeat(20_000));
        let errors = VariantConfig::parse(&SourceFile::new(name, deep.as_str()), LINUX)
            .expect_err("too deep");
        let problem = &errors.problems()[0];
        assert_eq!(problem.kind, ProblemKind::TooDeep { limit: MAX_DEPTH });
        assert_eq!(problem.source_name(), name);
        let source = SourceFile::new(name, deep.as_str());
        assert_eq!(source.line_col(problem.span.offset()).0, 2);
        // As deep as allowed: read (and refused for not being a value,
        // which is what a list in a list is).
        let ok = format!("python:\n  - {}\n", nested(MAX_DEPTH - 2, "'3.12'"));
        let errors = VariantConfig::parse(&SourceFile::new(name, ok.as_str()), LINUX)
            .expect_err("not a value");
        assert!(matches!(
            errors.problems()[0].kind,
            ProblemKind::WrongType { .. }
        ));
    }
}

/// The first problem of rendering a recipe whose context entry `x` is
/// `value`.
fn context_problem(value: &str) -> cleave_recipe::Problem {
    let text = format!(
        "context:\n  x: {value}\npackage: {{name: t, version: '1'}}\nabout:\n  summary: ${{{{ x }}}}\n"
    );
    let errors = render(&text).expect_err("the template cannot finish");
    errors.problems()[0].clone()
}

#[test]
fn a_template_that_runs_for_ever_is_stopped() {
    // 10^10 steps.
    let problem = context_problem(
        "\"${% for i in range(100000) %}${% for j in range(100000) %}${{ '' }}${% endfor %}${% endfor %}\"",
    );
    assert!(problem.to_string().contains("fuel"), "{problem}");
    assert!(
        problem
            .help
            .as_deref()
            .is_some_and(|h| h.contains("10000 steps")),
        "{problem:?}"
    );
}

#[test]
fn a_template_cannot_build_a_value_deeper_than_its_steps() {
    // A value one level deeper per turn of a loop: stopped before it is
    // deep enough to overflow what walks it.
    let problem = context_problem(
        "\"${% set ns = namespace(v=[]) %}${% for i in range(100000) %}${% set ns.v = [ns.v] %}${% endfor %}${{ ns.v | length }}\"",
    );
    assert!(problem.to_string().contains("fuel"), "{problem}");
}

#[test]
fn macros_calling_themselves_are_stopped() {
    let problem = context_problem("\"${% macro f(n) %}${{ f(n + 1) }}${% endmacro %}${{ f(0) }}\"");
    assert!(problem.to_string().contains("recursion"), "{problem}");
}

#[test]
fn an_expression_nested_too_deep_is_an_error() {
    let problem = context_problem(&format!("\"${{{{ {} }}}}\"", nested(10_000, "1")));
    assert!(problem.to_string().contains("recursion"), "{problem}");
}

#[test]
fn a_template_nested_as_deep_as_the_template_parser_allows_renders() {
    let text = format!(
        "context:\n  x: \"${{{{ {} | length }}}}\"\npackage: {{name: t, version: '1'}}\n",
        nested(49, "1")
    );
    assert_eq!(render(&text).unwrap(), 1);
}

/// Variants of `keys` keys with `values` values each, and a recipe whose
/// one output reads them all.
fn multiplying(keys: usize, values: usize) -> (String, VariantConfig) {
    let mut variants = String::new();
    let mut reads = Vec::new();
    for k in 0..keys {
        let list: Vec<String> = (0..values).map(|v| format!("'{v}'")).collect();
        variants.push_str(&format!("key{k}: [{}]\n", list.join(", ")));
        reads.push(format!("${{{{ key{k} }}}}"));
    }
    let recipe = format!(
        "package:\n  name: many\n  version: '1.0'\nabout:\n  summary: \"{}\"\n",
        reads.join(" ")
    );
    let config = VariantConfig::parse(&SourceFile::new("variants.yaml", variants), LINUX).unwrap();
    (recipe, config)
}

#[test]
fn keys_that_multiply_past_the_limit_are_named_before_their_variants_render() {
    let (text, variants) = multiplying(5, 10);
    let recipe = cleave_recipe::parse(
        SourceFile::new("recipe.yaml", text.as_str()),
        PathBuf::from("."),
    )
    .unwrap();
    let mut config = RenderConfig::native();
    config.variants = variants;
    let errors = cleave_recipe::render(&recipe, &config).unwrap_err();
    let problem = &errors.problems()[0];
    // The first four keys promise 10,000: counted before rendering them,
    // not by rendering up to the limit (which would say 4097).
    assert_eq!(
        problem.to_string(),
        "rendering `many` would make at least 10000 variants, more than the 4096 a recipe \
         may have: it multiplies key0 (10) × key1 (10) × key2 (10) × key3 (10)"
    );
    let source = SourceFile::new("recipe.yaml", text.as_str());
    assert_eq!(source.slice(problem.span), "many");
    assert_eq!(source.line_col(problem.span.offset()), (2, 9));
    assert!(problem.help.as_deref().unwrap().contains("zip_keys"));
}

#[test]
fn keys_within_the_limit_render_every_variant() {
    let (text, variants) = multiplying(3, 4);
    let recipe = cleave_recipe::parse(
        SourceFile::new("recipe.yaml", text.as_str()),
        PathBuf::from("."),
    )
    .unwrap();
    let mut config = RenderConfig::native();
    config.variants = variants;
    assert_eq!(
        cleave_recipe::render(&recipe, &config)
            .unwrap()
            .outputs
            .len(),
        64
    );
}
