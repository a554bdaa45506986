//! Keys of the recipe format that cleave implements beyond the basics, each
//! built end to end: source filters and git options, language and
//! downstream tests, the packaging keys of `build`, and the settings the
//! engine refuses before anything builds.
//!
//! No conda channel is reachable here, so the interpreters the language
//! tests need are stand-ins that cleave builds first (tests/build/stand-ins).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{build, recipe};

mod build_section;
use crate::common::{assert_success, index, oracle, package, stderr, strings};

/// A copy of `from` at `to`, for tests that edit a recipe's files.
fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Writes `text` as `dir/recipe.yaml`, and returns `dir`.
fn write_recipe(dir: &Path, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("recipe.yaml"), text).unwrap();
    dir.to_path_buf()
}

/// What a run printed on stderr, with miette's line wrapping undone: one
/// space between words, and no gutters (`│`, or `|` where miette draws
/// in ASCII).
fn flat_stderr(output: &std::process::Output) -> String {
    stderr(output)
        .split_whitespace()
        .filter(|w| !matches!(*w, "│" | "|"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Packages of the channel's `noarch/` subdir.
fn archives(channel: &Path) -> Vec<String> {
    std::fs::read_dir(channel.join("noarch"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".conda"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn source_filters_take_only_matching_files_and_the_staging_key_follows_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("recipe");
    copy_dir(&recipe("source-filter"), &dir);
    assert_success(&build(&dir, tmp.path(), "out", &[], &[]));
    let env = tmp.path().join("env");
    oracle(&tmp.path().join("out"), &env, &["filtered"], &[]);
    let listed = std::fs::read_to_string(env.join("share/filtered/files.txt")).unwrap();
    assert_eq!(
        listed,
        "archive/include/a.h\ntree/keep/a.txt\ntree/keep/sub/b.txt\ntree/top.txt\n"
    );

    // Files the filter leaves out do not make a new key.
    std::fs::write(dir.join("tree/keep/skip.log"), "another log").unwrap();
    std::fs::write(dir.join("tree/drop/c.txt"), "changed").unwrap();
    let second = build(&dir, tmp.path(), "out2", &["--test", "skip"], &[]);
    assert_success(&second);
    let text = stderr(&second);
    assert!(text.contains("cached: staging `filtered-build`"), "{text}");

    // A file it takes does.
    std::fs::write(dir.join("tree/keep/a.txt"), "changed").unwrap();
    let third = build(&dir, tmp.path(), "out3", &["--test", "skip"], &[]);
    assert_success(&third);
    let text = stderr(&third);
    assert!(text.contains("stored staging `filtered-build`"), "{text}");
}

/// Git with a committer, and allowed to clone submodules from local paths
/// (git refuses `file://` submodules by default since 2.38).
const GIT_ENV: [(&str, &str); 7] = [
    ("GIT_CONFIG_COUNT", "1"),
    ("GIT_CONFIG_KEY_0", "protocol.file.allow"),
    ("GIT_CONFIG_VALUE_0", "always"),
    ("GIT_AUTHOR_NAME", "cleave tests"),
    ("GIT_AUTHOR_EMAIL", "tests@cleave.invalid"),
    ("GIT_COMMITTER_NAME", "cleave tests"),
    ("GIT_COMMITTER_EMAIL", "tests@cleave.invalid"),
];

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .envs(GIT_ENV)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// A repository with `main.txt`, `docs/skip.txt` and a submodule `sub`
/// holding `sub.txt`; returns its path and HEAD.
fn repository_with_submodule(root: &Path) -> (PathBuf, String) {
    let sub = root.join("subrepo");
    std::fs::create_dir_all(&sub).unwrap();
    git(&sub, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(sub.join("sub.txt"), "from the submodule\n").unwrap();
    git(&sub, &["add", "."]);
    git(&sub, &["commit", "--quiet", "-m", "sub"]);

    let main = root.join("mainrepo");
    std::fs::create_dir_all(main.join("docs")).unwrap();
    git(&main, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(main.join("main.txt"), "main\n").unwrap();
    std::fs::write(main.join("docs/skip.txt"), "filtered out\n").unwrap();
    git(
        &main,
        &["submodule", "add", "--quiet", sub.to_str().unwrap(), "sub"],
    );
    git(&main, &["add", "."]);
    git(&main, &["commit", "--quiet", "-m", "main"]);
    let head = git(&main, &["rev-parse", "HEAD"]);
    (main, head)
}

fn git_recipe(repo: &Path, commit: &str, submodules: bool) -> String {
    format!(
        r#"package:
  name: from-git
  version: "1.0"
source:
  git: {repo}
  expected_commit: {commit}
  submodules: {submodules}
  filter:
    exclude:
      - docs/
build:
  noarch: generic
  script:
    - mkdir -p $PREFIX/share/from-git
    - find . -type f | sed 's|^\./||' | LC_ALL=C sort > $PREFIX/share/from-git/files.txt
"#,
        repo = repo.display()
    )
}

#[test]
fn git_sources_update_submodules_check_the_commit_and_take_their_filter() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, head) = repository_with_submodule(tmp.path());
    let listed = |name: &str, submodules: bool| {
        let dir = write_recipe(
            &tmp.path().join(name),
            &git_recipe(&repo, &head, submodules),
        );
        assert_success(&build(&dir, tmp.path(), name, &[], &GIT_ENV));
        let env = tmp.path().join(format!("{name}-env"));
        oracle(&tmp.path().join(name), &env, &["from-git"], &[]);
        std::fs::read_to_string(env.join("share/from-git/files.txt")).unwrap()
    };
    // Without `.git`, without the filtered docs, with the submodule's file.
    assert_eq!(
        listed("with-sub", true),
        ".gitmodules\nmain.txt\nsub/sub.txt\n"
    );
    assert_eq!(listed("without-sub", false), ".gitmodules\nmain.txt\n");

    let wrong = "0123456789abcdef0123456789abcdef01234567";
    let dir = write_recipe(&tmp.path().join("moved"), &git_recipe(&repo, wrong, true));
    let output = build(&dir, tmp.path(), "moved", &[], &GIT_ENV);
    assert_eq!(output.status.code(), Some(1));
    let text = flat_stderr(&output);
    assert!(
        text.contains(&format!("checked out commit {head}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("`expected_commit` is {wrong}")),
        "{text}"
    );
    assert!(archives(&tmp.path().join("moved")).is_empty());
}

#[test]
fn language_tests_run_with_their_interpreter_once_per_python_version() {
    let tmp = tempfile::tempdir().unwrap();
    assert_success(&build(&recipe("stand-ins"), tmp.path(), "out", &[], &[]));
    let output = build(&recipe("language-tests"), tmp.path(), "out", &[], &[]);
    assert_success(&output);
    let text = stderr(&output);
    for line in [
        "stand-in python 3.11.0",
        "stand-in python 3.12.0",
        "probe imported",
        "Probe loaded by perl",
        "stand-in Rscript loaded library probe",
        "stand-in ruby required probe",
        "polyglot-probe: 4 tests passed",
    ] {
        assert!(text.contains(line), "`{line}` missing:\n{text}");
    }
    let checked = oracle(&tmp.path().join("out"), &tmp.path().join("env"), &[], &[]);
    let python = checked["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["index"]["name"] == "python")
        .unwrap();
    assert_eq!(
        python["index"]["python_site_packages_path"],
        "lib/python/site-packages"
    );

    // A module the package lacks fails the test, with perl's own words.
    let copy = tmp.path().join("missing-module");
    copy_dir(&recipe("language-tests"), &copy);
    let text = std::fs::read_to_string(copy.join("recipe.yaml")).unwrap();
    std::fs::write(
        copy.join("recipe.yaml"),
        text.replace("        - Probe", "        - NoSuchModule"),
    )
    .unwrap();
    let channel = tmp.path().join("out");
    let output = build(
        &copy,
        tmp.path(),
        "out2",
        &["-c", channel.to_str().unwrap()],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(text.contains("Can't locate NoSuchModule.pm"), "{text}");
    assert!(text.contains("test 2 of polyglot-probe (perl)"), "{text}");
}

#[test]
fn a_downstream_test_needs_the_downstream_package_to_install_with_the_build() {
    let tmp = tempfile::tempdir().unwrap();
    assert_success(&build(
        &recipe("downstream-app"),
        tmp.path(),
        "out",
        &[],
        &[],
    ));
    let output = build(&recipe("downstream"), tmp.path(), "out", &[], &[]);
    assert_success(&output);
    assert!(stderr(&output).contains("ds-lib: 1 tests passed"));

    // ds-app wants ds-lib 1.x: a 2.0 build breaks it.
    let copy = tmp.path().join("ds-lib-2");
    copy_dir(&recipe("downstream"), &copy);
    let text = std::fs::read_to_string(copy.join("recipe.yaml")).unwrap();
    std::fs::write(
        copy.join("recipe.yaml"),
        text.replace(r#"version: "1.5""#, r#"version: "2.0""#),
    )
    .unwrap();
    let output = build(&copy, tmp.path(), "out", &[], &[]);
    assert_eq!(output.status.code(), Some(1));
    let text = flat_stderr(&output);
    assert!(text.contains("downstream ds-app failed"), "{text}");
    assert!(
        text.contains("`ds-app` cannot be installed together with this build of ds-lib"),
        "{text}"
    );
    // The solver's explanation names the conflicting requirement.
    assert!(text.contains("ds-lib >=1,<2"), "{text}");
}

#[test]
fn packaging_keys_reach_paths_json_index_json_and_the_files() {
    let tmp = tempfile::tempdir().unwrap();
    assert_success(&build(
        &recipe("packaging-keys"),
        tmp.path(),
        "out",
        &[],
        &[],
    ));
    let prefix = tmp.path().join("env");
    let checked = oracle(&tmp.path().join("out"), &prefix, &["pk"], &[]);
    let variants: Vec<&serde_json::Value> =
        checked["packages"].as_array().unwrap().iter().collect();
    assert_eq!(variants.len(), 2);
    let slow = variants
        .iter()
        .find(|p| p["index"]["build_number"] == 1)
        .unwrap();
    let plain = variants
        .iter()
        .find(|p| p["index"]["build_number"] == 0)
        .unwrap();
    assert_eq!(slow["index"]["track_features"], "pk-p-0 pk-p-1");
    assert!(plain["index"].get("track_features").is_none());
    // The higher build number loses to the features: the solver takes plain.
    let plain_build = plain["index"]["build"].as_str().unwrap();
    assert_eq!(
        strings(&checked["installed"]),
        [format!("pk-1.0-{plain_build}")]
    );

    let entry = |path: &str| {
        package(&checked, "pk")["paths"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["_path"] == path)
            .unwrap()
            .clone()
    };
    assert_eq!(entry("etc/pk.conf")["no_link"], true);
    assert!(entry("share/pk/where.txt").get("no_link").is_none());
    // post_process ran before prefix detection: the rewritten file no
    // longer holds the build prefix, the untouched one does.
    assert!(entry("lib/pkgconfig/pk.pc").get("file_mode").is_none());
    assert_eq!(entry("share/pk/where.txt")["file_mode"], "text");
    let pc = std::fs::read_to_string(prefix.join("lib/pkgconfig/pk.pc")).unwrap();
    assert_eq!(pc, "prefix=/opt/pk\nlibdir=${prefix}/lib\nVersion: 0.1\n");
    let conf = std::fs::read_to_string(prefix.join("etc/pk.conf")).unwrap();
    assert_eq!(conf, "flavor=plain\n");
    assert_eq!(index(&checked, "pk")["name"], "pk");
}

#[test]
fn settings_cleave_cannot_honour_fail_before_anything_builds() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [(
        "site-packages",
        "build:\n      python:\n        site_packages_path: lib/python3.13/site-packages",
        "`build.python.site_packages_path` is for the `python` package only",
    )];
    for (name, build_section, message) in cases {
        let text = format!(
            r#"recipe:
  name: early
  version: "1.0"
build:
  noarch: generic
outputs:
  - package:
      name: early-first
    build:
      script:
        - mkdir -p $PREFIX/share && touch $PREFIX/share/first
  - package:
      name: early-second
    {build_section}
"#
        );
        let dir = write_recipe(&tmp.path().join(name), &text);
        let output = build(&dir, tmp.path(), name, &[], &[]);
        assert_eq!(output.status.code(), Some(1), "{name}");
        let stderr = flat_stderr(&output);
        assert!(stderr.contains(message), "{name}: {stderr}");
        assert!(!stderr.contains("── package"), "{name}: {stderr}");
        assert!(archives(&tmp.path().join(name)).is_empty(), "{name}");
    }
}

#[test]
fn test_scripts_run_in_their_cwd_and_refuse_other_interpreters() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe_text = |interpreter: &str| {
        format!(
            r#"package:
  name: test-script-settings
  version: "1.0"
build:
  noarch: generic
  script:
    - mkdir -p $PREFIX/share && touch $PREFIX/share/x
tests:
  - script:
      interpreter: {interpreter}
      cwd: sub
      content:
        - test -f from-recipe.txt
    files:
      recipe:
        - sub/
"#
        )
    };
    let dir = write_recipe(&tmp.path().join("bash"), &recipe_text("bash"));
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/from-recipe.txt"), "here").unwrap();
    let output = build(&dir, tmp.path(), "bash", &[], &[]);
    assert_success(&output);
    assert!(stderr(&output).contains("test-script-settings: 1 tests passed"));

    let dir = write_recipe(&tmp.path().join("zsh"), &recipe_text("zsh"));
    std::fs::create_dir(dir.join("sub")).unwrap();
    let output = build(&dir, tmp.path(), "zsh", &[], &[]);
    assert_eq!(output.status.code(), Some(1));
    let text = flat_stderr(&output);
    assert!(
        text.contains("script interpreter `zsh` is not supported"),
        "{text}"
    );
}
