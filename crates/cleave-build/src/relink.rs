//! Makes the RPATH/RUNPATH of ELF files relative to `$ORIGIN`.
//!
//! A library linked in `$PREFIX/lib` records that absolute path, which does
//! not exist where the package gets installed. Entries into the prefix
//! become `$ORIGIN/<relative path>`, entries into the build's own
//! directories (work dir, build env) are dropped, others are kept.
//!
//! The string is rewritten in place inside `.dynstr`, null-padded: the new
//! value is never longer than the old one, because the old one holds the
//! long padded prefix. No section moves, so no patchelf is needed. A file
//! without RPATH/RUNPATH is left alone (adding one would need to grow
//! `.dynstr`); a recipe using the system compiler sets it at link time, e.g.
//! with `CMAKE_INSTALL_RPATH=$PREFIX/lib`.

use std::path::{Component, Path, PathBuf};

use goblin::elf::Elf;
use goblin::elf::dynamic::{DT_RPATH, DT_RUNPATH};
use goblin::elf::program_header::PT_LOAD;

/// What relinking did to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relinked {
    /// Not an ELF file, or no RPATH/RUNPATH entry pointing into the build.
    Unchanged,
    /// The entries were rewritten to these.
    Rewritten(Vec<String>),
}

/// Rewrites the RPATH/RUNPATH entries of `bytes` (the file at `rel_path`
/// below `prefix`) in place. `build_dir` holds every directory of this build.
pub fn relink(bytes: &mut [u8], rel_path: &Path, prefix: &Path, build_dir: &Path) -> Relinked {
    let Ok(elf) = Elf::parse(bytes) else {
        return Relinked::Unchanged;
    };
    let Some(dynamic) = &elf.dynamic else {
        return Relinked::Unchanged;
    };
    let Some(strtab) = vaddr_to_offset(&elf, dynamic.info.strtab as u64) else {
        return Relinked::Unchanged;
    };
    let slots: Vec<usize> = dynamic
        .dyns
        .iter()
        .filter(|d| d.d_tag == DT_RPATH || d.d_tag == DT_RUNPATH)
        .filter_map(|d| usize::try_from(d.d_val).ok())
        .filter_map(|off| strtab.checked_add(off))
        .collect();
    drop(elf);
    let origin_dir = rel_path.parent().unwrap_or(Path::new(""));
    let mut result = Relinked::Unchanged;
    for start in slots {
        let Some(len) = bytes
            .get(start..)
            .and_then(|b| b.iter().position(|&c| c == 0))
        else {
            continue;
        };
        let old = String::from_utf8_lossy(&bytes[start..start + len]).into_owned();
        let entries = rewrite_entries(&old, origin_dir, prefix, build_dir);
        let new = entries.join(":");
        if new == old || new.len() > len {
            continue;
        }
        let slot = &mut bytes[start..start + len];
        slot.fill(0);
        slot[..new.len()].copy_from_slice(new.as_bytes());
        result = Relinked::Rewritten(entries);
    }
    result
}

/// The file offset of a virtual address, through the loadable segments.
fn vaddr_to_offset(elf: &Elf<'_>, vaddr: u64) -> Option<usize> {
    elf.program_headers
        .iter()
        .filter(|ph| ph.p_type == PT_LOAD)
        .find(|ph| vaddr >= ph.p_vaddr && vaddr < ph.p_vaddr + ph.p_filesz)
        .and_then(|ph| usize::try_from(vaddr - ph.p_vaddr + ph.p_offset).ok())
}

fn rewrite_entries(old: &str, origin_dir: &Path, prefix: &Path, build_dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for entry in old.split(':').filter(|e| !e.is_empty()) {
        let path = Path::new(entry);
        let new = if let Ok(inside) = path.strip_prefix(prefix) {
            Some(origin_relative(origin_dir, inside))
        } else if path.starts_with(build_dir) {
            None
        } else {
            Some(entry.to_string())
        };
        if let Some(new) = new.filter(|n| !out.contains(n)) {
            out.push(new);
        }
    }
    out
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

    #[test]
    fn prefix_entries_become_origin_relative_and_build_dirs_go() {
        let prefix = Path::new("/b/out/host_env_placehold");
        let build = Path::new("/b/out");
        let entries = rewrite_entries(
            "/b/out/host_env_placehold/lib:/b/out/work/build:/usr/lib64:$ORIGIN",
            Path::new("bin"),
            prefix,
            build,
        );
        assert_eq!(entries, ["$ORIGIN/../lib", "/usr/lib64", "$ORIGIN"]);
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
        let result = relink(
            &mut bytes,
            Path::new("bin/x"),
            Path::new("/p"),
            Path::new("/"),
        );
        assert_eq!(result, Relinked::Unchanged);
        assert_eq!(bytes, before);
    }
}
