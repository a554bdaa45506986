//! Building many recipes at once: `--recipe-dir` finds them as
//! rattler-build does and builds their outputs in the order their
//! requirements ask for, `--up-to` stops at what a package needs,
//! `--keep-going` skips only what needs a failure, a cycle is an error
//! naming it, and `--skip-existing` leaves out what a channel has.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{assert_success, oracle, repo, stderr};

fn recipes(name: &str) -> PathBuf {
    repo().join("tests/workflow").join(name)
}

/// `cleave build ARGS` with a private cache and staging root in `tmp`.
fn cleave(tmp: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cleave"))
        .arg("build")
        .args(args)
        .arg("--cache-dir")
        .arg(tmp.join("cache"))
        .arg("--staging-root")
        .arg(tmp.join("stg"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run cleave")
}

/// The summary's rows: (package, state), in build order.
fn rows(output: &Output) -> Vec<(String, String)> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            let state = cells
                .iter()
                .find(|c| ["built", "reused", "skipped", "failed", "not"].contains(c))
                .map(|s| if *s == "not" { "not built" } else { *s })
                .unwrap_or_default();
            (cells[0].to_string(), state.to_string())
        })
        .collect()
}

fn row(name: &str, state: &str) -> (String, String) {
    (name.to_string(), state.to_string())
}

#[test]
fn a_recipe_dir_builds_every_recipe_in_dependency_order() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let dir = recipes("stack");
    let args = [
        "--recipe-dir",
        dir.to_str().unwrap(),
        "--output-dir",
        out.to_str().unwrap(),
    ];
    let built = cleave(tmp.path(), &args);
    assert_success(&built);
    // app and libb would fail before what they need: they come after it,
    // and the hidden and ignored recipes (which fail) are not found.
    assert_eq!(
        rows(&built),
        [
            row("liba", "built"),
            row("libb", "built"),
            row("app", "built")
        ],
        "{}",
        stderr(&built)
    );
    let env = tmp.path().join("env");
    let checked = oracle(&out, &env, &["app"], &["stack-app"]);
    assert!(checked.to_string().contains("libb on liba"), "{checked}");

    // Again with --skip-existing: everything is in the output channel.
    let again = cleave(tmp.path(), &[&args[..], &["--skip-existing"]].concat());
    assert_success(&again);
    assert_eq!(
        rows(&again),
        [
            row("liba", "skipped"),
            row("libb", "skipped"),
            row("app", "skipped")
        ]
    );
    assert!(
        stderr(&again).contains("skipped liba-1.0-"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn up_to_builds_what_a_package_needs_and_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = recipes("stack");
    let out = tmp.path().join("out");
    let built = cleave(
        tmp.path(),
        &[
            "--recipe-dir",
            dir.to_str().unwrap(),
            "--output-dir",
            out.to_str().unwrap(),
            "--up-to",
            "libb",
        ],
    );
    assert_success(&built);
    assert_eq!(rows(&built), [row("liba", "built"), row("libb", "built")]);
    let unknown = cleave(
        tmp.path(),
        &["--recipe-dir", dir.to_str().unwrap(), "--up-to", "nosuch"],
    );
    assert_eq!(unknown.status.code(), Some(1));
    assert!(stderr(&unknown).contains("nosuch"), "{}", stderr(&unknown));
}

#[test]
fn several_recipes_given_one_by_one_build_in_dependency_order() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let built = cleave(
        tmp.path(),
        &[
            "--recipe",
            recipes("stack/app").to_str().unwrap(),
            "--recipe",
            recipes("stack/libb").to_str().unwrap(),
            "-r",
            recipes("stack/liba").to_str().unwrap(),
            "--output-dir",
            out.to_str().unwrap(),
        ],
    );
    assert_success(&built);
    assert_eq!(
        rows(&built),
        [
            row("liba", "built"),
            row("libb", "built"),
            row("app", "built")
        ]
    );
}

#[test]
fn keep_going_skips_only_what_needs_the_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = recipes("keep-going");
    let out = tmp.path().join("out");
    let args = [
        "--recipe-dir",
        dir.to_str().unwrap(),
        "--output-dir",
        out.to_str().unwrap(),
    ];
    // Without it the build stops at the first failure (bad sorts first).
    let stopped = cleave(tmp.path(), &args);
    assert_eq!(stopped.status.code(), Some(1), "{}", stderr(&stopped));
    assert_eq!(
        rows(&stopped),
        [
            row("bad", "failed"),
            row("fine", "not built"),
            row("needs-bad", "not built")
        ]
    );
    let going = cleave(tmp.path(), &[&args[..], &["--keep-going"]].concat());
    let printed = stderr(&going);
    assert_eq!(going.status.code(), Some(1), "{printed}");
    assert_eq!(
        rows(&going),
        [
            row("bad", "failed"),
            row("fine", "built"),
            row("needs-bad", "not built")
        ],
        "{printed}"
    );
    assert!(printed.contains("bad breaks on purpose"), "{printed}");
    assert!(
        printed.contains("not built: needs-bad-1.0-") && printed.contains("because bad-1.0-"),
        "{printed}"
    );
    let summary = String::from_utf8_lossy(&going.stdout);
    assert!(
        summary.contains("1 failed") && summary.contains("1 not built"),
        "{summary}"
    );
    // rattler-build's spelling works too.
    let peer = cleave(
        tmp.path(),
        &[&args[..], &["--continue-on-failure"]].concat(),
    );
    assert_eq!(rows(&peer)[1], row("fine", "reused"));
}

#[test]
fn a_cycle_across_recipes_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = recipes("cycle");
    let output = cleave(tmp.path(), &["--recipe-dir", dir.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("cycle: x, y"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn skip_existing_all_looks_in_every_channel_and_local_only_in_the_output() {
    let tmp = tempfile::tempdir().unwrap();
    let first = tmp.path().join("first");
    let liba = recipes("stack/liba");
    let liba = liba.to_str().unwrap();
    assert_success(&cleave(
        tmp.path(),
        &["--recipe", liba, "--output-dir", first.to_str().unwrap()],
    ));
    let second = tmp.path().join("second");
    let common = [
        "--recipe",
        liba,
        "--output-dir",
        second.to_str().unwrap(),
        "-c",
        first.to_str().unwrap(),
    ];
    let local = cleave(
        tmp.path(),
        &[&common[..], &["--skip-existing=local"]].concat(),
    );
    assert_success(&local);
    assert_eq!(rows(&local), [row("liba", "reused")]);
    std::fs::remove_dir_all(&second).unwrap();
    let all = cleave(
        tmp.path(),
        &[&common[..], &["--skip-existing=all"]].concat(),
    );
    assert_success(&all);
    assert_eq!(rows(&all), [row("liba", "skipped")]);
    let written = std::fs::read_dir(second.join("noarch"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".conda")
        })
        .count();
    assert_eq!(written, 0, "nothing written into the output channel");
}

#[test]
fn build_help_groups_its_flags_under_headings() {
    let help = Command::new(env!("CARGO_BIN_EXE_cleave"))
        .args(["build", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    let headings: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with(' ') && l.ends_with(':'))
        .collect();
    assert_eq!(
        headings,
        [
            "Options:",
            "Inputs:",
            "Variants:",
            "Outputs:",
            "Cache:",
            "Tests:",
            "Publishing:",
            "Global options:"
        ],
        "{text}"
    );
    // Each heading holds its flags: the lines up to the next heading.
    let section = |name: &str| {
        text.lines()
            .skip_while(|l| *l != format!("{name}:"))
            .skip(1)
            .take_while(|l| !headings.contains(l))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(section("Inputs").contains("--recipe-dir"), "{text}");
    assert!(
        section("Variants").contains("--variant <KEY=VALUE"),
        "{text}"
    );
    assert!(section("Outputs").contains("--skip-existing"), "{text}");
    assert!(section("Cache").contains("--remote"), "{text}");
    assert!(section("Tests").contains("--test"), "{text}");
    assert!(section("Publishing").contains("--publish-to"), "{text}");
}
