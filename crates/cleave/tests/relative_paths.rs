//! Path arguments written relative to the working directory, down to a bare
//! file name (`--recipe recipe.yaml`, whose directory is the empty path),
//! work for `cleave render` and `cleave build` as they would absolute.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::{assert_success, stderr};

/// A noarch recipe whose script writes the variant value it was given.
const RECIPE: &str = r#"package:
  name: relative
  version: "1.0"
build:
  noarch: generic
  string: ${{ flavour }}_0
  script:
    - mkdir -p $PREFIX/share
    - echo ${{ flavour }} > $PREFIX/share/flavour.txt
"#;

fn cleave(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cleave"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("run cleave")
}

fn recipe_dir() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("recipe.yaml"), RECIPE).unwrap();
    std::fs::write(tmp.path().join("variants.yaml"), "flavour: [plain]\n").unwrap();
    std::fs::write(tmp.path().join("extra.yaml"), "flavour: [spicy]\n").unwrap();
    tmp
}

#[test]
fn render_takes_a_bare_recipe_file_name() {
    let tmp = recipe_dir();
    let output = cleave(
        tmp.path(),
        &[
            "render",
            "--recipe",
            "recipe.yaml",
            "--variant-config",
            "extra.yaml",
            "--output",
            "json",
        ],
    );
    assert_success(&output);
    let rendered: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(rendered[0]["build"]["string"], "spicy_0");
}

#[test]
fn build_takes_a_bare_recipe_file_name_and_relative_directories() {
    let tmp = recipe_dir();
    let output = cleave(
        tmp.path(),
        &[
            "build",
            "--recipe",
            "recipe.yaml",
            "--variant-config",
            "extra.yaml",
            "--output-dir",
            "out",
            "--cache-dir",
            "cache",
            "--staging-root",
            "stg",
            "--test",
            "skip",
        ],
    );
    assert_success(&output);
    let package = tmp.path().join("out/noarch/relative-1.0-spicy_0.conda");
    assert!(package.is_file(), "{}", stderr(&output));
    assert!(tmp.path().join("cache").is_dir());
}
