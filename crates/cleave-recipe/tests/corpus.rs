//! The recipe corpus under `tests/recipes/`: every good recipe renders to its
//! `expected.yaml`, every bad one fails with its `expected.txt`.
//!
//! Set `CLEAVE_BLESS=1` to rewrite the expected files after a deliberate change.

use std::path::{Path, PathBuf};

use cleave_recipe::{RecipeErrors, RenderConfig, SourceFile, VariantConfig};
use miette::{GraphicalReportHandler, GraphicalTheme};
use rattler_conda_types::Subdir;

fn corpus(kind: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/recipes")
        .join(kind);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("recipe.yaml").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn report(errors: &RecipeErrors) -> String {
    let mut out = String::new();
    GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .render_report(&mut out, errors)
        .expect("render report");
    out
}

/// Renders a corpus recipe for linux-64 with its `variants.yaml`, if any.
fn render(dir: &Path) -> Result<String, String> {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect("read");
    let mut variants = VariantConfig::default();
    if dir.join("variants.yaml").is_file() {
        let source = SourceFile::new("variants.yaml", read("variants.yaml"));
        let file = VariantConfig::parse(
            &source,
            cleave_recipe::VariantPlatforms {
                target: Subdir::Linux64,
                build: Subdir::Linux64,
            },
        )
        .map_err(|e| report(&e))?;
        variants.merge(file);
        variants.validate().map_err(|e| report(&e))?;
    }
    let source = SourceFile::new("recipe.yaml", read("recipe.yaml"));
    let recipe = cleave_recipe::parse(source, dir.to_path_buf()).map_err(|e| report(&e))?;
    let config = RenderConfig {
        target_platform: Subdir::Linux64,
        build_platform: Subdir::Linux64,
        variants,
    };
    let rendered = cleave_recipe::render(&recipe, &config).map_err(|e| report(&e))?;
    let value = serde_json::to_value(&rendered.outputs).expect("json");
    Ok(serde_yaml_ng::to_string(&value).expect("yaml"))
}

/// Compares with (or, when blessing, writes) an expected file.
fn check(path: &Path, actual: &str) -> Result<(), String> {
    if std::env::var_os("CLEAVE_BLESS").is_some() {
        std::fs::write(path, actual).expect("bless");
        return Ok(());
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    if expected == actual {
        Ok(())
    } else {
        Err(format!(
            "{}\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        ))
    }
}

#[test]
fn bad_recipes_report_their_errors() {
    let cases = corpus("bad");
    assert!(
        cases.len() >= 25,
        "the bad corpus shrank to {}",
        cases.len()
    );
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|dir| match render(dir) {
            Ok(_) => Some(format!("{} rendered without error", dir.display())),
            Err(text) => check(&dir.join("expected.txt"), &text).err(),
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn good_recipes_render_as_expected() {
    let cases = corpus("good");
    assert!(!cases.is_empty());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|dir| match render(dir) {
            Ok(text) => check(&dir.join("expected.yaml"), &text).err(),
            Err(report) => Some(format!("{} failed:\n{report}", dir.display())),
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_bad_recipe_points_at_a_line() {
    for dir in corpus("bad") {
        let text = render(&dir).expect_err("bad recipe");
        let located = text.contains("recipe.yaml:") || text.contains("variants.yaml:");
        assert!(located, "{} has no file:line:column\n{text}", dir.display());
    }
}
