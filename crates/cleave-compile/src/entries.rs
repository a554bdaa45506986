//! Compile entries in cleave's store, beside staging builds and packages,
//! so that they share its locking, verification, eviction and tiers.
//!
//! Two kinds, told apart by `extra.kind`:
//!
//! - `compile`: the result of one compile, under the preprocessed key:
//!   the tree `out` holds `object`, and `deps`, `stdout` and `stderr`
//!   when there are any. The roots' paths are found in their contents on
//!   capture, and rewritten to this build's on restore.
//! - `compile-manifest`: under the direct key (source, flags, compiler),
//!   no files; `extra.candidates` lists, newest first, the files each
//!   earlier compile of it read, with their digests, and the result they
//!   gave. Entries are immutable, so adding a candidate replaces the entry.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use cleave_cache::foreign::{self, ForeignError};
use cleave_cache::manifest::{Item, Manifest};
use cleave_cache::store::{Capture, Select, Target, TreeSource};
use cleave_cache::{CacheError, Digest, ErrorKind, Inputs, Store};
use serde::{Deserialize, Serialize};

use crate::error::CompileError;
use crate::roots::Roots;
use crate::stats::MissReason;

/// `extra.kind` of a compile result.
pub const KIND_RESULT: &str = "compile";
/// `extra.kind` of a direct-mode manifest.
pub const KIND_MANIFEST: &str = "compile-manifest";

/// How many include sets a manifest remembers.
const CANDIDATES: usize = 8;

/// One earlier compile of a direct key: what it read, what it gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// Each file read besides the source (normalised path) with its digest.
    pub files: Vec<(String, Digest)>,
    /// `SOURCE_DATE_EPOCH` of the compile, when the files use `__DATE__`
    /// or `__TIME__`: the result holds that date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
    /// The result's key.
    pub result: Digest,
}

/// Where a compile's outputs go.
#[derive(Debug, Clone, Copy)]
pub struct Outputs<'a> {
    /// The object.
    pub object: &'a Path,
    /// The dependency file.
    pub deps: Option<&'a Path>,
}

/// A compile's result, to store.
#[derive(Debug, Clone, Copy)]
pub struct NewResult<'a> {
    /// What its key (the preprocessed key) is computed from.
    pub inputs: &'a Inputs,
    /// The entry's name (the source).
    pub name: &'a str,
    /// Where the compiler wrote.
    pub outputs: Outputs<'a>,
    /// What it printed.
    pub printed: &'a Printed,
    /// How long it took, in microseconds.
    pub compile_us: u64,
}

/// What a compile printed, to print again on a hit.
#[derive(Debug, Default)]
pub struct Printed {
    /// Its standard output.
    pub stdout: Vec<u8>,
    /// Its standard error.
    pub stderr: Vec<u8>,
}

/// The most bytes of stdout, and of stderr, a compile's entry may give
/// back: an entry from a helper or a remote is read, not trusted.
const MAX_PRINTED: u64 = 64 << 20;

impl Printed {
    /// What a compile printed, as a restore left it in `dir` (`stdout`
    /// and `stderr`, each absent when empty): `None` when either is not a
    /// regular file or is larger than [`MAX_PRINTED`].
    pub(crate) fn read(dir: &Path) -> Option<Printed> {
        let read = |name: &str| match foreign::read_regular(&dir.join(name), MAX_PRINTED) {
            Ok(bytes) => Some(bytes),
            Err(ForeignError::Missing) => Some(Vec::new()),
            Err(_) => None,
        };
        Some(Printed {
            stdout: read("stdout")?,
            stderr: read("stderr")?,
        })
    }
}

/// A hit put in place.
#[derive(Debug)]
pub struct Restored {
    /// What the compile printed.
    pub printed: Printed,
    /// How long the compile took, in microseconds.
    pub compile_us: u64,
}

/// Why a result could not be used.
#[derive(Debug)]
pub enum NotRestored {
    /// There is no such entry.
    Absent,
    /// It cannot serve this build; compile.
    Miss(MissReason),
    /// The store failed.
    Error(CompileError),
}

/// The store, seen as a compile cache.
#[derive(Debug)]
pub struct Entries {
    store: Store,
}

impl Entries {
    /// Compile entries in `store`.
    pub fn new(store: Store) -> Entries {
        Entries { store }
    }

    /// The store behind the entries (for the remotes' lookups and uploads).
    pub fn as_store(&self) -> &Store {
        &self.store
    }

    /// The candidates of a direct key, newest first (none when there is no
    /// manifest or it cannot be read).
    pub fn candidates(&self, direct: &Digest) -> Vec<Candidate> {
        self.store
            .get(direct)
            .ok()
            .flatten()
            .and_then(|entry| serde_json::from_value(entry.meta().extra["candidates"].clone()).ok())
            .unwrap_or_default()
    }

    /// Marks a manifest used, for the store's LRU eviction.
    pub fn touch(&self, direct: &Digest) {
        // A restore of no trees reads the (empty) listing and marks the
        // entry used.
        if let Ok(Some(entry)) = self.store.get(direct) {
            let _ = entry.restore(&[], &[]);
        }
    }

    /// Puts `candidate` first in the manifest of `direct`.
    pub fn add_candidate(
        &self,
        direct: &Digest,
        inputs: &Inputs,
        name: &str,
        candidate: Candidate,
    ) -> Result<(), CompileError> {
        let mut candidates = self.candidates(direct);
        if candidates.first() == Some(&candidate) {
            return Ok(());
        }
        candidates.retain(|c| c != &candidate);
        candidates.insert(0, candidate);
        candidates.truncate(CANDIDATES);
        // Entries are immutable: replace it. A compile that looks in
        // between finds none and takes the preprocessor's way.
        self.store.remove(direct)?;
        self.store.put(&Capture {
            name,
            inputs,
            trees: Vec::new(),
            roots: Vec::new(),
            extra: serde_json::json!({
                "kind": KIND_MANIFEST,
                "candidates": candidates,
            }),
        })?;
        Ok(())
    }

    /// True if a result is stored under `key`.
    pub fn contains(&self, key: &Digest) -> bool {
        self.store.contains(key)
    }

    /// Puts the result under `key` at `outputs`, its paths rewritten to
    /// this build's roots. Files are restored beside their targets and
    /// renamed into place, with the time of now (for make and ninja).
    pub fn restore(
        &self,
        key: &Digest,
        outputs: Outputs<'_>,
        roots: &Roots,
    ) -> Result<Restored, NotRestored> {
        let entry = match self.store.get(key) {
            Ok(Some(entry)) => entry,
            Ok(None) => return Err(NotRestored::Absent),
            Err(e) => return Err(self.not_restored(key, e)),
        };
        let listing = entry.manifest().map_err(|e| self.not_restored(key, e))?;
        if !fits(&listing, roots) {
            return Err(NotRestored::Miss(MissReason::Relocation));
        }
        let staging = Staging::beside(outputs.object).map_err(NotRestored::Error)?;
        entry
            .restore(
                &[Target {
                    tree: "out",
                    dir: staging.dir(),
                    select: Select::All,
                }],
                &roots.pairs(),
            )
            .map_err(|e| self.not_restored(key, e))?;
        // Read before anything is placed: an entry that printed more than a
        // compile may is damaged, not half restored.
        let Some(printed) = Printed::read(staging.dir()) else {
            let _ = self.store.remove(key);
            return Err(NotRestored::Miss(MissReason::Damaged));
        };
        let err = |e| NotRestored::Error(e);
        staging.place("object", outputs.object).map_err(err)?;
        if let Some(deps) = outputs.deps {
            staging.place("deps", deps).map_err(err)?;
        }
        Ok(Restored {
            printed,
            compile_us: entry.meta().extra["compile_us"].as_u64().unwrap_or(0),
        })
    }

    /// What a store error on the way to the result under `key` means for
    /// this call. A damaged entry is a miss, and is dropped so that this
    /// compile stores it again (a damaged blob is dropped by the store
    /// already); an entry evicted meanwhile is as good as absent.
    fn not_restored(&self, key: &Digest, e: CacheError) -> NotRestored {
        match e.kind() {
            ErrorKind::Damaged => {
                let _ = self.store.remove(key);
                NotRestored::Miss(MissReason::Damaged)
            }
            ErrorKind::Unusable => NotRestored::Miss(MissReason::Relocation),
            ErrorKind::Evicted => NotRestored::Absent,
            ErrorKind::Target | ErrorKind::Io | ErrorKind::Request => NotRestored::Error(e.into()),
        }
    }

    /// Stores a compile's outputs and what it printed.
    pub fn store(&self, result: &NewResult<'_>, roots: &Roots) -> Result<(), CompileError> {
        let NewResult {
            inputs,
            name,
            outputs,
            printed,
            compile_us,
        } = *result;
        let staging = Staging::beside(outputs.object)?;
        staging.take(outputs.object, "object")?;
        if let Some(deps) = outputs.deps {
            staging.take(deps, "deps")?;
        }
        for (name, bytes) in [("stdout", &printed.stdout), ("stderr", &printed.stderr)] {
            if !bytes.is_empty() {
                let path = staging.dir().join(name);
                std::fs::write(&path, bytes)
                    .map_err(CompileError::io(format!("writing {}", path.display())))?;
            }
        }
        self.store.put(&Capture {
            name,
            inputs,
            trees: vec![TreeSource {
                name: "out",
                dir: staging.dir(),
                select: Select::All,
            }],
            roots: roots.pairs(),
            extra: serde_json::json!({
                "kind": KIND_RESULT,
                "compile_us": compile_us,
            }),
        })?;
        Ok(())
    }
}

/// Whether an entry's binary files can take this build's roots: a binary
/// file (an object, a linked output) can only take a path of the length it
/// holds, since a shorter one padded with NULs would break the strings of
/// debug information that share its bytes, and a longer one does not fit.
pub(crate) fn fits(listing: &Manifest, roots: &Roots) -> bool {
    listing.trees.values().flatten().all(|item| match item {
        Item::File {
            roots: held,
            binary: true,
            ..
        } => held.iter().all(|name| {
            let old = listing.roots.get(name).map(String::len);
            old.is_some() && old == roots.path_of(name).map(str::len)
        }),
        _ => true,
    })
}

/// Puts a compile's output at `dest` for the store to take: a hard link,
/// or a copy on another file system.
pub(crate) fn link_or_copy(path: &Path, dest: &Path) -> Result<(), CompileError> {
    std::fs::hard_link(path, dest)
        .or_else(|_| std::fs::copy(path, dest).map(drop))
        .map_err(CompileError::io(format!("reading {}", path.display())))
}

/// A scratch directory next to an output, on its file system, so that
/// files move between it and their places by renaming.
struct Staging(tempfile::TempDir);

impl Staging {
    fn beside(output: &Path) -> Result<Staging, CompileError> {
        let parent = match output.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        tempfile::Builder::new()
            .prefix(".cleave-compile-")
            .tempdir_in(&parent)
            .map(Staging)
            .map_err(CompileError::io(format!(
                "creating a directory in {}",
                parent.display()
            )))
    }

    fn dir(&self) -> &Path {
        self.0.path()
    }

    /// Links (or copies) `path` in as `name`.
    fn take(&self, path: &Path, name: &str) -> Result<(), CompileError> {
        link_or_copy(path, &self.dir().join(name))
    }

    /// Moves `name` to `dest` with the time of now.
    fn place(&self, name: &str, dest: &Path) -> Result<(), CompileError> {
        let from = self.dir().join(name);
        let io = || CompileError::io(format!("writing {}", dest.display()));
        // An object is a regular file: a link in an entry (one a remote or
        // helper made up) is not followed out of the build.
        if !std::fs::symlink_metadata(&from).map_err(io())?.is_file() {
            return Err(io()(std::io::Error::other(format!(
                "{name} in the cache entry is not a regular file"
            ))));
        }
        std::fs::File::options()
            .write(true)
            .open(&from)
            .and_then(|f| f.set_modified(SystemTime::now()))
            .map_err(io())?;
        if std::fs::rename(&from, dest).is_err() {
            // Another file system (a dependency file elsewhere).
            std::fs::copy(&from, dest).map_err(io())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_in_a_restored_entry_is_refused_and_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside.txt");
        std::fs::write(&outside, "precious").unwrap();
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        std::fs::File::options()
            .write(true)
            .open(&outside)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let object = dir.path().join("build/x.o");
        std::fs::create_dir_all(object.parent().unwrap()).unwrap();
        let staging = Staging::beside(&object).unwrap();
        std::os::unix::fs::symlink(&outside, staging.dir().join("object")).unwrap();
        assert!(staging.place("object", &object).is_err());
        assert!(!object.exists(), "nothing placed");
        let meta = std::fs::metadata(&outside).unwrap();
        assert_eq!(
            meta.modified().unwrap(),
            old,
            "the link's target is not touched"
        );
    }
}
