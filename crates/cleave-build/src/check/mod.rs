//! Checks of a build and of its package.
//!
//! - [`preflight`]: an output's settings, before anything runs;
//! - [`linking`]: overlinking and overdepending of the ELF files a package
//!   holds, against its run requirements;
//! - [`package_tests`]: the recipe's tests of a written package.

pub mod linking;
pub mod package_tests;
pub mod preflight;
