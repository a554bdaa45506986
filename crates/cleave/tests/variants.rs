//! `--variant KEY=VALUE[,VALUE]` replaces a key's values after the variant
//! files, as rattler-build's flag does: one output per value, with the
//! build string the peer gives the same recipe and override (a value is
//! text, `5` hashes as `"5"`), and the build makes those packages.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

mod common;
use common::{assert_success, repo, skip_unless_required, stderr};

/// Set on CI: the peer must be there.
const REQUIRE: &str = "CLEAVE_REQUIRE_CONFORMANCE";

fn recipe() -> std::path::PathBuf {
    repo().join("tests/workflow/variant")
}

/// Build strings of cleave's render of the recipe with `extra` flags.
fn cleave_strings(extra: &[&str]) -> BTreeSet<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_cleave"))
        .args(["render", "--output", "json", "--recipe"])
        .arg(recipe())
        .args(extra)
        .output()
        .unwrap();
    assert_success(&output);
    let outputs: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    outputs
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["build"]["string"].as_str().unwrap().to_string())
        .collect()
}

/// Build strings of the peer's render with `extra` flags of peer.py;
/// `None` without the peer.
fn peer_strings(extra: &[&str]) -> Option<BTreeSet<String>> {
    let output = Command::new("python3")
        .arg(repo().join("tests/conformance/peer.py"))
        .arg("render")
        .args(extra)
        .arg(recipe())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    if output.status.code() == Some(3) {
        skip_unless_required(REQUIRE, &format!("no peer: {}", stderr(&output)));
        return None;
    }
    assert!(output.status.success(), "{}", stderr(&output));
    let renders: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(renders[0]["error"].is_null(), "{renders}");
    Some(
        renders[0]["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["build_string"].as_str().unwrap().to_string())
            .collect(),
    )
}

#[test]
fn an_override_gives_the_peers_build_strings() {
    let plain = cleave_strings(&[]);
    let overridden = cleave_strings(&["--variant", "flavor=spicy, 5"]);
    assert_eq!(plain.len(), 1);
    assert_eq!(overridden.len(), 2, "one output per value");
    assert!(plain.is_disjoint(&overridden), "the value is in the hash");
    // The last override of a key wins.
    let last = cleave_strings(&["--variant", "flavor=spicy", "--variant", "flavor=plain"]);
    assert_eq!(last, plain);
    let Some(peer_plain) = peer_strings(&[]) else {
        return;
    };
    assert_eq!(plain, peer_plain);
    assert_eq!(
        Some(overridden),
        peer_strings(&["--variant", "flavor=spicy, 5"])
    );
}

#[test]
fn the_build_makes_one_package_per_overridden_value() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let output = Command::new(env!("CARGO_BIN_EXE_cleave"))
        .args(["build", "--recipe"])
        .arg(recipe())
        .args(["--variant", "flavor=spicy,mild", "--output-dir"])
        .arg(&out)
        .arg("--cache-dir")
        .arg(tmp.path().join("cache"))
        .arg("--staging-root")
        .arg(tmp.path().join("stg"))
        .output()
        .unwrap();
    assert_success(&output);
    let expected = cleave_strings(&["--variant", "flavor=spicy,mild"]);
    let built: BTreeSet<String> = std::fs::read_dir(out.join("noarch"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| {
            n.strip_prefix("flavored-1.0-")
                .and_then(|n| n.strip_suffix(".conda"))
                .map(String::from)
        })
        .collect();
    assert_eq!(built, expected);
    let bad = Command::new(env!("CARGO_BIN_EXE_cleave"))
        .args(["render", "--variant", "flavor"])
        .arg("--recipe")
        .arg(recipe())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "not KEY=VALUE is a usage error");
}
