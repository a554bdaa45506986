//! Packages into a channel directory: copied (or moved) next to their final
//! name and renamed into place, so a reader never sees half a package, and
//! then the subdirs they went to are indexed ([`crate::index`]).

use std::path::{Path, PathBuf};

use rattler_conda_types::Subdir;
use rattler_digest::Sha256;

use crate::error::ChannelError;
use crate::index::{SubdirIndexed, index_channel};
use crate::package::{PackageFile, inspect};
use crate::partial::partial_file;

/// Whether the source file stays where it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// Copy it.
    Copy,
    /// Move it (renamed when on the same filesystem, else copied and
    /// removed).
    Move,
}

/// What to do when the channel has a different file of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    /// Refuse: a published package does not change under its name.
    Refuse,
    /// Replace it (a rebuild into a build's own output channel, or
    /// `--force`).
    Replace,
}

/// How a package ended up in the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// It was not there.
    New,
    /// The same bytes were there already; nothing was written.
    Same,
    /// Another file of the same name was there and was replaced.
    Replaced,
}

/// A package now in the channel.
#[derive(Debug, Clone)]
pub struct Added {
    /// Its file in the channel.
    pub path: PathBuf,
    /// The subdir it went to.
    pub subdir: String,
    /// What happened.
    pub placed: Placed,
}

/// Copies `packages` into the channel directory `channel` (made a channel
/// when it does not exist or is empty) and indexes it: the publishing
/// step of `cleave publish` to a directory. Every file is checked before
/// any is copied.
pub fn publish(
    channel: &Path,
    packages: &[PathBuf],
    overwrite: Overwrite,
) -> Result<(Vec<Added>, Vec<SubdirIndexed>), ChannelError> {
    ensure_channel(channel)?;
    let files = packages
        .iter()
        .map(|p| inspect(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut added = Vec::new();
    for file in &files {
        added.push(add(channel, file, Transfer::Copy, overwrite)?);
    }
    let mut subdirs: Vec<&str> = added.iter().map(|a| a.subdir.as_str()).collect();
    subdirs.sort_unstable();
    subdirs.dedup();
    let indexed = index_channel(channel, &subdirs)?;
    Ok((added, indexed))
}

/// A directory that is a channel, or missing (then created), or holding
/// nothing but what a channel holds (platform subdirs, dot files: what a
/// concurrent publisher made a moment ago): publishing into a directory
/// that holds other things is a mistake in the URL, not a new channel.
fn ensure_channel(channel: &Path) -> Result<(), ChannelError> {
    if channel.join("noarch/repodata.json").is_file() {
        return Ok(());
    }
    let entries = match std::fs::read_dir(channel) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return std::fs::create_dir_all(channel)
                .map_err(ChannelError::io(format!("creating {}", channel.display())));
        }
        Err(e) => {
            return Err(ChannelError::io(format!("reading {}", channel.display()))(
                e,
            ));
        }
    };
    let foreign = entries.filter_map(Result::ok).find(|entry| {
        let name = entry.file_name().to_string_lossy().into_owned();
        let subdir = entry.file_type().is_ok_and(|t| t.is_dir()) && name.parse::<Subdir>().is_ok();
        !(subdir || name.starts_with('.'))
    });
    match foreign {
        None => Ok(()),
        Some(entry) => Err(ChannelError::Target {
            url: channel.display().to_string(),
            reason: format!(
                "the directory holds {} and is not a channel (no noarch/repodata.json)",
                entry.file_name().to_string_lossy()
            ),
        }),
    }
}

/// Puts one checked package into `<channel>/<subdir>/`; the caller
/// indexes.
pub fn add(
    channel: &Path,
    file: &PackageFile,
    transfer: Transfer,
    overwrite: Overwrite,
) -> Result<Added, ChannelError> {
    let dir = channel.join(&file.subdir);
    std::fs::create_dir_all(&dir)
        .map_err(ChannelError::io(format!("creating {}", dir.display())))?;
    let dest = dir.join(&file.file_name);
    let placed = match std::fs::symlink_metadata(&dest) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Placed::New,
        Err(e) => return Err(ChannelError::io(format!("reading {}", dest.display()))(e)),
        Ok(meta) => {
            if meta.is_file() && same_contents(&file.path, &dest)? {
                if transfer == Transfer::Move {
                    std::fs::remove_file(&file.path).map_err(ChannelError::io(format!(
                        "removing {}",
                        file.path.display()
                    )))?;
                }
                return Ok(Added {
                    path: dest,
                    subdir: file.subdir.clone(),
                    placed: Placed::Same,
                });
            }
            if overwrite == Overwrite::Refuse {
                return Err(ChannelError::Exists {
                    target: channel.display().to_string(),
                    file: format!("{}/{}", file.subdir, file.file_name),
                });
            }
            Placed::Replaced
        }
    };
    let moved = transfer == Transfer::Move && std::fs::rename(&file.path, &dest).is_ok();
    if !moved {
        copy_into(&file.path, &dir, &dest)?;
        if transfer == Transfer::Move {
            std::fs::remove_file(&file.path).map_err(ChannelError::io(format!(
                "removing {}",
                file.path.display()
            )))?;
        }
    }
    Ok(Added {
        path: dest,
        subdir: file.subdir.clone(),
        placed,
    })
}

/// Copies `from` to a temporary file in `dir`, then renames it to `dest`.
fn copy_into(from: &Path, dir: &Path, dest: &Path) -> Result<(), ChannelError> {
    let failed = ChannelError::io(format!("copying {} to {}", from.display(), dest.display()));
    let result = (|| {
        let mut tmp = partial_file(dir)?;
        let mut source = std::fs::File::open(from)?;
        std::io::copy(&mut source, tmp.as_file_mut())?;
        tmp.as_file().sync_all()?;
        tmp.persist(dest).map_err(|e| e.error)?;
        Ok(())
    })();
    result.map_err(failed)
}

fn same_contents(a: &Path, b: &Path) -> Result<bool, ChannelError> {
    let size = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.len())
            .map_err(ChannelError::io(format!("reading {}", p.display())))
    };
    if size(a)? != size(b)? {
        return Ok(false);
    }
    let digest = |p: &Path| {
        rattler_digest::compute_file_digest::<Sha256>(p)
            .map_err(ChannelError::io(format!("reading {}", p.display())))
    };
    Ok(digest(a)? == digest(b)?)
}
