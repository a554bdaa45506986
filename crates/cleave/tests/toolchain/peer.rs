//! Build strings of the peer, py-rattler-build 0.73, for the recipes of
//! `tests/forge/` with the same variant file: cleave's packages must carry
//! the same ones. The peer renders them all in one process, once.
//!
//! Without the peer (`scripts/prerequisites --with-oracles` installs it)
//! the comparison says so and passes, unless
//! `CLEAVE_REQUIRE_CONFORMANCE=1` is set (CI sets it).

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::OnceLock;

use crate::common::{repo, skip_unless_required};

/// The recipes of `tests/forge/` the peer renders.
const RECIPES: [&str; 4] = ["hello-c", "hello-split", "hello-py", "hello-ext"];

/// `peer.py` exits with this when py-rattler-build 0.73.0 is missing.
const PEER_MISSING: i32 = 3;

/// Asserts that the peer gives package `name` of `tests/forge/RECIPE` the
/// build string `build`.
pub fn assert_build_string(recipe: &str, name: &str, build: &str) {
    let Some(strings) = build_strings() else {
        skip_unless_required(
            "CLEAVE_REQUIRE_CONFORMANCE",
            "py-rattler-build 0.73.0 is not installed; build strings are not compared",
        );
        return;
    };
    assert_eq!(
        strings.get(&(recipe.to_string(), name.to_string())),
        Some(&build.to_string()),
        "the peer's build string of {name} ({recipe}); all: {strings:?}"
    );
}

fn build_strings() -> Option<&'static BTreeMap<(String, String), String>> {
    static STRINGS: OnceLock<Option<BTreeMap<(String, String), String>>> = OnceLock::new();
    STRINGS.get_or_init(render).as_ref()
}

fn render() -> Option<BTreeMap<(String, String), String>> {
    let output = Command::new("python3")
        .arg(repo().join("tests/conformance/peer.py"))
        .arg("render")
        .arg("--variant-config")
        .arg(crate::variants())
        .args(RECIPES.map(|r| repo().join("tests/forge").join(r)))
        .output()
        .expect("run python3");
    if output.status.code() == Some(PEER_MISSING) {
        return None;
    }
    assert!(
        output.status.success(),
        "peer.py failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let renders: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut strings = BTreeMap::new();
    for (recipe, render) in RECIPES.iter().zip(renders.as_array().unwrap()) {
        assert!(
            render["error"].is_null(),
            "the peer rejects {recipe}: {render}"
        );
        for package in render["packages"].as_array().unwrap() {
            strings.insert(
                (
                    recipe.to_string(),
                    package["name"].as_str().unwrap().to_string(),
                ),
                package["build_string"].as_str().unwrap().to_string(),
            );
        }
    }
    Some(strings)
}
