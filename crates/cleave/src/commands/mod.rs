//! One module per subcommand.

pub(crate) mod build;
pub(crate) mod cache;
pub(crate) mod compile;
pub(crate) mod publish;
pub(crate) mod recipe;
pub(crate) mod remote;
pub(crate) mod render;
pub(crate) mod test;

use std::io::Write;

/// Writes a diagnostic with its source snippet to stderr.
pub(crate) fn print_report(report: &miette::Report) {
    let _ = writeln!(std::io::stderr().lock(), "{report:?}");
}
