//! What can go wrong with a channel, naming the channel, file or server.

use std::path::PathBuf;

/// A failed channel operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// A filesystem operation failed.
    #[error("{context}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not a conda package this tool can put into a channel.
    #[error("{}: {reason}", path.display())]
    NotAPackage {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The channel already holds a different package under the same file
    /// name.
    #[error(
        "{target} already holds a different {file}; publishing it again with --force replaces it"
    )]
    Exists {
        /// The channel.
        target: String,
        /// The package file name.
        file: String,
    },
    /// `repodata.json` of a subdir could not be written.
    #[error("cannot index {}: {reason}", dir.display())]
    Index {
        /// The subdir.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// A publishing target that is not understood.
    #[error("`{url}` is not a channel to publish to: {reason}")]
    Target {
        /// The URL, without credentials.
        url: String,
        /// Why, with the forms that are understood.
        reason: String,
    },
    /// A remote channel (a bucket, a package server) refused or failed.
    #[error("publishing to {target} failed: {reason}")]
    Remote {
        /// The channel, without credentials.
        target: String,
        /// What the service or client said, credentials removed.
        reason: String,
    },
}

impl ChannelError {
    /// A closure making an I/O error with `context`, for `map_err`.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ChannelError {
        let context = context.into();
        move |source| ChannelError::Io { context, source }
    }
}
