//! Content fingerprints of source trees, with a fast path for files that
//! have not changed since they were last hashed.
//!
//! A tree's digest covers each entry's relative path, kind, executable bit
//! and contents (symlinks by target), never an absolute path or a time.
//! Hashing 50,000 files on every build would be slow, so an index per tree
//! remembers `(size, mtime, ctime, inode, device) -> digest`. A remembered
//! digest is only trusted for a file whose mtime is older than the moment
//! the index was written: a file touched during or after that moment may
//! have changed within one timestamp tick, and is hashed again.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rayon::prelude::*;

use crate::digest::Digest;
use crate::error::CacheError;
use crate::filter::PathFilter;

/// How to walk a tree.
#[derive(Debug, Clone, Default)]
pub struct Walk {
    /// Skip what `.gitignore` and `.ignore` files exclude.
    pub gitignore: bool,
    /// Take only what this filter takes.
    pub filter: Option<Arc<PathFilter>>,
}

/// A tree's digest, and how much work it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeDigest {
    /// The digest.
    pub digest: Digest,
    /// Files read and hashed.
    pub hashed: usize,
    /// Files whose digest came from the index.
    pub reused: usize,
}

impl Walk {
    /// A walker over `root` that visits what a tree's digest covers:
    /// everything but `.git/`, and with `gitignore` not what `.gitignore`
    /// and `.ignore` files exclude. Whoever copies the tree walks it with
    /// this too, and asks [`Walk::takes`] about each entry, so the digest
    /// covers exactly the files copied.
    pub fn builder(&self, root: &Path) -> ignore::WalkBuilder {
        let mut builder = ignore::WalkBuilder::new(root);
        builder
            .hidden(false)
            .git_ignore(self.gitignore)
            .ignore(self.gitignore)
            .git_global(false)
            .git_exclude(false)
            .require_git(false)
            .parents(false)
            .filter_entry(|e| e.file_name() != ".git");
        builder
    }

    /// Whether a walked entry, at `rel` below the root and `path` on disk,
    /// belongs to the tree: everything without a filter; with one, what
    /// [`PathFilter`] takes (directories only as empty ones).
    pub fn takes(&self, rel: &Path, path: &Path, is_dir: bool) -> bool {
        match &self.filter {
            None => true,
            Some(filter) if is_dir => {
                let empty = std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_none());
                filter.takes_dir(rel, empty)
            }
            Some(filter) => filter.takes_file(rel),
        }
    }
}

/// Hashes trees, keeping fast-path indexes in one directory.
#[derive(Debug, Clone)]
pub struct Fingerprinter {
    index_dir: PathBuf,
}

/// What a file's metadata says about its contents, for the fast path
/// (of the fingerprints here and of the compile cache's file index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Status change time, nanoseconds since the epoch.
    pub ctime_ns: i64,
    /// Inode number.
    pub ino: u64,
    /// Device.
    pub dev: u64,
}

impl Stamp {
    /// The stamp of a file's metadata.
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Stamp {
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }

    /// The last time the file or its metadata changed.
    pub fn changed_ns(&self) -> i64 {
        self.mtime_ns.max(self.ctime_ns)
    }
}

enum Kind {
    Dir,
    File { executable: bool, stamp: Stamp },
    Symlink(PathBuf),
}

struct Found {
    rel: PathBuf,
    kind: Kind,
}

/// The remembered digests of one tree.
struct Index {
    /// When the index was written (ns since the epoch); only files older
    /// than this are trusted.
    written_ns: i64,
    files: HashMap<PathBuf, (Stamp, Digest)>,
}

const INDEX_MAGIC: &[u8] = b"cleave-fingerprints 1\n";

impl Fingerprinter {
    /// Keeps its indexes in `index_dir` (created on first write).
    pub fn new(index_dir: impl Into<PathBuf>) -> Self {
        Fingerprinter {
            index_dir: index_dir.into(),
        }
    }

    /// The digest of the tree (or single file) at `root`.
    pub fn tree(&self, root: &Path, walk: &Walk) -> Result<TreeDigest, CacheError> {
        let started = now_ns();
        let meta = std::fs::metadata(root)
            .map_err(CacheError::io(format!("reading {}", root.display())))?;
        if !meta.is_dir() {
            let digest = Digest::of_file(root)
                .map_err(CacheError::io(format!("reading {}", root.display())))?;
            let mut hasher = blake3::Hasher::new();
            hasher.update(if meta.mode() & 0o111 != 0 { b"x" } else { b"-" });
            hasher.update(&digest.0);
            return Ok(TreeDigest {
                digest: hasher.finalize().into(),
                hashed: 1,
                reused: 0,
            });
        }
        let index_path = self.index_path(root);
        let old = read_index(&index_path).unwrap_or_else(|| Index {
            written_ns: i64::MIN,
            files: HashMap::new(),
        });
        let mut found = walk_tree(root, walk)?;
        // Byte order: cheaper than comparing paths component by component.
        found.sort_unstable_by(|a, b| {
            a.rel
                .as_os_str()
                .as_encoded_bytes()
                .cmp(b.rel.as_os_str().as_encoded_bytes())
        });
        let digests: Vec<Option<(Digest, bool)>> = found
            .par_iter()
            .map(|f| match &f.kind {
                Kind::File { stamp, .. } => {
                    let known = old.files.get(&f.rel).filter(|(s, _)| {
                        s == stamp
                            && stamp.mtime_ns < old.written_ns
                            && stamp.ctime_ns < old.written_ns
                    });
                    match known {
                        Some((_, digest)) => Ok(Some((*digest, true))),
                        None => Digest::of_file(&root.join(&f.rel))
                            .map(|d| Some((d, false)))
                            .map_err(CacheError::io(format!(
                                "reading {}",
                                root.join(&f.rel).display()
                            ))),
                    }
                }
                _ => Ok(None),
            })
            .collect::<Result<_, _>>()?;

        let mut hasher = blake3::Hasher::new();
        let (mut hashed, mut reused) = (0, 0);
        for (f, digest) in found.iter().zip(&digests) {
            let rel = f.rel.as_os_str().as_encoded_bytes();
            hasher.update(&(rel.len() as u64).to_le_bytes());
            hasher.update(rel);
            match (&f.kind, digest) {
                (Kind::Dir, _) => {
                    hasher.update(b"d");
                }
                (Kind::Symlink(target), _) => {
                    let target = target.as_os_str().as_encoded_bytes();
                    hasher.update(b"l");
                    hasher.update(&(target.len() as u64).to_le_bytes());
                    hasher.update(target);
                }
                (Kind::File { executable, .. }, Some((digest, known))) => {
                    if *known {
                        reused += 1;
                    } else {
                        hashed += 1;
                    }
                    hasher.update(if *executable { b"x" } else { b"f" });
                    hasher.update(&digest.0);
                }
                (Kind::File { .. }, None) => unreachable!("every file was hashed"),
            }
        }
        // The index only saves time; failing to write it costs nothing else.
        // When every file came from it, it is still right as it is.
        if hashed > 0 || reused != old.files.len() {
            let mut fresh = Index {
                written_ns: started,
                files: HashMap::with_capacity(found.len()),
            };
            for (f, digest) in found.iter().zip(&digests) {
                // Files touched since hashing started cannot be trusted next
                // time: they may change again within the same tick.
                if let (Kind::File { stamp, .. }, Some((digest, _))) = (&f.kind, digest)
                    && stamp.mtime_ns < started
                    && stamp.ctime_ns < started
                {
                    fresh.files.insert(f.rel.clone(), (*stamp, *digest));
                }
            }
            let _ = write_index(&index_path, &fresh);
        }
        Ok(TreeDigest {
            digest: hasher.finalize().into(),
            hashed,
            reused,
        })
    }

    fn index_path(&self, root: &Path) -> PathBuf {
        let id = Digest::of(root.as_os_str().as_encoded_bytes());
        self.index_dir.join(format!("{}.idx", &id.to_hex()[..32]))
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Lists the tree on all cores: on a warm tree, walking and `lstat` are
/// most of the work.
fn walk_tree(root: &Path, walk: &Walk) -> Result<Vec<Found>, CacheError> {
    let walker = walk
        .builder(root)
        .threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .build_parallel();
    let found = std::sync::Mutex::new(Vec::new());
    let failure = std::sync::Mutex::new(None);
    walker.run(|| {
        let mut batch = Batch {
            local: Vec::new(),
            out: &found,
        };
        let failure = &failure;
        Box::new(move |entry: Result<ignore::DirEntry, ignore::Error>| {
            use ignore::WalkState;
            let result = entry
                .map_err(|e| CacheError::Io {
                    context: format!("walking {}", root.display()),
                    source: std::io::Error::other(e.to_string()),
                })
                .and_then(|entry| found_entry(root, &entry, walk));
            match result {
                Ok(Some(f)) => batch.local.push(f),
                Ok(None) => {}
                Err(e) => {
                    *failure.lock().expect("no panics while locked") = Some(e);
                    return WalkState::Quit;
                }
            }
            WalkState::Continue
        }) as Box<dyn FnMut(_) -> _ + Send>
    });
    if let Some(e) = failure.into_inner().expect("no panics while locked") {
        return Err(e);
    }
    Ok(found.into_inner().expect("no panics while locked"))
}

/// One walker thread's finds, handed over when the thread is done with it.
struct Batch<'a> {
    local: Vec<Found>,
    out: &'a std::sync::Mutex<Vec<Found>>,
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if let Ok(mut out) = self.out.lock() {
            out.append(&mut self.local);
        }
    }
}

fn found_entry(
    root: &Path,
    entry: &ignore::DirEntry,
    walk: &Walk,
) -> Result<Option<Found>, CacheError> {
    let Ok(rel) = entry.path().strip_prefix(root) else {
        return Ok(None);
    };
    let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
    if rel.as_os_str().is_empty() || !walk.takes(rel, entry.path(), is_dir) {
        return Ok(None);
    }
    let io = CacheError::io(format!("reading {}", entry.path().display()));
    let meta = entry
        .metadata()
        .map_err(|e| io(std::io::Error::other(e.to_string())))?;
    let kind = if meta.is_dir() {
        Kind::Dir
    } else if meta.file_type().is_symlink() {
        Kind::Symlink(
            std::fs::read_link(entry.path()).map_err(CacheError::io(format!(
                "reading {}",
                entry.path().display()
            )))?,
        )
    } else {
        Kind::File {
            executable: meta.mode() & 0o111 != 0,
            stamp: Stamp::of(&meta),
        }
    };
    Ok(Some(Found {
        rel: rel.to_path_buf(),
        kind,
    }))
}

fn read_index(path: &Path) -> Option<Index> {
    let bytes = crate::foreign::read_regular(path, crate::foreign::limits::RECORD).ok()?;
    let mut rest = bytes.strip_prefix(INDEX_MAGIC)?;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = rest.split_at_checked(n)?;
        rest = tail;
        Some(head)
    };
    let u64_at = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    let written_ns = u64_at(take(8)?) as i64;
    let count = u64_at(take(8)?) as usize;
    let mut files = HashMap::with_capacity(count.min(1 << 20));
    for _ in 0..count {
        let len = u64_at(take(8)?) as usize;
        let rel = PathBuf::from(std::str::from_utf8(take(len)?).ok()?);
        let mut n = [0u64; 5];
        for v in &mut n {
            *v = u64_at(take(8)?);
        }
        let digest = Digest(take(32)?.try_into().ok()?);
        let stamp = Stamp {
            size: n[0],
            mtime_ns: n[1] as i64,
            ctime_ns: n[2] as i64,
            ino: n[3],
            dev: n[4],
        };
        files.insert(rel, (stamp, digest));
    }
    Some(Index { written_ns, files })
}

fn write_index(path: &Path, index: &Index) -> std::io::Result<()> {
    let dir = path.parent().expect("index files live in a directory");
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::with_capacity(64 + index.files.len() * 120);
    out.extend_from_slice(INDEX_MAGIC);
    out.extend_from_slice(&(index.written_ns as u64).to_le_bytes());
    let utf8: Vec<_> = index
        .files
        .iter()
        .filter_map(|(rel, v)| rel.to_str().map(|r| (r, v)))
        .collect();
    out.extend_from_slice(&(utf8.len() as u64).to_le_bytes());
    for (rel, (stamp, digest)) in utf8 {
        out.extend_from_slice(&(rel.len() as u64).to_le_bytes());
        out.extend_from_slice(rel.as_bytes());
        for v in [
            stamp.size,
            stamp.mtime_ns as u64,
            stamp.ctime_ns as u64,
            stamp.ino,
            stamp.dev,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&digest.0);
    }
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(&out)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn setup() -> (tempfile::TempDir, tempfile::TempDir) {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("a/b")).unwrap();
        std::fs::write(src.path().join("a/b/one.c"), "int one;").unwrap();
        std::fs::write(src.path().join("build.sh"), "make").unwrap();
        (src, tempfile::tempdir().unwrap())
    }

    #[test]
    fn digest_follows_contents_names_modes_and_links_not_location() {
        let (src, idx) = setup();
        let fp = Fingerprinter::new(idx.path());
        let d0 = fp.tree(src.path(), &Walk::default()).unwrap().digest;
        assert_eq!(d0, fp.tree(src.path(), &Walk::default()).unwrap().digest);

        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(elsewhere.path().join("a/b")).unwrap();
        std::fs::write(elsewhere.path().join("a/b/one.c"), "int one;").unwrap();
        std::fs::write(elsewhere.path().join("build.sh"), "make").unwrap();
        assert_eq!(
            d0,
            fp.tree(elsewhere.path(), &Walk::default()).unwrap().digest
        );

        let script = src.path().join("build.sh");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let d1 = fp.tree(src.path(), &Walk::default()).unwrap().digest;
        assert_ne!(d0, d1);

        std::fs::write(src.path().join("a/new.h"), "").unwrap();
        let d2 = fp.tree(src.path(), &Walk::default()).unwrap().digest;
        assert_ne!(d1, d2);

        std::fs::remove_file(src.path().join("a/new.h")).unwrap();
        assert_eq!(d1, fp.tree(src.path(), &Walk::default()).unwrap().digest);

        std::os::unix::fs::symlink("b/one.c", src.path().join("a/link")).unwrap();
        assert_ne!(d1, fp.tree(src.path(), &Walk::default()).unwrap().digest);
    }

    #[test]
    fn an_edit_keeping_size_and_mtime_is_seen_when_the_file_is_recent() {
        let (src, idx) = setup();
        let fp = Fingerprinter::new(idx.path());
        let file = src.path().join("a/b/one.c");
        let d0 = fp.tree(src.path(), &Walk::default()).unwrap().digest;
        let mtime = filetime::FileTime::from_last_modification_time(&file.metadata().unwrap());
        // Same size, same mtime: only a file's recency keeps it untrusted.
        std::fs::write(&file, "int two;").unwrap();
        filetime::set_file_mtime(&file, mtime).unwrap();
        assert_ne!(d0, fp.tree(src.path(), &Walk::default()).unwrap().digest);
    }

    #[test]
    fn old_unchanged_files_come_from_the_index() {
        let (src, idx) = setup();
        let fp = Fingerprinter::new(idx.path());
        let first = fp.tree(src.path(), &Walk::default()).unwrap();
        assert_eq!((first.hashed, first.reused), (2, 0));
        // Both files were written just before the first walk began, so
        // they are older than the index now.
        let second = fp.tree(src.path(), &Walk::default()).unwrap();
        assert_eq!((second.hashed, second.reused), (0, 2));
        assert_eq!(first.digest, second.digest);
        std::fs::write(src.path().join("build.sh"), "make all").unwrap();
        let third = fp.tree(src.path(), &Walk::default()).unwrap();
        assert_eq!((third.hashed, third.reused), (1, 1));
        assert_ne!(first.digest, third.digest);
    }

    #[test]
    fn gitignored_files_do_not_count_when_asked() {
        let (src, idx) = setup();
        let fp = Fingerprinter::new(idx.path());
        std::fs::write(src.path().join(".gitignore"), "*.o\n").unwrap();
        let walk = Walk {
            gitignore: true,
            ..Walk::default()
        };
        let d0 = fp.tree(src.path(), &walk).unwrap().digest;
        std::fs::write(src.path().join("a/one.o"), "obj").unwrap();
        assert_eq!(d0, fp.tree(src.path(), &walk).unwrap().digest);
        assert_ne!(d0, fp.tree(src.path(), &Walk::default()).unwrap().digest);
    }

    #[test]
    fn a_filter_narrows_the_digest_to_the_files_it_takes() {
        let (src, idx) = setup();
        let fp = Fingerprinter::new(idx.path());
        let filter = PathFilter::new(&["a/".to_string()], &[]).unwrap();
        let walk = Walk {
            filter: Some(Arc::new(filter)),
            ..Walk::default()
        };
        let d0 = fp.tree(src.path(), &walk).unwrap();
        assert_eq!(d0.hashed, 1, "only a/b/one.c");
        // A file the filter leaves out changes nothing.
        std::fs::write(src.path().join("build.sh"), "make everything").unwrap();
        assert_eq!(d0.digest, fp.tree(src.path(), &walk).unwrap().digest);
        // One it takes does.
        std::fs::write(src.path().join("a/b/one.c"), "int uno;").unwrap();
        assert_ne!(d0.digest, fp.tree(src.path(), &walk).unwrap().digest);
    }
}
