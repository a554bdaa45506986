//! Data from outside this process's control, read with bounds: files a
//! helper names, a portable entry, a shared directory's objects, and the
//! store's own files (which another user of the store may have replaced).
//!
//! Three rules hold for every such read, here and only here:
//!
//! - only a regular file is read: it is opened with `O_NONBLOCK` (opening a
//!   FIFO does not wait for a writer) and `O_NOFOLLOW` (a link is not
//!   followed), and its type is checked on the opened descriptor, so that
//!   nothing swapped in between a check and the open is read;
//! - its size is checked against the most its format allows before a byte
//!   is read, and the read stops one byte past it (a file that grows, or
//!   a device that never ends, costs the limit, never more);
//! - what it says is printed only through [`printable`], which escapes
//!   control characters: a terminal must not take a helper's answer or a
//!   remote's message for its own output.
//!
//! The limits are the formats' ([`limits`]), and docs/cache.md states them.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags};

/// The most bytes each kind of foreign data may have.
pub mod limits {
    /// An entry's `entry.json`: its name, the inputs of its key and what
    /// the caller keeps with it (run exports, compile candidates).
    pub const ENTRY_JSON: u64 = 16 << 20;
    /// An entry's `files.json`: about 150 bytes per item, so some 400,000
    /// files, links and directories.
    pub const FILES_JSON: u64 = 64 << 20;
    /// A remote's index of one entry: both files above (quoted) and where
    /// each blob is (about 200 bytes per blob).
    pub const INDEX: u64 = 192 << 20;
    /// A helper's answer on stdout.
    pub const ANSWER: u64 = 1 << 20;
    /// What the store keeps beside entries: the counters of each level,
    /// where a helper said it put an entry, what a remote is known to
    /// hold.
    pub const RECORD: u64 = 64 << 20;
}

/// Why a foreign file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ForeignError {
    /// Nothing is there.
    #[error("is missing")]
    Missing,
    /// Something other than a regular file is there: a link, a directory,
    /// a FIFO, a socket or a device.
    #[error("is not a regular file")]
    NotRegular,
    /// It is larger than its format allows.
    #[error("is larger than {limit} bytes, the most it may have")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// Reading it failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Opens `path` for reading if it is a regular file; `Ok(None)` if it is
/// something else (a link, a directory, a FIFO, a device). A missing file
/// is the `NotFound` error.
pub fn open_regular(path: &Path) -> std::io::Result<Option<File>> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(file.metadata()?.is_file().then_some(file))
}

/// [`open_regular`] for the entry `name` of the open directory `dir`:
/// `name` is one component, and the directory cannot be swapped for
/// another between the check of its path and the open.
pub fn open_regular_at(dir: impl AsFd, name: &str) -> std::io::Result<Option<File>> {
    if !is_component(name) {
        return Ok(None);
    }
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match rustix::fs::openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::LOOP) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let file = File::from(fd);
    Ok(file.metadata()?.is_file().then_some(file))
}

/// Opens the directory `name` of the open directory `dir`, not following
/// a link: `Ok(None)` if something else is there.
pub fn open_dir_at(dir: impl AsFd, name: &str) -> std::io::Result<Option<OwnedFd>> {
    if !is_component(name) {
        return Ok(None);
    }
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What is at `path` when it is opened without blocking (a link followed:
/// the caller named it): a directory, a regular file, or neither.
pub enum Opened {
    /// A directory, open for `*_at` calls.
    Dir(OwnedFd),
    /// A regular file, open for reading.
    File(File),
}

/// Opens `path`, following a link (the caller chose the path), if it is a
/// directory or a regular file; `Ok(None)` if it is something else.
pub fn open_dir_or_file(path: &Path) -> std::io::Result<Option<Opened>> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let kind = FileType::from_raw_mode(rustix::fs::fstat(&file)?.st_mode);
    Ok(match kind {
        FileType::Directory => Some(Opened::Dir(file.into())),
        FileType::RegularFile => Some(Opened::File(file)),
        _ => None,
    })
}

/// Reads an open regular file of at most `limit` bytes: a larger one is
/// refused by its size before anything is read, and the read stops one
/// byte past the limit for a file that grows meanwhile.
pub fn read_limited(file: &mut File, limit: u64) -> Result<Vec<u8>, ForeignError> {
    let size = file.metadata()?.len();
    if size > limit {
        return Err(ForeignError::TooLarge { limit });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ForeignError::TooLarge { limit });
    }
    Ok(bytes)
}

/// The contents of the regular file at `path`, of at most `limit` bytes.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, ForeignError> {
    match open_regular(path) {
        Ok(Some(mut file)) => read_limited(&mut file, limit),
        Ok(None) => Err(ForeignError::NotRegular),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ForeignError::Missing),
        Err(e) => Err(e.into()),
    }
}

/// Bytes `start..end` of an open file, read where they are (`pread`), so
/// that several ranges of one file need one descriptor and no seeking.
#[derive(Debug)]
pub struct FileRange<F> {
    file: F,
    at: u64,
    end: u64,
}

impl<F: std::borrow::Borrow<File>> FileRange<F> {
    /// The bytes `start..end` of `file`.
    pub fn new(file: F, start: u64, end: u64) -> FileRange<F> {
        FileRange {
            file,
            at: start,
            end,
        }
    }
}

impl<F: std::borrow::Borrow<File>> Read for FileRange<F> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = usize::try_from(self.end.saturating_sub(self.at)).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.borrow().read_at(&mut buf[..want], self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// True for one plain path component: not empty, no `/`, not `.` or
/// `..`, no NUL.
pub fn is_component(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// `text` as it may be printed: every control character (C0, DEL, C1)
/// and every character that reorders text on screen (bidirectional
/// overrides and isolates) written as a `\u{…}` escape. Text with none of
/// them is returned as it is, without a copy.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if needs_escape(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_text_is_not_copied() {
        assert!(matches!(printable("plain /path é"), Cow::Borrowed(_)));
        assert_eq!(
            printable("ok\u{1b}[2K\rcache verified OK\n"),
            "ok\\u{1b}[2K\\u{d}cache verified OK\\u{a}"
        );
        assert_eq!(printable("a\u{7f}"), "a\\u{7f}");
        assert_eq!(printable("x\u{9b}y\u{202e}z"), "x\\u{9b}y\\u{202e}z");
    }

    #[test]
    fn only_regular_files_are_read_and_only_up_to_their_limit() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"12345").unwrap();
        assert_eq!(read_regular(&file, 5).unwrap(), b"12345");
        assert!(matches!(
            read_regular(&file, 4),
            Err(ForeignError::TooLarge { limit: 4 })
        ));
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(matches!(
            read_regular(&link, 5),
            Err(ForeignError::NotRegular)
        ));
        let fifo = dir.path().join("p");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        assert!(matches!(
            read_regular(&fifo, 5),
            Err(ForeignError::NotRegular)
        ));
        assert!(matches!(
            read_regular(Path::new("/dev/zero"), 5),
            Err(ForeignError::NotRegular)
        ));
        assert!(matches!(
            read_regular(&dir.path().join("none"), 5),
            Err(ForeignError::Missing)
        ));
        let opened = File::open(dir.path()).unwrap();
        assert!(open_regular_at(&opened, "f").unwrap().is_some());
        assert!(open_regular_at(&opened, "l").unwrap().is_none());
        assert!(open_regular_at(&opened, "../f").unwrap().is_none());
        assert!(open_dir_at(&opened, "l").unwrap().is_none());
    }
}
