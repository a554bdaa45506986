//! Building the corpus with each tool, and reading the packages they made.

use std::collections::BTreeSet;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use serde_json::Value;

use crate::common::{repo, skip_unless_required, stderr};
use crate::corpus::{Recipe, tree_hash};
use crate::{PEER_MISSING, REQUIRE};

/// One tool's build of one recipe.
#[derive(Debug, Clone)]
pub struct Run {
    /// Why it failed; `None` when it built.
    pub error: Option<String>,
    pub seconds: f64,
    /// The package files it added to its channels.
    pub packages: Vec<PathBuf>,
}

/// Where one tool's packages go: the channel later recipes solve from, and
/// the one for `side` recipes; and the toolchain channel it solved from.
#[derive(Debug, Clone)]
pub struct Channels {
    pub out: PathBuf,
    pub side: PathBuf,
    pub toolchain: PathBuf,
}

impl Channels {
    pub fn below(root: &Path, toolchain: &Path) -> Channels {
        Channels {
            out: root.join("out"),
            side: root.join("side"),
            toolchain: toolchain.to_path_buf(),
        }
    }
}

/// How `peer.py build` builds: change it when that changes, so that the
/// peer's kept builds are not used again.
const PEER_BUILD: &str = "no tests, linux-64, ci_support_linux_64.yaml, 1";

pub fn peer_script() -> PathBuf {
    repo().join("tests/cf-build/peer.py")
}

/// Runs `peer.py` with `args`; `None` (having said why) when the peer or
/// the package reader is not installed.
fn run_peer(args: &[&std::ffi::OsStr]) -> Option<Output> {
    let spawned = Command::new("python3")
        .arg(peer_script())
        .args(args)
        .stdin(Stdio::null())
        .output();
    let output = match spawned {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            skip_unless_required(REQUIRE, "there is no python3 to run the peer");
            return None;
        }
        spawned => spawned.expect("run python3"),
    };
    if output.status.code() == Some(PEER_MISSING) {
        skip_unless_required(
            REQUIRE,
            &format!("the peer is not installed: {}", stderr(&output).trim()),
        );
        return None;
    }
    assert!(
        output.status.success(),
        "peer.py {args:?} failed:\n{}",
        stderr(&output)
    );
    Some(output)
}

/// Whether the peer can run here (says why not).
pub fn peer_available() -> bool {
    run_peer(&["check".as_ref()]).is_some()
}

fn runs_from_json(value: &Value) -> Vec<Run> {
    value
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| Run {
            error: r["error"].as_str().map(String::from),
            seconds: r["seconds"].as_f64().unwrap_or_default(),
            packages: r["packages"]
                .as_array()
                .expect("a list")
                .iter()
                .map(|p| PathBuf::from(p.as_str().expect("a path")))
                .collect(),
        })
        .collect()
}

/// The peer's builds of `order` (from `copy`), with `toolchain` as the
/// channel. They are kept under Cargo's test scratch directory, named by
/// their inputs: the corpus with its stand-ins, [`PEER_BUILD`], and the records
/// the toolchain channel's index lists (what the peer solves with; not
/// their digests, which change with any change of how cleave writes a
/// package); a later run with the same inputs reuses them instead of
/// building for minutes (the `bool` says so).
pub fn peer(
    shared: &Path,
    order: &[Recipe],
    copy: &Path,
    toolchain: &Path,
) -> (Channels, Vec<Run>, bool) {
    let mut hasher = DefaultHasher::new();
    std::fs::read(shared.join("ORDER"))
        .unwrap()
        .hash(&mut hasher);
    for recipe in order {
        recipe.name.hash(&mut hasher);
        tree_hash(&shared.join(&recipe.name), &mut hasher);
    }
    tree_hash(&shared.join("_toolchain"), &mut hasher);
    PEER_BUILD.hash(&mut hasher);
    for subdir in ["noarch", "linux-64"] {
        solved_records(&toolchain.join(subdir).join("repodata.json")).hash(&mut hasher);
    }
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cf-build");
    let done = root.join(format!("peer-{:016x}", hasher.finish()));
    let results = done.join("results.json");
    // The toolchain channel of that build: the same records, maybe at
    // another path, which its packages' about.json names.
    let used_toolchain = done.join("toolchain");
    if let (Ok(text), Ok(used)) = (
        std::fs::read(&results),
        std::fs::read_to_string(&used_toolchain),
    ) {
        return (
            Channels::below(&done, Path::new(&used)),
            runs_from_json(&serde_json::from_slice(&text).expect("results.json")),
            true,
        );
    }
    for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("peer-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    std::fs::create_dir_all(&done).unwrap();
    let channels = Channels::below(&done, toolchain);
    let mut args: Vec<std::ffi::OsString> = vec![
        "build".into(),
        "--out".into(),
        channels.out.clone().into(),
        "--side".into(),
        channels.side.clone().into(),
        "--logs".into(),
        done.join("logs").into(),
        toolchain.into(),
    ];
    for recipe in order {
        let mut arg = copy.join(&recipe.name).into_os_string();
        if recipe.side {
            arg.push(":side");
        }
        args.push(arg);
    }
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let output = run_peer(&args).expect("the peer was there a moment ago");
    // The peer's build and source directories are not needed again.
    for channel in [&channels.out, &channels.side] {
        for dir in ["bld", "src_cache"] {
            let _ = std::fs::remove_dir_all(channel.join(dir));
        }
    }
    std::fs::write(&used_toolchain, toolchain.to_str().expect("a UTF-8 path")).unwrap();
    std::fs::write(&results, &output.stdout).unwrap();
    (
        channels,
        runs_from_json(&serde_json::from_slice(&output.stdout).expect("peer.py JSON")),
        false,
    )
}

/// The records of a `repodata.json` as a solver sees them: without the
/// archive's digests, size and time.
fn solved_records(repodata: &Path) -> String {
    let Ok(text) = std::fs::read(repodata) else {
        return String::new();
    };
    let mut index: Value = serde_json::from_slice(&text).expect("repodata.json");
    for section in ["packages", "packages.conda"] {
        if let Some(records) = index[section].as_object_mut() {
            for record in records.values_mut().filter_map(Value::as_object_mut) {
                for key in ["md5", "sha256", "size", "timestamp"] {
                    record.remove(key);
                }
            }
        }
    }
    index["packages"].to_string() + &index["packages.conda"].to_string()
}

/// The package files in the platform subdirectories of `channels`.
fn packages_in(channels: &Channels) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    for channel in [&channels.out, &channels.side] {
        for subdir in ["noarch", "linux-64"] {
            let Ok(entries) = std::fs::read_dir(channel.join(subdir)) else {
                continue;
            };
            found.extend(entries.flatten().map(|e| e.path()).filter(|p| {
                let name = p.to_string_lossy();
                name.ends_with(".conda") || name.ends_with(".tar.bz2")
            }));
        }
    }
    found
}

/// How many lines of a failed build's output the report shows.
const ERROR_LINES: usize = 12;

/// cleave's builds of `order` (from `copy`) into channels below `root`,
/// with one cache and one staging root for all of them.
pub fn cleave(
    order: &[Recipe],
    copy: &Path,
    toolchain: &Path,
    root: &Path,
) -> (Channels, Vec<Run>) {
    let channels = Channels::below(root, toolchain);
    let mut runs = Vec::new();
    for recipe in order {
        let before = packages_in(&channels);
        let dir = copy.join(&recipe.name);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cleave"));
        cmd.arg("build").arg("--recipe").arg(&dir);
        let variants = dir.join("ci_support_linux_64.yaml");
        if variants.exists() {
            cmd.arg("--variant-config").arg(variants);
        }
        if recipe.side {
            cmd.arg("--output-dir")
                .arg(&channels.side)
                .arg("-c")
                .arg(&channels.out);
        } else {
            cmd.arg("--output-dir").arg(&channels.out);
        }
        cmd.arg("-c")
            .arg(toolchain)
            .arg("--cache-dir")
            .arg(root.join("cache"))
            .arg("--staging-root")
            .arg(root.join("stg"))
            .arg("--test")
            .arg("skip")
            .env_remove("SOURCE_DATE_EPOCH")
            .env("NO_COLOR", "1");
        let start = Instant::now();
        let output = cmd.output().expect("run cleave");
        let seconds = start.elapsed().as_secs_f64();
        std::fs::write(
            root.join(format!("{}.log", recipe.name)),
            [output.stdout.as_slice(), output.stderr.as_slice()].concat(),
        )
        .unwrap();
        let error = (!output.status.success()).then(|| {
            let text = stderr(&output);
            let lines: Vec<&str> = text.trim_end().lines().collect();
            let tail = &lines[lines.len().saturating_sub(ERROR_LINES)..];
            let status = output
                .status
                .code()
                .map_or("a signal".to_string(), |c| c.to_string());
            format!("cleave exits with {status}:\n{}", tail.join("\n"))
        });
        runs.push(Run {
            error,
            seconds: (seconds * 10.0).round() / 10.0,
            packages: packages_in(&channels)
                .difference(&before)
                .cloned()
                .collect(),
        });
    }
    (channels, runs)
}

/// `peer.py inspect` of `files`, in order.
pub fn inspect(files: &[&Path]) -> Vec<Value> {
    if files.is_empty() {
        return Vec::new();
    }
    let mut args: Vec<&std::ffi::OsStr> = vec!["inspect".as_ref()];
    args.extend(files.iter().map(|f| f.as_os_str()));
    let output = run_peer(&args).expect("the peer was there a moment ago");
    let summaries: Value = serde_json::from_slice(&output.stdout).expect("peer.py JSON");
    let summaries = summaries.as_array().expect("a list").clone();
    assert_eq!(summaries.len(), files.len());
    summaries
}
