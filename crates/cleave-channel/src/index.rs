//! `repodata.json` for a local channel, kept up to date incrementally.
//!
//! Indexing a subdir reads only the packages it has not read before: the
//! records of `repodata.json` are kept, each with the size, modification
//! time, inode and change time its file had when it was read (in
//! `.cleave-index/<subdir>.json` of the channel), and a package whose file still has
//! them is not opened again. So adding one package to a channel of
//! thousands reads and hashes one archive, not thousands, and a package
//! rewritten under the same name (a rebuild) is read again because its
//! file changed. rattler_index keeps records by file name only, which is
//! right for a channel that never replaces a file (see
//! [`crate::publish`]) and wrong for a build's output channel.
//!
//! Each subdir is indexed under an exclusive lock
//! (`.cleave-index/<subdir>.lock`; a dot directory, which clients skip),
//! and every writer indexes after its package is in place: so two
//! processes adding packages at once both end up listed, whoever writes
//! last. `repodata.json` is written to a temporary file and renamed into
//! place, then the sidecar: a crash between the two only costs a re-read.
//! Each package's `run_exports.json` goes into its record, so a solve sees
//! run exports without opening archives.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use cleave_cache::lock::Lock;
use rattler_conda_types::PackageRecord;
use rattler_conda_types::package::{IndexJson, RunExportsJson};
use rattler_digest::{Md5, Sha256};
use rattler_package_streaming::seek::read_package_file;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::ChannelError;
use crate::package::is_package_name;
use crate::partial::{clean_stale, partial_file};

/// The directory of the channel holding, per subdir, the sidecar with
/// what each indexed file looked like and the lock held while it is
/// indexed.
const STATE_DIR: &str = ".cleave-index";
/// Its format: a sidecar of another version is ignored (everything is read
/// again).
const SIDECAR_VERSION: u32 = 1;
/// The most of `repodata.json` or the sidecar that is read: far above any
/// local channel, and a bound on a damaged or hostile file.
const MAX_INDEX_BYTES: u64 = 1 << 30;

/// What indexing one subdir did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubdirIndexed {
    /// The subdir (`linux-64`, `noarch`, ...).
    pub subdir: String,
    /// Packages listed now.
    pub packages: usize,
    /// Of these, the ones whose archives were read (new or changed).
    pub read: usize,
}

/// What a file looked like when its record was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Seen {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    inode: u64,
}

impl Seen {
    fn of(meta: &std::fs::Metadata) -> Seen {
        Seen {
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            inode: meta.ino(),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Sidecar {
    version: u32,
    files: BTreeMap<String, Seen>,
}

/// Writes `repodata.json` for each of `subdirs` of the channel directory
/// (created when missing), plus `noarch`, which every channel must have.
pub fn index_channel(channel: &Path, subdirs: &[&str]) -> Result<Vec<SubdirIndexed>, ChannelError> {
    let mut names: Vec<&str> = subdirs.to_vec();
    names.push("noarch");
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|subdir| index_subdir(channel, subdir))
        .collect()
}

fn index_subdir(channel: &Path, subdir: &str) -> Result<SubdirIndexed, ChannelError> {
    let dir = channel.join(subdir);
    let failed = |reason: String| ChannelError::Index {
        dir: dir.clone(),
        reason,
    };
    let state = channel.join(STATE_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| failed(e.to_string()))?;
    std::fs::create_dir_all(&state).map_err(|e| failed(e.to_string()))?;
    let sidecar_path = state.join(format!("{subdir}.json"));
    let (_lock, _) = Lock::exclusive(&state.join(format!("{subdir}.lock")), || {})
        .map_err(|e| failed(format!("locking it: {e}")))?;
    clean_stale(&dir);
    let (mut tar_bz2, mut conda) = previous_records(&dir);
    let seen = previous_sidecar(&sidecar_path);

    let mut files: Vec<(String, Seen)> = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| failed(e.to_string()))? {
        let entry = entry.map_err(|e| failed(e.to_string()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_package_name(&name) {
            continue;
        }
        // Only regular files: a link could lead anywhere.
        let meta = std::fs::symlink_metadata(entry.path()).map_err(|e| failed(e.to_string()))?;
        if meta.is_file() {
            files.push((name, Seen::of(&meta)));
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));

    let mut read = 0;
    let mut kept_tar_bz2 = Map::new();
    let mut kept_conda = Map::new();
    let mut sidecar = Sidecar {
        version: SIDECAR_VERSION,
        files: BTreeMap::new(),
    };
    for (name, now) in files {
        let (previous, kept) = if name.ends_with(".conda") {
            (&mut conda, &mut kept_conda)
        } else {
            (&mut tar_bz2, &mut kept_tar_bz2)
        };
        let unchanged = seen.get(&name) == Some(&now)
            && previous
                .get(&name)
                .is_some_and(|r| r.get("size").and_then(Value::as_u64) == Some(now.size));
        let record = match previous.remove(&name) {
            Some(record) if unchanged => record,
            _ => {
                read += 1;
                record_of(&dir.join(&name)).map_err(|e| failed(format!("{name}: {e}")))?
            }
        };
        kept.insert(name.clone(), record);
        sidecar.files.insert(name, now);
    }
    let packages = kept_tar_bz2.len() + kept_conda.len();
    let repodata = json!({
        "info": { "subdir": subdir },
        "packages": Value::Object(kept_tar_bz2),
        "packages.conda": Value::Object(kept_conda),
        "repodata_version": 1,
    });
    write_json(&dir.join("repodata.json"), &repodata).map_err(|e| failed(e.to_string()))?;
    write_json(&sidecar_path, &sidecar).map_err(|e| failed(e.to_string()))?;
    Ok(SubdirIndexed {
        subdir: subdir.to_string(),
        packages,
        read,
    })
}

/// The record of one package archive: its `index.json`, run exports, size
/// and digests.
pub fn record_of(path: &Path) -> Result<Value, String> {
    let index: IndexJson = read_package_file(path).map_err(|e| e.to_string())?;
    let run_exports = read_package_file::<RunExportsJson>(path).ok();
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    let sha256 = rattler_digest::compute_file_digest::<Sha256>(path).map_err(|e| e.to_string())?;
    let md5 = rattler_digest::compute_file_digest::<Md5>(path).map_err(|e| e.to_string())?;
    let mut record = PackageRecord::from_index_json(index, Some(size), Some(sha256), Some(md5))
        .map_err(|e| e.to_string())?;
    record.run_exports = run_exports;
    serde_json::to_value(&record).map_err(|e| e.to_string())
}

/// The records of the subdir's `repodata.json` by file name (`.tar.bz2`,
/// `.conda`); none when it is missing or unreadable (then every package is
/// read again).
fn previous_records(dir: &Path) -> (Map<String, Value>, Map<String, Value>) {
    let Some(Value::Object(mut repodata)) = read_json(&dir.join("repodata.json")) else {
        return (Map::new(), Map::new());
    };
    let mut take = |key: &str| match repodata.remove(key) {
        Some(Value::Object(records)) => records,
        _ => Map::new(),
    };
    (take("packages"), take("packages.conda"))
}

fn previous_sidecar(path: &Path) -> BTreeMap<String, Seen> {
    read_json(path)
        .and_then(|v| serde_json::from_value::<Sidecar>(v).ok())
        .filter(|s| s.version == SIDECAR_VERSION)
        .map(|s| s.files)
        .unwrap_or_default()
}

/// A JSON file of the channel, if it is a regular file of bounded size
/// that parses.
fn read_json(path: &Path) -> Option<Value> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_INDEX_BYTES {
        return None;
    }
    let mut text = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_INDEX_BYTES)
        .read_to_end(&mut text)
        .ok()?;
    serde_json::from_slice(&text).ok()
}

/// Writes `path` through a temporary file beside it.
fn write_json(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = partial_file(dir)?;
    let mut writer = std::io::BufWriter::new(tmp.as_file_mut());
    serde_json::to_writer_pretty(&mut writer, value)?;
    writer.flush()?;
    drop(writer);
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
