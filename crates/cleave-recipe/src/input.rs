//! The one way recipe reading opens a file: the recipe, its variant files
//! and what `load_from_file()` names.
//!
//! A recipe comes from anywhere (a pull request, a feedstock someone else
//! keeps), so the files it makes cleave read are foreign. A FIFO put where
//! `variants.yaml` is expected would block `cleave render` forever, and a
//! link to `/dev/zero` would be read until memory runs out. So a file is
//! opened without blocking (`O_NONBLOCK`: opening a FIFO with no writer
//! returns at once), checked to be a regular file on the descriptor that
//! was opened (not on the path, which may change in between), and read up
//! to [`MAX_FILE_SIZE`] bytes.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The largest file recipe reading accepts: 8 MiB, two hundred times the
/// largest conda-forge recipe (about 40 KB) and far above any project file
/// a recipe loads (`pyproject.toml`, `package.json`, `Cargo.toml`).
pub const MAX_FILE_SIZE: u64 = 8 << 20;

/// Why a file of a recipe could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadFileError {
    /// Opening or reading failed.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A directory, FIFO, socket or device.
    #[error("{} is {kind}, not a regular file", path.display())]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is instead, e.g. "a FIFO".
        kind: &'static str,
    },
    /// More than [`MAX_FILE_SIZE`] bytes.
    #[error(
        "{} is larger than {} MiB, the most cleave reads of a recipe's file",
        path.display(),
        limit >> 20
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit, in bytes.
        limit: u64,
    },
    /// Not UTF-8 text.
    #[error("{} is not UTF-8 text", path.display())]
    NotText {
        /// The file.
        path: PathBuf,
    },
}

/// The text of the regular file `path`, at most [`MAX_FILE_SIZE`] bytes.
pub fn read_file(path: &Path) -> Result<String, ReadFileError> {
    read_limited(path, MAX_FILE_SIZE)
}

/// [`read_file`] with another limit, for tests.
pub(crate) fn read_limited(path: &Path, limit: u64) -> Result<String, ReadFileError> {
    let io = |source| ReadFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let kind = file.metadata().map_err(io)?.file_type();
    if !kind.is_file() {
        return Err(ReadFileError::NotRegular {
            path: path.to_path_buf(),
            kind: describe(kind),
        });
    }
    let mut bytes = Vec::new();
    // One byte more than allowed tells a file at the limit from a larger one
    // (also one that grows while it is read).
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadFileError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    String::from_utf8(bytes).map_err(|_| ReadFileError::NotText {
        path: path.to_path_buf(),
    })
}

fn describe(kind: std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_regular_file_is_read_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.yaml");
        std::fs::write(&path, "abcd").unwrap();
        assert_eq!(read_limited(&path, 4).unwrap(), "abcd");
        let err = read_limited(&path, 3).unwrap_err();
        assert!(matches!(err, ReadFileError::TooLarge { limit: 3, .. }));
        assert!(err.to_string().contains("r.yaml"), "{err}");
    }

    #[test]
    fn devices_are_refused_before_reading() {
        let err = read_file(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/dev/zero is a character device, not a regular file"
        );
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("zero.yaml");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert!(matches!(
            read_file(&link),
            Err(ReadFileError::NotRegular {
                kind: "a character device",
                ..
            })
        ));
        assert!(matches!(
            read_file(dir.path()),
            Err(ReadFileError::NotRegular {
                kind: "a directory",
                ..
            })
        ));
    }

    #[test]
    fn a_fifo_without_writer_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("variants.yaml");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // On a thread, so that a read that blocks fails the test instead of
        // hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(read_file(&fifo)));
        let result = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("opening a FIFO blocked");
        assert!(matches!(
            result,
            Err(ReadFileError::NotRegular { kind: "a FIFO", .. })
        ));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, b"a: \xff\n").unwrap();
        assert!(matches!(
            read_file(&path),
            Err(ReadFileError::NotText { .. })
        ));
    }
}
