//! A package's `info/index.json` and `info/about.json` as rattler-build
//! writes them for the same recipe: the same keys and values, absent
//! fields left out (never `null`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod common;
use common::{assert_success, repo, skip_unless_required, stderr};

/// The one `.conda` file in `dir`.
fn package_in(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".conda"))
        .expect("a package")
}

/// Every key of `value`, at any depth, whose value is `null`.
fn nulls(value: &Value, at: &str, found: &mut Vec<String>) {
    match value {
        Value::Null => found.push(at.to_string()),
        Value::Object(map) => {
            for (key, inner) in map {
                nulls(inner, &format!("{at}.{key}"), found);
            }
        }
        Value::Array(items) => {
            for (n, inner) in items.iter().enumerate() {
                nulls(inner, &format!("{at}[{n}]"), found);
            }
        }
        _ => {}
    }
}

#[test]
fn index_and_about_are_what_rattler_build_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = repo().join("tests/workflow/metadata");
    // Both tools solve from the same (empty) channel, which about.json names.
    let channel = tmp.path().join("channel");
    std::fs::create_dir_all(channel.join("noarch")).unwrap();
    std::fs::write(
        channel.join("noarch/repodata.json"),
        r#"{"info":{"subdir":"noarch"},"packages":{},"packages.conda":{}}"#,
    )
    .unwrap();
    let built = Command::new(env!("CARGO_BIN_EXE_cleave"))
        .args(["build", "--recipe"])
        .arg(&recipe)
        .arg("-c")
        .arg(&channel)
        .arg("--output-dir")
        .arg(tmp.path().join("out"))
        .arg("--cache-dir")
        .arg(tmp.path().join("cache"))
        .arg("--staging-root")
        .arg(tmp.path().join("stg"))
        .output()
        .unwrap();
    assert_success(&built);
    let ours = package_in(&tmp.path().join("out/noarch"));
    let peer_script = repo().join("tests/cf-build/peer.py");
    let peer = Command::new("python3")
        .arg(&peer_script)
        .arg("build")
        .arg("--out")
        .arg(tmp.path().join("peer"))
        .arg("--side")
        .arg(tmp.path().join("side"))
        .arg("--logs")
        .arg(tmp.path().join("logs"))
        .arg(&channel)
        .arg(&recipe)
        .output()
        .expect("run python3");
    if peer.status.code() == Some(3) {
        skip_unless_required(
            "CLEAVE_REQUIRE_CONFORMANCE",
            &format!("py-rattler-build is not installed: {}", stderr(&peer)),
        );
        return;
    }
    assert!(peer.status.success(), "{}", stderr(&peer));
    let theirs = package_in(&tmp.path().join("peer/noarch"));
    // Both read back by conda-package-handling.
    let inspected = Command::new("python3")
        .arg(&peer_script)
        .arg("inspect")
        .arg(&ours)
        .arg(&theirs)
        .output()
        .unwrap();
    assert!(inspected.status.success(), "{}", stderr(&inspected));
    let both: Value = serde_json::from_slice(&inspected.stdout).unwrap();
    for file in ["index", "about"] {
        let (a, b) = (&both[0][file], &both[1][file]);
        let mut found = Vec::new();
        nulls(a, file, &mut found);
        assert!(found.is_empty(), "nulls in {file}.json: {found:?}\n{a}");
        assert_eq!(a, b, "{file}.json: cleave's, then rattler-build's");
    }
    assert_eq!(both[0]["about"]["summary"], "A package with about fields.");
}
