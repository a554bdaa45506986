//! Runs a build script with bash, its output streamed to a log file.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::BuildError;

/// How many log lines a failure shows.
const TAIL_LINES: usize = 30;

/// A script ready to run.
#[derive(Debug)]
pub struct ScriptRun<'a> {
    /// The script text.
    pub text: String,
    /// Working directory.
    pub cwd: &'a Path,
    /// The complete environment (nothing is inherited).
    pub env: BTreeMap<String, String>,
    /// Where the output goes.
    pub log: &'a Path,
    /// Kept for the error message, so the user can look around.
    pub work_dir: PathBuf,
    /// What is being built, for messages.
    pub what: String,
}

/// Writes the script next to the log and runs it; lines go to the log and to
/// `echo` (the caller's progress display).
pub fn run(script: &ScriptRun<'_>, echo: &mut dyn FnMut(&str)) -> Result<(), BuildError> {
    let io = |source| BuildError::Io {
        context: format!("running the script of {}", script.what),
        source,
    };
    let file = script.log.with_extension("sh");
    std::fs::write(&file, format!("set -euo pipefail\n{}\n", script.text)).map_err(io)?;
    let mut log = std::fs::File::create(script.log).map_err(io)?;
    let mut child = Command::new("bash")
        .arg(&file)
        .current_dir(script.cwd)
        .env_clear()
        .envs(&script.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io)?;
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let err_tx = tx.clone();
    let err_thread = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = err_tx.send(line);
        }
    });
    let stdout = child.stdout.take().expect("piped stdout");
    let out_thread = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut tail = std::collections::VecDeque::with_capacity(TAIL_LINES);
    for line in rx {
        writeln!(log, "{line}").map_err(io)?;
        echo(&line);
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    let _ = out_thread.join();
    let _ = err_thread.join();
    let status = child.wait().map_err(io)?;
    log.flush().map_err(io)?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildError::ScriptFailed {
            what: script.what.clone(),
            code: status.code(),
            tail: tail.into_iter().collect::<Vec<_>>().join("\n"),
            log: script.log.to_path_buf(),
            work_dir: script.work_dir.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script_in<'a>(dir: &'a Path, log: &'a Path, text: &str) -> ScriptRun<'a> {
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
        }
    }

    #[test]
    fn output_goes_to_the_log_and_the_environment_is_exactly_the_given_one() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("build.log");
        let script = script_in(
            dir.path(),
            &log,
            "echo $GREETING\necho \"home=${HOME:-unset}\" >&2",
        );
        let mut seen = Vec::new();
        run(&script, &mut |line| seen.push(line.to_string())).unwrap();
        let log = std::fs::read_to_string(dir.path().join("build.log")).unwrap();
        assert!(log.contains("hello") && log.contains("home=unset"), "{log}");
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn a_failing_command_stops_the_script_and_reports_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("build.log");
        let script = script_in(dir.path(), &log, "echo step one\nfalse\necho never");
        let err = run(&script, &mut |_| {}).unwrap_err();
        match err {
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
}
