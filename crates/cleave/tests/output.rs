//! End-to-end tests of what a build shows (issue 25): verbosity flags and
//! log filters, log styles (plain lines in a pipe, bars under a
//! pseudo-terminal, JSON lines, GitHub Actions commands and step summary),
//! colours, the summary's times and savings, `cache explain`'s field
//! paths, and the way back into a failed build (`build_env.sh`,
//! `cleave debug shell`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;
use common::{assert_success, repo, stderr};

/// A recipe whose script runs for a while and prints a line first.
const SLOW: &str = r#"schema_version: 1

package:
  name: slow-thing
  version: "1.0"

build:
  noarch: generic
  script:
    - echo "compiling part one"
    - sleep 1.5
    - mkdir -p $PREFIX/share && echo hi > $PREFIX/share/slow.txt

tests:
  - script:
      - echo "test-alpha"
"#;

/// A temporary directory with `recipe.yaml` holding `text`.
fn recipe_dir(text: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("recipe")).unwrap();
    std::fs::write(tmp.path().join("recipe/recipe.yaml"), text).unwrap();
    tmp
}

/// `cleave` with `args` around `build` of the recipe in `tmp`: `before`
/// go before the subcommand, `after` after its own options.
fn cleave_build(tmp: &Path, before: &[&str], after: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cleave"));
    command
        .args(before)
        .arg("build")
        .arg("--recipe")
        .arg(recipe_of(tmp))
        .arg("--output-dir")
        .arg(tmp.join("out"))
        .arg("--cache-dir")
        .arg(tmp.join("cache"))
        .arg("--staging-root")
        .arg(tmp.join("stg"))
        .args(after)
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("RUST_LOG")
        .env_remove("CLEAVE_LOG")
        .env_remove("CLEAVE_LOG_STYLE")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("SOURCE_DATE_EPOCH");
    command
}

fn recipe_of(tmp: &Path) -> PathBuf {
    if tmp.join("recipe").is_dir() {
        tmp.join("recipe")
    } else {
        repo().join("tests/build/single")
    }
}

fn run(command: &mut Command) -> Output {
    command.output().expect("run cleave")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `command` under a pseudo-terminal (util-linux `script`), as in a
/// terminal; what it printed, both streams, as the terminal got it.
fn in_terminal(command: &Command) -> Option<String> {
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
    let mut line = quote(command.get_program());
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    let mut script = Command::new("script");
    script
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env("TERM", "xterm-256color")
        .env("COLUMNS", "120")
        .stdin(Stdio::null());
    for (name, value) in command.get_envs() {
        match value {
            Some(v) => script.env(name, v),
            None => script.env_remove(name),
        };
    }
    let output = script.output().ok()?;
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn quiet_and_verbose_are_global_and_a_log_filter_opens_a_crate() {
    let tmp = recipe_dir(SLOW);
    let tmp = tmp.path();
    // Default: the script's lines, no debug logs.
    let default = run(&mut cleave_build(tmp, &[], &[]));
    assert_success(&default);
    let text = stderr(&default);
    assert!(text.contains("│ compiling part one"), "{text}");
    assert!(!text.contains("cache key"), "{text}");

    // -q before the subcommand: no script output, no steps; the summary.
    let quiet = run(&mut cleave_build(tmp, &["-q"], &["--no-cache"]));
    assert_success(&quiet);
    let text = stderr(&quiet);
    assert!(!text.contains("compiling part one"), "{text}");
    assert!(!text.contains("── package"), "{text}");
    assert!(stdout(&quiet).contains("slow-thing"), "{}", stdout(&quiet));

    // -v after it: debug logs of cleave's crates, the script's files.
    let verbose = run(&mut cleave_build(tmp, &[], &["-v", "--no-cache"]));
    assert_success(&verbose);
    let text = stderr(&verbose);
    assert!(text.contains("debug: cleave_build"), "{text}");
    assert!(text.contains("cache key"), "{text}");
    assert!(text.contains("build_env.sh"), "{text}");

    // RUST_LOG picks what to show, whatever the flags.
    let filtered =
        run(cleave_build(tmp, &[], &["--no-cache"]).env("RUST_LOG", "cleave_build=debug"));
    assert_success(&filtered);
    assert!(
        stderr(&filtered).contains("cache key"),
        "{}",
        stderr(&filtered)
    );

    // Both at once is a usage error.
    let both = run(&mut cleave_build(tmp, &["-q", "-v"], &[]));
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));
}

#[test]
fn in_a_pipe_there_are_no_escape_codes_and_a_long_step_says_it_still_runs() {
    let tmp = recipe_dir(SLOW);
    let output = run(cleave_build(tmp.path(), &[], &[]).env("CLEAVE_PROGRESS_INTERVAL", "0.3"));
    assert_success(&output);
    let text = stderr(&output);
    assert!(
        !text.contains('\x1b') && !stdout(&output).contains('\x1b'),
        "{text:?}"
    );
    let still = text
        .lines()
        .find(|l| l.contains("… the build script of slow-thing"))
        .unwrap_or_else(|| panic!("no progress line in {text}"));
    // The script's output and its `set -x` trace come through two pipes:
    // the last line read is the echo's output or the trace of the sleep.
    assert!(
        still.contains("last line: compiling part one") || still.contains("last line: + sleep 1.5"),
        "{still}"
    );

    // Colours when asked, in a pipe too.
    for (args, env) in [
        (&["--color", "always"][..], None),
        (&[][..], Some(("CLICOLOR_FORCE", "1"))),
    ] {
        let mut command = cleave_build(tmp.path(), args, &["--no-cache"]);
        if let Some((k, v)) = env {
            command.env(k, v);
        }
        let coloured = run(&mut command);
        assert_success(&coloured);
        assert!(stderr(&coloured).contains("\x1b["), "{args:?} {env:?}");
    }
}

#[test]
fn a_terminal_gets_progress_bars_and_no_color_turns_colours_off() {
    let tmp = recipe_dir(SLOW);
    let Some(text) = in_terminal(&cleave_build(tmp.path(), &[], &[])) else {
        return common::skip_unless_required("CLEAVE_REQUIRE_PTY", "`script` is not installed");
    };
    // The spinner of the running script, with its last line, redrawn in
    // place; no plain "still running" lines.
    assert!(text.contains("the build script of slow-thing"), "{text:?}");
    assert!(text.contains("compiling part one"), "{text:?}");
    assert!(
        text.contains("\x1b[2K") || text.contains("\x1b[1A"),
        "{text:?}"
    );
    assert!(!text.contains("… the build script"), "{text:?}");
    assert!(text.contains("\x1b[36m"), "coloured step headers: {text:?}");

    let plain =
        in_terminal(cleave_build(tmp.path(), &[], &["--no-cache"]).env("NO_COLOR", "1")).unwrap();
    assert!(!plain.contains("\x1b[36m"), "{plain:?}");
    assert!(plain.contains("slow-thing"), "{plain:?}");
}

#[test]
fn json_log_style_is_one_object_per_line() {
    let tmp = recipe_dir(SLOW);
    let output = run(&mut cleave_build(tmp.path(), &["--log-style", "json"], &[]));
    assert_success(&output);
    let records: Vec<serde_json::Value> = stderr(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let types: Vec<&str> = records.iter().filter_map(|r| r["type"].as_str()).collect();
    for wanted in [
        "started",
        "script_started",
        "line",
        "script_finished",
        "packaged",
        "tested",
        "summary",
    ] {
        assert!(types.contains(&wanted), "{wanted} missing from {types:?}");
    }
    assert!(records.iter().all(|r| r["time"].is_number()), "{records:?}");
    let summary = records.iter().find(|r| r["type"] == "summary").unwrap();
    assert_eq!(summary["packages"][0]["name"], "slow-thing");
    assert!(
        summary["packages"][0]["seconds"].as_f64().unwrap() >= 1.5,
        "{summary}"
    );
}

#[test]
fn github_actions_get_groups_annotations_and_a_step_summary() {
    let tmp = recipe_dir(SLOW);
    let summary = tmp.path().join("step-summary.md");
    let output = run(cleave_build(tmp.path(), &[], &[])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary));
    assert_success(&output);
    let text = stderr(&output);
    assert!(text.contains("::group::package slow-thing-1.0-"), "{text}");
    assert!(text.contains("::endgroup::"), "{text}");
    assert!(!text.contains('\x1b'), "{text:?}");
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("| output | result | time |"), "{md}");
    assert!(md.contains("| package slow-thing-1.0-"), "{md}");
    assert!(md.contains("| built |"), "{md}");

    // A second build reuses the package: the summary says so and what it saved.
    let again = run(cleave_build(tmp.path(), &["--log-style", "github"], &[])
        .env("GITHUB_STEP_SUMMARY", &summary));
    assert_success(&again);
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("| reused |"), "{md}");
    assert!(md.contains("The caches saved about"), "{md}");

    // A failing script: an error annotation at the recipe's script.
    let failing = tempfile::tempdir().unwrap();
    std::fs::create_dir(failing.path().join("recipe")).unwrap();
    std::fs::copy(
        repo().join("tests/build/failing/recipe.yaml"),
        failing.path().join("recipe/recipe.yaml"),
    )
    .unwrap();
    let failed = run(cleave_build(failing.path(), &[], &[]).env("GITHUB_ACTIONS", "true"));
    assert_eq!(failed.status.code(), Some(1));
    let text = stderr(&failed);
    let error = text
        .lines()
        .find(|l| l.starts_with("::error "))
        .unwrap_or_else(|| panic!("no annotation in {text}"));
    assert!(error.contains("recipe.yaml,line=10,col=5,"), "{error}");
    assert!(error.contains("exit code 3"), "{error}");

    // Files no package takes: a warning annotation at the staging
    // build's name (line 14 of tests/cache/claims).
    let claims = tempfile::tempdir().unwrap();
    common::copy_dir(
        &repo().join("tests/cache/claims"),
        &claims.path().join("recipe"),
    );
    let warned = run(cleave_build(claims.path(), &[], &[]).env("GITHUB_ACTIONS", "true"));
    assert_success(&warned);
    let text = stderr(&warned);
    let warning = text
        .lines()
        .find(|l| l.starts_with("::warning ") && l.contains("are in no package"))
        .unwrap_or_else(|| panic!("no warning annotation in {text}"));
    assert!(warning.contains("recipe.yaml,line=14,col=13,"), "{warning}");
    let json = run(&mut cleave_build(
        claims.path(),
        &["--log-style", "json"],
        &["--no-cache"],
    ));
    let unclaimed: serde_json::Value = stderr(&json)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|r| r["type"] == "unclaimed")
        .expect("an unclaimed record");
    assert_eq!(unclaimed["line"], 14, "{unclaimed}");

    // A recipe error: an annotation at the offending key.
    let bad = recipe_dir(&SLOW.replace("  noarch: generic", "  noarch: generic\n  scrip: oops"));
    let failed = run(cleave_build(bad.path(), &[], &[]).env("GITHUB_ACTIONS", "true"));
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    let text = stderr(&failed);
    assert!(
        text.lines()
            .any(|l| l.starts_with("::error file=") && l.contains("recipe.yaml,line=9,col=3,")),
        "{text}"
    );
}

#[test]
fn the_summary_gives_times_and_what_the_caches_saved() {
    let tmp = recipe_dir(SLOW);
    let first = run(&mut cleave_build(tmp.path(), &[], &[]));
    assert_success(&first);
    let table = stdout(&first);
    let header = table.lines().next().unwrap();
    assert!(header.trim_end().ends_with("time"), "{table}");
    assert!(
        table.contains("(1 built, 0 reused from the cache) in "),
        "{table}"
    );
    let second = run(&mut cleave_build(tmp.path(), &[], &[]));
    assert_success(&second);
    let table = stdout(&second);
    let saved = table
        .lines()
        .find(|l| l.starts_with("the caches saved about "))
        .unwrap_or_else(|| panic!("no savings in {table}"));
    // The first build's script slept 1.5 s: that is what the reuse saved.
    let seconds: f64 = saved["the caches saved about ".len()..]
        .split('s')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(seconds >= 1.5, "{saved}");
}

#[test]
fn cache_explain_names_the_changed_field_with_both_values() {
    let tmp = recipe_dir(SLOW);
    assert_success(&run(&mut cleave_build(tmp.path(), &[], &[])));
    let file = tmp.path().join("recipe/recipe.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("test-alpha", "test-beta")).unwrap();
    let explain = run(Command::new(env!("CARGO_BIN_EXE_cleave"))
        .args(["cache", "explain", "--recipe"])
        .arg(tmp.path().join("recipe"))
        .arg("--cache-dir")
        .arg(tmp.path().join("cache"))
        .arg("--output-dir")
        .arg(tmp.path().join("out")));
    assert_success(&explain);
    let text = stdout(&explain);
    let line = text
        .lines()
        .find(|l| l.contains("tests[0].script"))
        .unwrap_or_else(|| panic!("no field path in {text}"));
    assert!(line.contains("\"echo \\\"test-alpha\\\"\""), "{line}");
    assert!(line.contains("-> \"echo \\\"test-beta\\\"\""), "{line}");
}

#[test]
fn a_failed_build_can_be_entered_again() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("recipe")).unwrap();
    std::fs::copy(
        repo().join("tests/build/failing/recipe.yaml"),
        tmp.path().join("recipe/recipe.yaml"),
    )
    .unwrap();
    let failed = run(&mut cleave_build(tmp.path(), &[], &[]));
    assert_eq!(failed.status.code(), Some(1));
    let text = stderr(&failed);
    let kept = text
        .lines()
        .find_map(|l| {
            l.trim_start_matches(['│', '|', ' '])
                .strip_prefix("or: cleave debug shell --work-dir ")
        })
        .unwrap_or_else(|| panic!("no debug shell hint in {text}"))
        .trim()
        .to_string();
    let dir = Path::new(&kept);
    let env = std::fs::read_to_string(dir.join("build_env.sh")).unwrap();
    assert!(env.contains("export PREFIX="), "{env}");

    // By hand: the same failure, with the same exit code.
    let again = Command::new("bash")
        .arg("-c")
        .arg("source build_env.sh && bash build.sh")
        .current_dir(dir)
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&again.stderr).contains("boom, the compiler is missing"));

    // The debug shell has the script's variables, in its work dir.
    let mut shell = Command::new(env!("CARGO_BIN_EXE_cleave"))
        .args(["debug", "shell", "--work-dir"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    shell
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo \"prefix=$PREFIX cwd=$PWD\"\nexit 0\n")
        .unwrap();
    let shell = shell.wait_with_output().unwrap();
    assert_success(&shell);
    let out = stdout(&shell);
    let prefix = env
        .lines()
        .find_map(|l| l.strip_prefix("export PREFIX="))
        .unwrap()
        .trim_matches('\'');
    assert!(out.contains(&format!("prefix={prefix} ")), "{out}");
    assert!(
        out.contains(&format!("cwd={}", dir.join("work").display())),
        "{out}"
    );

    let nowhere = run(Command::new(env!("CARGO_BIN_EXE_cleave"))
        .args(["debug", "shell", "--work-dir"])
        .arg(tmp.path()));
    assert_eq!(nowhere.status.code(), Some(2));
    assert!(
        stderr(&nowhere).contains("no build_env.sh"),
        "{}",
        stderr(&nowhere)
    );
}

#[test]
fn a_failing_test_is_named_by_number_with_its_own_log() {
    let tmp = recipe_dir(
        r#"schema_version: 1
package:
  name: tested-twice
  version: "1.0"
build:
  noarch: generic
  script:
    - mkdir -p $PREFIX/share && echo hi > $PREFIX/share/t.txt
tests:
  - script:
      - echo "first test fine"
  - script:
      - echo "second-test-says-why" >&2
      - exit 4
"#,
    );
    let failed = run(&mut cleave_build(tmp.path(), &[], &[]));
    assert_eq!(failed.status.code(), Some(1));
    let text = stderr(&failed);
    assert!(text.contains("test 2 of tested-twice"), "{text}");
    let tail = text
        .split("last lines of the log")
        .nth(1)
        .unwrap_or_default();
    assert!(tail.contains("second-test-says-why"), "{text}");
    assert!(!tail.contains("first test fine"), "{text}");

    // On GitHub its annotation names the test, and points at no other
    // output's script.
    let failed = run(cleave_build(tmp.path(), &[], &[]).env("GITHUB_ACTIONS", "true"));
    let text = stderr(&failed);
    let error = text
        .lines()
        .find(|l| l.starts_with("::error "))
        .unwrap_or_else(|| panic!("no annotation in {text}"));
    assert!(error.contains("test 2 of tested-twice"), "{error}");
    assert!(!error.contains("line=8"), "{error}");
}

#[test]
fn an_unsatisfiable_requirement_names_the_channels_and_versions_searched() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("recipe")).unwrap();
    std::fs::copy(
        repo().join("tests/build/unsolvable/recipe.yaml"),
        tmp.path().join("recipe/recipe.yaml"),
    )
    .unwrap();
    let failed = run(&mut cleave_build(tmp.path(), &[], &[]));
    assert_eq!(failed.status.code(), Some(1));
    let text = stderr(&failed);
    assert!(text.contains("channels asked ("), "{text}");
    assert!(
        text.contains(&format!("file://{}", tmp.path().join("out").display())),
        "{text}"
    );
    assert!(
        text.contains("no-such-package-anywhere (asked `no-such-package-anywhere >=1`): none"),
        "{text}"
    );
}
