//! The RPATH and RUNPATH strings of an ELF file, read and rewritten in
//! place.

use goblin::elf::Elf;
use goblin::elf::dynamic::{DT_RPATH, DT_RUNPATH};

/// One `DT_RPATH` or `DT_RUNPATH` string of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SearchPath {
    /// `DT_RPATH` or `DT_RUNPATH`.
    pub(super) tag: u64,
    /// Where the string starts in the file.
    pub(super) start: usize,
    /// Its length in bytes, without the NUL.
    pub(super) len: usize,
    /// Its text.
    pub(super) value: String,
}

impl SearchPath {
    /// Its `:`-separated entries, empty ones left out.
    pub(super) fn entries(&self) -> impl Iterator<Item = &str> {
        self.value.split(':').filter(|e| !e.is_empty())
    }
}

/// The search paths of a dynamically linked ELF file, in the order of its
/// dynamic section; `None` for anything else (not ELF, statically linked,
/// a separate debug file whose dynamic section holds nothing, a dynamic
/// section whose strings are not where it says).
pub(super) fn search_paths(bytes: &[u8]) -> Option<Vec<SearchPath>> {
    let elf = Elf::parse(bytes).ok()?;
    let dynamic = elf.dynamic.as_ref()?;
    if dynamic.dyns.is_empty() || dynamic.info.strtab == 0 {
        return None;
    }
    // goblin gives the string table's file offset (it maps DT_STRTAB's
    // address through the loadable segments).
    let strtab = dynamic.info.strtab;
    let mut paths = Vec::new();
    for d in &dynamic.dyns {
        if d.d_tag != DT_RPATH && d.d_tag != DT_RUNPATH {
            continue;
        }
        let start = strtab.checked_add(usize::try_from(d.d_val).ok()?)?;
        let len = bytes.get(start..)?.iter().position(|&c| c == 0)?;
        paths.push(SearchPath {
            tag: d.d_tag,
            start,
            len,
            value: String::from_utf8_lossy(&bytes[start..start + len]).into_owned(),
        });
    }
    Some(paths)
}

/// Writes `value` over each of `paths`, NUL-padded, when it fits in every
/// one of them; returns whether it did. Nothing else in the file moves.
pub(super) fn write_in_place(bytes: &mut [u8], paths: &[SearchPath], value: &str) -> bool {
    if paths.is_empty() || paths.iter().any(|p| value.len() > p.len) {
        return false;
    }
    for path in paths {
        let slot = &mut bytes[path.start..path.start + path.len];
        slot.fill(0);
        slot[..value.len()].copy_from_slice(value.as_bytes());
    }
    true
}
