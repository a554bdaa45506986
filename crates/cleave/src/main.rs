//! The `cleave` command line: build conda packages from `recipe.yaml`,
//! building once and splitting the result into many packages.

mod cli;
mod commands;
mod config;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// Exit statuses: data on stdout, diagnostics on stderr.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Status {
    /// The command did what was asked.
    Success,
    /// The recipe or variants are wrong, or the build failed.
    Failure,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Render(args) => commands::render::run(args),
        Command::Build(args) => commands::build::run(args),
        Command::Cache(command) => commands::cache::run(command),
    };
    match result {
        Ok(Status::Success) => ExitCode::SUCCESS,
        Ok(Status::Failure) => ExitCode::from(1),
        Err(report) => {
            commands::print_report(&report);
            ExitCode::from(2)
        }
    }
}
