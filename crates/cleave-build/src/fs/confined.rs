//! Writing below a directory without ever leaving it: no write goes
//! through a symlink.
//!
//! Sources, archives and restored staging trees may hold symlinks that
//! point anywhere (automake's absolute `config.guess` link, a hostile
//! archive's `pkg/link -> /etc`). A later write into the same tree must not
//! follow them, or a source file lands (as root: anywhere) outside the work
//! dir. So every directory between the root and a written path is a real
//! directory, checked or created one component at a time, and a file or
//! link is written by removing whatever is at its path and creating it
//! anew (`O_EXCL`), never by opening an existing path.
//!
//! A symlink where a directory is needed is an error, neither followed nor
//! replaced: following it, even when it stays inside the root, puts files
//! where the recipe does not say; replacing it silently drops the tree the
//! link stood for (an earlier source's content). The error names the link,
//! so the recipe's author can point `target_directory` at the real
//! directory. Well-formed archives never need either: `tar` does not store
//! entries below a symlink it archived.
//!
//! Only regular files are read: a FIFO, socket or device is refused by
//! name, since opening one blocks or reads a device.

use std::collections::HashSet;
use std::fs::{File, OpenOptions, Permissions};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Why a write below a root was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The path is absolute or climbs out with `..`.
    #[error("{} is not a relative path below the target directory", path.display())]
    Escapes {
        /// The path as given.
        path: PathBuf,
    },
    /// A directory on the way is a symlink.
    #[error(
        "{}; cleave never writes through a link",
        through_link(path, link, points_to)
    )]
    ThroughLink {
        /// The path to write, relative to the root.
        path: PathBuf,
        /// The link, relative to the root.
        link: PathBuf,
        /// Where the link points.
        points_to: PathBuf,
    },
    /// Something other than a directory is where a directory is needed.
    #[error("{} needs {} to be a directory, but it is not", path.display(), blocker.display())]
    NotADirectory {
        /// The path to write, relative to the root.
        path: PathBuf,
        /// What is in the way, relative to the root.
        blocker: PathBuf,
    },
    /// A file or link would replace a directory.
    #[error("{} is a directory; a file or link cannot replace it", path.display())]
    IsADirectory {
        /// The path, relative to the root.
        path: PathBuf,
    },
    /// The file to read is a FIFO, socket or device.
    #[error("{} is a {kind}; only regular files, symlinks and directories are copied", path.display())]
    Special {
        /// The file.
        path: PathBuf,
        /// `FIFO`, `socket`, `block device` or `character device`.
        kind: &'static str,
    },
    /// The filesystem refused.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done: `create`, `read`, ...
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// What a [`WriteError::ThroughLink`] says: the link, where it points,
/// and the path below it when that is not the link itself.
fn through_link(path: &Path, link: &Path, points_to: &Path) -> String {
    let link_text = format!("`{}`, a symlink to {}", link.display(), points_to.display());
    if path == link {
        format!("{link_text}, is where a directory is needed")
    } else {
        format!("`{}` lies below {link_text}", path.display())
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> WriteError {
    let path = path.to_path_buf();
    move |source| WriteError::Io {
        action,
        path,
        source,
    }
}

/// `path` as plain names below a root: `.` dropped; absolute paths and
/// `..` refused. The empty path is the root itself.
pub fn relative(path: &Path) -> Result<PathBuf, WriteError> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(WriteError::Escapes {
                    path: path.to_path_buf(),
                });
            }
        }
    }
    Ok(out)
}

/// What kind of special file `kind` is, if it is one.
pub(crate) fn special_kind(kind: std::fs::FileType) -> Option<&'static str> {
    if kind.is_fifo() {
        Some("FIFO")
    } else if kind.is_socket() {
        Some("socket")
    } else if kind.is_block_device() {
        Some("block device")
    } else if kind.is_char_device() {
        Some("character device")
    } else {
        None
    }
}

/// Opens `path` for reading if it is a regular file, without blocking on a
/// FIFO or following a symlink at its last component.
pub(crate) fn open_regular(path: &Path) -> Result<(File, std::fs::Metadata), WriteError> {
    let meta = std::fs::symlink_metadata(path).map_err(io("read", path))?;
    if let Some(kind) = special_kind(meta.file_type()) {
        return Err(WriteError::Special {
            path: path.to_path_buf(),
            kind,
        });
    }
    if !meta.is_file() {
        return Err(WriteError::Io {
            action: "read",
            path: path.to_path_buf(),
            source: std::io::Error::other("not a regular file"),
        });
    }
    // A path swapped for a link or a FIFO since the check fails instead of
    // being followed or blocking.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(io("read", path))?;
    let meta = file.metadata().map_err(io("read", path))?;
    if !meta.is_file() {
        return Err(WriteError::Special {
            path: path.to_path_buf(),
            kind: special_kind(meta.file_type()).unwrap_or("special file"),
        });
    }
    Ok((file, meta))
}

/// A directory that writes stay below.
///
/// Directories it checked or made are remembered, so a tree of many files
/// costs one check per directory. Only this value writes below the root
/// while it lives (sources are fetched one at a time, no script runs).
#[derive(Debug)]
pub struct Tree {
    root: PathBuf,
    known: HashSet<PathBuf>,
}

impl Tree {
    /// Writes below `root`, which must exist.
    pub fn new(root: impl Into<PathBuf>) -> Tree {
        Tree {
            root: root.into(),
            known: HashSet::new(),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Makes `rel` a real directory below the root, component by component;
    /// returns its full path.
    pub fn dir(&mut self, rel: &Path) -> Result<PathBuf, WriteError> {
        let rel = relative(rel)?;
        self.ensure(&rel, &rel)?;
        Ok(self.root.join(rel))
    }

    fn ensure(&mut self, dir: &Path, asked: &Path) -> Result<(), WriteError> {
        if dir.as_os_str().is_empty() || self.known.contains(dir) {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            self.ensure(parent, asked)?;
        }
        let path = self.root.join(dir);
        loop {
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => break,
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(WriteError::ThroughLink {
                        path: asked.to_path_buf(),
                        link: dir.to_path_buf(),
                        points_to: std::fs::read_link(&path).unwrap_or_default(),
                    });
                }
                Ok(_) => {
                    return Err(WriteError::NotADirectory {
                        path: asked.to_path_buf(),
                        blocker: dir.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    match std::fs::create_dir(&path) {
                        // Made by someone else meanwhile: look again.
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                        other => other.map_err(io("create", &path))?,
                    }
                    break;
                }
                Err(e) => return Err(io("inspect", &path)(e)),
            }
        }
        self.known.insert(dir.to_path_buf());
        Ok(())
    }

    /// The full path for a new file or link at `rel`: its directories made,
    /// and a file or link already there removed (a directory is an error).
    fn clear(&mut self, rel: &Path) -> Result<PathBuf, WriteError> {
        let rel = relative(rel)?;
        let Some(parent) = rel.parent() else {
            // The root itself.
            return Err(WriteError::IsADirectory { path: rel });
        };
        self.ensure(parent, &rel)?;
        let path = self.root.join(&rel);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => return Err(WriteError::IsADirectory { path: rel }),
            Ok(_) => std::fs::remove_file(&path).map_err(io("replace", &path))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("inspect", &path)(e)),
        }
        self.known.remove(&rel);
        Ok(path)
    }

    /// Creates the file `rel` anew with `mode` (exactly, not masked by the
    /// umask), open for writing.
    pub fn create(&mut self, rel: &Path, mode: u32) -> Result<File, WriteError> {
        let path = self.clear(rel)?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode & 0o777)
            .open(&path)
            .map_err(io("create", &path))?;
        file.set_permissions(Permissions::from_mode(mode & 0o777))
            .map_err(io("set the mode of", &path))?;
        Ok(file)
    }

    /// Writes `content` into a new file `rel` with `mode`.
    pub fn write(&mut self, rel: &Path, mode: u32, content: &[u8]) -> Result<(), WriteError> {
        let mut file = self.create(rel, mode)?;
        std::io::Write::write_all(&mut file, content).map_err(io("write", &self.root.join(rel)))?;
        Ok(())
    }

    /// Copies the regular file `from` to a new file `rel`, with its mode
    /// and modification time (build tools compare mtimes).
    pub fn copy_file(&mut self, from: &Path, rel: &Path) -> Result<(), WriteError> {
        let (mut source, meta) = open_regular(from)?;
        let mut file = self.create(rel, meta.permissions().mode())?;
        std::io::copy(&mut source, &mut file).map_err(io("copy", from))?;
        let mtime = filetime::FileTime::from_last_modification_time(&meta);
        filetime::set_file_handle_times(&file, None, Some(mtime))
            .map_err(io("set the time of", &self.root.join(rel)))
    }

    /// Creates the symlink `rel` pointing at `target` (which is not
    /// checked: a link is data, it is only never written through).
    pub fn symlink(&mut self, target: &Path, rel: &Path) -> Result<(), WriteError> {
        let path = self.clear(rel)?;
        std::os::unix::fs::symlink(target, &path).map_err(io("create the link", &path))
    }

    /// Makes `rel` a hard link to the regular file `existing`, both below
    /// the root, neither reached through a link.
    pub fn hard_link(&mut self, existing: &Path, rel: &Path) -> Result<(), WriteError> {
        let existing_rel = relative(existing)?;
        if let Some(parent) = existing_rel.parent() {
            self.ensure(parent, &existing_rel)?;
        }
        let source = self.root.join(&existing_rel);
        let meta = std::fs::symlink_metadata(&source).map_err(io("link to", &source))?;
        if !meta.is_file() {
            return Err(WriteError::Io {
                action: "link to",
                path: source,
                source: std::io::Error::other("not a regular file"),
            });
        }
        let path = self.clear(rel)?;
        std::fs::hard_link(&source, &path).map_err(io("create the link", &path))
    }

    /// Moves `from` (outside this tree, on the same filesystem) to `rel`,
    /// merging directories into directories already there; a file or link
    /// replaces what is at its path.
    pub fn merge_move(&mut self, from: &Path, rel: &Path) -> Result<(), WriteError> {
        let meta = std::fs::symlink_metadata(from).map_err(io("move", from))?;
        if meta.is_dir() {
            self.dir(rel)?;
            for entry in std::fs::read_dir(from).map_err(io("list", from))? {
                let entry = entry.map_err(io("list", from))?;
                self.merge_move(&entry.path(), &rel.join(entry.file_name()))?;
            }
            return std::fs::remove_dir(from).map_err(io("remove", from));
        }
        let path = self.clear(rel)?;
        std::fs::rename(from, &path).map_err(io("move", from))
    }

    /// Fails if `rel`, or any directory on its way, is a symlink below the
    /// root; a path that does not exist (yet) is fine.
    pub fn check_no_link(&self, rel: &Path) -> Result<(), WriteError> {
        let rel = relative(rel)?;
        let mut walked = PathBuf::new();
        for name in rel.iter() {
            walked.push(name);
            match std::fs::symlink_metadata(self.root.join(&walked)) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    let points_to = std::fs::read_link(self.root.join(&walked)).unwrap_or_default();
                    return Err(WriteError::ThroughLink {
                        path: rel.clone(),
                        link: walked,
                        points_to,
                    });
                }
                Ok(meta) if meta.is_dir() => {}
                _ => break,
            }
        }
        Ok(())
    }
}
