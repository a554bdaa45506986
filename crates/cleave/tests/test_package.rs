//! `cleave test --package-file`: the tests a package carries run from the
//! package alone, whichever tool made it, and a failing one exits 1 with
//! its log's last lines.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{assert_success, repo, skip_unless_required, stderr};

/// `cleave build` of the recipe directory `recipe` into `tmp/out`.
fn build(recipe: &Path, tmp: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cleave"))
        .args(["build", "--recipe"])
        .arg(recipe)
        .arg("--output-dir")
        .arg(tmp.join("out"))
        .arg("--cache-dir")
        .arg(tmp.join("cache"))
        .arg("--staging-root")
        .arg(tmp.join("stg"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// `cleave test --package-file package`, with rattler's caches in `tmp`.
fn test(package: &Path, tmp: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cleave"))
        .arg("test")
        .arg("--package-file")
        .arg(package)
        .arg("--cache-dir")
        .arg(tmp.join("cache"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// The one `.conda` file in `dir`.
fn package_in(dir: &Path) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".conda"))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found.into_iter().next().unwrap()
}

/// The three stored script tests of tests/build/stored-tests ran: the
/// second runs in the directory of its files, installed with the package.
fn assert_stored_tests_ran(output: &Output) {
    let printed = stderr(output);
    assert_success(output);
    assert!(printed.contains(": 3 tests passed"), "{printed}");
    for n in 1..=3 {
        assert!(
            printed.contains(&format!("passed: stored-tests (test {n})")),
            "{printed}"
        );
    }
    assert!(printed.contains("+ cmp expected.txt"), "{printed}");
    assert!(printed.contains("grep -q hello"), "{printed}");
}

#[test]
fn cleave_runs_the_tests_its_own_package_carries() {
    let tmp = tempfile::tempdir().unwrap();
    assert_success(&build(&repo().join("tests/build/stored-tests"), tmp.path()));
    let package = package_in(&tmp.path().join("out/noarch"));
    // Moved away from its channel: the package alone is enough.
    let alone = tmp.path().join(package.file_name().unwrap());
    std::fs::rename(&package, &alone).unwrap();
    assert_stored_tests_ran(&test(&alone, tmp.path()));
}

#[test]
fn cleave_runs_the_tests_of_a_package_rattler_build_made() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(empty.join("noarch")).unwrap();
    std::fs::write(
        empty.join("noarch/repodata.json"),
        r#"{"info":{"subdir":"noarch"},"packages":{},"packages.conda":{}}"#,
    )
    .unwrap();
    let out = tmp.path().join("peer");
    let peer = Command::new("python3")
        .arg(repo().join("tests/cf-build/peer.py"))
        .arg("build")
        .arg("--out")
        .arg(&out)
        .arg("--side")
        .arg(tmp.path().join("side"))
        .arg("--logs")
        .arg(tmp.path().join("logs"))
        .arg(&empty)
        .arg(repo().join("tests/build/stored-tests"))
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
    let built: serde_json::Value = serde_json::from_slice(&peer.stdout).unwrap();
    assert_eq!(built[0]["error"], serde_json::Value::Null, "{built}");
    assert_stored_tests_ran(&test(&package_in(&out.join("noarch")), tmp.path()));
}

#[test]
fn a_failing_test_exits_1_with_its_log_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let built = build(&repo().join("tests/workflow/test-fails"), tmp.path());
    assert_eq!(built.status.code(), Some(1), "{}", stderr(&built));
    let package = package_in(&tmp.path().join("out/broken"));
    let output = test(&package, tmp.path());
    let printed = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{printed}");
    assert!(
        printed.contains("the test script of fails-its-test (test 1) failed with exit code 1"),
        "{printed}"
    );
    let tail = printed
        .split("last lines of the log:")
        .nth(1)
        .expect("the log's last lines");
    assert!(tail.contains("checking the answer"), "{printed}");
    assert!(tail.contains("grep 'the right answer'"), "{printed}");
    let kept = printed
        .lines()
        .find_map(|l| l.strip_prefix("the test environments are kept in "))
        .expect("where the environments are");
    assert!(Path::new(kept).join("test/test-0/test.log").is_file());
    std::fs::remove_dir_all(kept).unwrap();
}

#[test]
fn test_scripts_see_the_variant_the_package_was_built_with() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = repo().join("tests/workflow/variant-in-test");
    assert_success(&build(&recipe, tmp.path()));
    let output = test(&package_in(&tmp.path().join("out/noarch")), tmp.path());
    assert_success(&output);
    assert!(
        stderr(&output).contains("flavor is mint"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_package_without_stored_tests_passes_saying_so() {
    let tmp = tempfile::tempdir().unwrap();
    assert_success(&build(&repo().join("tests/workflow/variant"), tmp.path()));
    let dir = tmp.path().join("out");
    let package = ["noarch", "linux-64"]
        .iter()
        .filter(|s| dir.join(s).is_dir())
        .flat_map(|s| std::fs::read_dir(dir.join(s)).unwrap())
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".conda"))
        .expect("a package");
    let output = test(&package, tmp.path());
    assert_success(&output);
    assert!(
        stderr(&output).contains("carries no tests"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_file_that_is_not_a_package_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let bogus = tmp.path().join("bogus-1.0-0.conda");
    std::fs::write(&bogus, b"not a zip").unwrap();
    let output = test(&bogus, tmp.path());
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("bogus-1.0-0.conda"),
        "{}",
        stderr(&output)
    );
}
