//! Advisory file locks that the operating system releases when a process
//! dies, so a killed build never leaves a lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use crate::error::CacheError;

/// A held lock; released on drop.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Whether taking a lock had to wait for another process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// The lock was free.
    No,
    /// Another process held it; this one waited until it let go.
    Yes,
}

impl Lock {
    /// Takes the exclusive lock on `path` (created if missing), waiting for
    /// other holders. `on_wait` is called once if it has to wait.
    pub fn exclusive(path: &Path, on_wait: impl FnOnce()) -> Result<(Lock, Waited), CacheError> {
        Self::take(path, false, on_wait)
    }

    /// Takes the exclusive lock on `path` if no one holds it; `None` if
    /// someone does.
    pub fn try_exclusive(path: &Path) -> Result<Option<Lock>, CacheError> {
        let io = || CacheError::io(format!("locking {}", path.display()));
        let file = Self::open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Lock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(io()(e)),
        }
    }

    /// Takes a shared lock on `path`: many shared holders, no exclusive one.
    pub fn shared(path: &Path) -> Result<Lock, CacheError> {
        Self::take(path, true, || {}).map(|(lock, _)| lock)
    }

    fn take(
        path: &Path,
        shared: bool,
        on_wait: impl FnOnce(),
    ) -> Result<(Lock, Waited), CacheError> {
        let io = || CacheError::io(format!("locking {}", path.display()));
        let file = Self::open(path)?;
        let attempt = if shared {
            file.try_lock_shared()
        } else {
            file.try_lock()
        };
        let waited = match attempt {
            Ok(()) => Waited::No,
            Err(TryLockError::WouldBlock) => {
                on_wait();
                if shared {
                    file.lock_shared().map_err(io())?;
                } else {
                    file.lock().map_err(io())?;
                }
                Waited::Yes
            }
            Err(TryLockError::Error(e)) => return Err(io()(e)),
        };
        Ok((Lock { _file: file }, waited))
    }

    /// The lock file at `path`, created with its directory if missing.
    fn open(path: &Path) -> Result<File, CacheError> {
        let io = || CacheError::io(format!("locking {}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io())?;
        }
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io())
    }
}
