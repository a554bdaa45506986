//! Temporary files and directories in a channel subdir.
//!
//! Packages and `repodata.json` are written to temporary files in their
//! subdir and renamed into place, with the mode the umask gives any new
//! file (a channel is for every user, not just the one who wrote it). Each
//! temporary file (`.cleave-partial-*`, skipped by clients as a dot file)
//! is locked while it is written; one that is unlocked and has not changed
//! for a minute was left by a killed process, and indexing removes it.

use std::fs::File;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The name prefix of cleave's temporary files and directories in a
/// channel subdir.
const PARTIAL: &str = ".cleave-partial-";

/// How long a temporary file must be unchanged before it can be stale:
/// far longer than between its creation and its lock.
const STALE_AFTER: Duration = Duration::from_secs(60);

/// A new temporary file in the channel subdir `dir`, with the mode the
/// umask gives new files, locked until it is closed (after its rename).
pub fn partial_file(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let file = tempfile::Builder::new()
        .prefix(PARTIAL)
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    file.as_file().lock()?;
    Ok(file)
}

/// A temporary directory in a channel subdir, locked while it lives.
pub struct PartialDir {
    // Declared first: removed before the lock is let go.
    dir: tempfile::TempDir,
    _lock: File,
}

impl PartialDir {
    /// A new one in the channel subdir `dir`.
    pub fn new(dir: &Path) -> std::io::Result<PartialDir> {
        let dir = tempfile::Builder::new().prefix(PARTIAL).tempdir_in(dir)?;
        let lock = File::open(dir.path())?;
        lock.lock()?;
        Ok(PartialDir { dir, _lock: lock })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Removes the temporary files and directories of killed builds from the
/// channel subdir `dir`: those whose lock is free and that have not changed
/// for [`STALE_AFTER`]. Best effort: what cannot be removed stays.
pub(crate) fn clean_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.filter_map(Result::ok) {
        if !entry.file_name().to_string_lossy().starts_with(PARTIAL) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let old = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age > STALE_AFTER);
        if !old || !(meta.is_file() || meta.is_dir()) {
            continue;
        }
        let Ok(file) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
        else {
            continue;
        };
        // Held while removing: a writer that is alive holds it.
        if file.try_lock().is_ok() {
            let _ = if meta.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}
