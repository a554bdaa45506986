//! What a package file says it is, checked before it goes into a channel.
//!
//! A channel files a package under `<subdir>/<name>-<version>-<build>.<ext>`
//! and clients trust that name: a file whose name and `info/index.json`
//! disagree, or whose subdir is not a platform, would make a channel that
//! solves to the wrong thing. Both come from the archive, so they are
//! checked here, where it is read.

use std::path::{Path, PathBuf};

use rattler_conda_types::Subdir;
use rattler_conda_types::package::IndexJson;
use rattler_package_streaming::seek::read_package_file;

use crate::error::ChannelError;

/// The two archive formats, by file name ending.
pub const EXTENSIONS: [&str; 2] = [".conda", ".tar.bz2"];

/// A package file and where a channel files it.
#[derive(Debug, Clone)]
pub struct PackageFile {
    /// The file.
    pub path: PathBuf,
    /// Its file name: `name-version-build.conda` or `.tar.bz2`.
    pub file_name: String,
    /// The channel subdir it belongs in (`linux-64`, `noarch`, ...).
    pub subdir: String,
    /// `name-version-build`.
    pub identifier: String,
}

/// Whether `name` is a package file name (not a hidden or temporary file).
pub fn is_package_name(name: &str) -> bool {
    !name.starts_with('.') && EXTENSIONS.iter().any(|ext| name.ends_with(ext))
}

/// Reads and checks the package file at `path`.
pub fn inspect(path: &Path) -> Result<PackageFile, ChannelError> {
    let bad = |reason: String| ChannelError::NotAPackage {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some(ext) = EXTENSIONS.iter().find(|ext| file_name.ends_with(*ext)) else {
        return Err(bad("a package file name ends in .conda or .tar.bz2".into()));
    };
    let index: IndexJson =
        read_package_file(path).map_err(|e| bad(format!("no readable info/index.json: {e}")))?;
    let identifier = format!(
        "{}-{}-{}",
        index.name.as_normalized(),
        index.version,
        index.build
    );
    if file_name != format!("{identifier}{ext}") {
        return Err(bad(format!(
            "its info/index.json says it is {identifier}{ext}"
        )));
    }
    let subdir = match (&index.subdir, index.noarch.is_none()) {
        (Some(subdir), _) => subdir.clone(),
        (None, false) => "noarch".to_string(),
        (None, true) => return Err(bad("its info/index.json names no subdir".into())),
    };
    if subdir.parse::<Subdir>().is_err() {
        return Err(bad(format!("its subdir `{subdir}` is not a platform")));
    }
    Ok(PackageFile {
        path: path.to_path_buf(),
        file_name,
        subdir,
        identifier,
    })
}
