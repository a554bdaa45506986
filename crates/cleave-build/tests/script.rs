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

mod processes;
use processes::gone_within;

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
    let tests: [(&str, fn()); 9] = [
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
        ("a_script_dies_with_its_guard", a_script_dies_with_its_guard),
        (
            "a_script_dies_when_its_parent_and_guard_are_killed_at_once",
            a_script_dies_when_its_parent_and_guard_are_killed_at_once,
        ),
        (
            "a_script_dies_when_every_process_named_as_its_parent_is_killed",
            a_script_dies_when_every_process_named_as_its_parent_is_killed,
        ),
        (
            "a_script_dies_with_the_script_guard_killed_alone",
            a_script_dies_with_the_script_guard_killed_alone,
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
        secrets: &[],
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

/// A parent (a stand-in for cleave) running a guarded script that ignores
/// polite signals and writes its pid, then loops; kill what you like.
struct Killable {
    dir: tempfile::TempDir,
    parent: std::process::Child,
    /// The script's shell.
    script: i32,
}

impl Killable {
    fn start() -> Killable {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("script.pid");
        let script = format!(
            "trap '' TERM INT HUP; echo $$ > {}; while true; do sleep 0.05; done",
            pid_file.display()
        );
        let parent = Command::new(std::env::current_exe().unwrap())
            .arg("__parent")
            .arg(dir.path().join("run.lock"))
            .arg(&script)
            .spawn()
            .unwrap();
        let script = read_pid(&pid_file);
        Killable {
            dir,
            parent,
            script,
        }
    }

    fn parent(&self) -> i32 {
        i32::try_from(self.parent.id()).unwrap()
    }

    /// Checks that the script is gone and the run lock free, soon.
    fn assert_script_gone(mut self, after: &str) {
        assert!(
            gone_within(self.script, Duration::from_secs(5)),
            "script {} outlived {after}",
            self.script
        );
        // The guard let go of the run lock once everything was reaped.
        let file = std::fs::File::open(self.dir.path().join("run.lock")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while file.try_lock().is_err() {
            assert!(
                Instant::now() < deadline,
                "the run lock is still held after {after}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.parent.kill();
        let _ = self.parent.wait();
    }
}

/// `pid`, parent pid and name (`comm`) of every process, from `/proc`.
fn processes() -> Vec<(i32, i32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold spaces and parens.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let Some(ppid) = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
        else {
            continue;
        };
        found.push((pid, ppid, stat[open + 1..close].to_string()));
    }
    found
}

/// `root` and its descendants, with their names.
fn tree(root: i32) -> Vec<(i32, String)> {
    let all = processes();
    let mut found: Vec<(i32, String)> = all
        .iter()
        .filter(|(pid, ..)| *pid == root)
        .map(|(pid, _, name)| (*pid, name.clone()))
        .collect();
    let mut i = 0;
    while i < found.len() {
        let parent = found[i].0;
        found.extend(
            all.iter()
                .filter(|(_, ppid, _)| *ppid == parent)
                .map(|(pid, _, name)| (*pid, name.clone())),
        );
        i += 1;
    }
    found
}

/// The one child of `parent`.
fn child_of(parent: i32) -> i32 {
    let children: Vec<i32> = processes()
        .into_iter()
        .filter(|(_, ppid, _)| *ppid == parent)
        .map(|(pid, ..)| pid)
        .collect();
    assert_eq!(children.len(), 1, "children of {parent}: {children:?}");
    children[0]
}

/// SIGKILL to every one of `pids` at once: all are stopped first, and
/// the last (the deepest, in tree order) killed first, so that none can
/// act on the death of another before it dies too (one by one, a guard
/// can win the race against its own kill).
fn sigkill(pids: &[i32]) {
    use nix::sys::signal::{Signal, kill};
    for &pid in pids {
        let _ = kill(nix::unistd::Pid::from_raw(pid), Signal::SIGSTOP);
    }
    for &pid in pids.iter().rev() {
        let _ = kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    }
}

fn a_script_dies_with_its_parent_and_frees_the_run_lock() {
    let run = Killable::start();
    sigkill(&[run.parent()]);
    run.assert_script_gone("its parent");
}

fn a_script_dies_with_its_guard() {
    let run = Killable::start();
    let guard = child_of(run.parent());
    sigkill(&[guard]);
    run.assert_script_gone("its guard");
}

fn a_script_dies_when_its_parent_and_guard_are_killed_at_once() {
    let run = Killable::start();
    let guard = child_of(run.parent());
    sigkill(&[run.parent(), guard]);
    run.assert_script_gone("its parent and its guard");
}

/// As `killall -9 NAME` does with the parent's name: every process of
/// that name at once (here those of this run only, not the machine's).
fn a_script_dies_when_every_process_named_as_its_parent_is_killed() {
    let run = Killable::start();
    let processes = tree(run.parent());
    let name = processes[0].1.clone();
    let named: Vec<i32> = processes
        .iter()
        .filter(|(_, n)| *n == name)
        .map(|(pid, _)| *pid)
        .collect();
    sigkill(&named);
    run.assert_script_gone(&format!("every process named {name}"));
}

fn a_script_dies_with_the_script_guard_killed_alone() {
    let run = Killable::start();
    let script_guard = child_of(child_of(run.parent()));
    let names: Vec<String> = tree(run.parent()).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names[1..3], ["cleave-guard", "script-guard"], "{names:?}");
    sigkill(&[script_guard]);
    run.assert_script_gone("the script's guard");
}
