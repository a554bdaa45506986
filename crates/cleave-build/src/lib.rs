//! The build engine of cleave: from rendered outputs to conda packages.
//!
//! The pieces, in the order a build uses them:
//! - [`preflight`]: checks of an output's settings before anything runs;
//! - [`source`]: fetches `path`, `url` and `git` sources into the work dir,
//!   unpacking archives with [`archive`] and writing with [`confined`]
//!   (never through a symlink);
//! - [`env`]: solves and installs the build, host and test environments;
//! - [`layout`]: the directories of one output's build, with a padded `$PREFIX`;
//! - [`script`]: runs a build script with bash, its output kept in a log,
//!   under a [`guard`] so that none of its processes outlives the build;
//! - [`capture`]: finds the files a build added to the prefix and applies an
//!   output's `files` selection;
//! - [`run_exports`]: the final run requirements of a package;
//! - [`relink`]: RPATHs into the prefix made `$ORIGIN`-relative, with the
//!   recipe's `rpaths` added and entries outside the prefix removed;
//! - [`licenses`]: `about.license_file` found for `info/licenses/`;
//! - [`linking`]: overlinking and overdepending checks of ELF files;
//! - [`python`]: the `noarch: python` layout, entry points and launchers;
//! - [`package`]: writes the `.conda` / `.tar.bz2` archive with its `info/`,
//!   applying the per-file rules of `build` (`file_rules`,
//!   `prefix_detection`);
//! - [`index`]: `repodata.json` for the output channel;
//! - [`check`]: the package's tests;
//! - [`engine`]: all of the above for every output of a rendered recipe.
//!
//! - [`keys`]: the inputs of the cache keys of staging builds and package
//!   outputs.
//!
//! The staging cache's storage is cleave-cache's: this crate only decides
//! what goes into a key and which directories are captured and restored.

pub mod archive;
pub mod capture;
pub mod check;
mod claims;
pub mod confined;
pub mod engine;
pub mod env;
mod error;
mod file_rules;
mod fsutil;
pub mod guard;
pub mod index;
pub mod keys;
pub mod layout;
pub mod licenses;
pub mod linking;
pub mod package;
mod prefix_detection;
pub mod preflight;
pub mod python;
pub mod relink;
pub mod run_exports;
pub mod script;
pub mod source;

pub use error::BuildError;
