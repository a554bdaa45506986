//! Runs a build script with bash, its output streamed to a log file.
//!
//! The script runs under the build directory's [`crate::script::guard`]: its
//! processes are one group that is killed when the script ends, and when
//! cleave dies, so nothing it started writes on after it.
//!
//! Beside the log go the script (`build.sh` for `build.log`) and every
//! variable it sees, shell-quoted (`build_env.sh`, rattler-build's name),
//! so that a failed build can be run again by hand:
//! `source build_env.sh && bash build.sh` (or `cleave debug shell`).
//! Secret variables are named there, not written.

pub mod env;
pub mod guard;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::error::BuildError;
use guard::Guarded;

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
    /// Variables of `env` whose values must not be written to disk.
    pub secrets: &'a [String],
    /// Where the output goes.
    pub log: &'a Path,
    /// Kept for the error message, so the user can look around.
    pub work_dir: PathBuf,
    /// Which script it is, for messages: `the build script of NAME`.
    pub what: String,
    /// The guard of the build directory the script works in.
    pub guard: Guarded<'a>,
}

/// The shell options every script runs with: rattler-build's (and
/// conda-build's). A failing command stops the script, each command is
/// traced into the log; a reference to an unset variable is empty and a
/// failure inside a pipeline counts only at its end, as conda-forge's
/// scripts expect (`make ${VERBOSE_AT}`).
pub const PREAMBLE: &str = "set -e\nset -x\n";

/// Writes the script next to the log and runs it; lines go to the log and to
/// `echo` (the caller's progress display).
pub fn run(script: &ScriptRun<'_>, echo: &mut dyn FnMut(&str)) -> Result<(), BuildError> {
    let io = |source| BuildError::Io {
        context: format!("running {}", script.what),
        source,
    };
    let file = script.log.with_extension("sh");
    // Starting in its own directory, the script also runs so by hand.
    std::fs::write(
        &file,
        format!(
            "cd {}\n{PREAMBLE}{}\n",
            shell_quote(&script.cwd.to_string_lossy()),
            script.text
        ),
    )
    .map_err(io)?;
    std::fs::write(
        env_file(script.log),
        env_script(&script.env, script.secrets),
    )
    .map_err(io)?;
    let mut log = std::fs::File::create(script.log).map_err(io)?;
    let mut child = script
        .guard
        .command("bash")
        .arg(&file)
        .current_dir(script.cwd)
        .env_clear()
        .envs(&script.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io)?;
    let (Some(stderr), Some(stdout)) = (child.stderr.take(), child.stdout.take()) else {
        return Err(io(std::io::Error::other(
            "the script's output is not piped",
        )));
    };
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let err_tx = tx.clone();
    let err_thread = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = err_tx.send(line);
        }
    });
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

/// Where the variables of the script logging to `log` are written:
/// `build_env.sh` beside `build.log`.
pub fn env_file(log: &Path) -> PathBuf {
    let stem = log
        .file_stem()
        .map_or_else(|| "build".into(), |s| s.to_string_lossy());
    log.with_file_name(format!("{stem}_env.sh"))
}

/// A bash script exporting `env`: the values are shell-quoted, so any byte
/// but NUL survives; `secrets` are exported from the caller's environment
/// instead of written down.
fn env_script(env: &BTreeMap<String, String>, secrets: &[String]) -> String {
    let mut text = String::from(
        "# Every variable the build script saw, activation included. Reproduce the\n\
         # build with: source build_env.sh && bash build.sh\n",
    );
    for (name, value) in env {
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            text.push_str(&format!(
                "# not a shell name, left out: {}\n",
                shell_quote(name)
            ));
        } else if secrets.contains(name) {
            text.push_str(&format!(
                "# {name} is a secret of the recipe: set it yourself\nexport {name}\n"
            ));
        } else {
            text.push_str(&format!("export {name}={}\n", shell_quote(value)));
        }
    }
    text
}

/// `text` in single quotes, for bash: nothing in it is expanded.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}
