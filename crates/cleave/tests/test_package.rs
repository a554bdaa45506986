//! `cleave test --package-file`: the tests a package carries run from the
//! package alone, whichever tool made it, and a failing one exits 1 with
//! its log's last lines.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{assert_success, repo, skip_unless_required, stderr};

/// `cleave build` of the recipe directory `recipe` into `tmp/out`.
fn build(recipe: &Path, tmp: &Path) -> Output {
    build_into(&[recipe], tmp, "out", &[])
}

/// `cleave build` of `recipes` into `tmp/out`, with `channels`.
fn build_into(recipes: &[&Path], tmp: &Path, out: &str, channels: &[&Path]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cleave"));
    cmd.arg("build");
    for recipe in recipes {
        cmd.arg("--recipe").arg(recipe);
    }
    for channel in channels {
        cmd.arg("-c").arg(channel);
    }
    cmd.arg("--output-dir")
        .arg(tmp.join(out))
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
    test_with(package, tmp, &[])
}

/// [`test`] with `-c` for each of `channels`.
fn test_with(package: &Path, tmp: &Path, channels: &[&Path]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cleave"));
    cmd.arg("test");
    for channel in channels {
        cmd.arg("-c").arg(channel);
    }
    cmd.arg("--package-file")
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
            printed.contains(&format!("passed: test {n} of stored-tests")),
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

/// `cleave test` reports as a build does: in JSON lines its tests are
/// named `test N of NAME` as a build's are, each passed test is a record,
/// and `-q` hides the scripts' output but keeps the result.
#[test]
fn cleave_test_reports_in_the_log_styles_of_a_build() {
    let tmp = tempfile::tempdir().unwrap();
    assert_success(&build(&repo().join("tests/build/stored-tests"), tmp.path()));
    let package = package_in(&tmp.path().join("out/noarch"));
    let run = |global: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cleave"))
            .args(global)
            .arg("test")
            .arg("--package-file")
            .arg(&package)
            .arg("--cache-dir")
            .arg(tmp.path().join("cache"))
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let json = run(&["--log-style", "json"]);
    assert_success(&json);
    let records: Vec<serde_json::Value> = stderr(&json)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let of_type = |t: &str| -> Vec<&serde_json::Value> {
        records.iter().filter(|r| r["type"] == t).collect()
    };
    assert_eq!(of_type("started")[0]["kind"], "test", "{records:?}");
    let passed: Vec<&str> = of_type("test_passed")
        .iter()
        .map(|r| r["test"].as_str().unwrap())
        .collect();
    assert_eq!(
        passed,
        [
            "test 1 of stored-tests",
            "test 2 of stored-tests",
            "test 3 of stored-tests"
        ]
    );
    assert!(!of_type("line").is_empty(), "{records:?}");
    assert_eq!(of_type("result")[0]["tests"], 3, "{records:?}");

    let quiet = run(&["-q"]);
    assert_success(&quiet);
    let printed = stderr(&quiet);
    assert!(printed.contains(": 3 tests passed"), "{printed}");
    assert!(!printed.contains("grep -q hello"), "{printed}");
}

/// An empty channel in `dir`.
fn empty_channel(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("noarch")).unwrap();
    std::fs::write(
        dir.join("noarch/repodata.json"),
        r#"{"info":{"subdir":"noarch"},"packages":{},"packages.conda":{}}"#,
    )
    .unwrap();
    dir.to_path_buf()
}

/// py-rattler-build's build of `recipe` (its tests not run), solving from
/// `channel`: the package file, or `None` (having said why) when the peer
/// is not installed.
fn peer_build(tmp: &Path, channel: &Path, recipe: &Path) -> Option<PathBuf> {
    let out = tmp.join("peer");
    let peer = Command::new("python3")
        .arg(repo().join("tests/cf-build/peer.py"))
        .arg("build")
        .arg("--out")
        .arg(&out)
        .arg("--side")
        .arg(tmp.join("side"))
        .arg("--logs")
        .arg(tmp.join("logs"))
        .arg(channel)
        .arg(recipe)
        .output()
        .expect("run python3");
    if peer.status.code() == Some(3) {
        skip_unless_required(
            "CLEAVE_REQUIRE_CONFORMANCE",
            &format!("py-rattler-build is not installed: {}", stderr(&peer)),
        );
        return None;
    }
    assert!(peer.status.success(), "{}", stderr(&peer));
    let built: serde_json::Value = serde_json::from_slice(&peer.stdout).unwrap();
    assert_eq!(built[0]["error"], serde_json::Value::Null, "{built}");
    Some(package_in(&out.join("noarch")))
}

#[test]
fn cleave_runs_the_tests_of_a_package_rattler_build_made() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = empty_channel(&tmp.path().join("empty"));
    let recipe = repo().join("tests/build/stored-tests");
    let Some(package) = peer_build(tmp.path(), &empty, &recipe) else {
        return;
    };
    assert_stored_tests_ran(&test(&package, tmp.path()));
}

/// The python stand-in of tests/toolchain (with python_abi) in `tmp/python`.
fn python_channel(tmp: &Path) -> PathBuf {
    let python = repo().join("tests/toolchain/python");
    let abi = repo().join("tests/toolchain/python_abi");
    assert_success(&build_into(&[&python, &abi], tmp, "python", &[]));
    tmp.join("python")
}

/// The import test and the script test run by python of
/// tests/workflow/python-tests ran.
fn assert_python_tests_ran(output: &Output) {
    let printed = stderr(output);
    assert_success(output);
    assert!(printed.contains(": 2 tests passed"), "{printed}");
    assert!(
        printed.contains("+ python -c 'import wfprobe'"),
        "{printed}"
    );
    assert!(printed.contains("the answer is 42"), "{printed}");
}

#[test]
fn python_tests_and_python_scripts_run_from_a_cleave_package() {
    let tmp = tempfile::tempdir().unwrap();
    let python = python_channel(tmp.path());
    let recipe = repo().join("tests/workflow/python-tests");
    let built = build_into(&[&recipe], tmp.path(), "out", &[&python]);
    assert_success(&built);
    // The build ran them too, before the package entered the channel.
    assert!(
        stderr(&built).contains("the answer is 42"),
        "{}",
        stderr(&built)
    );
    let package = package_in(&tmp.path().join("out/noarch"));
    assert_python_tests_ran(&test_with(&package, tmp.path(), &[&python]));
    // py-rattler-build sees both tests and runs them from the package too.
    let peer = Command::new("python3")
        .arg(repo().join("tests/oracle/package_tests.py"))
        .arg("--run")
        .arg("--channel")
        .arg(&python)
        .arg(&package)
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
    let found: serde_json::Value = serde_json::from_slice(&peer.stdout).unwrap();
    let types: Vec<&str> = found[0]["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["PythonTest", "CommandsTest"], "{found}");
    assert_eq!(found[0]["tests"][1]["script"]["interpreter"], "python");
    let results: Vec<bool> = found[0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["success"].as_bool().unwrap())
        .collect();
    assert_eq!(results, [true, true], "{found}");
}

#[test]
fn python_tests_and_python_scripts_run_from_a_rattler_build_package() {
    let tmp = tempfile::tempdir().unwrap();
    let python = python_channel(tmp.path());
    let recipe = repo().join("tests/workflow/python-tests");
    let Some(package) = peer_build(tmp.path(), &python, &recipe) else {
        return;
    };
    assert_python_tests_ran(&test_with(&package, tmp.path(), &[&python]));
    // Without python in a channel, the test environment cannot be made.
    let alone = test(&package, tmp.path());
    assert_eq!(alone.status.code(), Some(1), "{}", stderr(&alone));
    assert!(stderr(&alone).contains("python"), "{}", stderr(&alone));
    std::fs::remove_dir_all(kept(&stderr(&alone))).unwrap();
}

/// `package` repacked by conda-package-handling as a `.tar.bz2` in `dir`
/// with `extra` appended to its `info/tests/tests.yaml`.
fn repacked_with(package: &Path, dir: &Path, extra: &str) -> PathBuf {
    const REPACK: &str = r#"
import os, sys
import conda_package_handling.api as cph
package, out, extra = sys.argv[1:4]
root = os.path.join(out, "root")
cph.extract(package, dest_dir=root)
with open(os.path.join(root, "info/tests/tests.yaml"), "a") as f:
    f.write(extra)
files = [os.path.relpath(os.path.join(d, n), root) for d, _, ns in os.walk(root) for n in ns]
name = os.path.basename(package)[: -len(".conda")] + ".tar.bz2"
cph.create(root, files, name, out_folder=out)
print(os.path.join(out, name))
"#;
    std::fs::create_dir_all(dir).unwrap();
    let output = Command::new("python3")
        .args(["-c", REPACK])
        .arg(package)
        .arg(dir)
        .arg(extra)
        .output()
        .expect("run python3");
    assert!(output.status.success(), "{}", stderr(&output));
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

#[test]
fn a_stored_package_contents_test_is_checked_against_the_archive() {
    let tmp = tempfile::tempdir().unwrap();
    assert_success(&build(&repo().join("tests/build/stored-tests"), tmp.path()));
    let package = package_in(&tmp.path().join("out/noarch"));
    let holds =
        "- package_contents:\n    files:\n      exists: [share/stored-tests/greeting.txt]\n";
    let good = repacked_with(&package, &tmp.path().join("good"), holds);
    let output = test(&good, tmp.path());
    assert_success(&output);
    assert!(
        stderr(&output).contains(": 4 tests passed"),
        "{}",
        stderr(&output)
    );
    let lacks = "- package_contents:\n    files: [share/stored-tests/missing.txt]\n";
    let bad = repacked_with(&package, &tmp.path().join("bad"), lacks);
    let output = test(&bad, tmp.path());
    let printed = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{printed}");
    assert!(
        printed.contains("share/stored-tests/missing.txt"),
        "{printed}"
    );
    std::fs::remove_dir_all(kept(&printed)).unwrap();
}

#[test]
fn a_downstream_test_solves_the_downstream_package_with_this_one() {
    let tmp = tempfile::tempdir().unwrap();
    let app = repo().join("tests/build/downstream-app");
    assert_success(&build_into(&[&app], tmp.path(), "apps", &[]));
    let apps = tmp.path().join("apps");
    let lib = repo().join("tests/build/downstream");
    assert_success(&build_into(&[&lib], tmp.path(), "out", &[&apps]));
    let package = package_in(&tmp.path().join("out/noarch"));
    let output = test_with(&package, tmp.path(), &[&apps]);
    assert_success(&output);
    assert!(
        stderr(&output).contains("passed: test 1 of ds-lib"),
        "{}",
        stderr(&output)
    );
    // Without the channel that has ds-app, the downstream test fails.
    let alone = test(&package, tmp.path());
    let printed = stderr(&alone);
    assert_eq!(alone.status.code(), Some(1), "{printed}");
    assert!(printed.contains("downstream ds-app"), "{printed}");
    std::fs::remove_dir_all(kept(&printed)).unwrap();
}

/// The directory a failed `cleave test` says it kept.
fn kept(printed: &str) -> PathBuf {
    let dir = printed
        .lines()
        .find_map(|l| l.strip_prefix("the test environments are kept in "))
        .expect("where the environments are");
    PathBuf::from(dir)
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
        printed.contains("the test script of test 1 of fails-its-test failed with exit code 1"),
        "{printed}"
    );
    let tail = printed
        .split("last lines of the log:")
        .nth(1)
        .expect("the log's last lines");
    assert!(tail.contains("checking the answer"), "{printed}");
    assert!(tail.contains("grep 'the right answer'"), "{printed}");
    let kept = kept(&printed);
    assert!(kept.join("test/test-0/test.log").is_file());
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
