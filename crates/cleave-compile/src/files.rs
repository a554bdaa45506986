//! Digests of the files a compile reads (the compiler, the source, every
//! header), with the fast path of seed 004: a file whose size, mtime,
//! ctime, inode and device are those it had when it was last hashed keeps
//! its digest, without being read.
//!
//! A remembered digest is trusted only for a file last changed more than
//! a second before it was hashed (the kernel stamps files with a coarse
//! clock, so a write just after the hashing can carry an older time), and,
//! in a recipe build, last changed before the build started: a file the
//! build writes (a generated header) is hashed on every use, never
//! trusted.
//!
//! The remembered digests live in one small index file per directory,
//! under the cache's `compile/files/`, so that a compile reads the few
//! indexes of the directories its headers come from. Concurrent compiles
//! each replace an index whole (write and rename); one that loses a race
//! only costs a later compile some hashing.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use aho_corasick::AhoCorasick;
use cleave_cache::Digest;
use cleave_cache::fingerprint::Stamp;

/// What a compile needs to know about one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    /// BLAKE3 of the contents.
    pub digest: Digest,
    /// The time macros the contents mention.
    pub macros: TimeMacros,
    /// The later of mtime and ctime, in ns since the epoch.
    pub changed_ns: i64,
}

/// Whether a text mentions `__DATE__`/`__TIME__` (fixed by
/// `SOURCE_DATE_EPOCH`), `__TIMESTAMP__` (a file's mtime), or names the
/// warning that reports their use (`-Wdate-time`, or `-Weverything`): a
/// `#pragma ... diagnostic ignored` could hide a use from it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeMacros {
    /// `__DATE__` or `__TIME__`.
    pub date_time: bool,
    /// `__TIMESTAMP__`.
    pub timestamp: bool,
    /// `-Wdate-time` or `-Weverything`.
    pub warning: bool,
}

/// What [`TimeMacros`] looks for, in the order of its patterns.
const TIME_PATTERNS: [&str; 5] = [
    "__DATE__",
    "__TIME__",
    "__TIMESTAMP__",
    "-Wdate-time",
    "-Weverything",
];

impl TimeMacros {
    fn bits(self) -> u8 {
        u8::from(self.date_time) | (u8::from(self.timestamp) << 1) | (u8::from(self.warning) << 2)
    }

    fn from_bits(bits: u8) -> Self {
        TimeMacros {
            date_time: bits & 1 != 0,
            timestamp: bits & 2 != 0,
            warning: bits & 4 != 0,
        }
    }

    /// Any of them.
    pub fn any(self) -> bool {
        self.date_time || self.timestamp || self.warning
    }

    /// Both together.
    pub fn or(self, other: TimeMacros) -> TimeMacros {
        TimeMacros {
            date_time: self.date_time || other.date_time,
            timestamp: self.timestamp || other.timestamp,
            warning: self.warning || other.warning,
        }
    }

    /// What `text` mentions (a command line).
    pub fn in_text(text: &str) -> TimeMacros {
        let mut found = TimeMacros::default();
        for (i, pattern) in TIME_PATTERNS.iter().enumerate() {
            if text.contains(pattern) {
                found.note(i);
            }
        }
        found
    }

    fn note(&mut self, pattern: usize) {
        match pattern {
            0 | 1 => self.date_time = true,
            2 => self.timestamp = true,
            _ => self.warning = true,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    stamp: Stamp,
    hashed_ns: i64,
    digest: Digest,
    macros: u8,
}

#[derive(Debug, Default)]
struct DirIndex {
    records: HashMap<OsString, Record>,
    /// Records hashed by this process, to be written back.
    fresh: HashMap<OsString, Record>,
}

/// A file written less than this before it was hashed is hashed again.
const MARGIN_NS: i64 = 1_000_000_000;

/// Bumped when what a record holds changes (2: the `-Wdate-time` bit).
const MAGIC: &str = "cleave-files 2";

/// File digests for one compile.
#[derive(Debug)]
pub struct Files {
    dir: PathBuf,
    cwd: PathBuf,
    build_start_ns: Option<i64>,
    indexes: HashMap<PathBuf, DirIndex>,
    macros: AhoCorasick,
    /// Files read and hashed.
    pub hashed: usize,
    /// Files whose digest came from an index.
    pub reused: usize,
}

impl Files {
    /// Digests for a compile in `cwd`, with indexes in `dir`; files changed
    /// at or after `build_start_ns` are never trusted.
    pub fn new(dir: PathBuf, cwd: PathBuf, build_start_ns: Option<i64>) -> Files {
        Files {
            dir,
            cwd,
            build_start_ns,
            indexes: HashMap::new(),
            macros: AhoCorasick::new(TIME_PATTERNS).expect("literal patterns"),
            hashed: 0,
            reused: 0,
        }
    }

    /// The digest of the file at `path` (relative to the compile's
    /// directory), from its index when it can be trusted.
    pub fn info(&mut self, path: &Path) -> std::io::Result<FileInfo> {
        let path = self.cwd.join(path);
        let meta = std::fs::metadata(&path)?;
        if !meta.is_file() {
            return Err(std::io::Error::other(format!(
                "{} is not a file",
                path.display()
            )));
        }
        let stamp = Stamp::of(&meta);
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return self.hash(&path, stamp).map(|r| info(&r));
        };
        let trusted = self.lookup(parent, name).filter(|r| {
            r.stamp == stamp
                && stamp.changed_ns() + MARGIN_NS < r.hashed_ns
                && self
                    .build_start_ns
                    .is_none_or(|start| stamp.changed_ns() < start)
        });
        if let Some(record) = trusted {
            self.reused += 1;
            return Ok(info(&record));
        }
        let record = self.hash(&path, stamp)?;
        self.hashed += 1;
        if let Some(index) = self.indexes.get_mut(parent) {
            index.fresh.insert(name.to_os_string(), record);
        }
        Ok(info(&record))
    }

    fn lookup(&mut self, dir: &Path, name: &OsStr) -> Option<Record> {
        if !self.indexes.contains_key(dir) {
            let index = read_index(&self.index_path(dir), dir).unwrap_or_default();
            self.indexes.insert(dir.to_path_buf(), index);
        }
        self.indexes.get(dir)?.records.get(name).copied()
    }

    fn hash(&self, path: &Path, stamp: Stamp) -> std::io::Result<Record> {
        let hashed_ns = now_ns();
        let mut file = std::fs::File::open(path)?;
        let mut hasher = blake3::Hasher::new();
        let mut macros = TimeMacros::default();
        // The tail of the previous chunk, so that a macro name split
        // between two reads is still found.
        let mut carry: Vec<u8> = Vec::new();
        let mut buf = vec![0; 256 * 1024];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            carry.extend_from_slice(&buf[..n]);
            for m in self.macros.find_overlapping_iter(&carry[..]) {
                macros.note(m.pattern().as_usize());
            }
            let keep = carry.len().min(12);
            carry.drain(..carry.len() - keep);
        }
        Ok(Record {
            stamp,
            hashed_ns,
            digest: hasher.finalize().into(),
            macros: macros.bits(),
        })
    }

    fn index_path(&self, dir: &Path) -> PathBuf {
        let id = Digest::of(dir.as_os_str().as_bytes());
        self.dir.join(format!("{}.idx", &id.to_hex()[..32]))
    }

    /// Writes back the indexes that learned digests; failures only cost
    /// time later.
    pub fn save(&mut self) {
        for (dir, index) in &self.indexes {
            if index.fresh.is_empty() {
                continue;
            }
            let path = self.index_path(dir);
            // What other compiles wrote since this one read the index.
            let mut records = read_index(&path, dir).unwrap_or_default().records;
            records.extend(index.fresh.iter().map(|(k, v)| (k.clone(), *v)));
            let _ = write_index(&path, dir, &records);
        }
    }
}

fn info(record: &Record) -> FileInfo {
    FileInfo {
        digest: record.digest,
        macros: TimeMacros::from_bits(record.macros),
        changed_ns: record.stamp.changed_ns(),
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

fn read_index(path: &Path, dir: &Path) -> Option<DirIndex> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .read_to_end(&mut bytes)
        .ok()?;
    let mut lines = bytes.split(|b| *b == b'\n');
    let header = lines.next()?;
    let expected = [MAGIC.as_bytes(), b"\t", dir.as_os_str().as_bytes()].concat();
    if header != expected {
        return None;
    }
    let mut records = HashMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        if let Some((name, record)) = parse_record(line) {
            records.insert(name, record);
        }
    }
    Some(DirIndex {
        records,
        fresh: HashMap::new(),
    })
}

fn parse_record(line: &[u8]) -> Option<(OsString, Record)> {
    let mut fields = line.splitn(9, |b| *b == b'\t');
    let mut text = || std::str::from_utf8(fields.next()?).ok();
    let digest: Digest = text()?.parse().ok()?;
    let size = text()?.parse().ok()?;
    let mtime_ns = text()?.parse().ok()?;
    let ctime_ns = text()?.parse().ok()?;
    let ino = text()?.parse().ok()?;
    let dev = text()?.parse().ok()?;
    let hashed_ns = text()?.parse().ok()?;
    let macros = text()?.parse().ok()?;
    let name = OsString::from_vec(fields.next()?.to_vec());
    Some((
        name,
        Record {
            stamp: Stamp {
                size,
                mtime_ns,
                ctime_ns,
                ino,
                dev,
            },
            hashed_ns,
            digest,
            macros,
        },
    ))
}

fn write_index(
    path: &Path,
    dir: &Path,
    records: &HashMap<OsString, Record>,
) -> std::io::Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let mut out = Vec::with_capacity(64 + records.len() * 140);
    out.extend_from_slice(MAGIC.as_bytes());
    out.push(b'\t');
    out.extend_from_slice(dir.as_os_str().as_bytes());
    out.push(b'\n');
    for (name, r) in records {
        if name.as_bytes().contains(&b'\n') {
            continue;
        }
        let s = r.stamp;
        out.extend_from_slice(
            format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t",
                r.digest, s.size, s.mtime_ns, s.ctime_ns, s.ino, s.dev, r.hashed_ns, r.macros
            )
            .as_bytes(),
        );
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    let mut tmp = tempfile::NamedTempFile::new_in(parent)?;
    tmp.write_all(&out)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Removes the indexes of directories that no longer exist (the work dirs
/// of finished builds); returns how many.
pub fn prune(dir: &Path) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let path = entry?.path();
        let mut head = Vec::new();
        let gone = std::fs::File::open(&path)
            .and_then(|f| f.take(8192).read_to_end(&mut head))
            .ok()
            .and_then(|_| {
                let line = head.split(|b| *b == b'\n').next()?;
                let rest = line.strip_prefix(MAGIC.as_bytes())?.strip_prefix(b"\t")?;
                Some(!Path::new(OsStr::from_bytes(rest)).is_dir())
            })
            .unwrap_or(true);
        if gone && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn old_file(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        path
    }

    #[test]
    fn an_unchanged_file_is_read_once_and_an_edit_is_seen() {
        let src = tempfile::tempdir().unwrap();
        let idx = tempfile::tempdir().unwrap();
        let header = old_file(src.path(), "a.h", "int a;");
        let mut files = Files::new(idx.path().into(), src.path().into(), None);
        let first = files.info(&header).unwrap();
        files.save();
        // ctime is "now": the file is hashed until it is a second older
        // than its hashing.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let mut files = Files::new(idx.path().into(), src.path().into(), None);
        assert_eq!(files.info(Path::new("a.h")).unwrap(), first);
        files.save();
        let mut files = Files::new(idx.path().into(), src.path().into(), None);
        assert_eq!(files.info(Path::new("a.h")).unwrap(), first);
        assert_eq!((files.hashed, files.reused), (0, 1));

        std::fs::write(&header, "int b;").unwrap();
        let mut files = Files::new(idx.path().into(), src.path().into(), None);
        let edited = files.info(&header).unwrap();
        assert_ne!(edited.digest, first.digest);
        assert_eq!(files.hashed, 1);
    }

    #[test]
    fn a_file_changed_after_the_build_started_is_always_hashed() {
        let src = tempfile::tempdir().unwrap();
        let idx = tempfile::tempdir().unwrap();
        let header = old_file(src.path(), "gen.h", "int a;");
        let start = now_ns() - 3 * MARGIN_NS;
        let mut files = Files::new(idx.path().into(), src.path().into(), Some(start));
        files.info(&header).unwrap();
        files.save();
        let mut files = Files::new(idx.path().into(), src.path().into(), Some(start));
        files.info(&header).unwrap();
        assert_eq!(files.hashed, 1, "its ctime is after the build start");
    }

    #[test]
    fn time_macros_are_found_even_across_reads() {
        let src = tempfile::tempdir().unwrap();
        let idx = tempfile::tempdir().unwrap();
        let mut text = "x".repeat(256 * 1024 - 4);
        text.push_str("__DATE__ and __TIMESTAMP__");
        let path = old_file(src.path(), "t.c", &text);
        let mut files = Files::new(idx.path().into(), src.path().into(), None);
        let info = files.info(&path).unwrap();
        assert!(info.macros.date_time && info.macros.timestamp);
        let plain = old_file(src.path(), "p.c", "int TIME__;");
        assert!(!files.info(&plain).unwrap().macros.any());
        let pragma = old_file(
            src.path(),
            "q.h",
            "#pragma GCC diagnostic ignored \"-Wdate-time\"\n",
        );
        let found = files.info(&pragma).unwrap().macros;
        assert!(found.warning && !found.date_time);
        assert_eq!(
            TimeMacros::in_text("-DSTAMP=__TIMESTAMP__"),
            TimeMacros {
                timestamp: true,
                ..TimeMacros::default()
            }
        );
    }

    #[test]
    fn prune_drops_indexes_of_removed_directories() {
        let idx = tempfile::tempdir().unwrap();
        let keep = tempfile::tempdir().unwrap();
        let gone = tempfile::tempdir().unwrap();
        for dir in [keep.path(), gone.path()] {
            let f = old_file(dir, "a.h", "x");
            let mut files = Files::new(idx.path().into(), dir.into(), None);
            files.info(&f).unwrap();
            files.save();
        }
        let gone_path = gone.path().to_path_buf();
        drop(gone);
        assert!(!gone_path.exists());
        assert_eq!(prune(idx.path()).unwrap(), 1);
        assert_eq!(std::fs::read_dir(idx.path()).unwrap().count(), 1);
    }
}
