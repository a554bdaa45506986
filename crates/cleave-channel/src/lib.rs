//! Conda channels for cleave: the output channel a build writes into, and
//! the channels `cleave publish` copies packages to.
//!
//! - [`index`]: `repodata.json` of a local channel, kept up to date
//!   incrementally (only new or changed archives are read) and under a
//!   lock, so concurrent writers all end up listed;
//! - [`local`]: packages into a channel directory, renamed into place,
//!   then indexed;
//! - [`package`]: what a package file says it is, checked before it goes
//!   into a channel;
//! - [`publish`]: packages into a directory, an S3-compatible bucket or a
//!   package server, and the channel indexed, in one step;
//! - [`partial`]: the temporary files packages and indexes are written to.
//!
//! This crate does not build, solve or install anything, and it reads a
//! package only for its metadata.

mod error;
pub mod index;
pub mod local;
pub mod package;
pub mod partial;
pub mod publish;

pub use error::ChannelError;
