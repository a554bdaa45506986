//! `cleave debug shell`: back into the environment of a failed build.
//!
//! A failed build keeps its directory with the script (`build.sh`) and
//! every variable it saw (`build_env.sh`); this opens an interactive bash
//! with those variables, in the script's work dir, so the failing command
//! can be run again and looked at.

use std::path::{Path, PathBuf};
use std::process::Command;

use miette::{IntoDiagnostic, WrapErr, miette};

use crate::Status;
use crate::cli::DebugCommand;

pub(crate) fn run(command: DebugCommand) -> miette::Result<Status> {
    match command {
        DebugCommand::Shell { work_dir } => shell(&work_dir),
    }
}

fn shell(dir: &Path) -> miette::Result<Status> {
    let dir = std::path::absolute(dir).into_diagnostic()?;
    let env_file = find_env_file(&dir).ok_or_else(|| {
        miette!(
            "no build_env.sh in {} or above it: give the directory a failed build printed \
             (`work dir kept at: ...`)",
            dir.display()
        )
    })?;
    let build_dir = env_file.parent().unwrap_or(&dir);
    // The work dir the script started in: the one given when it is inside
    // the build's directory, else the build's `work/`.
    let cwd = if dir != build_dir {
        dir.clone()
    } else if build_dir.join("work").is_dir() {
        build_dir.join("work")
    } else {
        build_dir.to_path_buf()
    };
    crate::output::printer().line(&format!(
        "cleave: a shell with the variables of {} in {}; `bash {}` runs the script again, \
         `exit` leaves",
        env_file.display(),
        cwd.display(),
        build_dir.join("build.sh").display()
    ));
    let status = Command::new("bash")
        .arg("--noprofile")
        .arg("--rcfile")
        .arg(&env_file)
        .arg("-i")
        .current_dir(&cwd)
        .status()
        .into_diagnostic()
        .wrap_err("cannot start bash")?;
    Ok(if status.success() {
        Status::Success
    } else {
        Status::Failure
    })
}

/// `build_env.sh` (or a test's `test_env.sh`) in `dir` or the nearest
/// directory above it that has one.
fn find_env_file(dir: &Path) -> Option<PathBuf> {
    dir.ancestors().find_map(|d| {
        ["build_env.sh", "test_env.sh"]
            .iter()
            .map(|name| d.join(name))
            .find(|f| f.is_file())
    })
}
