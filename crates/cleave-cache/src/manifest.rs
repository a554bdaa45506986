//! What an entry holds: its metadata and the list of captured items, and
//! how both are written to and read from disk.
//!
//! Both come from disk (or from another machine), so nothing in them is
//! trusted. `entry.json` is sealed: it holds the BLAKE3 digest of its own
//! metadata text, and the metadata holds the digest of `files.json`, so an
//! edit of either file that stays valid JSON (a renamed path, two blob
//! references swapped, another mode or run export) is damage, not a
//! different entry. [`Manifest::check`] then refuses any path that could
//! write outside a restore target before a single file is written.
//!
//! ```text
//! entry.json  {"seal":"<BLAKE3 of the meta text>","meta":{…, "manifest":"<BLAKE3 of files.json>"}}
//! files.json  {"roots":{…},"trees":{"<tree>":[<item>, …]}}
//! ```

use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::CacheError;
use crate::foreign::printable;
use crate::key::Inputs;

/// The small part of an entry: enough to list, explain and evict it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryMeta {
    /// The key.
    pub key: Digest,
    /// The name the caller gave (a staging name).
    pub name: String,
    /// Seconds since the epoch when it was stored.
    pub created: u64,
    /// The inputs the key was computed from.
    pub inputs: Inputs,
    /// Files, links and directories held.
    pub items: usize,
    /// Bytes of file contents (before deduplication).
    pub size: u64,
    /// What the caller keeps with the entry (for cleave: the run exports of
    /// the staging environments, which a hit does not install).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub extra: serde_json::Value,
    /// The digest of the entry's `files.json`, checked before it is read.
    pub manifest: Digest,
}

/// `entry.json` as it is on disk: the metadata and the digest of its text.
#[derive(Deserialize)]
struct Sealed<'a> {
    seal: Digest,
    #[serde(borrow)]
    meta: &'a serde_json::value::RawValue,
}

impl EntryMeta {
    /// The text of `entry.json`, sealed with the digest of the metadata.
    pub(crate) fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        let meta = serde_json::to_string(self)?;
        let seal = Digest::of(meta.as_bytes());
        Ok(format!("{{\"seal\":\"{seal}\",\"meta\":{meta}}}").into_bytes())
    }

    /// Reads the `entry.json` of the entry under `key`: its seal must match
    /// its metadata, and the metadata must name `key`.
    pub fn from_json(bytes: &[u8], key: &Digest) -> Result<EntryMeta, CacheError> {
        let damaged = |reason: String| CacheError::Damaged {
            key: key.to_hex(),
            reason: format!("entry.json: {reason}"),
        };
        // A parser's message may quote the text it read: escaped.
        let damaged = |reason: String| damaged(printable(&reason).into_owned());
        let sealed: Sealed<'_> =
            serde_json::from_slice(bytes).map_err(|e| damaged(e.to_string()))?;
        if Digest::of(sealed.meta.get().as_bytes()) != sealed.seal {
            return Err(damaged("does not match its seal".into()));
        }
        let meta: EntryMeta =
            serde_json::from_str(sealed.meta.get()).map_err(|e| damaged(e.to_string()))?;
        if meta.key != *key {
            return Err(damaged(format!("belongs to the entry {}", meta.key)));
        }
        Ok(meta)
    }
}

/// The set-user-ID and set-group-ID bits: never kept for a file.
pub const SET_ID: u32 = 0o6000;

/// The longest root path: the system's `PATH_MAX`.
const MAX_ROOT: usize = 4096;

/// Every item of an entry, per tree, and where the trees were captured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    /// Named absolute paths that file contents were searched for.
    pub roots: BTreeMap<String, String>,
    /// Tree name to its items, in path order.
    pub trees: BTreeMap<String, Vec<Item>>,
}

/// One captured filesystem object, relative to its tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Item {
    /// A directory (kept so that empty ones and modes survive).
    Dir {
        /// Relative path.
        path: PathBuf,
        /// Permission bits.
        mode: u32,
    },
    /// A regular file; its contents are a blob.
    File {
        /// Relative path.
        path: PathBuf,
        /// The blob.
        blob: Digest,
        /// Size in bytes.
        size: u64,
        /// Permission bits.
        mode: u32,
        /// Modification time: seconds and nanoseconds (ninja and make
        /// compare them).
        mtime: (i64, u32),
        /// Roots whose path the contents hold.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        roots: Vec<String>,
        /// Whether the contents are binary (hold a NUL byte).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        binary: bool,
    },
    /// A symbolic link, kept as a link (also when broken).
    Symlink {
        /// Relative path.
        path: PathBuf,
        /// Where it points, as written.
        target: PathBuf,
    },
}

/// A file's modification time as seconds and nanoseconds since the epoch,
/// or `None` when it cannot be one (nanoseconds of a second or more, a
/// time the system cannot represent).
pub fn mtime((seconds, nanos): (i64, u32)) -> Option<SystemTime> {
    if nanos >= 1_000_000_000 {
        return None;
    }
    let whole = Duration::from_secs(seconds.unsigned_abs());
    let at = if seconds >= 0 {
        UNIX_EPOCH.checked_add(whole)
    } else {
        UNIX_EPOCH.checked_sub(whole)
    };
    at?.checked_add(Duration::from_nanos(u64::from(nanos)))
}

impl Item {
    /// The item's path relative to its tree.
    pub fn path(&self) -> &Path {
        match self {
            Item::Dir { path, .. } | Item::File { path, .. } | Item::Symlink { path, .. } => path,
        }
    }
}

impl Manifest {
    /// Reads the `files.json` of the entry `meta` describes: its digest must
    /// be the one `entry.json` records, and its paths must pass
    /// [`Manifest::check`].
    pub fn from_json(bytes: &[u8], meta: &EntryMeta) -> Result<Manifest, CacheError> {
        let key = meta.key.to_hex();
        let damaged = |reason: String| CacheError::Damaged {
            key: key.clone(),
            reason: format!("files.json: {reason}"),
        };
        if Digest::of(bytes) != meta.manifest {
            return Err(damaged(
                "does not match the digest entry.json records".into(),
            ));
        }
        let manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| damaged(printable(&e.to_string()).into_owned()))?;
        manifest.check(&key)?;
        Ok(manifest)
    }

    /// Refuses absolute paths, `..` and other non-plain components,
    /// duplicate paths, and paths below a symlink of the same tree (writing
    /// one would follow the link out of the target); modes beyond
    /// permission bits, files that would be set-user-ID or set-group-ID
    /// (restored by a build that runs as root, they would run as root), and
    /// modification times out of range; and roots that are not plain
    /// absolute paths (a root's path is what a restore replaces in file
    /// contents: an empty one would match between every two bytes).
    pub fn check(&self, key: &str) -> Result<(), CacheError> {
        let refuse = |path: &Path, reason| CacheError::Unsafe {
            key: key.to_string(),
            path: path.to_path_buf(),
            reason,
        };
        for root in self.roots.values() {
            let path = Path::new(root);
            let plain = path
                .components()
                .skip(1)
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
            if !path.is_absolute() || path.parent().is_none() || !plain {
                return Err(refuse(path, "is a root that is not a plain absolute path"));
            }
            if root.len() > MAX_ROOT || root.contains('\0') {
                return Err(refuse(path, "is a root longer than a path may be"));
            }
        }
        for items in self.trees.values() {
            let mut seen = HashSet::new();
            let links: HashSet<&Path> = items
                .iter()
                .filter(|i| matches!(i, Item::Symlink { .. }))
                .map(Item::path)
                .collect();
            for item in items {
                let path = item.path();
                if path.as_os_str().is_empty() {
                    return Err(refuse(path, "is empty"));
                }
                if path.is_absolute() {
                    return Err(refuse(path, "is absolute"));
                }
                if path
                    .components()
                    .any(|c| !matches!(c, Component::Normal(_)))
                {
                    return Err(refuse(path, "has a `..` or `.` component"));
                }
                if !seen.insert(path) {
                    return Err(refuse(path, "occurs twice"));
                }
                if path.ancestors().skip(1).any(|a| links.contains(a)) {
                    return Err(refuse(path, "lies below a symlink"));
                }
                match item {
                    Item::File { mode, .. } | Item::Dir { mode, .. } if *mode > 0o7777 => {
                        return Err(refuse(path, "has a mode beyond permission bits"));
                    }
                    Item::File { mode, .. } if *mode & SET_ID != 0 => {
                        return Err(refuse(path, "would be set-user-ID or set-group-ID"));
                    }
                    Item::File { mtime: time, .. } if mtime(*time).is_none() => {
                        return Err(refuse(path, "has a modification time out of range"));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// The distinct blobs and their sizes.
    pub fn blobs(&self) -> impl Iterator<Item = (Digest, u64)> + '_ {
        self.trees.values().flatten().filter_map(|i| match i {
            Item::File { blob, size, .. } => Some((*blob, *size)),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(items: Vec<Item>) -> Manifest {
        Manifest {
            roots: BTreeMap::new(),
            trees: [("prefix".to_string(), items)].into(),
        }
    }

    fn file(path: &str) -> Item {
        Item::File {
            path: path.into(),
            blob: Digest::of(b""),
            size: 0,
            mode: 0o644,
            mtime: (0, 0),
            roots: vec![],
            binary: false,
        }
    }

    #[test]
    fn plain_relative_paths_pass() {
        with(vec![file("lib/libz.so"), file("include/z.h")])
            .check("k")
            .unwrap();
    }

    #[test]
    fn escaping_paths_are_refused() {
        for bad in ["/etc/passwd", "../outside", "lib/../../x", "./x", ""] {
            let err = with(vec![file(bad)]).check("k").unwrap_err();
            assert!(matches!(err, CacheError::Unsafe { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn a_path_below_a_symlink_is_refused() {
        let link = Item::Symlink {
            path: "lib".into(),
            target: "/etc".into(),
        };
        let err = with(vec![link, file("lib/cron.d/evil")])
            .check("k")
            .unwrap_err();
        assert!(err.to_string().contains("below a symlink"), "{err}");
    }

    #[test]
    fn set_id_files_and_odd_roots_are_refused() {
        let mut setuid = file("bin/su");
        if let Item::File { mode, .. } = &mut setuid {
            *mode = 0o4755;
        }
        let err = with(vec![setuid]).check("k").unwrap_err();
        assert!(err.to_string().contains("set-user-ID"), "{err}");
        // A set-group-ID directory is how a shared tree keeps its group.
        with(vec![Item::Dir {
            path: "shared".into(),
            mode: 0o2775,
        }])
        .check("k")
        .unwrap();
        for root in ["", "/", "/.", "relative/x", "/a/../b"] {
            let mut manifest = with(vec![]);
            manifest.roots.insert("prefix".into(), root.into());
            let err = manifest.check("k").unwrap_err();
            assert!(err.to_string().contains("root"), "{root}: {err}");
        }
        let mut manifest = with(vec![]);
        manifest
            .roots
            .insert("prefix".into(), "/tmp/stg/x_placehold".into());
        manifest.check("k").unwrap();
    }

    #[test]
    fn a_duplicate_path_is_refused() {
        let err = with(vec![file("a"), file("a")]).check("k").unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }
}
