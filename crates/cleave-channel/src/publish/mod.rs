//! Packages into a channel and the channel indexed, in one step: a local
//! directory ([`crate::local`]), an S3-compatible bucket ([`s3`]), or a
//! package server ([`server`]), whatever [`Target`] the URL names.
//!
//! A publish never leaves a channel half-indexed: a package is in place
//! (renamed, or uploaded whole) before the index that lists it is written,
//! and the index is written so that a concurrent publish to the same
//! channel cannot drop it (a lock for a directory, conditional writes for
//! a bucket, the server's own indexing for a server).

pub mod s3;
pub mod server;
mod target;

use std::path::PathBuf;

pub use target::{Server, Target};

use crate::error::ChannelError;
use crate::index::SubdirIndexed;
use crate::local::{Overwrite, Placed};
use crate::package::inspect;

/// What a publish did.
#[derive(Debug, Clone)]
pub struct Published {
    /// Each package, as `subdir/file`, with what happened to it.
    pub packages: Vec<(String, Placed)>,
    /// The subdirs indexed here (none for a server, which indexes itself).
    pub indexed: Vec<SubdirIndexed>,
}

/// Copies `packages` to `target` and indexes it. Every file is checked
/// before any is copied; `force` replaces a different package of the same
/// name instead of refusing it.
pub fn publish(
    target: &Target,
    packages: &[PathBuf],
    force: bool,
) -> Result<Published, ChannelError> {
    let overwrite = if force {
        Overwrite::Replace
    } else {
        Overwrite::Refuse
    };
    match target {
        Target::Local(dir) => {
            let (added, indexed) = crate::local::publish(dir, packages, overwrite)?;
            Ok(Published {
                packages: added
                    .iter()
                    .map(|a| {
                        let file = a.path.file_name().unwrap_or_default().to_string_lossy();
                        (format!("{}/{file}", a.subdir), a.placed)
                    })
                    .collect(),
                indexed,
            })
        }
        Target::S3(url) => {
            let files = packages
                .iter()
                .map(|p| inspect(p))
                .collect::<Result<Vec<_>, _>>()?;
            s3::publish(url, &files, overwrite)
        }
        Target::Server(server) => {
            let files = packages
                .iter()
                .map(|p| inspect(p))
                .collect::<Result<Vec<_>, _>>()?;
            server::publish(server, &files, force)?;
            Ok(Published {
                packages: files
                    .iter()
                    .map(|f| (format!("{}/{}", f.subdir, f.file_name), Placed::New))
                    .collect(),
                indexed: Vec::new(),
            })
        }
    }
}
