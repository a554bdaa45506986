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
//! The string is rewritten in place inside `.dynstr`, NUL-padded, into
//! every RPATH and RUNPATH the file has: the old value holds the long
//! padded prefix, so the new one fits. No section moves, so no patchelf is
//! needed. The limit of that: a file without RPATH/RUNPATH keeps none
//! (adding one would need to grow `.dynstr`; rattler-build runs patchelf),
//! and a string too short for the `rpaths` entries (`-rpath '$ORIGIN'`)
//! gets its own entries only. Both are reported when the recipe sets
//! `rpaths` itself. A recipe using the system compiler links with
//! `-Wl,-rpath,$PREFIX/lib` (conda-forge's `LDFLAGS` do) to leave room.

use std::path::{Component, Path, PathBuf};

use cleave_recipe::model::DynamicLinking;
use globset::GlobSet;
use goblin::elf::Elf;
use goblin::elf::dynamic::{DT_RPATH, DT_RUNPATH};
use goblin::elf::program_header::PT_LOAD;

use crate::error::BuildError;
use crate::package::capture::glob_set;

/// The compiled `dynamic_linking` settings that relinking applies.
pub struct RelinkRules {
    /// `rpaths`, relative to the prefix.
    rpaths: Vec<String>,
    /// Whether the recipe set `rpaths` to something other than the default,
    /// so that a file that cannot take them is worth a warning.
    custom_rpaths: bool,
    allowlist: GlobSet,
}

impl RelinkRules {
    /// Compiles the `rpath_allowlist` globs (the recipe already checked them).
    pub fn new(settings: &DynamicLinking) -> Result<Self, BuildError> {
        Ok(RelinkRules {
            rpaths: settings.rpaths.clone(),
            custom_rpaths: settings.rpaths != DynamicLinking::default().rpaths,
            allowlist: glob_set(&settings.rpath_allowlist)?,
        })
    }
}

/// What relinking did to one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Relinked {
    /// The entries written, when the file's RPATH/RUNPATH changed.
    pub entries: Option<Vec<String>>,
    /// Findings for the recipe's author: entries removed from outside the
    /// build, `rpaths` that could not be written.
    pub warnings: Vec<String>,
}

/// Rewrites the RPATH/RUNPATH entries of `bytes` (the file at `rel_path`
/// below `prefix`) in place. `build_dir` holds every directory of this build.
pub fn relink(
    bytes: &mut [u8],
    rel_path: &Path,
    prefix: &Path,
    build_dir: &Path,
    rules: &RelinkRules,
) -> Relinked {
    let Ok(elf) = Elf::parse(bytes) else {
        return Relinked::default();
    };
    let Some(dynamic) = &elf.dynamic else {
        return Relinked::default();
    };
    let Some(strtab) = vaddr_to_offset(&elf, dynamic.info.strtab as u64) else {
        return Relinked::default();
    };
    let slots: Vec<(u64, usize)> = dynamic
        .dyns
        .iter()
        .filter(|d| d.d_tag == DT_RPATH || d.d_tag == DT_RUNPATH)
        .filter_map(|d| Some((d.d_tag, strtab.checked_add(usize::try_from(d.d_val).ok()?)?)))
        .collect();
    drop(elf);
    let file = rel_path.display();
    let mut result = Relinked::default();
    if slots.is_empty() {
        if rules.custom_rpaths {
            result.warnings.push(format!(
                "{file} has no RPATH or RUNPATH, so build.dynamic_linking.rpaths is not written \
                 into it (cleave edits RPATHs in place; link with -Wl,-rpath,$PREFIX/lib)"
            ));
        }
        return result;
    }
    // Each slot: its start, its length, its entries.
    let mut strings = Vec::new();
    for (tag, start) in slots {
        let Some(len) = bytes
            .get(start..)
            .and_then(|b| b.iter().position(|&c| c == 0))
        else {
            continue;
        };
        let old = String::from_utf8_lossy(&bytes[start..start + len]).into_owned();
        strings.push((tag, start, len, old));
    }
    let listed = |tag: u64| -> Vec<String> {
        strings
            .iter()
            .filter(|s| s.0 == tag)
            .flat_map(|s| s.3.split(':'))
            .filter(|e| !e.is_empty())
            .map(str::to_string)
            .collect()
    };
    let (rpath, runpath) = (listed(DT_RPATH), listed(DT_RUNPATH));
    let origin_dir = rel_path.parent().unwrap_or(Path::new(""));
    let search = Search {
        origin_dir,
        prefix,
        build_dir,
        allowlist: &rules.allowlist,
    };
    let mut removed = Vec::new();
    let own: Vec<Entry> = rpath
        .iter()
        .chain(&runpath)
        .map(|e| search.written(e))
        .collect();
    let added: Vec<Entry> = rules.rpaths.iter().map(|d| search.prefix_dir(d)).collect();
    // rattler-build's order: RPATH, `rpaths`, RUNPATH.
    let (from_rpath, from_runpath) = own.split_at(rpath.len());
    let full = search.keep(
        from_rpath.iter().chain(&added).chain(from_runpath),
        &mut removed,
    );
    let without_added = search.keep(own.iter(), &mut Vec::new());
    for entry in removed {
        result.warnings.push(format!(
            "{file}: RPATH entry {entry} is outside the prefix and not in \
             build.dynamic_linking.rpath_allowlist; removed"
        ));
    }
    let new = full.join(":");
    let fallback = without_added.join(":");
    for (_, start, len, old) in &strings {
        let (value, entries) = if new.len() <= *len {
            (&new, &full)
        } else {
            if rules.custom_rpaths && result.warnings.iter().all(|w| !w.contains("no room")) {
                result.warnings.push(format!(
                    "{file}: its RPATH/RUNPATH `{old}` has no room for build.dynamic_linking.rpaths \
                     (`{new}`, {} bytes for {len}); link with -Wl,-rpath,$PREFIX/lib to leave room",
                    new.len()
                ));
            }
            if fallback.len() > *len {
                continue;
            }
            (&fallback, &without_added)
        };
        if value == old {
            continue;
        }
        let slot = &mut bytes[*start..*start + *len];
        slot.fill(0);
        slot[..value.len()].copy_from_slice(value.as_bytes());
        result.entries = Some(entries.clone());
    }
    result
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

/// The file offset of a virtual address, through the loadable segments.
fn vaddr_to_offset(elf: &Elf<'_>, vaddr: u64) -> Option<usize> {
    elf.program_headers
        .iter()
        .filter(|ph| ph.p_type == PT_LOAD)
        .find(|ph| vaddr >= ph.p_vaddr && vaddr < ph.p_vaddr + ph.p_filesz)
        .and_then(|ph| usize::try_from(vaddr - ph.p_vaddr + ph.p_offset).ok())
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
    fn non_elf_bytes_are_left_alone() {
        let mut bytes = b"#!/bin/sh\necho hi\n".to_vec();
        let before = bytes.clone();
        let rules = RelinkRules::new(&DynamicLinking::default()).unwrap();
        let result = relink(
            &mut bytes,
            Path::new("bin/x"),
            Path::new("/p"),
            Path::new("/"),
            &rules,
        );
        assert_eq!(result, Relinked::default());
        assert_eq!(bytes, before);
    }
}
