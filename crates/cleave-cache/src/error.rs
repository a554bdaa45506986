use std::path::PathBuf;

/// What can go wrong in the store.
///
/// [`CacheError::Damaged`] and [`CacheError::Unsafe`] mean the entry must not
/// be used; callers drop it and rebuild. Everything else is an I/O problem
/// of this machine.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A file operation failed.
    #[error("{context}")]
    Io {
        /// What was being done, with the path.
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

impl CacheError {
    /// A closure that wraps an I/O error with `context`.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CacheError {
        let context = context.into();
        move |source| CacheError::Io { context, source }
    }

    /// True when the entry itself is bad (and should be dropped and rebuilt),
    /// as opposed to a problem of this machine.
    pub fn is_entry_problem(&self) -> bool {
        matches!(
            self,
            CacheError::Damaged { .. } | CacheError::Unsafe { .. } | CacheError::TooLong { .. }
        )
    }
}
