//! The build engine of cleave: from rendered outputs to conda packages.
//!
//! The pieces, in the order a build uses them:
//! - [`layout`]: the directories of one output's build, with a padded `$PREFIX`;
//! - [`script`]: runs a build script with bash, its output kept in a log;
//! - [`capture`]: finds the files a build added to the prefix and applies an
//!   output's `files` selection;
//! - [`package`]: writes the `.conda` / `.tar.bz2` archive with its `info/`.
//!
//! Solving and installing environments, fetching sources and indexing the
//! output channel come next (issue "Build engine"); this crate knows nothing
//! of the staging cache's storage, which lives in its own crate.

pub mod capture;
mod error;
pub mod layout;
pub mod package;
pub mod script;

pub use error::BuildError;
