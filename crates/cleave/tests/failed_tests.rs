//! A package whose tests fail never enters the output channel: it is
//! written aside to `OUTPUT/broken/`, the build exits 1 naming it, and no
//! solve from the channel can pick it up.

use std::process::Command;

mod common;
use common::{repo, stderr};

#[test]
fn a_package_whose_tests_fail_is_kept_out_of_the_channel() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let output = Command::new(env!("CARGO_BIN_EXE_cleave"))
        .args(["build", "--recipe"])
        .arg(repo().join("tests/workflow/test-fails"))
        .arg("--output-dir")
        .arg(&out)
        .arg("--cache-dir")
        .arg(tmp.path().join("cache"))
        .arg("--staging-root")
        .arg(tmp.path().join("stg"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let printed = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{printed}");
    let broken = std::fs::read_dir(out.join("broken"))
        .expect("a broken/ directory")
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".conda"))
        .expect("the package in broken/");
    // The report wraps long lines: compare without whitespace and frame.
    let squeezed: String = printed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '│' && *c != '|')
        .collect();
    assert!(
        squeezed.contains(&broken.display().to_string()),
        "the error names where the package is:\n{printed}"
    );
    assert!(
        printed.contains("checking the answer"),
        "log tail:\n{printed}"
    );
    let subdir = out.join("noarch");
    let names: Vec<String> = std::fs::read_dir(&subdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.ends_with(".conda")),
        "no package in the channel: {names:?}"
    );
    let repodata = std::fs::read_to_string(subdir.join("repodata.json")).unwrap();
    assert!(!repodata.contains("fails-its-test"), "{repodata}");
}
