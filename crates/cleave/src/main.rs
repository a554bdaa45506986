//! The `cleave` command line: build conda packages from `recipe.yaml`,
//! building once and splitting the result into many packages.

mod cli;
mod commands;
mod config;
mod output;

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
    // A compiler call first: it runs once per compile, before any parsing.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = commands::compile::from_argv(&argv) {
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    // Before the command line is parsed: the guard is cleave's own binary
    // started again by a build (see cleave_build::script::guard), not a command.
    if argv
        .get(1)
        .is_some_and(|a| a == cleave_build::script::guard::Guard::ARG)
    {
        let code = cleave_build::script::guard::main(&argv[2..]);
        return ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX));
    }
    let cli = Cli::parse_from(argv);
    output::init(&cli.global);
    let result = match cli.command {
        Command::Cc(args) => {
            let code = commands::compile::run(args.compiler, args.args);
            return ExitCode::from(u8::try_from(code).unwrap_or(1));
        }
        Command::Render(args) => commands::render::run(args),
        Command::Build(args) => commands::build::run(*args),
        Command::Publish(args) => commands::publish::run(args),
        Command::Test(args) => commands::test::run(args),
        Command::Cache(command) => commands::cache::run(command),
        Command::Debug(command) => commands::debug::run(command),
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
