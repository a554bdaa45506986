//! Copying trees as a build needs them: symlinks as links, modes and
//! modification times kept (ninja and make compare mtimes).

pub mod confined;

use std::path::Path;

/// Copies `from` into `to` (created), merging with what is there.
pub(crate) fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        copy_entry(&entry.path(), &to.join(entry.file_name()))?;
    }
    Ok(())
}

/// Copies one file, link or directory (recursively) to `dest`.
pub(crate) fn copy_entry(source: &Path, dest: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(source)?;
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if meta.file_type().is_symlink() {
        if std::fs::symlink_metadata(dest).is_ok() {
            remove(dest)?;
        }
        std::os::unix::fs::symlink(std::fs::read_link(source)?, dest)
    } else if meta.is_dir() {
        copy_tree(source, dest)?;
        std::fs::set_permissions(dest, meta.permissions())
    } else if let Some(kind) = crate::fs::confined::special_kind(meta.file_type()) {
        // Reading a FIFO would block.
        Err(std::io::Error::other(format!(
            "{} is a {kind}; only regular files, symlinks and directories are copied",
            source.display()
        )))
    } else {
        if std::fs::symlink_metadata(dest).is_ok_and(|m| !m.is_file()) {
            remove(dest)?;
        }
        std::fs::copy(source, dest)?;
        filetime::set_file_mtime(dest, filetime::FileTime::from_last_modification_time(&meta))
    }
}

fn remove(path: &Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(path)?.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}
