//! End-to-end tests on real software: zstd 1.5.4 (`examples/zstd` and
//! `examples/zstd-continue`), built from the vendored upstream tarball with
//! cmake and ninja. The packages are checked by conda-package-handling and
//! installed by py-rattler, and the tools and library are run.
//!
//! The tarball is not in git: it is taken from `examples/zstd/`, else from
//! `$CLEAVE_SOURCES` or `../shared/sources` beside the repository (as
//! `scripts/zstd-source` does). Without it these tests say so and pass,
//! unless `CLEAVE_REQUIRE_ZSTD=1` makes its absence a failure.
//!
//! The first test builds from a copy of the recipe, with a `cc` first on
//! PATH that logs each compilation: a source edit then shows what the
//! compile cache compiled again.

use std::os::unix::fs::PermissionsExt;
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
    build_recipe(tmp, &repo().join("examples").join(name), out)
        .output()
        .unwrap()
}

/// The `cleave build` command of `recipe` into `tmp/out`.
fn build_recipe(tmp: &Path, recipe: &Path, out: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cleave"));
    cmd.arg("build")
        .arg("--recipe")
        .arg(recipe)
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
        .current_dir(tmp);
    cmd
}

/// A copy of `examples/zstd` (with its tarball) in `tmp`, and a counting
/// `cc` in `tmp/bin`: the environment `counted_build` builds it in.
fn counted_copy(tmp: &Path) -> PathBuf {
    let recipe = tmp.join("zstd");
    common::copy_dir(&repo().join("examples/zstd"), &recipe);
    // The cache's prefix map renames `__FILE__`, which zstd's tools print
    // in error messages: the script gives the compiler that map itself, so
    // that a build with the cache off makes the same bin/zstd.
    let text = std::fs::read_to_string(recipe.join("recipe.yaml")).unwrap();
    let cmake = "        - >-\n          cmake -G Ninja";
    assert!(text.contains(cmake));
    let mapped = text.replacen(
        cmake,
        &format!(
            "        - export CFLAGS=\"${{CFLAGS:-}} -ffile-prefix-map=$SRC_DIR=/cleave/work\"\n{cmake}"
        ),
        1,
    );
    std::fs::write(recipe.join("recipe.yaml"), mapped).unwrap();
    let path = std::env::var_os("PATH").unwrap();
    let cc = std::env::split_paths(&path)
        .map(|d| d.join("cc"))
        .find(|p| p.is_file())
        .expect("a cc on PATH");
    let bin = tmp.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = format!(
        "#!/bin/sh\ncase \" $* \" in\n  *CMakeScratch*|*CMakeTmp*|*CMakeCCompilerABI*) ;;\n  *\" -c \"*) echo \"$*\" >> {} ;;\nesac\nexec {} \"$@\"\n",
        tmp.join("compiles.log").display(),
        cc.display()
    );
    std::fs::write(bin.join("cc"), script).unwrap();
    std::fs::set_permissions(bin.join("cc"), std::fs::Permissions::from_mode(0o755)).unwrap();
    recipe
}

/// `cleave build` of the copy on the store `tmp/cache`, the counting `cc`
/// first on PATH, with a fixed clock (packages of the same files are the
/// same bytes).
fn counted_build(tmp: &Path, out: &str) -> Output {
    counted_command(tmp, out).output().unwrap()
}

/// The command of `counted_build`.
fn counted_command(tmp: &Path, out: &str) -> Command {
    let path = std::env::var_os("PATH").unwrap();
    let mut dirs = vec![tmp.join("bin")];
    dirs.extend(std::env::split_paths(&path));
    let mut cmd = build_recipe(tmp, &tmp.join("zstd"), out);
    cmd.env("PATH", std::env::join_paths(dirs).unwrap())
        .env("SOURCE_DATE_EPOCH", "1700000000");
    cmd
}

/// The compile cache's (hits, misses) on the store `tmp/cache`.
fn compile_counts(tmp: &Path) -> (u64, u64) {
    let out = Command::new(env!("CARGO_BIN_EXE_cleave"))
        .args(["cache", "stats", "--json"])
        .env("CLEAVE_CACHE_DIR", tmp.join("cache"))
        .output()
        .unwrap();
    assert_success(&out);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let count = |name: &str| stats["compile"][name].as_u64().unwrap();
    (count("hits"), count("misses"))
}

/// The sources compiled so far, by file name, and forgets them.
fn compiled(tmp: &Path) -> Vec<String> {
    let log = tmp.join("compiles.log");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    text.lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.ends_with(".c") && !w.starts_with('-'))
                .map(|w| w.rsplit('/').next().unwrap().to_string())
        })
        .collect()
}

/// The size in "stored staging `NAME` (key ...): N entries, SIZE; built in T".
fn stored_size(stderr: &str, staging: &str) -> String {
    let line = stderr
        .lines()
        .find(|l| l.contains(&format!("stored staging `{staging}`")))
        .unwrap_or_else(|| panic!("{staging} not stored:\n{stderr}"));
    let size = line.rsplit(", ").next().unwrap();
    // The line may go on with the staging build's time after a `;`.
    size.split(';').next().unwrap().trim().to_string()
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
fn zstd_is_built_once_split_into_four_packages_and_a_source_edit_compiles_one_file() {
    if !vendored_tarball() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    counted_copy(tmp.path());
    let first = counted_build(tmp.path(), "out");
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
    // The source its test compiles travels with it, as rattler-build
    // stores a test's files.
    assert_eq!(
        paths(&checked, "libzstd-static"),
        sorted(&[
            "etc/conda/test-files/libzstd-static/0/test/roundtrip.c",
            "lib/libzstd.a"
        ])
    );
    assert_eq!(
        paths(&checked, "libzstd-dev"),
        sorted(&[
            "etc/conda/test-files/libzstd-dev/0/test/roundtrip.c",
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
    let second = counted_build(tmp.path(), "out2");
    assert_success(&second);
    assert!(
        stderr(&second).contains("cached: staging `zstd-build`"),
        "{}",
        stderr(&second)
    );

    // The compiles of the first build; the second compiled nothing.
    let cold = compiled(tmp.path());

    // Another machine: an empty cache dir, nothing left in the staging
    // root, the same remote. It compiles nothing and writes the first
    // machine's packages.
    let _ = std::fs::remove_dir_all(tmp.path().join("stg"));
    let other = counted_command(tmp.path(), "out-other")
        .env("CLEAVE_CACHE_DIR", tmp.path().join("cache-other"))
        .output()
        .unwrap();
    assert_success(&other);
    let printed = stderr(&other);
    assert!(
        printed.contains("fetched: staging `zstd-build`") && !printed.contains("stored staging"),
        "{printed}"
    );
    assert!(!printed.contains("warning"), "{printed}");
    assert_eq!(compiled(tmp.path()), Vec::<String>::new());
    for package in std::fs::read_dir(tmp.path().join("out/linux-64")).unwrap() {
        let path = package.unwrap().path();
        if path.extension().is_some_and(|e| e == "conda") {
            let theirs = tmp
                .path()
                .join("out-other/linux-64")
                .join(path.file_name().unwrap());
            assert_eq!(
                std::fs::read(&path).unwrap(),
                std::fs::read(theirs).unwrap()
            );
        }
    }

    a_source_edit_compiles_one_file(tmp.path(), &cold);
}

/// A new patch to programs/zstdcli.c: the staging build runs again, in a
/// new directory, and compiles that file only (once per program built
/// from it); every other object comes from the compile cache. The edit is
/// in bin/zstd, and the packages are the same bytes as those of a build
/// with the compile cache off.
fn a_source_edit_compiles_one_file(tmp: &Path, cold: &[String]) {
    assert!(cold.len() > 80, "{cold:?}");
    let marker = format!("cleave-test-edit-{}", std::process::id());
    let recipe = tmp.join("zstd");
    std::fs::write(
        recipe.join("cleave-edit.patch"),
        edit_patch(&recipe, &marker),
    )
    .unwrap();
    let text = std::fs::read_to_string(recipe.join("recipe.yaml")).unwrap();
    let sha = "  sha256: 8cf4bbb65e77ec348d052c8d6230eba66d435bddf64c8b5be2fcb16880c19953\n";
    assert!(text.contains(sha));
    let patched = text.replace(sha, &format!("{sha}  patches:\n    - cleave-edit.patch\n"));
    std::fs::write(recipe.join("recipe.yaml"), patched).unwrap();

    let before = compile_counts(tmp);
    let edited = counted_build(tmp, "out3");
    assert_success(&edited);
    assert!(stderr(&edited).contains("stored staging `zstd-build`"));
    let again = compiled(tmp);
    assert!(
        !again.is_empty() && again.len() <= 2 && again.iter().all(|c| c == "zstdcli.c"),
        "{again:?}\n{}",
        stderr(&edited)
    );
    let after = compile_counts(tmp);
    let hits = after.0 - before.0;
    assert!(
        hits >= (cold.len() - again.len()) as u64,
        "{hits} hits for {} objects, {} compiled",
        cold.len(),
        again.len()
    );
    let installed = tmp.join("env3");
    oracle(&tmp.join("out3"), &installed, &["zstd"], &[]);
    let binary = std::fs::read(installed.join("bin/zstd")).unwrap();
    assert!(
        binary.windows(marker.len()).any(|w| w == marker.as_bytes()),
        "the edit is not in bin/zstd"
    );

    // With the compile cache off, on a new store and without the remote
    // (which holds this staging build now): every file compiled, and the
    // same packages.
    let uncached = counted_command(tmp, "out4")
        .args(["--compile-cache", "off"])
        .env("CLEAVE_CACHE_DIR", tmp.join("cache-off"))
        .env_remove("CLEAVE_REMOTE")
        .output()
        .unwrap();
    assert_success(&uncached);
    assert_eq!(compiled(tmp).len(), cold.len());
    let archives = |out: &str| {
        let mut found: Vec<(String, Vec<u8>)> = std::fs::read_dir(tmp.join(out).join("linux-64"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "conda"))
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&p).unwrap())
            })
            .collect();
        found.sort();
        found
    };
    let (cached, fresh) = (archives("out3"), archives("out4"));
    assert_eq!(cached.len(), 4);
    for ((name, a), (other, b)) in cached.iter().zip(&fresh) {
        assert_eq!(name, other);
        assert!(a == b, "{name} differs with and without the compile cache");
    }
}

/// A patch that adds `marker` to zstd's command-line tool.
fn edit_patch(recipe: &Path, marker: &str) -> String {
    let file = "programs/zstdcli.c";
    let out = Command::new("tar")
        .arg("-xJOf")
        .arg(recipe.join(TARBALL))
        .arg(format!("zstd-1.5.4/{file}"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("#include"))
        .unwrap();
    format!(
        "--- a/{file}\n+++ b/{file}\n@@ -{n},2 +{n},3 @@\n {}\n+__attribute__((used)) static const char cleave_edit[] = \"{marker}\";\n {}\n",
        lines[at],
        lines[at + 1],
        n = at + 1
    )
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
