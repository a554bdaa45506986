//! Finds the files a build added to `$PREFIX` and picks an output's share.
//!
//! A file is new when no installed package owns it: the `files` lists in
//! `conda-meta/` say what the environment brought. This also counts files a
//! staging build left in the prefix as new, which is what an inheriting
//! output needs. `build.always_include_files` takes files of installed
//! packages too.
//!
//! A FIFO, socket or device among an output's new entries is an error
//! naming it: no package can hold one, and reading it to package it would
//! block (a FIFO) or read a device. The staging cache leaves them out
//! instead ([`storable_entries`], [`storable_tree`]): a staging build's
//! leftovers are not a package yet, and the build warns about them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use cleave_recipe::model::FileSelection;
use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
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

/// Every entry of `prefix` that no installed package owns: files, links
/// and empty directories. A FIFO, socket or device among them is an error.
pub fn new_entries(prefix: &Path) -> Result<Vec<NewEntry>, BuildError> {
    unowned(prefix, &owned_files(prefix)?)
}

/// The new entries of a staging build's `prefix` that its cache entry can
/// hold, and apart the FIFOs, sockets and devices it cannot: the build
/// names those in a warning instead of failing, since no package is made
/// of them yet.
pub(crate) fn storable_entries(prefix: &Path) -> Result<(Vec<NewEntry>, Vec<PathBuf>), BuildError> {
    let (out, special) = walk_unowned(prefix, &owned_files(prefix)?)?;
    Ok((out, special.into_iter().map(|(path, _)| path).collect()))
}

/// The entries of `prefix` not in `owned`, sorted; the first FIFO, socket
/// or device among them is an error naming it.
fn unowned(prefix: &Path, owned: &HashSet<PathBuf>) -> Result<Vec<NewEntry>, BuildError> {
    let (out, special) = walk_unowned(prefix, owned)?;
    match special.into_iter().next() {
        Some((path, kind)) => Err(BuildError::SpecialFile { path, kind }),
        None => Ok(out),
    }
}

/// A FIFO, socket or device below a prefix and its kind (see
/// [`crate::fs::confined::special_kind`]).
type Special = (PathBuf, &'static str);

/// The entries of `prefix` not in `owned`, and apart the FIFOs, sockets
/// and devices among them, each sorted by path.
fn walk_unowned(
    prefix: &Path,
    owned: &HashSet<PathBuf>,
) -> Result<(Vec<NewEntry>, Vec<Special>), BuildError> {
    let (mut out, mut special) = (Vec::new(), Vec::new());
    walk(prefix, Path::new(""), owned, &mut out, &mut special)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    special.sort();
    Ok((out, special))
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
    special: &mut Vec<Special>,
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
            walk(root, &path, owned, out, special)?;
        } else if owned.contains(&path) {
            continue;
        } else if let Some(kind) = crate::fs::confined::special_kind(file_type) {
            special.push((path, kind));
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
            if crate::fs::confined::special_kind(kind).is_some() {
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

/// The entries of `prefix` that an output's package takes: the new ones
/// that its `files` selection takes, and every file, new or installed by a
/// host dependency, that an `always_include_files` glob matches, whatever
/// `files` says (as rattler-build includes them). The installer's own
/// bookkeeping (`conda-meta/`) is never taken.
pub fn package_entries(
    prefix: &Path,
    files: Option<&FileSelection>,
    always_include: &[String],
) -> Result<Vec<NewEntry>, BuildError> {
    let selector = Selector::for_files(files)?;
    let always = glob_set(always_include)?;
    let owned = owned_files(prefix)?;
    let mut out = unowned(prefix, &owned)?;
    out.retain(|e| selector.takes(&e.path) || always.is_match(&e.path));
    if !always_include.is_empty() {
        for path in owned.into_iter().filter(|p| always.is_match(p)) {
            // A record may list a file that a later package replaced, or
            // that the build deleted: only what is there is packaged.
            let Ok(meta) = std::fs::symlink_metadata(prefix.join(&path)) else {
                continue;
            };
            let kind = if meta.file_type().is_symlink() {
                EntryKind::Symlink
            } else if meta.is_file() {
                EntryKind::File
            } else {
                continue;
            };
            out.push(NewEntry { path, kind });
        }
    }
    out.retain(|e| !never_packaged(&e.path));
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.dedup_by(|a, b| a.path == b.path);
    Ok(out)
}

/// Files no package takes, as rattler-build (and conda-build before it)
/// leaves them out: libtool's `.la` archives (build-time metadata with
/// absolute paths, not needed to run), `.pyo` files, `share/info/dir`
/// (an index every info-page package would write), and `.DS_Store`,
/// `conda-meta` and `CACHEDIR.TAG` anywhere.
pub(crate) fn never_packaged(path: &Path) -> bool {
    let ext = path.extension().unwrap_or_default();
    ext == "la"
        || ext == "pyo"
        || path.starts_with("share/info/dir")
        || path.components().any(|c| {
            let name = c.as_os_str();
            name == ".DS_Store" || name == "conda-meta" || name == "CACHEDIR.TAG"
        })
}

/// A compiled `files:` selection.
pub struct Selector {
    include: Option<GlobSet>,
    exclude: GlobSet,
    /// Takes nothing at all (`files: []`).
    none: bool,
}

impl Selector {
    /// The selection of an output's `build.files`: everything when absent,
    /// nothing when given without a glob (`files: []`, or selectors that
    /// all missed), else include minus exclude.
    pub fn for_files(files: Option<&FileSelection>) -> Result<Self, BuildError> {
        match files {
            None => Selector::new(&FileSelection::default()),
            Some(selection) if selection.is_all() => Ok(Selector {
                include: None,
                exclude: GlobSet::empty(),
                none: true,
            }),
            Some(selection) => Selector::new(selection),
        }
    }

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
            none: false,
        })
    }

    /// True if the selection takes `path` (relative to the prefix).
    pub fn takes(&self, path: &Path) -> bool {
        !self.none
            && self.include.as_ref().is_none_or(|set| set.is_match(path))
            && !self.exclude.is_match(path)
    }
}

/// Globs of paths, read as rattler-build reads its glob lists: `P` takes
/// the path `P` and everything below it (`include` takes the headers),
/// `P/` only what is below it, a leading `./` is dropped and `.` takes
/// everything.
pub(crate) fn glob_set(globs: &[String]) -> Result<GlobSet, BuildError> {
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        let invalid = |source| BuildError::Glob {
            glob: glob.clone(),
            source,
        };
        // The glob as written must parse, for an error that names it.
        Glob::new(glob).map_err(invalid)?;
        let stripped = glob.strip_prefix("./").unwrap_or(glob);
        let pattern = if stripped.is_empty() || stripped == "." {
            "**".to_string()
        } else if stripped.ends_with('/') {
            format!("{stripped}**")
        } else {
            format!("{stripped}{{,/**}}")
        };
        let compiled = GlobBuilder::new(&pattern)
            .empty_alternates(true)
            .build()
            .map_err(invalid)?;
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
    fn a_fifo_in_the_prefix_is_an_error_naming_it_but_left_out_of_a_staging_entry() {
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
        let (kept, special) = storable_entries(prefix.path()).unwrap();
        assert!(kept.is_empty(), "{kept:?}");
        assert_eq!(special, [PathBuf::from("share/pipe")]);
    }

    #[test]
    fn always_included_files_bypass_ownership_and_the_files_selection() {
        let prefix = tempfile::tempdir().unwrap();
        let p = prefix.path();
        std::fs::create_dir_all(p.join("share/dep")).unwrap();
        std::fs::create_dir_all(p.join("conda-meta")).unwrap();
        std::fs::create_dir_all(p.join("include")).unwrap();
        for file in [
            "share/dep/a.txt",
            "share/dep/b.txt",
            "share/new.txt",
            "include/x.h",
        ] {
            std::fs::write(p.join(file), file).unwrap();
        }
        std::fs::write(
            p.join("conda-meta/dep-1.0-0.json"),
            r#"{"name":"dep","version":"1.0","build":"0","build_number":0,"subdir":"linux-64",
               "depends":[],"files":["share/dep/a.txt","share/dep/b.txt","share/dep/gone.txt"],
               "paths_data":{"paths":[],"paths_version":1},
               "fn":"dep-1.0-0.conda","url":"file:///c/dep-1.0-0.conda","channel":"file:///c"}"#,
        )
        .unwrap();
        let files = FileSelection {
            include: vec!["share/**".into()],
            exclude: Vec::new(),
        };
        let always = [
            "share/dep/a.txt".into(),
            "share/dep/gone.txt".into(),
            "include/*".into(),
        ];
        let got: Vec<String> = package_entries(p, Some(&files), &always)
            .unwrap()
            .iter()
            .map(|e| e.path.display().to_string())
            .collect();
        assert_eq!(got, ["include/x.h", "share/dep/a.txt", "share/new.txt"]);
        let plain: Vec<String> = package_entries(p, None, &[])
            .unwrap()
            .iter()
            .map(|e| e.path.display().to_string())
            .collect();
        assert_eq!(plain, ["include/x.h", "share/new.txt"]);
        // `files: []` takes nothing but what always_include_files names.
        let none: Vec<String> = package_entries(p, Some(&FileSelection::default()), &always)
            .unwrap()
            .iter()
            .map(|e| e.path.display().to_string())
            .collect();
        assert_eq!(none, ["include/x.h", "share/dep/a.txt"]);
    }

    #[test]
    fn libtool_archives_and_indexes_are_never_packaged() {
        for path in [
            "lib/libyaml.la",
            "lib/python3.12/x.pyo",
            "share/info/dir",
            "share/doc/.DS_Store",
            "lib/conda-meta/x.json",
        ] {
            assert!(never_packaged(Path::new(path)), "{path}");
        }
        for path in [
            "lib/libyaml.so",
            "share/info/yaml.info",
            "lib/la/x",
            "bin/la",
        ] {
            assert!(!never_packaged(Path::new(path)), "{path}");
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

    #[test]
    fn a_glob_without_a_slash_takes_a_directory_too() {
        let selector = Selector::new(&FileSelection {
            include: vec!["include".into(), "./share/doc/x".into(), "lib/*.so".into()],
            exclude: Vec::new(),
        })
        .unwrap();
        assert!(selector.takes(Path::new("include")));
        assert!(selector.takes(Path::new("include/lzma/base.h")));
        assert!(selector.takes(Path::new("share/doc/x/README")));
        assert!(selector.takes(Path::new("lib/libz.so")));
        assert!(!selector.takes(Path::new("includes/x.h")));
        assert!(!selector.takes(Path::new("lib/libz.so.1")));
        let dot = Selector::new(&FileSelection {
            include: vec![".".into()],
            exclude: Vec::new(),
        })
        .unwrap();
        assert!(dot.takes(Path::new("bin/x")));
    }
}
