//! Makes the output directory a channel: `repodata.json` per subdir.
//!
//! rattler_index would do this, but it always enables the system keyring
//! integration, which links libdbus and would make every build of cleave
//! need its development headers. Writing the few fields a local channel needs
//! from the packages' own `index.json` is small, and the records are the
//! rattler_conda_types ones, so clients read them as they read any channel.
//! Each package's `run_exports.json` goes into its record, so the next solve
//! sees run exports without opening archives.
//!
//! Packages and `repodata.json` are written to temporary files in their
//! subdir and renamed into place, with the mode the umask gives any new
//! file (a channel is for every user, not just the one who built it). Each
//! temporary file (`.cleave-partial-*`, skipped by clients as a dot file)
//! is locked while it is written; one that is unlocked and has not changed
//! for a minute was left by a killed build, and indexing removes it.

use std::fs::File;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use rattler_conda_types::package::{IndexJson, RunExportsJson};
use rattler_conda_types::{PackageRecord, Subdir};
use rattler_digest::{Md5, Sha256};
use rattler_package_streaming::seek::read_package_file;
use serde_json::{Map, Value, json};

use crate::error::BuildError;

/// The channels a build solved from as its packages' `about.json` lists
/// them, as rattler-build does: each base URL without credentials (user,
/// password, or an anaconda.org `/t/TOKEN/` prefix).
pub fn about_names(channels: &[rattler_conda_types::Channel]) -> Vec<String> {
    channels
        .iter()
        .map(|c| {
            let mut url: url::Url = c.base_url.url().clone().into();
            let _ = url.set_username("");
            let _ = url.set_password(None);
            let segments: Vec<String> = url
                .path_segments()
                .map(|s| s.map(String::from).collect())
                .unwrap_or_default();
            if segments.len() > 2 && segments[0] == "t" {
                url.set_path(&segments[2..].join("/"));
            }
            url.to_string()
        })
        .collect()
}

/// Writes `repodata.json` for `subdirs` of `channel` (plus `noarch`, which
/// every channel must have), replacing each atomically.
pub fn index_channel(channel: &Path, subdirs: &[Subdir]) -> Result<(), BuildError> {
    let mut names: Vec<&str> = subdirs.iter().map(|s| s.as_str()).collect();
    names.push("noarch");
    names.sort_unstable();
    names.dedup();
    for subdir in names {
        index_subdir(channel, subdir)?;
    }
    Ok(())
}

fn index_subdir(channel: &Path, subdir: &str) -> Result<(), BuildError> {
    let dir = channel.join(subdir);
    let failed = |reason: String| BuildError::Index {
        dir: dir.clone(),
        reason,
    };
    std::fs::create_dir_all(&dir).map_err(|e| failed(e.to_string()))?;
    clean_stale(&dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| failed(e.to_string()))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && (n.ends_with(".conda") || n.ends_with(".tar.bz2")))
        .collect();
    files.sort();
    let mut tar_bz2 = Map::new();
    let mut conda = Map::new();
    for name in files {
        let path = dir.join(&name);
        let index: IndexJson =
            read_package_file(&path).map_err(|e| failed(format!("{name}: {e}")))?;
        let run_exports = read_package_file::<RunExportsJson>(&path).ok();
        let size = std::fs::metadata(&path)
            .map_err(|e| failed(format!("{name}: {e}")))?
            .len();
        let sha256 = rattler_digest::compute_file_digest::<Sha256>(&path)
            .map_err(|e| failed(format!("{name}: {e}")))?;
        let md5 = rattler_digest::compute_file_digest::<Md5>(&path)
            .map_err(|e| failed(format!("{name}: {e}")))?;
        let mut record = PackageRecord::from_index_json(index, Some(size), Some(sha256), Some(md5))
            .map_err(|e| failed(format!("{name}: {e}")))?;
        record.run_exports = run_exports;
        let value = serde_json::to_value(&record).map_err(|e| failed(e.to_string()))?;
        if name.ends_with(".conda") {
            conda.insert(name, value);
        } else {
            tar_bz2.insert(name, value);
        }
    }
    let repodata = json!({
        "info": { "subdir": subdir },
        "packages": Value::Object(tar_bz2),
        "packages.conda": Value::Object(conda),
        "repodata_version": 1,
    });
    let mut tmp = partial_file(&dir).map_err(|e| failed(e.to_string()))?;
    serde_json::to_writer_pretty(&mut tmp, &repodata).map_err(|e| failed(e.to_string()))?;
    tmp.persist(dir.join("repodata.json"))
        .map_err(|e| failed(e.error.to_string()))?;
    Ok(())
}

/// The name prefix of cleave's temporary files and directories in a
/// channel subdir.
const PARTIAL: &str = ".cleave-partial-";

/// How long a temporary file must be unchanged before it can be stale:
/// far longer than between its creation and its lock.
const STALE_AFTER: Duration = Duration::from_secs(60);

/// A new temporary file in the channel subdir `dir`, with the mode the
/// umask gives new files, locked until it is closed (after its rename).
pub(crate) fn partial_file(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let file = tempfile::Builder::new()
        .prefix(PARTIAL)
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    file.as_file().lock()?;
    Ok(file)
}

/// A temporary directory in a channel subdir, locked while it lives.
pub(crate) struct PartialDir {
    // Declared first: removed before the lock is let go.
    dir: tempfile::TempDir,
    _lock: File,
}

impl PartialDir {
    /// A new one in the channel subdir `dir`.
    pub(crate) fn new(dir: &Path) -> std::io::Result<PartialDir> {
        let dir = tempfile::Builder::new().prefix(PARTIAL).tempdir_in(dir)?;
        let lock = File::open(dir.path())?;
        lock.lock()?;
        Ok(PartialDir { dir, _lock: lock })
    }

    /// Its path.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Removes the temporary files and directories of killed builds from the
/// channel subdir `dir`: those whose lock is free and that have not changed
/// for [`STALE_AFTER`]. Best effort: what cannot be removed stays.
fn clean_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.filter_map(Result::ok) {
        if !entry.file_name().to_string_lossy().starts_with(PARTIAL) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let old = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age > STALE_AFTER);
        if !old || !(meta.is_file() || meta.is_dir()) {
            continue;
        }
        let Ok(file) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
        else {
            continue;
        };
        // Held while removing: a writer that is alive holds it.
        if file.try_lock().is_ok() {
            let _ = if meta.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}
