//! The seeds' `cache:` examples as written (`tests/seeds/`), built against
//! the toolchain stand-ins, and what each promises: which files each
//! output gets, that the cache's run exports reach the outputs, that
//! `include_files` keeps only what it names, and that the earlier
//! `cache-only` / `needs-cache` proposal reads as a staging output with
//! inheriting outputs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::{assert_success, paths, repo, stderr};
use crate::{build, depends, install, variants};

/// A copy of `tests/seeds/NAME` in `tmp`, for tests that edit it.
fn copy(name: &str, tmp: &Path) -> PathBuf {
    let to = tmp.join(name);
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(repo().join("tests/seeds").join(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    to
}

fn edit(recipe: &Path, edit: impl FnOnce(String) -> String) {
    let file = recipe.join("recipe.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, edit(text)).unwrap();
}

/// `cleave render --output json` of a recipe with the variant file.
fn render(recipe: &Path) -> (Output, Vec<Value>) {
    let output = Command::new(env!("CARGO_BIN_EXE_cleave"))
        .arg("render")
        .arg("--recipe")
        .arg(recipe)
        .arg("--variant-config")
        .arg(variants())
        .args(["--output", "json"])
        .env("NO_COLOR", "1")
        .output()
        .expect("run cleave");
    assert_success(&output);
    let outputs = serde_json::from_slice(&output.stdout).unwrap();
    (output, outputs)
}

fn rendered<'a>(outputs: &'a [Value], name: &str) -> &'a Value {
    outputs
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no output {name} in {outputs:?}"))
}

#[test]
fn seed_001_mypackage_fails_as_written_and_splits_once_its_paths_are_in_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = copy("001-mypackage", tmp.path());
    let (_, outputs) = render(&recipe);
    assert_eq!(
        rendered(&outputs, "cache")["requirements"]["build"],
        serde_json::json!(["gcc_linux-64 12.*"])
    );

    // The seed's script writes lib/library.txt in the work dir, which
    // has no lib/: the staging build fails there, as it would anywhere.
    let as_written = build(&recipe, tmp.path(), &[]);
    assert_eq!(as_written.status.code(), Some(1));
    assert!(
        stderr(&as_written).contains("lib/library.txt: No such file or directory"),
        "{}",
        stderr(&as_written)
    );

    edit(&recipe, |t| {
        t.replace("> lib/library.txt", "> $PREFIX/lib/library.txt")
            .replace("> include/header.txt", "> $PREFIX/include/header.txt")
    });
    let output = build(
        &recipe,
        tmp.path(),
        &["--error-unclaimed-files", "--error-overlapping-files"],
    );
    assert_success(&output);
    assert_eq!(stderr(&output).matches("── staging cache").count(), 1);
    let checked = install(tmp.path(), "env", &[], &[]);
    assert_eq!(paths(&checked, "mypackage-library"), ["lib/library.txt"]);
    assert_eq!(paths(&checked, "mypackage-headers"), ["include/header.txt"]);
    let library = std::fs::read_to_string(tmp.path().join("env/lib/library.txt")).unwrap();
    assert_eq!(library, "This is the library\n");
    // "We append any run exports to the outputs": the cache's compiler's.
    for name in ["mypackage-library", "mypackage-headers"] {
        assert_eq!(depends(&checked, name), ["libgcc >=12"], "{name}");
    }
}

#[test]
fn seed_002_cachycache_splits_and_its_include_files_keep_only_include_and_lib() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = copy("002-cachycache", tmp.path());
    let (_, outputs) = render(&recipe);
    let cache = rendered(&outputs, "cache");
    assert_eq!(
        cache["include_files"],
        serde_json::json!(["include/", "lib/"])
    );
    assert_eq!(
        cache["requirements"]["host"],
        serde_json::json!(["python 3.11.* *_cpython"])
    );

    let strict = ["--error-unclaimed-files", "--error-overlapping-files"];
    assert_success(&build(&recipe, tmp.path(), &strict));
    let checked = install(tmp.path(), "env", &[], &[]);
    assert_eq!(
        paths(&checked, "cachycache-headers"),
        [
            "include/include_file.c",
            "include/include_file.exe",
            "include/include_file.h"
        ]
    );
    assert_eq!(paths(&checked, "cachycache-lib"), ["lib/lib_foo.so"]);
    // The run export of python in the cache's host environment.
    for name in ["cachycache-headers", "cachycache-lib"] {
        assert_eq!(
            depends(&checked, name),
            ["python_abi 3.11.* *_cp311"],
            "{name}"
        );
    }

    // A file outside include/ and lib/ is not kept, so it is no one's:
    // not even unclaimed.
    edit(&recipe, |t| {
        t.replace(
            "      - touch $PREFIX/lib/lib_foo.so\n",
            "      - touch $PREFIX/lib/lib_foo.so\n      - mkdir -p $PREFIX/share && touch $PREFIX/share/notes.txt\n",
        )
    });
    let output = build(&recipe, tmp.path(), &strict);
    assert_success(&output);
    assert!(
        !stderr(&output).contains("are in no package"),
        "{}",
        stderr(&output)
    );
    // Without include_files it is kept, and no output takes it.
    edit(&recipe, |t| {
        t.replace("    include_files:\n      - include/\n      - lib/\n", "")
    });
    let output = build(&recipe, tmp.path(), &strict);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("are in no package")
            && stderr(&output).contains("share/notes.txt"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn seed_002_cache_only_proposal_reads_as_a_staging_output_that_both_packages_inherit() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = repo().join("tests/seeds/002-cache-only");
    let (rendered_out, outputs) = render(&recipe);
    let warnings = stderr(&rendered_out);
    assert_eq!(
        warnings
            .matches("`build: {cache-only: true}` is deprecated")
            .count(),
        1,
        "{warnings}"
    );
    assert_eq!(
        warnings
            .matches("`build: {needs-cache: [...]}` is deprecated")
            .count(),
        2,
        "{warnings}"
    );
    assert_eq!(rendered(&outputs, "test-split")["kind"], "staging");
    for name in ["libtest", "test"] {
        assert_eq!(
            rendered(&outputs, name)["inherit"]["from"],
            "test-split",
            "{name}"
        );
    }

    let output = build(&recipe, tmp.path(), &[]);
    assert_success(&output);
    let err = stderr(&output);
    assert!(err.contains("is deprecated"), "{err}");
    assert_eq!(err.matches("── staging test-split").count(), 1, "{err}");
    // Both start where test-split left off: its file is in both (the seed
    // gives no `files`, so each takes everything, which is reported).
    let checked = install(tmp.path(), "env", &["libtest"], &[]);
    for name in ["libtest", "test"] {
        assert_eq!(
            paths(&checked, name),
            ["share/test-split/built.txt"],
            "{name}"
        );
    }
    assert!(
        err.contains("share/test-split/built.txt (libtest, test)"),
        "{err}"
    );
}
