use std::path::PathBuf;

/// What can go wrong in the store.
///
/// [`CacheError::kind`] sorts the variants by what a caller does about
/// them: a damaged entry is dropped and built again, an evicted one is
/// built again, a conflict in a restore target is the target's problem,
/// and an I/O error is this machine's (the entry may be fine).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A file operation of the store failed.
    #[error("{context}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The error of the operating system.
        #[source]
        source: std::io::Error,
    },
    /// Writing into a restore target failed: something in the target is in
    /// the way or cannot be written. The entry itself is fine.
    #[error("{context}")]
    Target {
        /// What was being done, with the path in the target.
        context: String,
        /// The error of the operating system.
        #[source]
        source: std::io::Error,
    },
    /// An entry's blob is missing or does not match its digest, or its
    /// manifest cannot be read.
    #[error("cache entry {key} is damaged: {reason}")]
    Damaged {
        /// The entry.
        key: String,
        /// What is wrong, naming the file.
        reason: String,
    },
    /// The entry went away while it was being read: another process
    /// evicted it (`cleave cache gc`, `cleave cache clean`).
    #[error("cache entry {key} was evicted while in use")]
    Evicted {
        /// The entry.
        key: String,
    },
    /// A manifest asks to write somewhere it must not.
    #[error("cache entry {key} is refused: {path:?} {reason}")]
    Unsafe {
        /// The entry.
        key: String,
        /// The offending path as written in the manifest.
        path: PathBuf,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A binary file cannot be relocated because the new path is longer.
    #[error(
        "cache entry {key} cannot be restored at {new}: {file:?} holds the build path {old} in binary form, and a binary path can only be replaced by one no longer than itself"
    )]
    TooLong {
        /// The entry.
        key: String,
        /// The binary file.
        file: PathBuf,
        /// The path it was built at.
        old: String,
        /// The path it would move to.
        new: String,
    },
    /// A binary file holds a build path in a string too long to rewrite.
    #[error(
        "cache entry {key} cannot be restored at other paths: {file:?} holds a build path in a string of more than {max} bytes"
    )]
    LongString {
        /// The entry.
        key: String,
        /// The binary file.
        file: PathBuf,
        /// The longest string relocated.
        max: usize,
    },
    /// A glob of a tree filter does not compile.
    #[error("invalid glob `{glob}`")]
    Glob {
        /// The pattern as given.
        glob: String,
        /// The parser's error.
        #[source]
        source: globset::Error,
    },
    /// No entry matches what the user asked for.
    #[error("no cache entry matches `{0}`")]
    NotFound(String),
    /// A key prefix matches more than one entry.
    #[error("`{prefix}` matches {count} cache entries; give more of the key")]
    Ambiguous {
        /// What the user typed.
        prefix: String,
        /// How many entries it matches.
        count: usize,
    },
}

/// What a [`CacheError`] means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The entry is bad (a missing blob, a digest mismatch, an unreadable
    /// or unsafe manifest): it must not be used, and is built again.
    Damaged,
    /// The entry is whole but cannot be restored at the paths asked for (a
    /// binary path would grow): it is built again where it is needed.
    Unusable,
    /// The entry went away under its reader: a miss, built again.
    Evicted,
    /// The restore target is in the way; building again would not help.
    Target,
    /// The store's own files could not be read or written (permissions, a
    /// full disk): the entry may be fine, but this process cannot use it.
    Io,
    /// What was asked for does not exist or is not valid.
    Request,
}

impl CacheError {
    /// A closure that wraps an I/O error of the store with `context`.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CacheError {
        let context = context.into();
        move |source| CacheError::Io { context, source }
    }

    /// A closure that wraps an I/O error of a restore target with `context`.
    pub(crate) fn target(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CacheError {
        let context = context.into();
        move |source| CacheError::Target { context, source }
    }

    /// What the error means for the caller.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CacheError::Io { .. } => ErrorKind::Io,
            CacheError::Target { .. } => ErrorKind::Target,
            CacheError::Damaged { .. } | CacheError::Unsafe { .. } => ErrorKind::Damaged,
            CacheError::TooLong { .. } | CacheError::LongString { .. } => ErrorKind::Unusable,
            CacheError::Evicted { .. } => ErrorKind::Evicted,
            CacheError::Glob { .. } | CacheError::NotFound(_) | CacheError::Ambiguous { .. } => {
                ErrorKind::Request
            }
        }
    }

    /// True when the same lookup may succeed if tried again: the entry was
    /// evicted by another process, not damaged, and nothing is wrong here.
    pub fn is_transient(&self) -> bool {
        self.kind() == ErrorKind::Evicted
    }
}
