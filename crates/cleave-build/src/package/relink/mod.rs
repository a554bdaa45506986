//! Makes the RPATH/RUNPATH of ELF files relative to `$ORIGIN`, with
//! `build.dynamic_linking.rpaths` and `rpath_allowlist` as rattler-build
//! applies them.
//!
//! A library linked in `$PREFIX/lib` records that absolute path, which does
//! not exist where the package gets installed. The new search path of a
//! file is, in order and without repeats:
//! - its RPATH entries, then one per `rpaths` directory (prefix-relative,
//!   default `lib/`), then its RUNPATH entries;
//! - each entry into the prefix as `$ORIGIN/<relative path>`; a `$ORIGIN`
//!   entry as written while it stays inside the prefix;
//! - any other entry (outside the prefix, or a `$ORIGIN` one leaving it)
//!   only when an `rpath_allowlist` glob matches it: the others are
//!   removed, as rattler-build removes them. Entries into the build's own
//!   directories (work dir, build env) go silently; a removed entry
//!   elsewhere on the machine (`/usr/lib64`) is reported.
//!
//! Every dynamically linked file ends up with that search path, whatever
//! room its linker left. When the new string fits into the old one it is
//! written in place, NUL-padded, into every RPATH and RUNPATH the file has,
//! and nothing else in the file changes. A file without either, or with a
//! string too short, is rewritten (see [`grow`]): an RPATH stays an RPATH,
//! a RUNPATH a RUNPATH, and a file that had neither gets a RUNPATH.

mod elf;
mod grow;

use std::path::{Component, Path, PathBuf};

use cleave_recipe::model::DynamicLinking;
use globset::GlobSet;
use goblin::elf::dynamic::DT_RPATH;

use crate::error::BuildError;
use crate::package::capture::glob_set;

/// The compiled `dynamic_linking` settings that relinking applies.
pub struct RelinkRules {
    /// `rpaths`, relative to the prefix.
    rpaths: Vec<String>,
    allowlist: GlobSet,
    /// `patchelf` of the build environment, or else of the caller's
    /// `PATH`: the second way to give a file a search path that does not
    /// fit.
    patchelf: Option<PathBuf>,
}

impl RelinkRules {
    /// Compiles the `rpath_allowlist` globs (the recipe already checked
    /// them) and looks for `patchelf` in `build_prefix`, then on the
    /// caller's `PATH`, where rattler-build looks for it.
    pub fn new(settings: &DynamicLinking, build_prefix: &Path) -> Result<Self, BuildError> {
        let on_path = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .unwrap_or_default();
        let patchelf = std::iter::once(build_prefix.join("bin"))
            .chain(on_path)
            .map(|dir| dir.join("patchelf"))
            .find(|candidate| std::fs::metadata(candidate).is_ok_and(|m| m.is_file()));
        Ok(RelinkRules {
            rpaths: settings.rpaths.clone(),
            allowlist: glob_set(&settings.rpath_allowlist)?,
            patchelf,
        })
    }
}

/// What relinking did to one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Relinked {
    /// The entries written, when the file's RPATH/RUNPATH changed.
    pub entries: Option<Vec<String>>,
    /// Findings for the recipe's author: entries removed from outside the
    /// build.
    pub warnings: Vec<String>,
}

/// A file that cannot get the search path its package needs.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot give it the search path `{rpath}`: {reason}", file.display())]
pub struct RelinkError {
    /// The file, relative to the prefix.
    pub file: PathBuf,
    /// The search path it needs.
    pub rpath: String,
    /// Why it could not have it.
    pub reason: String,
}

/// Gives `bytes` (the file at `rel_path` below `prefix`) its new
/// RPATH/RUNPATH: in place when it fits, else by rewriting the file.
/// `build_dir` holds every directory of this build. Files that are not
/// dynamically linked ELF files are left alone.
pub fn relink(
    bytes: &mut Vec<u8>,
    rel_path: &Path,
    prefix: &Path,
    build_dir: &Path,
    rules: &RelinkRules,
) -> Result<Relinked, RelinkError> {
    let Some(old) = elf::search_paths(bytes) else {
        return Ok(Relinked::default());
    };
    let listed = |rpath: bool| -> Vec<&str> {
        old.iter()
            .filter(|p| (p.tag == DT_RPATH) == rpath)
            .flat_map(elf::SearchPath::entries)
            .collect()
    };
    let (rpath, runpath) = (listed(true), listed(false));
    let search = Search {
        origin_dir: rel_path.parent().unwrap_or(Path::new("")),
        prefix,
        build_dir,
        allowlist: &rules.allowlist,
    };
    let own: Vec<Entry> = rpath
        .iter()
        .chain(&runpath)
        .map(|e| search.written(e))
        .collect();
    let added: Vec<Entry> = rules.rpaths.iter().map(|d| search.prefix_dir(d)).collect();
    // rattler-build's order: RPATH, `rpaths`, RUNPATH.
    let (from_rpath, from_runpath) = own.split_at(rpath.len());
    let mut removed = Vec::new();
    let entries = search.keep(
        from_rpath.iter().chain(&added).chain(from_runpath),
        &mut removed,
    );
    let file = rel_path.display();
    let mut result = Relinked {
        entries: None,
        warnings: removed
            .into_iter()
            .map(|entry| {
                format!(
                    "{file}: RPATH entry {entry} is outside the prefix and not in \
                     build.dynamic_linking.rpath_allowlist; removed"
                )
            })
            .collect(),
    };
    let new = entries.join(":");
    let unchanged = if old.is_empty() {
        new.is_empty()
    } else {
        old.iter().all(|p| p.value == new)
    };
    if unchanged {
        return Ok(result);
    }
    if !elf::write_in_place(bytes, &old, &new) {
        match grow::grow(bytes, &old, &new, rules.patchelf.as_deref()) {
            Ok(grown) => *bytes = grown,
            // A file linked without any search path records no path of
            // this build, so it stays as relocatable as its linker made
            // it: missing the added `rpaths` costs a warning, as it did
            // before files could be grown. One whose search path names the
            // build must not ship with it.
            Err(reason) if old.is_empty() => {
                result.warnings.push(format!(
                    "{file}: has no RPATH and could not be given `{new}` ({reason}); \
                     left without one"
                ));
                return Ok(result);
            }
            Err(reason) => {
                return Err(RelinkError {
                    file: rel_path.to_path_buf(),
                    rpath: new,
                    reason,
                });
            }
        }
    }
    result.entries = Some(entries);
    Ok(result)
}

/// Where an RPATH entry leads, as relinking sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// Into the prefix: the entry to write.
    Inside(String),
    /// Into the build's own directories: dropped without a word.
    Build,
    /// Anywhere else: kept only when allow-listed.
    Outside(String),
}

/// How the entries of one file are judged.
struct Search<'a> {
    /// The file's directory, relative to the prefix.
    origin_dir: &'a Path,
    prefix: &'a Path,
    build_dir: &'a Path,
    allowlist: &'a GlobSet,
}

impl Search<'_> {
    /// An entry as the linker wrote it.
    fn written(&self, entry: &str) -> Entry {
        let origin = entry
            .strip_prefix("$ORIGIN")
            .or_else(|| entry.strip_prefix("${ORIGIN}"));
        if let Some(rest) = origin {
            let from_origin = self.origin_dir.join(rest.trim_start_matches('/'));
            return match normalized(&from_origin) {
                Some(_) => Entry::Inside(entry.to_string()),
                None => Entry::Outside(entry.to_string()),
            };
        }
        let path = Path::new(entry);
        if let Ok(inside) = path.strip_prefix(self.prefix)
            && let Some(inside) = normalized(inside)
        {
            Entry::Inside(origin_relative(self.origin_dir, &inside))
        } else if path.starts_with(self.build_dir) {
            Entry::Build
        } else {
            Entry::Outside(entry.to_string())
        }
    }

    /// An `rpaths` directory, relative to the prefix.
    fn prefix_dir(&self, dir: &str) -> Entry {
        match normalized(Path::new(dir)) {
            Some(inside) if !Path::new(dir).is_absolute() => {
                Entry::Inside(origin_relative(self.origin_dir, &inside))
            }
            _ => Entry::Outside(dir.to_string()),
        }
    }

    /// The entries to write, first of each kept; `removed` gets the others
    /// that are worth a word.
    fn keep<'e>(
        &self,
        entries: impl Iterator<Item = &'e Entry>,
        removed: &mut Vec<String>,
    ) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for entry in entries {
            let kept = match entry {
                Entry::Inside(e) => Some(e),
                Entry::Outside(e) if self.allowlist.is_match(e) => Some(e),
                Entry::Outside(e) => {
                    if !removed.contains(e) {
                        removed.push(e.clone());
                    }
                    None
                }
                Entry::Build => None,
            };
            if let Some(e) = kept.filter(|e| !out.contains(e)) {
                out.push(e.clone());
            }
        }
        out
    }
}

/// `path` (relative) with `.` and `..` resolved, or `None` when it leaves
/// its root or is absolute.
fn normalized(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(name) => out.push(name),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// `$ORIGIN/..` steps from `from` (a directory below the prefix) to `to`.
fn origin_relative(from: &Path, to: &Path) -> String {
    let from: Vec<_> = from
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    let to: Vec<_> = to
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::from("$ORIGIN");
    for _ in common..from.len() {
        rel.push("..");
    }
    for part in &to[common..] {
        rel.push(part);
    }
    rel.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search<'a>(origin_dir: &'a str, allowlist: &'a GlobSet) -> Search<'a> {
        Search {
            origin_dir: Path::new(origin_dir),
            prefix: Path::new("/b/out/host_env_placehold"),
            build_dir: Path::new("/b/out"),
            allowlist,
        }
    }

    #[test]
    fn prefix_entries_become_origin_relative_and_others_outside_go() {
        let none = glob_set(&[]).unwrap();
        let s = search("bin", &none);
        let own: Vec<Entry> = [
            "/b/out/host_env_placehold/lib",
            "/b/out/work/build",
            "/usr/lib64",
            "$ORIGIN",
            "$ORIGIN/../../escape",
        ]
        .iter()
        .map(|e| s.written(e))
        .collect();
        let mut removed = Vec::new();
        let kept = s.keep(own.iter(), &mut removed);
        assert_eq!(kept, ["$ORIGIN/../lib", "$ORIGIN"]);
        // The build's own directories go without a word.
        assert_eq!(removed, ["/usr/lib64", "$ORIGIN/../../escape"]);
    }

    #[test]
    fn allow_listed_entries_outside_the_prefix_stay() {
        let allow = glob_set(&["/usr/lib*".into(), "$ORIGIN/../../*".into()]).unwrap();
        let s = search("bin", &allow);
        let own: Vec<Entry> = ["/usr/lib64", "/opt/x", "$ORIGIN/../../escape"]
            .iter()
            .map(|e| s.written(e))
            .collect();
        let mut removed = Vec::new();
        assert_eq!(
            s.keep(own.iter(), &mut removed),
            ["/usr/lib64", "$ORIGIN/../../escape"]
        );
        assert_eq!(removed, ["/opt/x"]);
    }

    #[test]
    fn rpaths_are_prefix_dirs_relative_to_each_file() {
        let none = glob_set(&[]).unwrap();
        let s = search("lib/python3/site", &none);
        let added: Vec<Entry> = ["lib/", "lib/extra", "./share/../lib", "../up", "/abs"]
            .iter()
            .map(|d| s.prefix_dir(d))
            .collect();
        let mut removed = Vec::new();
        assert_eq!(
            s.keep(added.iter(), &mut removed),
            ["$ORIGIN/../..", "$ORIGIN/../../extra"]
        );
        assert_eq!(removed, ["../up", "/abs"]);
    }

    #[test]
    fn a_library_next_to_its_dependency_points_at_origin() {
        assert_eq!(
            origin_relative(Path::new("lib"), Path::new("lib")),
            "$ORIGIN"
        );
        assert_eq!(
            origin_relative(Path::new("lib/python3/site"), Path::new("lib")),
            "$ORIGIN/../.."
        );
    }

    #[test]
    fn a_separate_debug_file_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (source, program) = (dir.path().join("main.c"), dir.path().join("main"));
        std::fs::write(&source, "int main(void) { return 0; }\n").unwrap();
        let run = |cmd: &mut std::process::Command| cmd.status().is_ok_and(|s| s.success());
        let debug = dir.path().join("main.debug");
        let made = run(std::process::Command::new("gcc")
            .args(["-g", "-o"])
            .arg(&program)
            .arg(&source))
            && run(std::process::Command::new("objcopy")
                .arg("--only-keep-debug")
                .arg(&program)
                .arg(&debug));
        if !made {
            return;
        }
        let mut bytes = std::fs::read(&debug).unwrap();
        let before = bytes.clone();
        let rules = RelinkRules::new(&DynamicLinking::default(), Path::new("/nowhere")).unwrap();
        let result = relink(
            &mut bytes,
            Path::new("lib/debug/main.debug"),
            Path::new("/p"),
            Path::new("/"),
            &rules,
        )
        .unwrap();
        assert_eq!(result, Relinked::default());
        assert_eq!(bytes, before);
    }

    #[test]
    fn non_elf_bytes_are_left_alone() {
        let mut bytes = b"#!/bin/sh\necho hi\n".to_vec();
        let before = bytes.clone();
        let rules = RelinkRules::new(&DynamicLinking::default(), Path::new("/nowhere")).unwrap();
        let result = relink(
            &mut bytes,
            Path::new("bin/x"),
            Path::new("/p"),
            Path::new("/"),
            &rules,
        )
        .unwrap();
        assert_eq!(result, Relinked::default());
        assert_eq!(bytes, before);
    }
}
