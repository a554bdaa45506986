//! `cleave publish`: packages into a channel, indexed, in one step (and
//! `cleave build --publish-to`).

use std::io::Write;
use std::path::PathBuf;

use cleave_channel::local::Placed;
use cleave_channel::publish::Target;
use miette::IntoDiagnostic;

use crate::Status;
use crate::cli::PublishArgs;

pub(crate) fn run(args: PublishArgs) -> miette::Result<Status> {
    Ok(if publish(&args.to, &args.packages, args.force)? {
        Status::Success
    } else {
        Status::Failure
    })
}

/// Publishes `files` to the channel `url` names and prints what happened;
/// `false` (after printing why) when it failed. A URL that names no
/// channel is an error of the arguments.
pub(crate) fn publish(url: &str, files: &[PathBuf], force: bool) -> miette::Result<bool> {
    let cwd = std::env::current_dir().into_diagnostic()?;
    let target = Target::parse(url, &cwd).into_diagnostic()?;
    match cleave_channel::publish::publish(&target, files, force) {
        Ok(published) => {
            let mut out = std::io::stdout().lock();
            for (file, placed) in &published.packages {
                let how = match placed {
                    Placed::New => "published",
                    Placed::Same => "already there",
                    Placed::Replaced => "replaced",
                };
                writeln!(out, "{how}: {file} in {target}").into_diagnostic()?;
            }
            for subdir in &published.indexed {
                writeln!(
                    out,
                    "indexed {}: {} package{} listed, {} read",
                    subdir.subdir,
                    subdir.packages,
                    if subdir.packages == 1 { "" } else { "s" },
                    subdir.read
                )
                .into_diagnostic()?;
            }
            if published.indexed.is_empty() {
                writeln!(out, "{target} indexes the packages itself").into_diagnostic()?;
            }
            Ok(true)
        }
        Err(err) => {
            super::print_report(&miette::Report::from_err(err));
            Ok(false)
        }
    }
}
