//! One module per subcommand.

pub(crate) mod build;
pub(crate) mod cache;
mod changes;
pub(crate) mod compile;
pub(crate) mod debug;
pub(crate) mod publish;
pub(crate) mod recipe;
pub(crate) mod remote;
pub(crate) mod render;
pub(crate) mod test;

/// Writes a diagnostic with its source snippet to stderr, in the run's
/// log style (an annotation on GitHub, a record in JSON).
pub(crate) fn print_report(report: &miette::Report) {
    crate::output::printer().error(report, None);
}
