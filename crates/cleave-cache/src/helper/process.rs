//! One run of a helper with a deadline that holds whatever the helper does.
//!
//! The helper runs in a process group of its own. Its stdin is written, and
//! its stdout and stderr read, by threads that report to this one; nothing
//! here waits on a pipe or a process without the deadline. A call is done
//! when the helper has exited and its stdout is closed. At the deadline the
//! whole group is killed and the call fails, whatever it was waiting for:
//! the helper itself, or something it started that still holds its stdout
//! (a helper that exits leaving `sleep 100 &` behind). When a call is done
//! but something of the group still holds the helper's stdin or stderr
//! after a short grace, the group is killed too: the call is over, and a
//! leftover blocking a pipe would otherwise hold a thread for ever.
//!
//! Threads are never joined: one blocked on a pipe ends when the group
//! dies, and one blocked on a process that escaped the group (a new
//! session) cannot hold the caller.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// How long a finished call waits for the helper's stdin and stderr to be
/// let go before its group is killed.
const GRACE: Duration = Duration::from_millis(200);

/// The most of the helper's stderr kept (the end of it), for a message.
const STDERR_KEPT: usize = 64 * 1024;

/// What a run gave.
#[derive(Debug)]
pub(super) struct Finished {
    /// How the helper exited.
    pub status: ExitStatus,
    /// Its stdout, at most the limit given (and one byte more, to tell).
    pub stdout: Vec<u8>,
    /// The end of its stderr.
    pub stderr: Vec<u8>,
}

/// Why a run gave nothing.
#[derive(Debug, thiserror::Error)]
pub(super) enum RunError {
    /// It could not be started.
    #[error("cannot run it: {0}")]
    Spawn(#[source] std::io::Error),
    /// It printed more than the limit on stdout.
    #[error("printed more than {0} bytes; stopped")]
    TooMuch(u64),
    /// The deadline passed before the helper finished.
    #[error("did not finish within {0:.1} s; its process group was killed")]
    Late(f64),
    /// The helper exited, but something it started kept its stdout open
    /// past the deadline.
    #[error(
        "exited, but what it started kept its output open past the {0:.1} s deadline; its process group was killed"
    )]
    Leftover(f64),
}

enum Event {
    Exited(std::io::Result<ExitStatus>),
    Stdout(Vec<u8>),
    StdinDone,
    StderrDone,
}

/// Runs `program arg` with `input` on stdin, reading at most `limit + 1`
/// bytes of stdout, within `timeout`.
pub(super) fn run(
    program: &Path,
    arg: &str,
    input: Vec<u8>,
    limit: u64,
    timeout: Duration,
) -> Result<Finished, RunError> {
    let deadline = Instant::now() + timeout;
    let mut child = Command::new(program)
        .arg(arg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(RunError::Spawn)?;
    let group = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let kill = || {
        let _ = killpg(group, Signal::SIGKILL);
    };
    let (events, inbox) = mpsc::channel();
    if let Some(mut stdin) = child.stdin.take() {
        let events = events.clone();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
            drop(stdin);
            let _ = events.send(Event::StdinDone);
        });
    } else {
        let _ = events.send(Event::StdinDone);
    }
    if let Some(stdout) = child.stdout.take() {
        let events = events.clone();
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = stdout.take(limit.saturating_add(1)).read_to_end(&mut out);
            let _ = events.send(Event::Stdout(out));
        });
    }
    let stderr_kept = Arc::new(Mutex::new(Vec::new()));
    if let Some(mut stderr) = child.stderr.take() {
        let events = events.clone();
        let kept = Arc::clone(&stderr_kept);
        std::thread::spawn(move || {
            let mut buf = [0; 8192];
            while let Ok(n @ 1..) = stderr.read(&mut buf) {
                if let Ok(mut kept) = kept.lock() {
                    kept.extend_from_slice(&buf[..n]);
                    let over = kept.len().saturating_sub(STDERR_KEPT);
                    kept.drain(..over);
                }
            }
            let _ = events.send(Event::StderrDone);
        });
    } else {
        let _ = events.send(Event::StderrDone);
    }
    {
        let events = events.clone();
        std::thread::spawn(move || {
            let _ = events.send(Event::Exited(child.wait()));
        });
    }
    drop(events);

    let mut status = None;
    let mut stdout = None;
    let (mut stdin_done, mut stderr_done) = (false, false);
    let seconds = timeout.as_secs_f64();
    let (status, stdout) = loop {
        if let (Some(status), Some(stdout)) = (status, &mut stdout) {
            break (status, std::mem::take(stdout));
        }
        let now = Instant::now();
        let event = match inbox.recv_timeout(deadline.saturating_duration_since(now)) {
            Ok(event) => event,
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                kill();
                return Err(match status {
                    Some(_) => RunError::Leftover(seconds),
                    None => RunError::Late(seconds),
                });
            }
        };
        match event {
            Event::Exited(Ok(exited)) => status = Some(exited),
            Event::Exited(Err(e)) => {
                kill();
                return Err(RunError::Spawn(e));
            }
            Event::Stdout(out) if out.len() as u64 > limit => {
                kill();
                return Err(RunError::TooMuch(limit));
            }
            Event::Stdout(out) => stdout = Some(out),
            Event::StdinDone => stdin_done = true,
            Event::StderrDone => stderr_done = true,
        }
    };
    let grace = (Instant::now() + GRACE).min(deadline);
    while !(stdin_done && stderr_done) {
        match inbox.recv_timeout(grace.saturating_duration_since(Instant::now())) {
            Ok(Event::StdinDone) => stdin_done = true,
            Ok(Event::StderrDone) => stderr_done = true,
            Ok(_) => {}
            Err(_) => {
                kill();
                break;
            }
        }
    }
    let stderr = stderr_kept.lock().map(|k| k.clone()).unwrap_or_default();
    Ok(Finished {
        status,
        stdout,
        stderr,
    })
}
