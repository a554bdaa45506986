//! End-to-end tests of `cleave render`, driving the binary on recipes under
//! `tests/recipes/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn recipes() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/recipes")
}

fn cleave(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cleave"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run cleave")
}

fn json(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "cleave failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

/// `cleave render --output json` of a corpus recipe for `platform`.
fn render_json(recipe: &str, platform: &str, extra: &[&str]) -> serde_json::Value {
    let dir = recipes().join(recipe);
    let mut args = vec![
        "render",
        "--recipe",
        dir.to_str().unwrap(),
        "--target-platform",
        platform,
        "--output",
        "json",
    ];
    args.extend_from_slice(extra);
    json(&cleave(&args))
}

fn names(outputs: &serde_json::Value) -> Vec<String> {
    outputs
        .as_array()
        .expect("list")
        .iter()
        .map(|o| {
            format!(
                "{}:{}",
                o["kind"].as_str().unwrap(),
                o["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn renders_staging_outputs_in_build_order_as_json() {
    let out = render_json("good/staging-multiple", "linux-64", &[]);
    assert_eq!(
        names(&out),
        [
            "staging:core-build",
            "staging:python-build",
            "staging:python-build",
            "package:libcore",
            "package:core-headers",
            "package:python-core",
            "package:python-core",
        ]
    );
    let python_core = &out[5];
    assert_eq!(python_core["variant"]["python"], "3.11");
    assert_eq!(python_core["inherit"]["from"], "python-build");
    assert_eq!(
        python_core["requirements"]["run"][1],
        "libcore ==3.2.0 hb0f4dca_0"
    );
}

#[test]
fn a_recipe_file_path_works_like_its_directory() {
    let dir = recipes().join("good/seed-cache-basic");
    let file = dir.join("recipe.yaml");
    let a = cleave(&[
        "render",
        "-r",
        dir.to_str().unwrap(),
        "--target-platform",
        "linux-64",
    ]);
    let b = cleave(&[
        "render",
        "-r",
        file.to_str().unwrap(),
        "--target-platform",
        "linux-64",
    ]);
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
    let text = String::from_utf8(a.stdout).unwrap();
    assert!(text.contains("implicit: true"), "{text}");
    assert!(text.contains("from: cache"), "{text}");
}

#[test]
fn variant_config_flags_apply_after_variants_yaml() {
    let extra = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(extra.path(), "python:\n  - \"3.13\"\n").unwrap();
    let out = render_json(
        "good/staging-multiple",
        "linux-64",
        &["--variant-config", extra.path().to_str().unwrap()],
    );
    let pythons: Vec<&str> = out
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["variant"]["python"].as_str())
        .collect();
    assert_eq!(pythons, ["3.13", "3.13"]);
}

#[test]
fn target_platform_changes_selectors_and_compilers() {
    let out = render_json("good/selectors-and-jinja", "osx-arm64", &[]);
    let build = &out[0]["requirements"]["build"];
    assert_eq!(build, &serde_json::json!(["make", "clang", "new-api"]));
    assert!(out[0]["requirements"].get("run").is_none());
}

#[test]
fn bad_recipe_exits_1_with_file_line_and_hint() {
    let dir = recipes().join("bad/several-errors");
    let output = cleave(&["render", "-r", dir.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty(), "errors must not go to stdout");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("4 errors, 1 warning"), "{stderr}");
    assert!(stderr.contains("recipe.yaml:16:14"), "{stderr}");
    assert!(stderr.contains("did you mean `many-build`?"), "{stderr}");
    // A typo in a script template is a warning: the peer fills unknown
    // script names from the build's environment, so it must not fail.
    assert!(
        stderr.contains("`verison` is not a recipe variable"),
        "{stderr}"
    );
    assert!(stderr.contains("recipe.yaml:26:20"), "{stderr}");
}

#[test]
fn missing_recipe_and_bad_platform_exit_2() {
    let missing = cleave(&["render", "-r", "/nonexistent/recipe/dir"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read recipe"));
    let dir = recipes().join("good/staging-basic");
    let platform = cleave(&[
        "render",
        "-r",
        dir.to_str().unwrap(),
        "--target-platform",
        "linux-65",
    ]);
    assert_eq!(platform.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&platform.stderr).contains("linux-65"));
}

#[test]
fn conda_build_specs_with_bare_versions_render_with_a_warning() {
    let dir = recipes().join("good/conda-build-spec");
    let output = cleave(&["render", "-r", dir.to_str().unwrap(), "--output", "json"]);
    let out = json(&output);
    assert_eq!(out[0]["requirements"]["host"][0], "zlib ==1.3.1 *_2");
    assert_eq!(out[0]["requirements"]["host"][1], "numpy 2.*");
    assert_eq!(
        out[0]["tests"][0]["script"]["requirements"]["run"][0],
        "python 3.11.*"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("read as an exact version"), "{stderr}");
    assert!(stderr.contains("recipe.yaml:10:7"), "{stderr}");
    assert!(stderr.contains("read as that version series"), "{stderr}");
    assert!(stderr.contains("write `python 3.11.*`"), "{stderr}");
}
