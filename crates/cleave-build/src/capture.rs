//! Finds the files a build added to `$PREFIX` and picks an output's share.
//!
//! A file is new when no installed package owns it: the `files` lists in
//! `conda-meta/` say what the environment brought. This also counts files a
//! staging build left in the prefix as new, which is what an inheriting
//! output needs.
//!
//! A FIFO, socket or device among the new entries is an error naming it:
//! no package can hold one, and reading it to package or cache it would
//! block (a FIFO) or read a device.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use cleave_recipe::model::FileSelection;
use globset::{Glob, GlobSet, GlobSetBuilder};
use rattler_conda_types::PrefixRecord;

use crate::error::BuildError;

/// What a new prefix entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A symbolic link (possibly broken).
    Symlink,
    /// A directory with nothing in it.
    EmptyDir,
}

/// A new entry, relative to the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// Path relative to the prefix.
    pub path: PathBuf,
    /// Its kind.
    pub kind: EntryKind,
}

/// Every entry of `prefix` that no installed package owns.
pub fn new_entries(prefix: &Path) -> Result<Vec<NewEntry>, BuildError> {
    let owned = owned_files(prefix)?;
    let mut out = Vec::new();
    walk(prefix, Path::new(""), &owned, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn owned_files(prefix: &Path) -> Result<HashSet<PathBuf>, BuildError> {
    let meta = prefix.join("conda-meta");
    let mut owned = HashSet::new();
    let Ok(entries) = std::fs::read_dir(&meta) else {
        return Ok(owned);
    };
    for entry in entries {
        let path = entry
            .map_err(BuildError::io(format!("reading {}", meta.display())))?
            .path();
        if path.extension().is_some_and(|e| e == "json") {
            let record = PrefixRecord::from_path(&path)
                .map_err(BuildError::io(format!("reading {}", path.display())))?;
            owned.extend(record.files);
        }
    }
    Ok(owned)
}

/// What rattler's installer creates at the root of every prefix: the
/// package records and the backup-exclusion tag.
const INSTALLER_FILES: &[&str] = &["conda-meta", "CACHEDIR.TAG"];

fn walk(
    root: &Path,
    rel: &Path,
    owned: &HashSet<PathBuf>,
    out: &mut Vec<NewEntry>,
) -> Result<(), BuildError> {
    let dir = root.join(rel);
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .map_err(BuildError::io(format!("listing {}", dir.display())))?
        .collect::<Result<_, _>>()
        .map_err(BuildError::io(format!("listing {}", dir.display())))?;
    if entries.is_empty() && !rel.as_os_str().is_empty() {
        out.push(NewEntry {
            path: rel.to_path_buf(),
            kind: EntryKind::EmptyDir,
        });
    }
    for entry in entries {
        let path = rel.join(entry.file_name());
        // The installer's own bookkeeping at the prefix root.
        if rel.as_os_str().is_empty() && INSTALLER_FILES.iter().any(|f| entry.file_name() == *f) {
            continue;
        }
        let file_type = entry
            .file_type()
            .map_err(BuildError::io(format!("inspecting {}", path.display())))?;
        if file_type.is_dir() {
            walk(root, &path, owned, out)?;
        } else if owned.contains(&path) {
            continue;
        } else if let Some(kind) = crate::confined::special_kind(file_type) {
            return Err(BuildError::SpecialFile { path, kind });
        } else {
            let kind = if file_type.is_symlink() {
                EntryKind::Symlink
            } else {
                EntryKind::File
            };
            out.push(NewEntry { path, kind });
        }
    }
    Ok(())
}

/// Every path below `dir` (directories included, symlinks not followed)
/// except FIFOs, sockets and devices, and those apart: what the store can
/// keep of a work dir, and what it would block on reading.
pub(crate) fn storable_tree(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>), BuildError> {
    let (mut kept, mut special) = (Vec::new(), Vec::new());
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let here = dir.join(&rel);
        let io = BuildError::io(format!("listing {}", here.display()));
        for entry in std::fs::read_dir(&here).map_err(io)? {
            let entry = entry.map_err(BuildError::io(format!("listing {}", here.display())))?;
            let path = rel.join(entry.file_name());
            let kind = entry
                .file_type()
                .map_err(BuildError::io(format!("inspecting {}", path.display())))?;
            if crate::confined::special_kind(kind).is_some() {
                special.push(path);
                continue;
            }
            if kind.is_dir() {
                stack.push(path.clone());
            }
            kept.push(path);
        }
    }
    kept.sort();
    special.sort();
    Ok((kept, special))
}

/// A compiled `files:` selection.
pub struct Selector {
    include: Option<GlobSet>,
    exclude: GlobSet,
}

impl Selector {
    /// Compiles the include and exclude globs; no include globs means all.
    pub fn new(selection: &FileSelection) -> Result<Self, BuildError> {
        let include = if selection.include.is_empty() {
            None
        } else {
            Some(glob_set(&selection.include)?)
        };
        Ok(Selector {
            include,
            exclude: glob_set(&selection.exclude)?,
        })
    }

    /// True if the selection takes `path` (relative to the prefix).
    pub fn takes(&self, path: &Path) -> bool {
        self.include.as_ref().is_none_or(|set| set.is_match(path)) && !self.exclude.is_match(path)
    }
}

pub(crate) fn glob_set(globs: &[String]) -> Result<GlobSet, BuildError> {
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        // A trailing slash means "everything below".
        let pattern = match glob.strip_suffix('/') {
            Some(dir) => format!("{dir}/**"),
            None => glob.clone(),
        };
        let compiled = Glob::new(&pattern).map_err(|source| BuildError::Glob {
            glob: glob.clone(),
            source,
        })?;
        builder.add(compiled);
    }
    builder.build().map_err(|source| BuildError::Glob {
        glob: globs.join(", "),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_entries_cover_files_links_and_empty_dirs_but_not_owned_files() {
        let prefix = tempfile::tempdir().unwrap();
        let p = prefix.path();
        std::fs::create_dir_all(p.join("lib")).unwrap();
        std::fs::create_dir_all(p.join("share/empty")).unwrap();
        std::fs::create_dir_all(p.join("conda-meta")).unwrap();
        std::fs::write(p.join("lib/libfoo.so.1"), "elf").unwrap();
        std::os::unix::fs::symlink("libfoo.so.1", p.join("lib/libfoo.so")).unwrap();
        std::os::unix::fs::symlink("/nowhere", p.join("lib/broken")).unwrap();
        std::fs::write(p.join("lib/owned.so"), "from a package").unwrap();
        std::fs::write(
            p.join("conda-meta/dep-1.0-0.json"),
            r#"{"name":"dep","version":"1.0","build":"0","build_number":0,"subdir":"linux-64",
               "depends":[],"files":["lib/owned.so"],"paths_data":{"paths":[],"paths_version":1},
               "fn":"dep-1.0-0.conda","url":"file:///c/dep-1.0-0.conda","channel":"file:///c"}"#,
        )
        .unwrap();
        let entries = new_entries(p).unwrap();
        let got: Vec<(String, EntryKind)> = entries
            .iter()
            .map(|e| (e.path.display().to_string(), e.kind))
            .collect();
        assert_eq!(
            got,
            [
                ("lib/broken".into(), EntryKind::Symlink),
                ("lib/libfoo.so".into(), EntryKind::Symlink),
                ("lib/libfoo.so.1".into(), EntryKind::File),
                ("share/empty".into(), EntryKind::EmptyDir),
            ]
        );
    }

    #[test]
    fn a_fifo_in_the_prefix_is_an_error_naming_it() {
        let prefix = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(prefix.path().join("share")).unwrap();
        let fifo = prefix.path().join("share/pipe");
        let made = std::process::Command::new("mkfifo").arg(fifo).status();
        assert!(made.unwrap().success());
        match new_entries(prefix.path()) {
            Err(BuildError::SpecialFile { path, kind }) => {
                assert_eq!((path.as_path(), kind), (Path::new("share/pipe"), "FIFO"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn selection_applies_include_then_exclude() {
        let selector = Selector::new(&FileSelection {
            include: vec!["lib/**".into(), "include/".into()],
            exclude: vec!["**/*.a".into()],
        })
        .unwrap();
        assert!(selector.takes(Path::new("lib/libfoo.so")));
        assert!(selector.takes(Path::new("include/foo/foo.h")));
        assert!(!selector.takes(Path::new("lib/libfoo.a")));
        assert!(!selector.takes(Path::new("bin/foo")));
        let all = Selector::new(&FileSelection::default()).unwrap();
        assert!(all.takes(Path::new("anything/at/all")));
    }
}
