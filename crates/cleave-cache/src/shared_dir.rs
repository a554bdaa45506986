//! A directory others may write to, read and written without following a
//! link: a `file://` remote (a tier of its own instead of OpenDAL's `fs`
//! service, which follows links), and the records the store keeps beside
//! its entries.
//!
//! Another user of a shared directory may plant a link where cleave will
//! write: `cleave-v1/entries/<key>` as a link to `~/.ssh/authorized_keys`,
//! or `cleave-v1/packs` as a link to a directory elsewhere. So below the
//! root every step goes from an open directory to the next by name, never
//! through a link:
//!
//! - each directory is opened with `O_NOFOLLOW | O_DIRECTORY` relative to
//!   its parent's descriptor (created first if missing), so a link put in
//!   place of one is refused, whenever it was put there;
//! - a file is written under a new temporary name (`O_CREAT | O_EXCL |
//!   O_NOFOLLOW`) in its directory and renamed over its name, and a rename
//!   replaces a link rather than following it;
//! - a file is read only if it is a regular file (`O_NOFOLLOW |
//!   O_NONBLOCK`, then its type checked on the descriptor), of at most the
//!   size its format allows.
//!
//! A link or another kind of file where a directory or a regular file
//! should be is [`SharedDirError::Refused`] (a remote is skipped with a
//! warning), and nothing is written or read through it. The root itself
//! is the user's choice, and may be a link.

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::foreign::{self, ForeignError};

/// Why an operation on the shared directory failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SharedDirError {
    /// Something is where it must not be: a link, or a file where a
    /// directory goes (or the other way round).
    #[error("{0}: refused, nothing is read or written through it")]
    Refused(String),
    /// A file is larger than its format allows.
    #[error("{0}")]
    TooLarge(String),
    /// The file system failed.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
}

/// A directory others may write to.
#[derive(Debug, Clone)]
pub(crate) struct SharedDir {
    root: PathBuf,
}

/// Names of temporary files: unique in this process, and created with
/// `O_EXCL`, so two processes never write one file.
static TEMP: AtomicU64 = AtomicU64::new(0);

impl SharedDir {
    /// The directory at `root` (which need not exist yet).
    pub(crate) fn new(root: PathBuf) -> SharedDir {
        SharedDir { root }
    }

    fn io(&self, what: &str) -> impl FnOnce(std::io::Error) -> SharedDirError {
        let what = format!("{} {what}", self.root.display());
        move |e| SharedDirError::Io(what, e)
    }

    /// Opens the root, creating it when `create` is set; `None` when it is
    /// missing.
    fn root(&self, create: bool) -> Result<Option<OwnedFd>, SharedDirError> {
        let open = || {
            rustix::fs::open(
                &self.root,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
        };
        match open() {
            Ok(fd) => Ok(Some(fd)),
            Err(rustix::io::Errno::NOENT) if create => {
                std::fs::create_dir_all(&self.root).map_err(self.io("creating"))?;
                open().map(Some).map_err(|e| self.io("opening")(e.into()))
            }
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(self.io("opening")(e.into())),
        }
    }

    /// The directory holding the object `path` (`a/b/name`), open, and the
    /// object's name; `None` when a directory on the way is missing (and
    /// `create` is not set).
    fn parent<'p>(
        &self,
        path: &'p str,
        create: bool,
    ) -> Result<Option<(OwnedFd, &'p str)>, SharedDirError> {
        let mut parts: Vec<&str> = path.split('/').collect();
        let name = parts.pop().unwrap_or_default();
        if !parts
            .iter()
            .chain([&name])
            .all(|p| foreign::is_component(p))
        {
            return Err(SharedDirError::Refused(format!(
                "{path} is not a plain path"
            )));
        }
        let Some(mut dir) = self.root(create)? else {
            return Ok(None);
        };
        let mut walked = String::new();
        for part in parts {
            walked = if walked.is_empty() {
                part.to_string()
            } else {
                format!("{walked}/{part}")
            };
            let shown = || format!("{}/{walked}", self.root.display());
            let opened = match foreign::open_dir_at(&dir, part) {
                Ok(opened) => opened,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                    match rustix::fs::mkdirat(&dir, part, Mode::from_raw_mode(0o777)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(SharedDirError::Io(shown(), e.into())),
                    }
                    foreign::open_dir_at(&dir, part).map_err(|e| SharedDirError::Io(shown(), e))?
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(SharedDirError::Io(shown(), e)),
            };
            dir = opened.ok_or_else(|| {
                SharedDirError::Refused(format!(
                    "{} is not a directory but a link or a file",
                    shown()
                ))
            })?;
        }
        Ok(Some((dir, name)))
    }

    /// What is at `name` in `dir`, not following a link: `None` if nothing.
    fn kind(dir: &OwnedFd, name: &str) -> std::io::Result<Option<FileType>> {
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(FileType::from_raw_mode(stat.st_mode))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn not_regular(&self, path: &str) -> SharedDirError {
        SharedDirError::Refused(format!(
            "{}/{path} is not a regular file",
            self.root.display()
        ))
    }

    /// The regular file at `path`, open for reading; `None` if it (or a
    /// directory on the way) is missing.
    pub(crate) fn open(&self, path: &str) -> Result<Option<File>, SharedDirError> {
        let Some((dir, name)) = self.parent(path, false)? else {
            return Ok(None);
        };
        match foreign::open_regular_at(&dir, name) {
            Ok(Some(file)) => Ok(Some(file)),
            Ok(None) => Err(self.not_regular(path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(&format!("/{path}"))(e)),
        }
    }

    /// The contents of the regular file at `path`, of at most `limit`
    /// bytes; `None` if it is missing.
    pub(crate) fn read(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, SharedDirError> {
        let Some(mut file) = self.open(path)? else {
            return Ok(None);
        };
        match foreign::read_limited(&mut file, limit) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(ForeignError::Io(e)) => Err(self.io(&format!("/{path}"))(e)),
            Err(e) => Err(SharedDirError::TooLarge(format!("{path} {e}"))),
        }
    }

    /// Whether a regular file is at `path`. A link or anything else there
    /// is refused.
    pub(crate) fn exists(&self, path: &str) -> Result<bool, SharedDirError> {
        let Some((dir, name)) = self.parent(path, false)? else {
            return Ok(false);
        };
        match Self::kind(&dir, name) {
            Ok(None) => Ok(false),
            Ok(Some(FileType::RegularFile)) => Ok(true),
            Ok(Some(_)) => Err(self.not_regular(path)),
            Err(e) => Err(self.io(&format!("/{path}"))(e)),
        }
    }

    /// Appends `bytes` to the regular file at `path`, made if missing, in
    /// one write (processes that append lines at once do not mix them). A
    /// link or anything but a regular file at `path` is refused.
    pub(crate) fn append(&self, path: &str, bytes: &[u8]) -> Result<(), SharedDirError> {
        let Some((dir, name)) = self.parent(path, true)? else {
            return Err(SharedDirError::Refused(format!("{path}: no directory")));
        };
        let shown = format!("{}/{path}", self.root.display());
        let flags = OFlags::WRONLY
            | OFlags::APPEND
            | OFlags::CREATE
            | OFlags::NOFOLLOW
            | OFlags::NONBLOCK
            | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(&dir, name, flags, Mode::from_raw_mode(0o666)) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::NXIO) => {
                return Err(self.not_regular(path));
            }
            Err(e) => return Err(SharedDirError::Io(shown, e.into())),
        };
        let mut file = File::from(fd);
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            return Err(self.not_regular(path));
        }
        file.write_all(bytes)
            .map_err(|e| SharedDirError::Io(shown, e))
    }

    /// The regular file at `path`, made empty if missing, open for
    /// locking. A link or anything but a regular file there is refused.
    pub(crate) fn lock_file(&self, path: &str) -> Result<File, SharedDirError> {
        let Some((dir, name)) = self.parent(path, true)? else {
            return Err(SharedDirError::Refused(format!("{path}: no directory")));
        };
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let file = match rustix::fs::openat(&dir, name, flags, Mode::from_raw_mode(0o666)) {
            Ok(fd) => File::from(fd),
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::NXIO) => {
                return Err(self.not_regular(path));
            }
            Err(e) => return Err(self.io(&format!("/{path}"))(e.into())),
        };
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            return Err(self.not_regular(path));
        }
        Ok(file)
    }

    /// Removes the file at `path` (a link there is removed, not followed).
    pub(crate) fn remove(&self, path: &str) -> Result<(), SharedDirError> {
        let Some((dir, name)) = self.parent(path, false)? else {
            return Ok(());
        };
        match rustix::fs::unlinkat(&dir, name, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(self.io(&format!("/{path}"))(e.into())),
        }
    }

    /// Writes `bytes` to `path`: to a new temporary file in its directory,
    /// then renamed over its name. A link or anything but a regular file
    /// at `path` is refused.
    pub(crate) fn write(&self, path: &str, bytes: &[u8]) -> Result<(), SharedDirError> {
        let Some((dir, name)) = self.parent(path, true)? else {
            return Err(SharedDirError::Refused(format!("{path}: no directory")));
        };
        let shown = format!("{}/{path}", self.root.display());
        match Self::kind(&dir, name) {
            Ok(None | Some(FileType::RegularFile)) => {}
            Ok(Some(_)) => return Err(self.not_regular(path)),
            Err(e) => return Err(SharedDirError::Io(shown, e)),
        }
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let (temp, fd) = loop {
            let temp = format!(
                ".{name}.{}.{}.tmp",
                std::process::id(),
                TEMP.fetch_add(1, Ordering::Relaxed)
            );
            match rustix::fs::openat(&dir, &temp, flags, Mode::from_raw_mode(0o666)) {
                Ok(fd) => break (temp, fd),
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => return Err(SharedDirError::Io(shown, e.into())),
            }
        };
        let written = File::from(fd)
            .write_all(bytes)
            .and_then(|()| rustix::fs::renameat(&dir, &temp, &dir, name).map_err(Into::into));
        if let Err(e) = written {
            let _ = rustix::fs::unlinkat(&dir, &temp, AtFlags::empty());
            return Err(SharedDirError::Io(shown, e));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn writes_and_reads_do_not_go_through_links() {
        let shared = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let dir = SharedDir::new(shared.path().to_path_buf());
        dir.write("v/entries/a", b"index").unwrap();
        assert_eq!(dir.read("v/entries/a", 5).unwrap().unwrap(), b"index");
        assert!(dir.exists("v/entries/a").unwrap());
        assert!(!dir.exists("v/entries/b").unwrap());
        assert!(!dir.exists("w/entries/b").unwrap());
        assert!(matches!(
            dir.read("v/entries/a", 4),
            Err(SharedDirError::TooLarge(_))
        ));

        // A dangling link where an object goes, and a link where a
        // directory goes.
        let target = outside.path().join("authorized_keys");
        symlink(&target, shared.path().join("v/entries/b")).unwrap();
        symlink(outside.path(), shared.path().join("v/packs")).unwrap();
        assert!(matches!(
            dir.write("v/entries/b", b"x"),
            Err(SharedDirError::Refused(_))
        ));
        assert!(matches!(
            dir.exists("v/entries/b"),
            Err(SharedDirError::Refused(_))
        ));
        assert!(matches!(
            dir.write("v/packs/p", b"x"),
            Err(SharedDirError::Refused(_))
        ));
        assert!(matches!(
            dir.read("v/packs/p", 9),
            Err(SharedDirError::Refused(_))
        ));
        assert!(!target.exists());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        // Nothing but the objects is left behind.
        let names: Vec<String> = std::fs::read_dir(shared.path().join("v/entries"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(matches!(
            dir.write("../x", b"x"),
            Err(SharedDirError::Refused(_))
        ));
        dir.append("v/log", b"a\n").unwrap();
        dir.append("v/log", b"b\n").unwrap();
        assert_eq!(dir.read("v/log", 9).unwrap().unwrap(), b"a\nb\n");
        assert!(matches!(
            dir.append("v/entries/b", b"x"),
            Err(SharedDirError::Refused(_))
        ));
        assert!(!target.exists());
    }
}
