//! The build engine of cleave: from rendered outputs to conda packages.
//!
//! The stages, one folder each, in the order a build uses them:
//! - [`source`]: fetches `path`, `url` and `git` sources into the work dir,
//!   unpacking archives ([`source::archive`]) and writing through
//!   [`fs::confined`] (never through a symlink);
//! - [`environment`]: solves and installs the build, host and test
//!   environments, and works out run exports ([`environment::run_exports`]);
//! - [`layout`]: the directories of one output's build, with a padded `$PREFIX`;
//! - [`script`]: runs a build script with bash, its output kept in a log,
//!   under a [`script::guard`] so that none of its processes outlives the
//!   build;
//! - [`package`]: finds the files a build added ([`package::capture`]),
//!   relinks them, finds license files and the `noarch: python` layout, and
//!   writes the `.conda` / `.tar.bz2` archive with its `info/`;
//! - [`check`]: preflight checks of an output's settings, linking checks of
//!   its ELF files, and the package's tests;
//! - [`engine`]: all of the above for every output of a rendered recipe.
//!
//! - [`keys`]: the inputs of the cache keys of staging builds and package
//!   outputs.
//!
//! The staging cache's storage is cleave-cache's: this crate only decides
//! what goes into a key and which directories are captured and restored.

pub mod check;
pub mod engine;
pub mod environment;
mod error;
pub mod fs;
pub mod keys;
pub mod layout;
pub mod package;
pub mod script;
pub mod source;

pub use error::BuildError;
