//! Progress of the operations that move many bytes: restoring an entry,
//! downloading one from a remote, uploading one.
//!
//! The store and the remotes report through [`Reporter`], a trait the
//! caller implements (a progress bar, a line every few seconds, nothing):
//! this crate draws nothing itself. A restore reports from many threads at
//! once, so implementations take `&self` and must be `Sync`.

use std::sync::Arc;

/// What is moving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation<'a> {
    /// An entry's files written into build directories.
    Restore {
        /// The entry's name (a staging build, a package).
        name: &'a str,
    },
    /// An entry read from a remote into the local store.
    Download {
        /// The remote, without credentials.
        remote: &'a str,
        /// The entry's key, as hex.
        key: &'a str,
    },
    /// An entry written to a remote.
    Upload {
        /// The remote, without credentials.
        remote: &'a str,
        /// The entry's name.
        name: &'a str,
    },
}

/// Receives the progress of restores and transfers.
pub trait Reporter: Send + Sync {
    /// An operation starts; `total` is its size in bytes when known. The
    /// returned id names it in the calls that follow.
    fn on_start(&self, operation: &Operation<'_>, total: Option<u64>) -> usize;
    /// The size became known (a remote's index was read).
    fn on_total(&self, id: usize, total: u64);
    /// `bytes` more are done.
    fn on_progress(&self, id: usize, bytes: u64);
    /// The operation ended, done or not.
    fn on_finish(&self, id: usize);
}

/// One operation being reported: finished when dropped, so that an error
/// path never leaves a bar running.
pub(crate) struct Tracked<'a> {
    reporter: Option<(&'a dyn Reporter, usize)>,
}

impl<'a> Tracked<'a> {
    /// Starts `operation` on `reporter`, if there is one.
    pub(crate) fn start(
        reporter: Option<&'a Arc<dyn Reporter>>,
        operation: &Operation<'_>,
        total: Option<u64>,
    ) -> Tracked<'a> {
        Tracked {
            reporter: reporter.map(|r| (r.as_ref(), r.on_start(operation, total))),
        }
    }

    /// See [`Reporter::on_total`].
    pub(crate) fn total(&self, total: u64) {
        if let Some((r, id)) = self.reporter {
            r.on_total(id, total);
        }
    }

    /// See [`Reporter::on_progress`].
    pub(crate) fn advance(&self, bytes: u64) {
        if let Some((r, id)) = self.reporter {
            r.on_progress(id, bytes);
        }
    }
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        if let Some((r, id)) = self.reporter {
            r.on_finish(id);
        }
    }
}
