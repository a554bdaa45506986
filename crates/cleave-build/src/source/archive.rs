//! Unpacks source archives (tar, compressed tar, zip) without writing
//! outside the target directory.
//!
//! Every entry goes through [`crate::fs::confined::Tree`]: names that are
//! absolute or climb out with `..` are refused, no entry is written below a
//! symlink (one an earlier entry made, or one already in the target), a
//! hard link must name a regular file unpacked before it, and a file
//! replaces a file or link at its path instead of writing into it. Links
//! themselves are kept as they are, wherever they point: they are data,
//! and only writing through them is dangerous.
//!
//! Entries that are neither files, directories nor links (devices, FIFOs)
//! are skipped: they cannot be part of a source tree, and unpacking them
//! would need root or make later reads block.

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use crate::fs::confined::{Tree, WriteError, relative};

/// The archive formats sources come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArchiveKind {
    /// `.tar`
    Tar,
    /// `.tar.gz`, `.tgz`
    TarGz,
    /// `.tar.bz2`, `.tbz2`
    TarBz2,
    /// `.tar.xz`, `.txz`
    TarXz,
    /// `.tar.zst`, `.tzst`
    TarZst,
    /// `.zip`
    Zip,
}

impl ArchiveKind {
    /// The kind a file name says, if it names an archive.
    pub fn of(name: &str) -> Option<ArchiveKind> {
        let name = name.to_ascii_lowercase();
        let kinds = [
            (".tar.gz", ArchiveKind::TarGz),
            (".tgz", ArchiveKind::TarGz),
            (".tar.bz2", ArchiveKind::TarBz2),
            (".tbz2", ArchiveKind::TarBz2),
            (".tar.xz", ArchiveKind::TarXz),
            (".txz", ArchiveKind::TarXz),
            (".tar.zst", ArchiveKind::TarZst),
            (".tzst", ArchiveKind::TarZst),
            (".tar", ArchiveKind::Tar),
            (".zip", ArchiveKind::Zip),
        ];
        kinds
            .into_iter()
            .find(|(suffix, _)| name.ends_with(suffix))
            .map(|(_, kind)| kind)
    }
}

/// Why an archive could not be unpacked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The data is damaged, or not an archive of the kind its name says.
    #[error("cannot read the archive")]
    Read(#[source] std::io::Error),
    /// The zip directory or an entry is damaged.
    #[error("cannot read the zip archive")]
    Zip(#[source] zip::result::ZipError),
    /// An entry would be written outside the target, or through a link.
    #[error("cannot unpack entry `{entry}`")]
    Entry {
        /// The entry's name as the archive has it.
        entry: String,
        /// Why.
        #[source]
        source: WriteError,
    },
}

/// Unpacks an archive of `kind` read from `reader` into the existing
/// directory `dest`, merging with what is there.
pub fn unpack<R: Read + Seek>(
    reader: R,
    kind: ArchiveKind,
    dest: &Path,
) -> Result<(), ArchiveError> {
    let mut tree = Tree::new(dest);
    match kind {
        ArchiveKind::Zip => unzip(reader, &mut tree),
        ArchiveKind::Tar => untar(reader, &mut tree),
        ArchiveKind::TarGz => untar(flate2::read::MultiGzDecoder::new(reader), &mut tree),
        ArchiveKind::TarBz2 => untar(bzip2::read::MultiBzDecoder::new(reader), &mut tree),
        ArchiveKind::TarXz => untar(liblzma::read::XzDecoder::new(reader), &mut tree),
        ArchiveKind::TarZst => {
            let decoder = zstd::Decoder::new(reader).map_err(ArchiveError::Read)?;
            untar(decoder, &mut tree)
        }
    }
}

fn entry_error(name: &Path) -> impl FnOnce(WriteError) -> ArchiveError + '_ {
    move |source| ArchiveError::Entry {
        entry: name.display().to_string(),
        source,
    }
}

fn untar(reader: impl Read, tree: &mut Tree) -> Result<(), ArchiveError> {
    use tar::EntryType;
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(ArchiveError::Read)? {
        let mut entry = entry.map_err(ArchiveError::Read)?;
        let name: PathBuf = entry.path().map_err(ArchiveError::Read)?.into_owned();
        let fail = entry_error(&name);
        let rel = relative(&name).map_err(fail)?;
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().map_err(ArchiveError::Read)?;
        match kind {
            EntryType::Directory => {
                tree.dir(&rel).map_err(entry_error(&name))?;
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                if rel.as_os_str().is_empty() {
                    continue;
                }
                let mut file = tree.create(&rel, mode).map_err(entry_error(&name))?;
                std::io::copy(&mut entry, &mut file).map_err(ArchiveError::Read)?;
                if let Ok(mtime) = entry.header().mtime() {
                    let time = filetime::FileTime::from_unix_time(
                        i64::try_from(mtime).unwrap_or(i64::MAX),
                        0,
                    );
                    let _ = filetime::set_file_handle_times(&file, None, Some(time));
                }
            }
            EntryType::Symlink => {
                let target = link_name(&entry)?;
                tree.symlink(&target, &rel).map_err(entry_error(&name))?;
            }
            EntryType::Link => {
                let target = link_name(&entry)?;
                tree.hard_link(&target, &rel).map_err(entry_error(&name))?;
            }
            // Global pax headers, devices, FIFOs: nothing to unpack.
            _ => {}
        }
    }
    Ok(())
}

fn link_name<R: Read>(entry: &tar::Entry<'_, R>) -> Result<PathBuf, ArchiveError> {
    entry
        .link_name()
        .map_err(ArchiveError::Read)?
        .map(|p| p.into_owned())
        .ok_or_else(|| ArchiveError::Read(std::io::Error::other("a link entry without a target")))
}

fn unzip<R: Read + Seek>(reader: R, tree: &mut Tree) -> Result<(), ArchiveError> {
    let mut zip = zip::ZipArchive::new(reader).map_err(ArchiveError::Zip)?;
    for index in 0..zip.len() {
        let mut file = zip.by_index(index).map_err(ArchiveError::Zip)?;
        let raw = PathBuf::from(String::from_utf8_lossy(file.name_raw()).into_owned());
        // As for tar entries, and the zip crate's own check besides (which
        // also reads `\` as a separator).
        let rel = relative(&raw).map_err(entry_error(&raw))?;
        if file.enclosed_name().is_none() {
            return Err(entry_error(&raw)(WriteError::Escapes { path: raw.clone() }));
        }
        if file.is_dir() {
            tree.dir(&rel).map_err(entry_error(&raw))?;
        } else if file.is_symlink() {
            let mut target = Vec::new();
            file.read_to_end(&mut target).map_err(ArchiveError::Read)?;
            let target = PathBuf::from(String::from_utf8_lossy(&target).into_owned());
            tree.symlink(&target, &rel).map_err(entry_error(&raw))?;
        } else if !rel.as_os_str().is_empty() {
            let mode = file.unix_mode().unwrap_or(0o644);
            let mut out = tree.create(&rel, mode).map_err(entry_error(&raw))?;
            std::io::copy(&mut file, &mut out).map_err(ArchiveError::Read)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
