//! End-to-end tests on real software: zstd 1.5.4 (`examples/zstd` and
//! `examples/zstd-continue`), built from the vendored upstream tarball with
//! cmake and ninja. The packages are checked by conda-package-handling and
//! installed by py-rattler, and the tools and library are run.
//!
//! The tarball is not in git: it is taken from `examples/zstd/`, else from
//! `$CLEAVE_SOURCES` or `../shared/sources` beside the repository (as
//! `scripts/zstd-source` does). Without it these tests say so and pass,
//! unless `CLEAVE_REQUIRE_ZSTD=1` makes its absence a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{
    assert_success, index, oracle, package, paths, repo, skip_unless_required, stderr, strings,
};

const TARBALL: &str = "libzstd_1.5.4+dfsg2.orig.tar.xz";

/// Makes sure the tarball is beside examples/zstd/recipe.yaml; false when
/// it is nowhere to be found.
fn vendored_tarball() -> bool {
    let status = Command::new(repo().join("scripts/zstd-source"))
        .status()
        .expect("run scripts/zstd-source");
    if status.success() {
        return true;
    }
    skip_unless_required(
        "CLEAVE_REQUIRE_ZSTD",
        &format!("{TARBALL} is not available (see scripts/zstd-source)"),
    );
    false
}

/// `cleave build` of `examples/NAME` into `tmp/out`, tests run, every
/// staging file required to go into exactly one package.
fn build(tmp: &Path, name: &str, out: &str) -> Output {
    let recipe = repo().join("examples").join(name);
    Command::new(env!("CARGO_BIN_EXE_cleave"))
        .arg("build")
        .arg("--recipe")
        .arg(&recipe)
        .arg("--output-dir")
        .arg(tmp.join(out))
        .arg("--staging-root")
        .arg(tmp.join("stg"))
        .args(["--error-unclaimed-files", "--error-overlapping-files"])
        .env("CLEAVE_CACHE_DIR", tmp.join("cache"))
        // Every build fills a shared directory as a remote store, for
        // "another machine" to build from.
        .env(
            "CLEAVE_REMOTE",
            format!("file://{}", tmp.join("shared").display()),
        )
        .env("NO_COLOR", "1")
        .current_dir(tmp)
        .output()
        .unwrap()
}

/// The size in "stored staging `NAME` (key ...): N entries, SIZE".
fn stored_size(stderr: &str, staging: &str) -> String {
    let line = stderr
        .lines()
        .find(|l| l.contains(&format!("stored staging `{staging}`")))
        .unwrap_or_else(|| panic!("{staging} not stored:\n{stderr}"));
    line.rsplit(", ").next().unwrap().trim().to_string()
}

/// The sizes in "restored staging `NAME` (SIZE)", one per output.
fn restored_sizes(stderr: &str, staging: &str) -> Vec<String> {
    let marker = format!("restored staging `{staging}` (");
    stderr
        .lines()
        .filter_map(|l| l.split_once(&marker))
        .map(|(_, rest)| rest.trim_end().trim_end_matches(')').to_string())
        .collect()
}

fn sorted(paths: &[&str]) -> Vec<String> {
    let mut paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
    paths.sort();
    paths
}

#[test]
fn zstd_is_built_once_and_split_into_four_packages_the_clients_accept() {
    if !vendored_tarball() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let first = build(tmp.path(), "zstd", "out");
    assert_success(&first);
    assert!(
        stderr(&first).contains("stored staging `zstd-build`"),
        "{}",
        stderr(&first)
    );

    // The outputs have no script: they get the staging prefix back, not
    // the source and build trees.
    let stored = stored_size(&stderr(&first), "zstd-build");
    let restored = restored_sizes(&stderr(&first), "zstd-build");
    assert_eq!(restored.len(), 4, "{}", stderr(&first));
    assert!(
        restored.iter().all(|r| *r != stored),
        "{restored:?} {stored}"
    );

    let prefix: PathBuf = tmp.path().join("env");
    let checked = oracle(
        &tmp.path().join("out"),
        &prefix,
        &["zstd", "libzstd-static"],
        &[
            "sh",
            "-c",
            "zstd --version && seq 1 5000 | zstd -q | zstdcat | tail -n 1",
        ],
    );
    let command = &checked["command"];
    assert_eq!(command["code"], 0, "{command}");
    let stdout = command["stdout"].as_str().unwrap();
    assert!(stdout.contains("v1.5.4"), "{stdout}");
    assert!(stdout.ends_with("5000\n"), "{stdout}");

    // Each file in exactly one package, split as a maintainer would.
    assert_eq!(
        paths(&checked, "libzstd"),
        sorted(&["lib/libzstd.so", "lib/libzstd.so.1", "lib/libzstd.so.1.5.4"])
    );
    assert_eq!(
        paths(&checked, "libzstd-static"),
        sorted(&["lib/libzstd.a"])
    );
    assert_eq!(
        paths(&checked, "libzstd-dev"),
        sorted(&[
            "include/zdict.h",
            "include/zstd.h",
            "include/zstd_errors.h",
            "lib/cmake/zstd/zstdConfig.cmake",
            "lib/cmake/zstd/zstdConfigVersion.cmake",
            "lib/cmake/zstd/zstdTargets-release.cmake",
            "lib/cmake/zstd/zstdTargets.cmake",
            "lib/pkgconfig/libzstd.pc",
        ])
    );
    assert_eq!(
        paths(&checked, "zstd"),
        sorted(&[
            "bin/unzstd",
            "bin/zstd",
            "bin/zstdcat",
            "bin/zstdgrep",
            "bin/zstdless",
            "bin/zstdmt",
            "share/man/man1/unzstd.1",
            "share/man/man1/zstd.1",
            "share/man/man1/zstdcat.1",
            "share/man/man1/zstdgrep.1",
            "share/man/man1/zstdless.1",
        ])
    );

    // Every package carries the license files of the source, which these
    // outputs find in the work dir although they do not get it back whole.
    for name in ["libzstd", "libzstd-dev", "libzstd-static", "zstd"] {
        let licenses = package(&checked, name)["licenses"].as_object().unwrap();
        let names: Vec<&String> = licenses.keys().collect();
        assert_eq!(names, ["COPYING", "LICENSE"], "{name}");
        assert!(
            licenses["LICENSE"]
                .as_str()
                .unwrap()
                .contains("BSD License")
        );
    }

    // The pins between the packages, and libzstd's run export applied to
    // the tools that link it.
    let libzstd_build = index(&checked, "libzstd")["build"]
        .as_str()
        .unwrap()
        .to_string();
    let exact = format!("libzstd ==1.5.4 {libzstd_build}");
    let zstd_depends = strings(&index(&checked, "zstd")["depends"]);
    assert!(zstd_depends.contains(&exact), "{zstd_depends:?}");
    assert!(
        zstd_depends.contains(&"libzstd >=1.5.4,<1.6.0a0".to_string()),
        "{zstd_depends:?}"
    );
    let dev_depends = strings(&index(&checked, "libzstd-dev")["depends"]);
    assert_eq!(dev_depends, vec![exact.clone()]);
    let dev_build = index(&checked, "libzstd-dev")["build"]
        .as_str()
        .unwrap()
        .to_string();
    let static_depends = strings(&index(&checked, "libzstd-static")["depends"]);
    assert_eq!(
        static_depends,
        vec![format!("libzstd-dev ==1.5.4 {dev_build}")]
    );

    // The pkg-config file was relocated to the installed prefix.
    let pc = std::fs::read_to_string(prefix.join("lib/pkgconfig/libzstd.pc")).unwrap();
    assert!(pc.contains(&format!("prefix={}", prefix.display())), "{pc}");

    // A second invocation takes the library from the cache.
    let second = build(tmp.path(), "zstd", "out2");
    assert_success(&second);
    assert!(
        stderr(&second).contains("cached: staging `zstd-build`"),
        "{}",
        stderr(&second)
    );

    // Another machine: an empty cache dir, nothing left in the staging
    // root, the same remote. It compiles nothing and writes A's packages.
    std::fs::rename(tmp.path().join("cache"), tmp.path().join("cache-a")).unwrap();
    let _ = std::fs::remove_dir_all(tmp.path().join("stg"));
    let other = build(tmp.path(), "zstd", "out3");
    assert_success(&other);
    let printed = stderr(&other);
    assert!(
        printed.contains("fetched: staging `zstd-build`") && !printed.contains("stored staging"),
        "{printed}"
    );
    assert!(!printed.contains("warning"), "{printed}");
    for package in std::fs::read_dir(tmp.path().join("out/linux-64")).unwrap() {
        let path = package.unwrap().path();
        if path.extension().is_some_and(|e| e == "conda") {
            let theirs = tmp
                .path()
                .join("out3/linux-64")
                .join(path.file_name().unwrap());
            assert_eq!(
                std::fs::read(&path).unwrap(),
                std::fs::read(theirs).unwrap()
            );
        }
    }
}

#[test]
fn an_output_continues_the_zstd_build_without_compiling_the_library_again() {
    if !vendored_tarball() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // The second output's script fails if ninja would compile the library.
    let output = build(tmp.path(), "zstd-continue", "out");
    assert_success(&output);
    // Only the output whose script continues the build gets the work dir.
    let log = stderr(&output);
    let stored = stored_size(&log, "zstd-lib-build");
    let restored = restored_sizes(&log, "zstd-lib-build");
    assert_eq!(restored.len(), 2, "{log}");
    assert_ne!(restored[0], stored, "{log}");
    assert_eq!(restored[1], stored, "{log}");
    let checked = oracle(
        &tmp.path().join("out"),
        &tmp.path().join("env"),
        &["zstd-bench-tools"],
        &["sh", "-c", "datagen -g1000 | wc -c"],
    );
    assert_eq!(
        checked["command"]["stdout"].as_str().unwrap().trim(),
        "1000"
    );
    assert_eq!(
        paths(&checked, "zstd-bench-tools"),
        sorted(&["bin/datagen", "bin/fullbench"])
    );
    assert!(paths(&checked, "libzstd-static-only").contains(&"lib/libzstd.a".to_string()));
}
