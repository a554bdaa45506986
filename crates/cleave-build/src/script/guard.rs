//! Keeps the processes a build starts from outliving it.
//!
//! Build directories are named by key, so the next build of the same key
//! works in the same directories. A script that outlives a killed build
//! (`kill -9` of cleave, `killall -9 cleave`, Ctrl-C, its process group
//! killed) would go on writing into them while the next build recreates
//! and fills them: extra lines in a packaged log, `Directory not empty`.
//! So every script, and every tool that writes into a build directory
//! (`git`, `patch`), runs under two guards, each the `cleave` binary
//! started again:
//!
//! ```text
//! cleave ─ cleave-guard ─ script-guard ─ bash build.sh ─ ...
//! ```
//!
//! - `cleave __guard PARENT LOCK -- PROGRAM ARGS...`, the guard, renames
//!   itself `cleave-guard` (so `killall cleave` leaves it alone), asks the
//!   kernel for SIGTERM when cleave dies (`PR_SET_PDEATHSIG`, then checks
//!   that cleave is still its parent: it may have died before), and starts
//!   the script's guard. When cleave dies or signals it, it passes SIGTERM
//!   on and waits until the script's guard is done.
//! - `cleave __guard --leader PARENT LOCK -- PROGRAM ARGS...`, the
//!   script's guard, renames itself `script-guard` (no `cleave` in it, so
//!   not even `pkill cleave` matches), asks for SIGTERM when the guard
//!   dies, becomes a child subreaper (every descendant of the command stays
//!   its descendant, even one that leaves the process group), holds the
//!   build directory's run lock (`flock`), and runs the command in a
//!   process group of its own. When the command exits, or when the guard
//!   dies or signals it, it kills the command's group and every other
//!   descendant with SIGKILL and reaps them all before it exits, which
//!   releases the run lock.
//!
//! So the script dies however cleave is killed: cleave alone (the guard
//! passes it on), the guard alone (the script's guard sees its parent
//! die), both at once as `killall -9 cleave` would do without the new
//! names, or the script's guard alone (the guard, a subreaper too, is left
//! with its orphans and kills them). Only the last lets go of the run lock
//! before the guard has killed the orphans.
//!
//! A build takes the run lock before it recreates its directories
//! ([`crate::layout::OutputDirs::recreate`]), so it waits until every
//! process of a killed build is gone, and no leftover of it can write into
//! the fresh directories.
//!
//! The guards are processes of their own rather than code in cleave
//! because the parent-death signal has to be set in the process it
//! protects against, between `fork` and `exec`, which safe Rust cannot do
//! for a child; and because cleave itself may be killed with SIGKILL,
//! which no handler sees. There are two because a process killed with
//! SIGKILL cleans up nothing: each guard is the other's parent-death
//! signal.

use std::ffi::{CStr, OsStr, OsString};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// How to start the guard: a program that calls [`main`] when given
/// [`Guard::ARG`] as its first argument.
#[derive(Debug, Clone)]
pub struct Guard {
    program: PathBuf,
}

impl Guard {
    /// The first argument that makes a program act as the guard.
    pub const ARG: &'static str = "__guard";

    /// The guard is `program __guard ...`; `program` must hand the
    /// arguments after [`Guard::ARG`] to [`main`].
    pub fn new(program: impl Into<PathBuf>) -> Guard {
        Guard {
            program: program.into(),
        }
    }

    /// Commands under this guard, holding the run lock `lock` of the build
    /// directory they write into.
    pub fn with_lock<'a>(&'a self, lock: &'a Path) -> Guarded<'a> {
        Guarded { guard: self, lock }
    }
}

/// The guard and the run lock for one build directory.
#[derive(Debug, Clone, Copy)]
pub struct Guarded<'a> {
    guard: &'a Guard,
    lock: &'a Path,
}

impl Guarded<'_> {
    /// A command that runs `program` under the guard; add its arguments,
    /// environment and directory as to any command (the guard passes them
    /// on). Its exit status is the program's.
    ///
    /// Start it from a thread that lives as long as the command: the
    /// kernel's parent-death signal follows the thread that started the
    /// guard, not the process.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(&self.guard.program);
        cmd.arg(Guard::ARG)
            .arg(std::process::id().to_string())
            .arg(self.lock)
            .arg("--")
            .arg(program)
            .process_group(0);
        cmd
    }
}

/// Exit status of a guard whose parent was gone before the command started.
const PARENT_GONE: i32 = 125;

/// The first argument after [`Guard::ARG`] that makes the script's guard.
const LEADER_ARG: &str = "--leader";

/// What `ps` and `killall` see of the guard: not `cleave`, so that
/// `killall cleave` leaves it to pass the kill on.
const GUARD_NAME: &CStr = c"cleave-guard";

/// What `ps` and `killall` see of the script's guard: nothing with `cleave`
/// in it, so that not even `pkill cleave` (a pattern) reaches it.
const LEADER_NAME: &CStr = c"script-guard";

/// Why the guard could not run a command.
#[derive(Debug, thiserror::Error)]
enum GuardError {
    #[error("usage: {} PARENT_PID LOCK -- PROGRAM [ARGS...]", Guard::ARG)]
    Usage,
    #[error("{what}")]
    Os {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn os(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> GuardError {
    let what = what.into();
    move |source| GuardError::Os { what, source }
}

fn errno(what: &str) -> impl FnOnce(Errno) -> GuardError + '_ {
    move |e| GuardError::Os {
        what: what.to_string(),
        source: std::io::Error::from(e),
    }
}

/// The guard's body: `args` are those after [`Guard::ARG`]. Returns the
/// exit status to exit with (a command killed by a signal makes the
/// guard die of the same signal where it can).
pub fn main(args: &[OsString]) -> i32 {
    let ended = match args.split_first() {
        Some((first, rest)) if first == LEADER_ARG => Call::parse(rest).and_then(lead),
        _ => Call::parse(args).and_then(guard),
    };
    match ended {
        Ok(Ended::Exited(code)) => code,
        Ok(Ended::Signaled(signal)) => die_of(signal),
        Err(err) => {
            let mut text = format!("cleave guard: {err}");
            if let Some(source) = std::error::Error::source(&err) {
                text.push_str(&format!(": {source}"));
            }
            let _ = writeln!(std::io::stderr(), "{text}");
            PARENT_GONE
        }
    }
}

/// How the guarded command ended.
enum Ended {
    Exited(i32),
    Signaled(i32),
}

/// `PARENT LOCK -- PROGRAM ARGS...`, as both guards take them.
struct Call<'a> {
    parent: u32,
    lock: &'a OsString,
    program: &'a OsString,
    rest: &'a [OsString],
}

impl<'a> Call<'a> {
    fn parse(args: &'a [OsString]) -> Result<Call<'a>, GuardError> {
        let [parent, lock, dashes, program, rest @ ..] = args else {
            return Err(GuardError::Usage);
        };
        match parent.to_str().map(str::parse) {
            Some(Ok(parent)) if dashes == "--" => Ok(Call {
                parent,
                lock,
                program,
                rest,
            }),
            _ => Err(GuardError::Usage),
        }
    }
}

/// Renames the process, asks for SIGTERM when its parent dies, becomes a
/// subreaper and installs the handlers; `None` when the parent is already
/// gone (the signal would never come).
fn watch_parent(name: &CStr, parent: u32) -> Result<Option<Signals>, GuardError> {
    // Before anything else: the old name is the one `killall` looks for.
    nix::sys::prctl::set_name(name).map_err(errno("renaming the process"))?;
    // Handlers first: a parent that dies from here on is seen.
    let signals = Signals::new([SIGTERM, SIGINT, SIGHUP, SIGCHLD])
        .map_err(os("installing signal handlers"))?;
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)
        .map_err(errno("asking for the parent-death signal"))?;
    nix::sys::prctl::set_child_subreaper(true).map_err(errno("becoming a subreaper"))?;
    Ok((std::os::unix::process::parent_id() == parent).then_some(signals))
}

/// The guard: runs the script's guard and, when cleave dies or signals it,
/// has it kill the command and waits until it is done.
fn guard(call: Call<'_>) -> Result<Ended, GuardError> {
    let Some(mut signals) = watch_parent(GUARD_NAME, call.parent)? else {
        return Ok(Ended::Exited(PARENT_GONE));
    };
    // This very binary, even if the file was replaced since it started.
    let leader = Command::new("/proc/self/exe")
        .arg(Guard::ARG)
        .arg(LEADER_ARG)
        .arg(std::process::id().to_string())
        .arg(call.lock)
        .arg("--")
        .arg(call.program)
        .args(call.rest)
        .process_group(0)
        .spawn()
        .map_err(os("starting the script's guard"))?;
    let pid = Pid::from_raw(i32::try_from(leader.id()).unwrap_or(i32::MAX));
    let mut ended = None;
    let mut stopped_by = None;
    while ended.is_none() {
        for signal in signals.wait() {
            if signal != SIGCHLD && stopped_by.is_none() {
                // The script's guard kills the command and lets go of the
                // run lock once all of it is reaped.
                let _ = kill(pid, Signal::SIGTERM);
                stopped_by = Some(signal);
            }
        }
        ended = reap_exited(pid)?.or(ended);
    }
    // Whatever the script's guard left: it was killed itself, say.
    kill_all(pid);
    Ok(match (stopped_by, ended) {
        (Some(signal), _) => Ended::Signaled(signal),
        (None, Some(ended)) => ended,
        (None, None) => Ended::Exited(PARENT_GONE),
    })
}

/// The script's guard: holds the run lock, runs the command, and kills it
/// and all its descendants when it ends or the guard dies.
fn lead(call: Call<'_>) -> Result<Ended, GuardError> {
    let Some(mut signals) = watch_parent(LEADER_NAME, call.parent)? else {
        return Ok(Ended::Exited(PARENT_GONE));
    };
    let lock = Path::new(call.lock);
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock)
        .map_err(os(format!("opening {}", lock.display())))?;
    // Free unless the processes of a killed build of the same directory
    // are still being reaped.
    lock_file
        .lock()
        .map_err(os(format!("locking {}", lock.display())))?;
    if std::os::unix::process::parent_id() != call.parent {
        return Ok(Ended::Exited(PARENT_GONE));
    }
    let child = Command::new(call.program)
        .args(call.rest)
        .process_group(0)
        .spawn()
        .map_err(os(format!(
            "starting {}",
            Path::new(call.program).display()
        )))?;
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let mut ended = None;
    let mut stopped_by = None;
    while ended.is_none() && stopped_by.is_none() {
        for signal in signals.wait() {
            if signal != SIGCHLD {
                stopped_by = Some(signal);
            }
        }
        ended = reap_exited(pid)?.or(ended);
    }
    kill_all(pid);
    drop(lock_file);
    Ok(match (stopped_by, ended) {
        (Some(signal), _) => Ended::Signaled(signal),
        (None, Some(ended)) => ended,
        (None, None) => Ended::Exited(PARENT_GONE),
    })
}

/// Reaps every child that has exited; how `pid` ended, if it has.
fn reap_exited(pid: Pid) -> Result<Option<Ended>, GuardError> {
    let mut ended = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p == pid => ended = Some(Ended::Exited(code)),
            Ok(WaitStatus::Signaled(p, signal, _)) if p == pid => {
                ended = Some(Ended::Signaled(signal as i32));
            }
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return Ok(ended),
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(errno("waiting for the command")(e)),
        }
    }
}

/// Kills the command's process group and every other descendant (which,
/// with the guard a subreaper, are all its children by the time their
/// parents are gone), and reaps them until none is left.
fn kill_all(group: Pid) {
    loop {
        let _ = killpg(group, Signal::SIGKILL);
        for child in children() {
            // An orphaned group leader (the command, after the script's
            // guard was killed) takes its group along.
            let _ = killpg(child, Signal::SIGKILL);
            let _ = kill(child, Signal::SIGKILL);
        }
        // Blocks until one exits; a descendant orphaned meanwhile is a
        // child by then, and killed on the next round.
        match waitpid(None, None) {
            Err(Errno::ECHILD) => return,
            Err(Errno::EINTR) | Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// The guard's children, from `/proc`: those whose parent is this process.
fn children() -> Vec<Pid> {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid ...`; comm may hold spaces and parens.
            let after = &stat[stat.rfind(')')? + 1..];
            let ppid = after.split_whitespace().nth(1)?;
            (ppid == me).then_some(Pid::from_raw(pid))
        })
        .collect()
}

/// Signals whose default action dumps core: the guard exits with 128 + the
/// signal instead of dumping a core of its own.
const CORE_SIGNALS: &[Signal] = &[
    Signal::SIGQUIT,
    Signal::SIGILL,
    Signal::SIGTRAP,
    Signal::SIGABRT,
    Signal::SIGBUS,
    Signal::SIGFPE,
    Signal::SIGSEGV,
    Signal::SIGXCPU,
    Signal::SIGXFSZ,
    Signal::SIGSYS,
];

/// Ends the guard as `signal` ended the command, so the caller sees the
/// same status; 128 + the signal where it cannot.
fn die_of(signal: i32) -> i32 {
    let core = CORE_SIGNALS.iter().any(|s| *s as i32 == signal);
    if !core {
        let _ = signal_hook::low_level::emulate_default_handler(signal);
    }
    128 + signal
}
