//! End-to-end tests of `cleave build`: the binary builds recipes under
//! `tests/build/` and `examples/`, and the ecosystem's own clients check the
//! result: conda-package-handling extracts every package, py-rattler solves
//! from the output channel and installs into a fresh prefix elsewhere.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{assert_success, index, oracle, package, paths, repo, stderr, strings};

mod recipe_keys;

fn recipe(name: &str) -> PathBuf {
    repo().join("tests/build").join(name)
}

/// `cleave build` of `recipe` into `out`, with a private cache in `tmp`.
fn build(recipe: &Path, tmp: &Path, out: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cleave"))
        .arg("build")
        .arg("--recipe")
        .arg(recipe)
        .arg("--output-dir")
        .arg(tmp.join(out))
        .arg("--cache-dir")
        .arg(tmp.join("cache"))
        .arg("--staging-root")
        .arg(tmp.join("stg"))
        .args(extra)
        .env_remove("SOURCE_DATE_EPOCH")
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .output()
        .expect("run cleave")
}

#[test]
fn a_single_noarch_output_installs_relocated_into_another_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let output = build(&recipe("single"), tmp.path(), "out", &[], &[]);
    assert_success(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("hello-data  0.3.1"), "{stdout}");
    assert!(stderr(&output).contains("hello-data: 2 tests passed"));

    let prefix = tmp.path().join("elsewhere/env");
    let checked = oracle(
        &tmp.path().join("out"),
        &prefix,
        &["hello-data"],
        &["hello-data"],
    );
    let idx = index(&checked, "hello-data");
    assert_eq!(idx["noarch"], "generic");
    assert_eq!(idx["subdir"], "noarch");
    assert_eq!(idx["build_number"], 2);
    assert_eq!(checked["command"]["stdout"], "hello from hello-data\n");

    // The text file held the build prefix; installed, it holds the new one.
    let text = std::fs::read_to_string(prefix.join("share/hello/where.txt")).unwrap();
    assert_eq!(text, format!("installed in {}\n", prefix.display()));
    let paths = checked["packages"][0]["paths"].as_array().unwrap();
    let entry = |p: &str| paths.iter().find(|e| e["_path"] == p).unwrap().clone();
    assert_eq!(entry("share/hello/where.txt")["file_mode"], "text");
    assert_eq!(entry("share/hello/absolute-link")["path_type"], "softlink");
    // The absolute link into the build prefix was made relative.
    assert_eq!(
        std::fs::read_link(prefix.join("share/hello/absolute-link")).unwrap(),
        Path::new("where.txt")
    );
}

#[test]
fn softlinks_carry_the_digest_of_their_target_in_paths_json() {
    let tmp = tempfile::tempdir().unwrap();
    let output = build(
        &recipe("single"),
        tmp.path(),
        "out",
        &["--test", "skip"],
        &[],
    );
    assert_success(&output);
    // The oracle checks every link's digest and size against the extracted
    // package; these are the values themselves.
    let checked = oracle(&tmp.path().join("out"), &tmp.path().join("env"), &[], &[]);
    let paths = checked["packages"][0]["paths"].as_array().unwrap();
    let entry = |p: &str| paths.iter().find(|e| e["_path"] == p).unwrap().clone();
    let where_txt = entry("share/hello/where.txt")["sha256"].clone();
    let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    for (link, sha256, size) in [
        ("share/hello/relative-link", &where_txt, "where.txt".len()),
        ("share/hello/absolute-link", &where_txt, "where.txt".len()),
        (
            "share/hello/dangling-link",
            &empty.into(),
            "no-such-file".len(),
        ),
        ("share/hello/directory-link", &empty.into(), "empty".len()),
    ] {
        let e = entry(link);
        assert_eq!(e["path_type"], "softlink", "{e}");
        assert_eq!(&e["sha256"], sha256, "{e}");
        assert_eq!(e["size_in_bytes"], size, "{e}");
    }
    assert_ne!(where_txt, empty);
}

#[test]
fn outputs_of_one_recipe_pin_each_other() {
    let tmp = tempfile::tempdir().unwrap();
    assert_success(&build(&recipe("pins"), tmp.path(), "out", &[], &[]));
    let checked = oracle(
        &tmp.path().join("out"),
        &tmp.path().join("env"),
        &["pins-all"],
        &[],
    );
    let core = index(&checked, "pins-core");
    let exact = format!("pins-core ==2.4.1 {}", core["build"].as_str().unwrap());
    assert_eq!(strings(&index(&checked, "pins-tool")["depends"]), [exact]);
    assert_eq!(
        strings(&index(&checked, "pins-all")["depends"]),
        ["pins-tool >=2.4.1,<2.5.0a0"]
    );
    // Installing the top package pulls in the chain.
    let installed = strings(&checked["installed"]);
    assert_eq!(installed.len(), 3, "{installed:?}");
}

#[test]
fn run_exports_of_a_host_dependency_built_earlier_are_applied() {
    let tmp = tempfile::tempdir().unwrap();
    assert_success(&build(&recipe("run-exports"), tmp.path(), "out", &[], &[]));
    let checked = oracle(
        &tmp.path().join("out"),
        &tmp.path().join("env"),
        &["rx-user", "rx-loner"],
        &[],
    );
    let user = index(&checked, "rx-user");
    assert_eq!(strings(&user["depends"]), ["rx-base >=1.7.0,<1.8.0a0"]);
    assert_eq!(strings(&user["constrains"]), ["rx-base-doc >=1.7"]);
    let loner = index(&checked, "rx-loner");
    assert!(strings(&loner["depends"]).is_empty(), "{loner}");
    // The host package's own files are not part of the user's package.
    assert_eq!(paths(&checked, "rx-user"), ["share/rx-user.txt"]);
}

#[test]
fn the_example_c_library_runs_from_a_fresh_prefix_at_another_path() {
    let tmp = tempfile::tempdir().unwrap();
    let output = build(
        &repo().join("examples/libgreet"),
        tmp.path(),
        "out",
        &[],
        &[],
    );
    assert_success(&output);
    let prefix = tmp.path().join("some/other/place");
    let checked = oracle(
        &tmp.path().join("out"),
        &prefix,
        &["greet"],
        &["greet", "relocated"],
    );
    // Loads libgreet.so through $ORIGIN, with no LD_LIBRARY_PATH.
    assert_eq!(checked["command"]["code"], 0, "{}", checked["command"]);
    assert_eq!(checked["command"]["stdout"], "Hello, relocated!\n");
    let greet = index(&checked, "greet");
    assert_eq!(strings(&greet["depends"]), ["libgreet >=1.2.0,<2.0a0"]);
    let mut names: Vec<String> = checked["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["index"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["greet", "libgreet", "libgreet-dev", "libgreet-static"]
    );
    let stderr = stderr(&output);
    assert_eq!(
        stderr.matches("── staging greet-build").count(),
        1,
        "{stderr}"
    );
}

#[test]
fn a_failing_script_shows_its_log_tail_and_keeps_the_work_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let output = build(&recipe("failing"), tmp.path(), "out", &[], &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr(&output);
    assert!(stderr.contains("failed with exit code 3"), "{stderr}");
    assert!(stderr.contains("boom, the compiler is missing"), "{stderr}");
    let kept = stderr
        .lines()
        .find_map(|l| l.split("work dir kept at: ").nth(1))
        .expect("work dir named");
    assert!(Path::new(kept.trim()).is_dir(), "{kept}");
    let packages = std::fs::read_dir(tmp.path().join("out/linux-64"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(packages, 1, "only repodata.json in the channel");
}

#[test]
fn an_unsatisfiable_requirement_is_explained() {
    let tmp = tempfile::tempdir().unwrap();
    let output = build(&recipe("unsolvable"), tmp.path(), "out", &[], &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr(&output);
    assert!(
        stderr.contains("cannot solve the host environment"),
        "{stderr}"
    );
    assert!(
        stderr.contains("No candidates were found for no-such-"),
        "{stderr}"
    );
}

#[test]
fn a_missing_channel_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-channel-here");
    let output = build(
        &recipe("single"),
        tmp.path(),
        "out",
        &["-c", missing.to_str().unwrap()],
        &[],
    );
    assert!(!output.status.success());
    let stderr = stderr(&output);
    assert!(stderr.contains("no-channel-here"), "{stderr}");
    assert!(stderr.contains("is not a channel"), "{stderr}");
}

/// Puts `content` into the source cache where the url source's sha256 says.
fn seed_source_cache(tmp: &Path, content: &[u8]) {
    let tarball = recipe("url-source").join("from-url-1.0.tar.gz");
    let sha = sha256_hex(&std::fs::read(&tarball).unwrap());
    let dir = tmp.join("cache/src").join(sha);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("from-url-1.0.tar.gz"), content).unwrap();
}

fn sha256_hex(bytes: &[u8]) -> String {
    let out = Command::new("sha256sum")
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(bytes)?;
            child.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

#[test]
fn a_url_source_comes_from_a_seeded_source_cache_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let tarball = std::fs::read(recipe("url-source").join("from-url-1.0.tar.gz")).unwrap();
    seed_source_cache(tmp.path(), &tarball);
    assert_success(&build(&recipe("url-source"), tmp.path(), "out", &[], &[]));
    let checked = oracle(&tmp.path().join("out"), &tmp.path().join("env"), &[], &[]);
    assert_eq!(
        checked["packages"][0]["paths"][0]["_path"],
        "share/from-url/message.txt"
    );
}

#[test]
fn a_damaged_source_cache_entry_is_not_used() {
    let tmp = tempfile::tempdir().unwrap();
    seed_source_cache(tmp.path(), b"not the tarball");
    let output = build(&recipe("url-source"), tmp.path(), "out", &[], &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr(&output);
    // The damaged copy is dropped and the (unreachable) url tried instead.
    assert!(stderr.contains("cannot download the source"), "{stderr}");
    assert!(stderr.contains("example.invalid"), "{stderr}");
}

#[test]
fn source_date_epoch_makes_rebuilds_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let epoch = [("SOURCE_DATE_EPOCH", "1700000000")];
    let archive = |dir: &str| {
        let subdir = tmp.path().join(dir).join("noarch");
        let name = std::fs::read_dir(&subdir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "conda"))
            .unwrap();
        std::fs::read(name).unwrap()
    };
    assert_success(&build(
        &recipe("single"),
        tmp.path(),
        "out",
        &["--test", "skip"],
        &epoch,
    ));
    let first = archive("out");
    std::fs::remove_dir_all(tmp.path().join("out")).unwrap();
    assert_success(&build(
        &recipe("single"),
        tmp.path(),
        "out",
        &["--test", "skip"],
        &epoch,
    ));
    assert!(first == archive("out"), "the two archives differ");
}

#[test]
fn tar_bz2_packages_are_accepted_by_the_clients() {
    let tmp = tempfile::tempdir().unwrap();
    let output = build(
        &recipe("pins"),
        tmp.path(),
        "out",
        &["--package-format", "tar-bz2", "--test", "skip"],
        &[],
    );
    assert_success(&output);
    assert!(!stderr(&output).contains("tests passed"));
    let checked = oracle(&tmp.path().join("out"), &tmp.path().join("env"), &[], &[]);
    let files: Vec<&str> = checked["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["file"].as_str().unwrap())
        .collect();
    assert_eq!(files.len(), 3);
    assert!(files.iter().all(|f| f.ends_with(".tar.bz2")), "{files:?}");
    assert_eq!(strings(&checked["installed"]).len(), 3);
}

#[test]
fn a_successful_build_removes_only_its_own_build_dirs() {
    let tmp = tempfile::tempdir().unwrap();
    // Every output builds under the staging root, never in the output dir.
    let mine = tmp.path().join("stg");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("keep.txt"), "mine").unwrap();
    assert_success(&build(
        &recipe("pins"),
        tmp.path(),
        "out",
        &["--test", "skip"],
        &[],
    ));
    assert!(
        !tmp.path().join("out/bld").exists(),
        "a build dir in the output dir"
    );
    // Left: the user's file, and the lock files that let concurrent builds
    // of the same key wait for each other.
    let left: Vec<String> = std::fs::read_dir(&mine)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".lock"))
        .collect();
    assert_eq!(left, ["keep.txt"]);

    // Built again with --keep-build (after the cache is dropped): the
    // build dirs stay.
    std::fs::remove_dir_all(tmp.path().join("cache")).unwrap();
    let kept = build(
        &recipe("pins"),
        tmp.path(),
        "out3",
        &["--test", "skip", "--keep-build"],
        &[],
    );
    assert_success(&kept);
    let dirs = std::fs::read_dir(&mine)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    assert!(dirs >= 3, "{dirs} build dirs kept");
}

#[test]
fn a_vendored_tarball_is_checked_against_its_sha256() {
    let tmp = tempfile::tempdir().unwrap();
    assert_success(&build(&recipe("vendored"), tmp.path(), "out", &[], &[]));
    let checked = oracle(&tmp.path().join("out"), &tmp.path().join("env"), &[], &[]);
    assert_eq!(paths(&checked, "vendored"), ["share/vendored/message.txt"]);

    // The same recipe with the digest of other data builds nothing.
    let copy = tmp.path().join("tampered");
    std::fs::create_dir(&copy).unwrap();
    let tarball = std::fs::read(recipe("vendored").join("from-url-1.0.tar.gz")).unwrap();
    std::fs::write(copy.join("from-url-1.0.tar.gz"), &tarball).unwrap();
    let wrong = "0".repeat(64);
    let text = std::fs::read_to_string(recipe("vendored").join("recipe.yaml")).unwrap();
    std::fs::write(
        copy.join("recipe.yaml"),
        text.replace(&sha256_hex(&tarball), &wrong),
    )
    .unwrap();
    let output = build(&copy, tmp.path(), "out2", &[], &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr(&output);
    assert!(stderr.contains("checksum mismatch"), "{stderr}");
    assert!(stderr.contains(&wrong), "{stderr}");
    assert!(stderr.contains(&sha256_hex(&tarball)), "{stderr}");
    assert!(
        !tmp.path().join("out2/noarch").read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".conda"))
    );
}

#[test]
fn license_files_from_the_work_and_recipe_dirs_are_in_info_licenses() {
    let tmp = tempfile::tempdir().unwrap();
    let output = build(&recipe("licenses"), tmp.path(), "out", &[], &[]);
    assert_success(&output);
    let stderr = stderr(&output);
    assert!(
        stderr.contains("license file COPYING of the recipe dir replaces the work dir's"),
        "{stderr}"
    );
    // The output without a script got back only the license files of the
    // work dir, the one with a script all of it.
    let restored: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.trim().strip_prefix("restored staging `licensed-build` ("))
        .collect();
    let bytes = |r: &str| r.trim_end_matches(" B)").parse::<u64>().unwrap();
    assert_eq!(restored.len(), 2, "{stderr}");
    assert!(bytes(restored[0]) < bytes(restored[1]), "{restored:?}");
    let checked = oracle(&tmp.path().join("out"), &tmp.path().join("env"), &[], &[]);
    let expected = serde_json::json!({
        "LICENSE": "MIT License, from the source\n",
        "COPYING": "COPYING from the recipe dir\n",
        "third_party/zlib/LICENSE.txt": "zlib license\n",
        "NOTICE.txt": "A notice kept next to the recipe\n",
    });
    for (name, file) in [
        ("licensed-data", "share/licensed/data.txt"),
        ("licensed-more", "share/licensed/more.txt"),
        ("licensed-plain", "share/licensed/plain.txt"),
    ] {
        assert_eq!(package(&checked, name)["licenses"], expected, "{name}");
        // Metadata, like the rest of info/: not a file to install.
        assert_eq!(paths(&checked, name), [file], "{name}");
    }
}

#[test]
fn a_license_file_that_matches_nothing_fails_the_build_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let copy = edited_recipe(
        tmp.path(),
        "licenses",
        &[("- NOTICE.txt", "- NOTICE.txt\n    - NOT-THERE*")],
    );
    let output = build(&copy, tmp.path(), "out", &[], &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr(&output);
    assert!(
        stderr.contains("license files of licensed-data"),
        "{stderr}"
    );
    assert!(
        stderr.contains("license_file `NOT-THERE*` matched no file in"),
        "{stderr}"
    );
    assert!(stderr.contains("the work dir:"), "{stderr}");
    assert!(stderr.contains("the recipe dir:"), "{stderr}");
    let packages = std::fs::read_dir(tmp.path().join("out/noarch"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with(".conda")
        })
        .count();
    assert_eq!(packages, 0, "no package without its license");
}

/// A copy of the recipe `name` in `tmp/recipe`, each `(from, to)` of `edits` applied.
fn edited_recipe(tmp: &Path, name: &str, edits: &[(&str, &str)]) -> PathBuf {
    let copy = tmp.join("recipe");
    let status = Command::new("cp")
        .arg("-r")
        .arg(recipe(name))
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    let mut text = std::fs::read_to_string(copy.join("recipe.yaml")).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "{from}");
        text = text.replace(from, to);
    }
    std::fs::write(copy.join("recipe.yaml"), text).unwrap();
    copy
}

#[test]
fn overlinking_and_overdepending_are_warnings_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let output = build(&recipe("linking"), tmp.path(), "out", &[], &[]);
    assert_success(&output);
    let stderr = stderr(&output);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert_eq!(warnings.len(), 2, "{stderr}");
    assert!(
        warnings[0].starts_with("warning: uses-dep-1.0-")
            && warnings[0].ends_with(
                "overlinking: bin/uses-dep links lib/libdep.so.1 of host package `libdep`, which is not a run dependency"
            ),
        "{stderr}"
    );
    assert!(
        warnings[1].starts_with("warning: ignores-dep-1.0-")
            && warnings[1].contains(
                "overdepending: run dependency `libdep` comes from a host run export, but no file of the package links a library of `libdep`"
            ),
        "{stderr}"
    );
    // Warnings only: every package is written, and the clients take them.
    let checked = oracle(&tmp.path().join("out"), &tmp.path().join("env"), &[], &[]);
    assert_eq!(
        strings(&index(&checked, "uses-dep")["depends"]),
        [] as [&str; 0]
    );
    assert_eq!(
        strings(&index(&checked, "ignores-dep")["depends"]),
        ["libdep >=1.0,<2.0a0"]
    );
}

#[test]
fn overlinking_fails_the_build_with_error() {
    let tmp = tempfile::tempdir().unwrap();
    let copy = edited_recipe(
        tmp.path(),
        "linking",
        &[(
            "overlinking_behavior: ignore",
            "overlinking_behavior: error",
        )],
    );
    let output = build(&copy, tmp.path(), "out", &[], &[]);
    assert_eq!(output.status.code(), Some(1));
    // The report wraps long lines.
    let stderr = flat(&stderr(&output));
    assert!(
        stderr.contains("linking check of uses-dep-1.0-"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "bin/uses-dep links lib/libdep.so.1 of host package `libdep`, which is not a run dependency"
        ),
        "{stderr}"
    );
    let written: Vec<String> = std::fs::read_dir(tmp.path().join("out/linux-64"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".conda"))
        .collect();
    assert_eq!(written.len(), 1, "only libdep: {written:?}");
    assert!(written[0].starts_with("libdep-"), "{written:?}");
}

#[test]
fn overdepending_fails_the_build_with_error() {
    let tmp = tempfile::tempdir().unwrap();
    let copy = edited_recipe(
        tmp.path(),
        "linking",
        &[(
            "overdepending_behavior: ignore",
            "overdepending_behavior: error",
        )],
    );
    let output = build(&copy, tmp.path(), "out", &[], &[]);
    assert_eq!(output.status.code(), Some(1));
    // The report wraps long lines.
    let stderr = flat(&stderr(&output));
    assert!(
        stderr.contains("linking check of ignores-dep-1.0-"),
        "{stderr}"
    );
    assert!(
        stderr.contains("run dependency `libdep` comes from a host run export"),
        "{stderr}"
    );
}

/// Overlinking is an error in these builds, but each has a way out that
/// must keep it from being reported: a package without binary relocation
/// is not checked, and the missing-DSO allowlist permits the library.
#[test]
fn linking_checks_skip_unrelocated_packages_and_allowed_libraries() {
    for way_out in [
        "binary_relocation: false",
        "missing_dso_allowlist:\n          - lib/libdep.so*",
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let copy = edited_recipe(
            tmp.path(),
            "linking",
            &[(
                "overlinking_behavior: ignore",
                &format!("overlinking_behavior: error\n        {way_out}"),
            )],
        );
        let output = build(&copy, tmp.path(), "out", &["--test", "skip"], &[]);
        assert_success(&output);
        assert!(
            !stderr(&output).contains("overlinking"),
            "{way_out}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn an_inheriting_output_may_link_the_staging_builds_host_environment() {
    let tmp = tempfile::tempdir().unwrap();
    // libdep goes into the output channel the staging build solves from.
    let first = build(
        &recipe("linking"),
        tmp.path(),
        "out",
        &["--test", "skip"],
        &[],
    );
    assert_success(&first);
    let output = build(&recipe("staging-linking"), tmp.path(), "out", &[], &[]);
    assert_success(&output);
    assert!(
        !stderr(&output).contains("overlinking"),
        "{}",
        stderr(&output)
    );
    let checked = oracle(&tmp.path().join("out"), &tmp.path().join("env"), &[], &[]);
    assert_eq!(paths(&checked, "uses-dep-staged"), ["bin/uses-dep"]);
    assert_eq!(
        strings(&index(&checked, "uses-dep-staged")["depends"]),
        ["libdep >=1.0,<2.0a0"]
    );
    // `files: []`, and a list whose selectors all miss, take nothing.
    for name in ["staged-nothing", "staged-nothing-here"] {
        assert_eq!(paths(&checked, name), [] as [&str; 0], "{name}");
    }
    // Without `files`, everything.
    assert_eq!(
        paths(&checked, "staged-everything"),
        ["bin/uses-dep", "share/staging-linking/data.txt"]
    );
}

#[test]
fn an_inheriting_output_linking_what_its_run_exports_leave_out_still_overlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let first = build(
        &recipe("linking"),
        tmp.path(),
        "out",
        &["--test", "skip"],
        &[],
    );
    assert_success(&first);
    let copy = edited_recipe(
        tmp.path(),
        "staging-linking",
        &[(
            "    inherit: compile\n    build:\n      files:\n        - bin/**",
            "    inherit:\n      from: compile\n      run_exports: false\n    build:\n      files:\n        - bin/**",
        )],
    );
    let output = build(&copy, tmp.path(), "out", &[], &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let stderr = flat(&stderr(&output));
    assert!(
        stderr.contains(
            "bin/uses-dep links libdep.so.1 of `libdep` of the inherited staging build's host environment, which is not a run dependency"
        ),
        "{stderr}"
    );
}

#[test]
fn a_staging_name_that_is_a_path_is_refused_before_anything_is_made() {
    let tmp = tempfile::tempdir().unwrap();
    let escaped = tmp.path().join("escaped");
    let recipe = tmp.path().join("recipe");
    std::fs::create_dir(&recipe).unwrap();
    std::fs::write(
        recipe.join("recipe.yaml"),
        "schema_version: 1
recipe:
  name: abs
  version: \"1.0\"
outputs:
  - staging:
      name: ESCAPED/dir
  - package:
      name: abs
    inherit: ESCAPED/dir
    build:
      noarch: generic
"
        .replace("ESCAPED", &escaped.display().to_string()),
    )
    .unwrap();
    let output = build(&recipe, tmp.path(), "out", &[], &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = flat(&stderr(&output));
    assert!(stderr.contains("invalid staging name"), "{stderr}");
    assert!(stderr.contains("cannot contain `/`"), "{stderr}");
    assert!(!escaped.exists());
}

/// What py-rattler-build finds of the tests `packages` store (and, with
/// `run`, whether it runs them from `channel`); `None` without it.
fn peer_package_tests(packages: &[&Path], channel: &Path, run: bool) -> Option<serde_json::Value> {
    let mut cmd = Command::new("python3");
    cmd.arg(repo().join("tests/oracle/package_tests.py"));
    if run {
        cmd.arg("--run");
    }
    cmd.arg("--channel").arg(channel).args(packages);
    let output = cmd.output().expect("run python3");
    if output.status.code() == Some(3) {
        common::skip_unless_required(
            "CLEAVE_REQUIRE_CONFORMANCE",
            &format!("py-rattler-build is not installed: {}", stderr(&output)),
        );
        return None;
    }
    assert!(output.status.success(), "{}", stderr(&output));
    Some(serde_json::from_slice(&output.stdout).unwrap())
}

#[test]
fn rattler_build_finds_and_runs_the_tests_a_package_carries() {
    let tmp = tempfile::tempdir().unwrap();
    let output = build(&recipe("stored-tests"), tmp.path(), "out", &[], &[]);
    assert_success(&output);
    assert!(
        stderr(&output).contains("stored-tests: 4 tests passed"),
        "{}",
        stderr(&output)
    );
    let package = std::fs::read_dir(tmp.path().join("out/noarch"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "conda"))
        .expect("the package");
    // The recipe file a test copies is installed with the package.
    let checked = oracle(&tmp.path().join("out"), &tmp.path().join("env"), &[], &[]);
    assert!(
        paths(&checked, "stored-tests")
            .contains(&"etc/conda/test-files/stored-tests/1/expected.txt".to_string()),
        "{:?}",
        paths(&checked, "stored-tests")
    );
    let Some(found) = peer_package_tests(&[&package], &tmp.path().join("out"), true) else {
        return;
    };
    let found = &found[0];
    let tests = found["tests"].as_array().unwrap();
    let types: Vec<&str> = tests.iter().map(|t| t["type"].as_str().unwrap()).collect();
    // package_contents is checked at build time, not stored.
    assert_eq!(types, ["CommandsTest"; 3], "{found}");
    assert_eq!(
        tests[0]["script"]["content"],
        "test \"$(cat $PREFIX/share/stored-tests/greeting.txt)\" = hello"
    );
    assert_eq!(
        tests[1]["script"]["cwd"],
        "etc/conda/test-files/stored-tests/1"
    );
    assert_eq!(
        tests[1]["files"]["recipe"],
        serde_json::json!(["expected.txt"])
    );
    assert!(
        tests[2]["script"]["content"]
            .as_str()
            .unwrap()
            .contains("grep -q hello"),
        "the script file's text: {found}"
    );
    let results: Vec<bool> = found["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["success"].as_bool().unwrap())
        .collect();
    assert_eq!(results, [true, true, true], "{found}");
}

/// `text` with every run of whitespace made one space.
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
