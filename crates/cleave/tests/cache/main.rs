//! End-to-end tests of the staging cache: `cleave build` on the recipes in
//! `tests/cache/`, copied to a temporary directory so that the tests can
//! edit them. Staging scripts count their runs in `runs.log` beside the
//! recipe copy; a compiler wrapper counts compilations in `compiles.log`.
//! What goes wrong around the cache, and what a build does then, is in
//! [`faults`].

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "../common/mod.rs"]
mod common;
mod faults;

use common::{
    RecipeCopy, TinyDisk, assert_success, copy_dir, index, oracle, output_within, paths, repo,
    stderr, strings, wait_all, walk,
};

/// A copy of `tests/cache/NAME` in a fresh temporary directory.
struct Case(RecipeCopy);

impl std::ops::Deref for Case {
    type Target = RecipeCopy;
    fn deref(&self) -> &RecipeCopy {
        &self.0
    }
}

impl Case {
    fn new(name: &str) -> Case {
        Case(RecipeCopy::new("cache", name))
    }

    /// `cleave ARGS` with this case's cache and staging root.
    fn cleave(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cleave"));
        cmd.args(args)
            .env("CLEAVE_CACHE_DIR", self.path("cache"))
            .env("NO_COLOR", "1")
            .env_remove("SOURCE_DATE_EPOCH")
            .current_dir(self.tmp.path());
        cmd
    }

    /// `cleave build` of the recipe into `out`.
    fn build(&self, out: &str, extra: &[&str]) -> Output {
        let recipe = self.recipe.to_str().unwrap();
        let staging_root = self.path("stg");
        let mut args = vec![
            "build",
            "--recipe",
            recipe,
            "--output-dir",
            out,
            "--staging-root",
            staging_root.to_str().unwrap(),
            "--test",
            "skip",
        ];
        args.extend_from_slice(extra);
        self.cleave(&args).output().unwrap()
    }

    /// How often the staging script ran.
    fn runs(&self) -> usize {
        lines(&self.path("runs.log"))
    }
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The one `.conda` of `name` below `out`.
fn package(out: &Path, name: &str) -> PathBuf {
    let mut found = Vec::new();
    for subdir in std::fs::read_dir(out).unwrap() {
        let subdir = subdir.unwrap().path();
        if !subdir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&subdir).unwrap() {
            let file = file.unwrap().path();
            let stem = file.file_name().unwrap().to_string_lossy().into_owned();
            if stem.ends_with(".conda") && stem.rsplitn(3, '-').nth(2) == Some(name) {
                found.push(file);
            }
        }
    }
    assert_eq!(found.len(), 1, "{name} in {}: {found:?}", out.display());
    found.remove(0)
}

#[test]
fn a_second_build_runs_no_staging_script_and_packages_the_same_files() {
    let case = Case::new("split");
    assert_success(&case.build("out1", &[]));
    assert_eq!(case.runs(), 1);

    // Another output dir: the key does not depend on it.
    let second = case.build("out2", &[]);
    assert_success(&second);
    assert_eq!(case.runs(), 1, "{}", stderr(&second));
    assert!(
        stderr(&second).contains("its script does not run"),
        "{}",
        stderr(&second)
    );

    let first = oracle(&case.path("out1"), &case.path("env1"), &[], &[]);
    let again = oracle(&case.path("out2"), &case.path("env2"), &[], &[]);
    for name in ["split-lib", "split-dev"] {
        assert_eq!(paths(&first, name), paths(&again, name), "{name}");
    }
    // Every kind of staging file reached its package and installs.
    let env = case.path("env2");
    assert_eq!(
        std::fs::read_to_string(env.join("lib/liba.txt")).unwrap(),
        "hello\npatched\n"
    );
    assert_eq!(
        std::fs::read_link(env.join("lib/liba-rel.txt")).unwrap(),
        Path::new("liba.txt")
    );
    assert_eq!(
        std::fs::read_link(env.join("lib/liba-abs.txt")).unwrap(),
        Path::new("liba.txt")
    );
    assert_eq!(
        std::fs::read_to_string(env.join("lib/prefix.txt"))
            .unwrap()
            .trim(),
        env.display().to_string()
    );
    // The work dir came back too: split-dev copied a file the staging
    // script made there.
    assert_eq!(
        std::fs::read_to_string(env.join("share/split/from-work.txt")).unwrap(),
        "built from hello\npatched\n"
    );
    assert!(
        !strings(&index(&again, "split-lib")["depends"])
            .iter()
            .any(|d| d.contains("split"))
    );
}

#[test]
fn the_key_follows_everything_that_can_change_the_staging_result_and_nothing_else() {
    let case = Case::new("split");
    assert_success(&case.build("out", &[]));
    let mut expected = 1;
    let mut step = |what: &str, change: &dyn Fn(&Case), reruns: bool| {
        change(&case);
        let output = case.build("out", &[]);
        assert_success(&output);
        expected += usize::from(reruns);
        assert_eq!(case.runs(), expected, "after: {what}\n{}", stderr(&output));
    };
    step("nothing", &|_| {}, false);
    step(
        "an inheriting output's files and script",
        &|c| {
            c.edit("recipe.yaml", |t| {
                t.replace(
                    "        - lib/**\n",
                    "        - lib/**\n        - share/none/**\n",
                )
                .replace(
                    "from-work.txt\n",
                    "from-work.txt && echo more >> $PREFIX/share/split/extra\n",
                )
            })
        },
        false,
    );
    step(
        "a recipe comment and the package about",
        &|c| {
            c.edit("recipe.yaml", |t| {
                format!("# edited\n{t}about:\n  summary: now with a summary\n")
            })
        },
        false,
    );
    step(
        "a source file edited",
        &|c| c.edit("src/b.txt", |t| t + "more\n"),
        true,
    );
    step(
        "a source file added",
        &|c| c.edit("src/new.txt", |_| "new\n".into()),
        true,
    );
    step(
        "a source file made executable",
        &|c| {
            use std::os::unix::fs::PermissionsExt;
            let f = c.recipe.join("src/new.txt");
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o755)).unwrap();
        },
        true,
    );
    step(
        "a source file removed",
        &|c| std::fs::remove_file(c.recipe.join("src/b.txt")).unwrap(),
        true,
    );
    step(
        "the script file",
        &|c| c.edit("build.sh", |t| t + "echo >> /dev/null\n"),
        true,
    );
    step(
        "the patch",
        &|c| c.edit("fix.patch", |t| t.replace("+patched", "+patched!")),
        true,
    );
    step(
        "the inline script of the staging build",
        &|c| {
            c.edit("recipe.yaml", |t| {
                t.replace(
                    "script: build.sh",
                    "script:\n        file: build.sh\n        env:\n          MODE: fast",
                )
            })
        },
        true,
    );
    step(
        "the build number of the recipe (not a staging input)",
        &|c| c.edit("recipe.yaml", |t| t.replace("number: 0", "number: 1")),
        false,
    );
}

#[test]
fn a_new_build_of_a_host_dependency_rebuilds_and_run_exports_reach_inheriting_outputs() {
    let case = Case::new("uses-dep");
    copy_dir(&repo().join("tests/cache/dep"), &case.path("dep"));
    let dep = case.path("dep");
    let channel = |c: &Case, out: &str| {
        let o = c
            .cleave(&[
                "build",
                "-r",
                dep.to_str().unwrap(),
                "--output-dir",
                out,
                "--test",
                "skip",
            ])
            .output()
            .unwrap();
        assert_success(&o);
    };
    channel(&case, "channel");
    let check = |out: &str| {
        // ud-takes needs cachedep from the other channel: install the others.
        let env = case.path(&format!("env-{out}"));
        let checked = oracle(&case.path(out), &env, &["ud-opts-out", "ud-ignores"], &[]);
        assert_eq!(
            strings(&index(&checked, "ud-takes")["depends"]),
            ["cachedep >=1.4.0,<2.0a0"]
        );
        assert_eq!(
            strings(&index(&checked, "ud-opts-out")["depends"]),
            Vec::<String>::new()
        );
        assert_eq!(
            strings(&index(&checked, "ud-ignores")["depends"]),
            Vec::<String>::new()
        );
    };
    assert_success(&case.build("out1", &["-c", "channel"]));
    assert_eq!(case.runs(), 1);
    check("out1");
    // A hit installs no staging environment: the run exports come from the
    // cache entry.
    assert_success(&case.build("out2", &["-c", "channel"]));
    assert_eq!(case.runs(), 1);
    check("out2");

    // Same version, new build number: the solved host package differs.
    std::fs::write(
        dep.join("recipe.yaml"),
        std::fs::read_to_string(dep.join("recipe.yaml"))
            .unwrap()
            .replace("number: 0", "number: 1"),
    )
    .unwrap();
    channel(&case, "channel");
    let explain = case
        .cleave(&[
            "cache",
            "explain",
            "-r",
            case.recipe.to_str().unwrap(),
            "-c",
            "channel",
            "--output-dir",
            "out3",
        ])
        .output()
        .unwrap();
    assert_success(&explain);
    let text = stdout(&explain);
    assert!(text.contains("(not cached)"), "{text}");
    assert!(text.contains("~ env.host:"), "{text}");
    let added = text
        .lines()
        .find(|l| l.trim_start().starts_with("+ cachedep-1.4.0-"));
    assert!(added.is_some_and(|l| l.contains("_1 sha256:")), "{text}");
    let removed = text
        .lines()
        .find(|l| l.trim_start().starts_with("- cachedep-1.4.0-"));
    assert!(removed.is_some_and(|l| l.contains("_0 sha256:")), "{text}");
    assert_success(&case.build("out3", &["-c", "channel"]));
    assert_eq!(case.runs(), 2);
}

#[test]
fn a_ninja_build_dir_continues_without_recompiling_from_another_output_dir() {
    let case = Case::new("ninja");
    let compiles = |needle: &str| {
        std::fs::read_to_string(case.path("compiles.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    };
    let first = case.build("out1", &[]);
    assert_success(&first);
    assert_eq!(
        (compiles("core"), compiles("tool.c")),
        (3, 1),
        "{}",
        stderr(&first)
    );

    // The same recipe into another output dir: both packages come from
    // the cache and nothing compiles.
    let again = case.build("out0", &[]);
    assert_success(&again);
    assert_eq!((compiles("core"), compiles("tool.c")), (3, 1));
    assert_eq!(stderr(&again).matches("nothing runs").count(), 2);

    // The tool's script edited: the staging build comes from the cache,
    // and `ninja tool` compiles tool.c only.
    let continued = |extra: &'static str| {
        move |text: String| {
            text.replace(
                "        - ninja -C build tool\n",
                &format!("        - ninja -C build tool\n        - echo {extra}\n"),
            )
        }
    };
    case.edit("recipe.yaml", continued("second"));
    let second = case.build("out2", &[]);
    assert_success(&second);
    assert_eq!(
        (compiles("core"), compiles("tool.c")),
        (3, 2),
        "{}",
        stderr(&second)
    );
    let checked = oracle(
        &case.path("out2"),
        &case.path("env"),
        &["counted-tool"],
        &["counted-tool"],
    );
    assert_eq!(checked["command"]["stdout"], "core says 6\n");

    // Under another staging root (with the tool's script edited again, so
    // that it builds) the build tree is rewritten to its new paths; the
    // package is still right.
    case.edit("recipe.yaml", continued("third"));
    let moved_root = case.path("other-root");
    let recipe = case.recipe.to_str().unwrap();
    let third = case
        .cleave(&[
            "build",
            "-r",
            recipe,
            "--output-dir",
            "out3",
            "--test",
            "skip",
            "--staging-root",
            moved_root.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_success(&third);
    assert!(stderr(&third).contains("its script does not run"));
    let checked = oracle(
        &case.path("out3"),
        &case.path("env3"),
        &["counted-tool"],
        &["counted-tool"],
    );
    assert_eq!(checked["command"]["stdout"], "core says 6\n");
}

#[test]
fn two_builds_started_together_run_the_staging_script_once() {
    let case = Case::new("slow");
    let spawn = |out: &str| {
        let recipe = case.recipe.to_str().unwrap();
        let root = case.path("stg");
        case.cleave(&[
            "build",
            "-r",
            recipe,
            "--output-dir",
            out,
            "--test",
            "skip",
            "--staging-root",
            root.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    };
    let [a, b] = <[Output; 2]>::try_from(wait_all(vec![spawn("out-a"), spawn("out-b")])).unwrap();
    assert_success(&a);
    assert_success(&b);
    assert_eq!(case.runs(), 1);
    let waited = [&a, &b]
        .iter()
        .filter(|o| stderr(o).contains("its script does not run"))
        .count();
    assert_eq!(waited, 1);
    package(&case.path("out-a"), "slow");
    package(&case.path("out-b"), "slow");
}

#[test]
fn unclaimed_and_overlapping_files_are_listed_and_fail_the_build_when_asked() {
    let case = Case::new("claims");
    let output = case.build("out", &[]);
    assert_success(&output);
    let err = stderr(&output);
    assert!(
        err.contains("staging `orphan` is inherited by no output"),
        "{err}"
    );
    assert!(
        err.contains("1 file(s) of staging `claims-build` are in no package"),
        "{err}"
    );
    assert!(err.contains("   share/unclaimed.txt"), "{err}");
    assert!(
        err.contains("   include/both.h (claims-a, claims-b)"),
        "{err}"
    );

    let strict = case.build("out", &["--error-unclaimed-files"]);
    assert_eq!(strict.status.code(), Some(1));
    assert!(
        stderr(&strict).contains("are in no package"),
        "{}",
        stderr(&strict)
    );
    let strict = case.build("out", &["--error-overlapping-files"]);
    assert_eq!(strict.status.code(), Some(1));
    assert!(
        stderr(&strict).contains("in more than one package"),
        "{}",
        stderr(&strict)
    );
}

#[test]
fn the_seed_examples_split_a_top_level_cache() {
    for (name, packages) in [
        (
            "seed-toplevel",
            [
                ("mypackage-library", "lib/library.txt"),
                ("mypackage-headers", "include/header.txt"),
            ],
        ),
        (
            "seed-cachycache",
            [
                ("cachycache-lib", "lib/lib_foo.so"),
                ("cachycache-headers", "include/include_file.h"),
            ],
        ),
    ] {
        let case = Case::new(name);
        assert_success(&case.build(
            "out",
            &["--error-unclaimed-files", "--error-overlapping-files"],
        ));
        let checked = oracle(&case.path("out"), &case.path("env"), &[], &[]);
        for (pkg, file) in packages {
            let listed = paths(&checked, pkg);
            assert!(listed.iter().any(|p| p == file), "{pkg}: {listed:?}");
            assert!(case.path("env").join(file).exists());
        }
        let again = case.build("out2", &[]);
        assert!(
            stderr(&again).contains("its script does not run"),
            "{}",
            stderr(&again)
        );
    }
}

#[test]
fn cache_commands_list_inspect_explain_and_trim_entries() {
    let case = Case::new("split");
    assert_success(&case.build("out", &[]));
    let list = stdout(&case.cleave(&["cache", "list"]).output().unwrap());
    assert!(list.contains("3 entries"), "{list}");
    let key_of = |list: &str, name: &str| {
        list.lines()
            .find(|l| l.split_whitespace().nth(2) == Some(name))
            .and_then(|l| l.split_whitespace().next())
            .map(String::from)
            .unwrap_or_else(|| panic!("no {name} in {list}"))
    };
    let key = key_of(&list, "split-build");
    assert!(
        list.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()[1..3] == ["package", "split-lib"]),
        "{list}"
    );

    let info = case.cleave(&["cache", "info", &key[..8]]).output().unwrap();
    assert_success(&info);
    let info = stdout(&info);
    assert!(info.contains("name:      split-build"), "{info}");
    assert!(info.contains("script.file: blake3:"), "{info}");
    assert!(info.contains("source.0.patch.fix.patch: blake3:"), "{info}");
    assert!(
        !info.contains(case.tmp.path().to_str().unwrap()),
        "no absolute path in the inputs:\n{info}"
    );

    case.edit("build.sh", |t| t + "true\n");
    let recipe = case.recipe.to_str().unwrap();
    let explain = stdout(
        &case
            .cleave(&["cache", "explain", "-r", recipe])
            .output()
            .unwrap(),
    );
    assert!(explain.contains("staging `split-build`"), "{explain}");
    assert!(explain.contains("(not cached)"), "{explain}");
    assert!(explain.contains("~ script.file: blake3:"), "{explain}");
    assert!(!explain.contains("~ source"), "{explain}");
    // The packages inherit the edited staging build: their keys changed
    // with its key, and nothing else of theirs did.
    assert!(explain.contains("package `split-lib`"), "{explain}");
    assert!(explain.contains("~ staging: "), "{explain}");
    assert_success(&case.build("out", &[]));

    let missing = case
        .cleave(&["cache", "info", "ffffffff"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("no cache entry matches"),
        "{}",
        stderr(&missing)
    );

    // Six entries now, three of each build; a cap that fits none evicts
    // them all, least recently used (the first build's) first.
    let newer = key_of(
        &stdout(&case.cleave(&["cache", "list"]).output().unwrap()),
        "split-build",
    );
    assert_ne!(newer, key);
    let gc = case
        .cleave(&["cache", "gc", "--max-size", "1B"])
        .output()
        .unwrap();
    assert_success(&gc);
    let gc = stdout(&gc);
    let at = |k: &str| gc.find(&format!("removed {k} split-build")).expect(&gc);
    assert!(at(&key) < at(&newer), "{gc}");
    assert!(gc.contains("; 0 entries"), "{gc}");
    assert_success(&case.build("out", &[]));
    let cleaned = case.cleave(&["cache", "clean"]).output().unwrap();
    assert!(
        stdout(&cleaned).contains("removed 3 entries"),
        "{}",
        stdout(&cleaned)
    );
}
