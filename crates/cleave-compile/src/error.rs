use std::path::PathBuf;

use cleave_cache::CacheError;

/// What stops the cache from serving a call. None of these fails a build:
/// the wrapper counts the error and runs the compiler itself.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The compiler to wrap is not on `PATH` (other than as cleave).
    #[error("no `{name}` on PATH other than cleave's wrapper")]
    CompilerNotFound {
        /// The name looked for.
        name: String,
    },
    /// A file operation failed.
    #[error("{context}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The error of the operating system.
        #[source]
        source: std::io::Error,
    },
    /// The store failed.
    #[error("the store")]
    Store(#[from] CacheError),
    /// The compiler or preprocessor could not be started.
    #[error("running {}", program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// Why it did not start.
        #[source]
        source: std::io::Error,
    },
}

impl CompileError {
    /// A closure that wraps an I/O error with `context`.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CompileError {
        let context = context.into();
        move |source| CompileError::Io { context, source }
    }

    /// A one-line summary with every cause, for the stats.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}
