//! Makes the output directory a channel: `repodata.json` per subdir.
//!
//! rattler_index would do this, but it always enables the system keyring
//! integration, which links libdbus and would make every build of cleave
//! need its development headers. Writing the few fields a local channel needs
//! from the packages' own `index.json` is small, and the records are the
//! rattler_conda_types ones, so clients read them as they read any channel.
//! Each package's `run_exports.json` goes into its record, so the next solve
//! sees run exports without opening archives.

use std::path::Path;

use rattler_conda_types::package::{IndexJson, RunExportsJson};
use rattler_conda_types::{PackageRecord, Subdir};
use rattler_digest::{Md5, Sha256};
use rattler_package_streaming::seek::read_package_file;
use serde_json::{Map, Value, json};

use crate::error::BuildError;

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
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(|e| failed(e.to_string()))?;
    serde_json::to_writer_pretty(&mut tmp, &repodata).map_err(|e| failed(e.to_string()))?;
    tmp.persist(dir.join("repodata.json"))
        .map_err(|e| failed(e.error.to_string()))?;
    Ok(())
}
