//! Build scripts under their guard. This test binary is its own guard, as
//! the `cleave` binary is: started with `__guard` it runs
//! `cleave_build::script::guard::main`, and with `__parent` it plays a cleave that
//! starts a guarded script and is then killed. Hence `harness = false`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use cleave_build::BuildError;
use cleave_build::script::guard::Guard;
use cleave_build::script::{ScriptRun, run};

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    match args.first().and_then(|a| a.to_str()) {
        Some(Guard::ARG) => {
            let code = cleave_build::script::guard::main(&args[1..]);
            return ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX));
        }
        Some("__parent") => return parent(&args[1..]),
        _ => {}
    }
    let tests: [(&str, fn()); 5] = [
        (
            "output_goes_to_the_log_and_the_environment_is_exactly_the_given_one",
            output_goes_to_the_log_and_the_environment_is_exactly_the_given_one,
        ),
        (
            "an_unset_variable_is_empty_and_a_pipeline_counts_at_its_end",
            an_unset_variable_is_empty_and_a_pipeline_counts_at_its_end,
        ),
        (
            "a_failing_command_stops_the_script_and_reports_the_tail",
            a_failing_command_stops_the_script_and_reports_the_tail,
        ),
        (
            "processes_a_script_leaves_behind_are_killed_when_it_ends",
            processes_a_script_leaves_behind_are_killed_when_it_ends,
        ),
        (
            "a_script_dies_with_its_parent_and_frees_the_run_lock",
            a_script_dies_with_its_parent_and_frees_the_run_lock,
        ),
    ];
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failed = 0;
    let mut passed = 0;
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let ok = std::panic::catch_unwind(test).is_ok();
        let _ = std::io::Write::write_all(
            &mut std::io::stdout(),
            format!("test {name} ... {}\n", if ok { "ok" } else { "FAILED" }).as_bytes(),
        );
        if ok {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    let _ = std::io::Write::write_all(
        &mut std::io::stdout(),
        format!(
            "\ntest result: {}. {passed} passed; {failed} failed\n",
            if failed == 0 { "ok" } else { "FAILED" }
        )
        .as_bytes(),
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn guard() -> Guard {
    Guard::new(std::env::current_exe().unwrap())
}

fn script_in<'a>(
    dir: &'a Path,
    log: &'a Path,
    lock: &'a Path,
    guard: &'a Guard,
    text: &str,
) -> ScriptRun<'a> {
    ScriptRun {
        text: text.into(),
        cwd: dir,
        env: BTreeMap::from([
            (
                "PATH".to_string(),
                std::env::var("PATH").unwrap_or_default(),
            ),
            ("GREETING".to_string(), "hello".to_string()),
        ]),
        log,
        work_dir: dir.to_path_buf(),
        what: "demo".into(),
        guard: guard.with_lock(lock),
    }
}

fn output_goes_to_the_log_and_the_environment_is_exactly_the_given_one() {
    let dir = tempfile::tempdir().unwrap();
    let (log, lock, guard) = (
        dir.path().join("build.log"),
        dir.path().join("run.lock"),
        guard(),
    );
    let script = script_in(
        dir.path(),
        &log,
        &lock,
        &guard,
        "echo $GREETING\necho \"home=${HOME:-unset}\" >&2",
    );
    let mut seen = Vec::new();
    run(&script, &mut |line| seen.push(line.to_string())).unwrap();
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("hello") && log.contains("home=unset"), "{log}");
    // Each command is traced too (`set -x`), as rattler-build does.
    let (traces, lines): (Vec<&String>, Vec<&String>) =
        seen.iter().partition(|l| l.starts_with("+ "));
    assert_eq!((traces.len(), lines.len()), (2, 2), "{seen:?}");
}

fn an_unset_variable_is_empty_and_a_pipeline_counts_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let (log, lock, guard) = (
        dir.path().join("build.log"),
        dir.path().join("run.lock"),
        guard(),
    );
    // conda-forge's scripts pass ${VERBOSE_AT}, which nothing sets.
    let script = script_in(
        dir.path(),
        &log,
        &lock,
        &guard,
        "echo \"[${VERBOSE_AT}]\"\nfalse | true\necho done",
    );
    run(&script, &mut |_| {}).unwrap();
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("[]") && log.contains("done"), "{log}");
}

fn a_failing_command_stops_the_script_and_reports_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (log, lock, guard) = (
        dir.path().join("build.log"),
        dir.path().join("run.lock"),
        guard(),
    );
    let script = script_in(
        dir.path(),
        &log,
        &lock,
        &guard,
        "echo step one\nfalse\necho never",
    );
    match run(&script, &mut |_| {}).unwrap_err() {
        BuildError::ScriptFailed {
            code,
            tail,
            work_dir,
            ..
        } => {
            assert_eq!(code, Some(1));
            assert!(
                tail.contains("step one") && !tail.contains("never"),
                "{tail}"
            );
            assert_eq!(work_dir, dir.path());
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// True once no process has `pid`, within `limit`.
fn gone_within(pid: i32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        // A zombie still has a /proc entry; its state says `Z`.
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat)
                if stat
                    .rsplit(')')
                    .next()
                    .is_some_and(|s| s.trim_start().starts_with('Z')) =>
            {
                return true;
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    false
}

fn read_pid(path: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn processes_a_script_leaves_behind_are_killed_when_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (log, lock, guard) = (
        dir.path().join("build.log"),
        dir.path().join("run.lock"),
        guard(),
    );
    let pid_file = dir.path().join("bg.pid");
    // A background job that holds the output pipe open, and one that
    // leaves the process group: neither outlives the script, and the run
    // returns although they would run for a minute.
    let text = format!(
        "sleep 60 &\necho $! > {}\nsetsid sleep 60 &\necho started",
        pid_file.display()
    );
    let script = script_in(dir.path(), &log, &lock, &guard, &text);
    let started = Instant::now();
    run(&script, &mut |_| {}).unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(gone_within(read_pid(&pid_file), Duration::from_secs(5)));
}

/// Plays a cleave: starts the guarded script `args[1]` with the run lock
/// `args[0]`, then waits to be killed.
fn parent(args: &[std::ffi::OsString]) -> ExitCode {
    let guard = guard();
    let lock = PathBuf::from(&args[0]);
    let mut child = guard
        .with_lock(&lock)
        .command("bash")
        .arg("-c")
        .arg(&args[1])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    // Killed by the test long before the script ends.
    let _ = child.wait();
    ExitCode::SUCCESS
}

fn a_script_dies_with_its_parent_and_frees_the_run_lock() {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("run.lock");
    let pid_file = dir.path().join("script.pid");
    let script = format!(
        "trap '' TERM INT HUP; echo $$ > {}; while true; do sleep 0.05; done",
        pid_file.display()
    );
    let mut parent = Command::new(std::env::current_exe().unwrap())
        .arg("__parent")
        .arg(&lock)
        .arg(&script)
        .spawn()
        .unwrap();
    let pid = read_pid(&pid_file);
    parent.kill().unwrap();
    parent.wait().unwrap();
    assert!(
        gone_within(pid, Duration::from_secs(5)),
        "script {pid} outlived its parent"
    );
    // The guard let go of the run lock once everything was reaped.
    let file = std::fs::File::open(&lock).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while file.try_lock().is_err() {
        assert!(Instant::now() < deadline, "the run lock is still held");
        std::thread::sleep(Duration::from_millis(10));
    }
}
