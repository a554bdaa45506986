//! The readers of foreign data never panic and keep their promises: a
//! deterministic stand-in for the cargo-fuzz targets `helper_answer`,
//! `pack_index` and `portable_entry` in `fuzz/`, running their checks
//! (`fuzz/foreign/mod.rs`, the same functions the targets run) over the
//! seeds in `fuzz/seeds/` and a few thousand mutations of each, so that
//! every test run covers that ground without cargo-fuzz.
//!
//! The mutations are the fuzzer's (bit flips, cuts, inserted tokens) and
//! structure-aware ones it would take long to find: hostile paths, modes
//! and roots in a manifest (which the checks reseal, so that they reach
//! the path checks), huge sizes in an index or a tar header, JSON nested
//! far deeper than a parser's stack allows. Each reader is also given
//! every path a restore must never write, and must refuse each; and sizes
//! that cannot be read (a terabyte, sparse), which it must refuse by their
//! size: a read of one would fail the test by running out of memory, not
//! by taking long.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use cleave_cache::{Store, portable};
use serde_json::{Value, json};

mod common;
#[path = "../../../fuzz/foreign/mod.rs"]
mod foreign;

use common::{Rng, mutate_bytes};

/// Mutations per seed, unless `CLEAVE_FUZZ_ROUNDS` says otherwise (a long
/// run without cargo-fuzz; `CLEAVE_FUZZ_SEED` picks other mutations, and
/// `CLEAVE_FUZZ_SECONDS` ends the run after about that long, each seed
/// given its share).
const ROUNDS: usize = 1000;

/// A setting of a long run: the variable `name` as a number, else
/// `default`.
fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Paths a restore must never write: empty, absolute, with `..` or `.`,
/// with a NUL, longer than a path may be.
fn unsafe_paths() -> Vec<String> {
    [
        "",
        ".",
        "..",
        "../x",
        "a/../../x",
        "lib/..",
        "/etc/passwd",
        "/",
        "//x",
        "./x",
        "a\0b",
        "\0",
    ]
    .map(String::from)
    .into_iter()
    .chain([format!("{}/x", "d".repeat(4096))])
    .collect()
}

/// JSON nested `depth` deep: arrays, then objects (more than a parser
/// takes: serde_json stops at 128).
fn nested(depth: usize) -> Vec<Value> {
    let (mut array, mut object) = (json!([]), json!(1));
    for _ in 0..depth {
        array = json!([array]);
        object = json!({ "a": object });
    }
    vec![array, object]
}

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target);
    let mut seeds: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// Runs `check` on every seed and `ROUNDS` mutations of each, naming the
/// input that panicked; how many inputs `check` admitted. Says how many
/// inputs it ran, and how long they took, on stdout (shown with
/// `--nocapture`).
fn run(
    target: &str,
    mutate: impl Fn(&[u8], &mut Rng) -> Vec<u8>,
    check: impl Fn(&[u8]) -> bool,
) -> usize {
    let rounds = setting("CLEAVE_FUZZ_ROUNDS", ROUNDS as u64);
    let mut rng = Rng(setting("CLEAVE_FUZZ_SEED", 0x5eed_f0e1_9000_0001).max(1));
    let seconds = setting("CLEAVE_FUZZ_SECONDS", u64::MAX);
    let (started, mut inputs) = (std::time::Instant::now(), 0u64);
    let mut admitted = 0;
    let seeds = seeds(target);
    // Each seed gets its share of the time.
    let share = std::time::Duration::from_secs(seconds) / seeds.len() as u32;
    for (path, seed) in seeds {
        let this = std::time::Instant::now();
        check(&seed);
        inputs += 1;
        for round in 0..rounds {
            if this.elapsed() >= share {
                break;
            }
            inputs += 1;
            let input = mutate(&seed, &mut rng);
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&input)));
            match caught {
                Ok(true) => admitted += 1,
                Ok(false) => {}
                Err(_) => {
                    let kept = std::env::temp_dir().join(format!("{target}-crash-{round}"));
                    let _ = std::fs::write(&kept, &input);
                    panic!(
                        "{target}: mutation {round} of {} panicked; the input is at {}",
                        path.display(),
                        kept.display()
                    );
                }
            }
        }
    }
    let said = format!(
        "{target}: {inputs} inputs, {admitted} admitted, in {:.1} s\n",
        started.elapsed().as_secs_f64()
    );
    let _ = std::io::Write::write_all(&mut std::io::stdout(), said.as_bytes());
    admitted
}

/// A value an edit that keeps JSON valid might put somewhere.
fn odd_value(rng: &mut Rng) -> Value {
    static VALUES: LazyLock<Vec<Value>> = LazyLock::new(|| {
        let mut values = vec![
            json!(null),
            json!(0),
            json!(1),
            json!(-1),
            json!(u64::MAX),
            json!(u64::MAX / 2),
            json!(4 << 20),
            json!((4 << 20) + 1),
            json!("\u{1b}[2K\r"),
            json!("x".repeat(5000)),
            json!("0".repeat(64)),
            json!(true),
            json!([]),
            json!({}),
        ];
        values.extend(unsafe_paths().into_iter().map(Value::from));
        values.extend(nested(200));
        values
    });
    rng.pick(&VALUES).clone()
}

/// An edit of a JSON object's fields (or of its bytes).
fn mutate_json(bytes: &[u8], rng: &mut Rng, fields: &[&str]) -> Vec<u8> {
    let Ok(mut value) = serde_json::from_slice::<Value>(bytes) else {
        return mutate_bytes(bytes, rng);
    };
    match rng.below(4) {
        0 => return mutate_bytes(bytes, rng),
        1 => return deepened(bytes, rng),
        _ => {}
    }
    for _ in 0..1 + rng.below(3) {
        let field = *rng.pick(fields);
        value[field] = odd_value(rng);
    }
    value.to_string().into_bytes()
}

/// `bytes` with brackets nested up to 20,000 deep put in somewhere, closed
/// or not: a parser that recursed without a limit would overflow its
/// stack (which no `catch_unwind` catches: the test binary dies).
fn deepened(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let depth = 1 + rng.below(20_000);
    let open = *rng.pick(&["[", "{\"a\":", "[{\"b\":"]);
    let mut out = bytes.to_vec();
    let at = rng.below(out.len() + 1);
    out.splice(at..at, open.repeat(depth).into_bytes());
    out
}

#[test]
fn helper_answers_never_panic_and_name_only_plain_paths() {
    run(
        "helper_answer",
        |seed, rng| mutate_json(seed, rng, &["found", "entry", "mode", "relocated_to", "x"]),
        |data| {
            foreign::helper_answer(data);
            false
        },
    );
}

/// One to three edits of a manifest that stay valid JSON: an item's path,
/// mode, time or link target made hostile, a link put above an item, an
/// item repeated, a root changed.
fn mutate_manifest(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let Ok(mut manifest) = serde_json::from_slice::<Value>(bytes) else {
        return mutate_bytes(bytes, rng);
    };
    for _ in 0..1 + rng.below(3) {
        if rng.below(6) == 0 {
            let root = *rng.pick(&["prefix", "root", "x"]);
            let value = rng.pick(&["", "/", "relative", "/a/../b", "/a\0b", "/ok/x"]);
            manifest["roots"][root] = json!(value);
            continue;
        }
        let Some(items) = manifest["trees"]
            .as_object_mut()
            .and_then(|trees| trees.values_mut().find_map(Value::as_array_mut))
        else {
            return mutate_bytes(bytes, rng);
        };
        if items.is_empty() {
            items.push(json!({"type": "dir", "path": "d", "mode": 0o755}));
        }
        let i = rng.below(items.len());
        match rng.below(6) {
            0 => items[i]["path"] = json!(rng.pick(&unsafe_paths())),
            1 => {
                let path = items[i]["path"].as_str().unwrap_or("x");
                let parent = path.split('/').next().unwrap_or("x").to_string();
                let target = rng.pick(&["/etc", "..", "a\0b"]);
                items.push(json!({"type": "symlink", "path": parent, "target": target}));
            }
            2 => {
                let copy = items[i].clone();
                items.push(copy);
            }
            3 => items[i]["mode"] = json!(rng.pick(&[0o4755, 0o2755, 0o17777, u64::MAX])),
            4 => items[i]["mtime"] = json!([rng.pick(&[i64::MIN, 0, i64::MAX]), 1_000_000_000]),
            _ => items[i]["path"] = odd_value(rng),
        }
    }
    manifest.to_string().into_bytes()
}

/// An edit of an index: a location's field, a location copied or moved,
/// the entry's manifest (resealed by the check), or the bytes.
fn mutate_index(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let Ok(mut index) = serde_json::from_slice::<Value>(bytes) else {
        return mutate_bytes(bytes, rng);
    };
    match rng.below(6) {
        0 => return mutate_bytes(bytes, rng),
        1 => return deepened(bytes, rng),
        2 => {
            let files = index["files"].as_str().unwrap_or_default().as_bytes();
            let edited = mutate_manifest(files, rng);
            index["files"] = json!(String::from_utf8_lossy(&edited));
            return index.to_string().into_bytes();
        }
        _ => {}
    }
    let Some(blobs) = index["blobs"].as_array_mut().filter(|b| !b.is_empty()) else {
        return mutate_bytes(bytes, rng);
    };
    for _ in 0..1 + rng.below(3) {
        let i = rng.below(blobs.len());
        let j = rng.below(blobs.len());
        match rng.below(5) {
            0 => {
                let copy = blobs[j].clone();
                blobs.push(copy);
            }
            1 => {
                let other = blobs[j]["offset"].clone();
                blobs[i]["offset"] = other;
            }
            2 => {
                let field = *rng.pick(&["offset", "length"]);
                let n = blobs[i][field].as_u64().unwrap_or(0);
                blobs[i][field] = json!(n.wrapping_add(rng.below(64) as u64).wrapping_sub(32));
            }
            3 => {
                let field = *rng.pick(&["offset", "length"]);
                blobs[i][field] = json!(rng.pick(&[u64::MAX, u64::MAX - 1, 1 << 40, 1 << 63]));
            }
            _ => {
                let field = *rng.pick(&["offset", "length", "blob", "pack"]);
                blobs[i][field] = odd_value(rng);
            }
        }
    }
    index.to_string().into_bytes()
}

#[test]
fn remote_indexes_never_panic_and_plan_only_bounded_reads() {
    let admitted = run("pack_index", mutate_index, foreign::pack_index);
    // Mutations that keep an entry whole (a location moved) are admitted:
    // the checks are reached, not only the parser's refusals.
    assert!(admitted > 0);
}

/// The members of a tar, as (name, bytes).
fn members(tar: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(tar);
    let Ok(entries) = archive.entries() else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|mut m| {
            let name = m
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let mut bytes = Vec::new();
            let _ = m.read_to_end(&mut bytes);
            (name, bytes)
        })
        .collect()
}

/// A tar of `members`, as `cleave cache export` writes one.
fn tar_of(members: &[(String, Vec<u8>)]) -> Option<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, &data[..]).ok()?;
    }
    builder.into_inner().ok()
}

/// `tar` with the size field of the header at `at` set to `size` (octal,
/// or base-256 when it does not fit) and its checksum fixed.
fn resized(tar: &[u8], at: usize, size: u64) -> Vec<u8> {
    let mut out = tar.to_vec();
    if out.len() < at + 512 {
        return out;
    }
    let header = &mut out[at..at + 512];
    let field = &mut header[124..136];
    if size < 8 << 30 {
        field.copy_from_slice(format!("{size:011o}\0").as_bytes());
    } else {
        field.fill(0);
        field[0] = 0x80;
        field[4..].copy_from_slice(&size.to_be_bytes());
    }
    header[148..156].fill(b' ');
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    out
}

/// An edit of a portable entry's tar: its bytes (headers included), a
/// header's size made huge or off by a little, or one member's contents
/// or name in an archive that stays valid (its manifest edited, resealed
/// by the check).
fn mutate_tar(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut found = members(bytes);
    if found.is_empty() || rng.below(3) == 0 {
        return mutate_bytes(bytes, rng);
    }
    let i = rng.below(found.len());
    match rng.below(6) {
        0 => {
            let headers: Vec<usize> = (0..bytes.len().saturating_sub(511))
                .step_by(512)
                .filter(|&at| {
                    let header = tar::Header::from_byte_slice(&bytes[at..at + 512]);
                    header.path().is_ok_and(|p| !p.as_os_str().is_empty())
                })
                .collect();
            if headers.is_empty() {
                return mutate_bytes(bytes, rng);
            }
            let at = *rng.pick(&headers);
            let size = *rng.pick(&[u64::MAX, 1 << 40, 8 << 30, (8 << 30) - 1, 17 << 20, 0, 1]);
            return resized(bytes, at, size);
        }
        1 => found[i].1 = mutate_bytes(&found[i].1, rng),
        2 => {
            if let Some(files) = found.iter_mut().find(|(name, _)| name == "files.json") {
                files.1 = mutate_manifest(&files.1, rng);
            }
        }
        3 => {
            found[i].0 = rng
                .pick(&[
                    "entry.json",
                    "files.json",
                    "./blobs/x",
                    "blobs",
                    "blobs/..",
                    "blobs/../entry.json",
                    "../blobs/x",
                ])
                .to_string()
        }
        4 => found[i].1 = deepened(&found[i].1, rng),
        _ => {
            let copy = found[i].clone();
            found.push(copy);
        }
    }
    tar_of(&found).unwrap_or_else(|| mutate_bytes(bytes, rng))
}

#[test]
fn portable_entries_never_panic_and_enter_the_store_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let admitted = run("portable_entry", mutate_tar, |data| {
        foreign::portable_entry(&store, dir.path(), data)
    });
    // The seeds themselves are good entries, and so are some mutations
    // (a member repeated, a blob's name given a `./`).
    assert!(admitted > 0);
}

/// `files` (a manifest) with the path of its first item set to `path`.
fn with_first_path(files: &str, path: &str) -> String {
    let mut manifest: Value = serde_json::from_str(files).unwrap();
    let items = manifest["trees"]
        .as_object_mut()
        .unwrap()
        .values_mut()
        .find_map(|items| items.as_array_mut().filter(|i| !i.is_empty()))
        .unwrap();
    items[0]["path"] = json!(path);
    manifest.to_string()
}

#[test]
fn every_unsafe_path_is_refused_by_every_reader() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let indexes = seeds("pack_index");
    let tars = seeds("portable_entry");
    for path in unsafe_paths() {
        for (seed, bytes) in &indexes {
            let mut index: Value = serde_json::from_slice(bytes).unwrap();
            let files = with_first_path(index["files"].as_str().unwrap(), &path);
            index["files"] = json!(files);
            assert!(
                !foreign::pack_index(index.to_string().as_bytes()),
                "{}: an index with the path {path:?} was admitted",
                seed.display()
            );
        }
        for (seed, bytes) in &tars {
            let mut found = members(bytes);
            let files = found.iter_mut().find(|(n, _)| n == "files.json").unwrap();
            files.1 = with_first_path(std::str::from_utf8(&files.1).unwrap(), &path).into_bytes();
            let tar = tar_of(&found).unwrap();
            assert!(
                !foreign::portable_entry(&store, dir.path(), &tar),
                "{}: a portable entry with the path {path:?} was admitted",
                seed.display()
            );
        }
    }
    // The same edit with a plain path is admitted by both: the refusals
    // above are the paths', not the edit's.
    let (_, bytes) = &indexes[0];
    let mut index: Value = serde_json::from_slice(bytes).unwrap();
    index["files"] = json!(with_first_path(index["files"].as_str().unwrap(), "plain"));
    assert!(foreign::pack_index(index.to_string().as_bytes()));
    let mut found = members(&tars[0].1);
    let files = found.iter_mut().find(|(n, _)| n == "files.json").unwrap();
    files.1 = with_first_path(std::str::from_utf8(&files.1).unwrap(), "plain").into_bytes();
    assert!(foreign::portable_entry(
        &store,
        dir.path(),
        &tar_of(&found).unwrap()
    ));
}

#[test]
fn json_nested_far_deeper_than_a_stack_allows_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    for open in ["[", "{\"a\":"] {
        let deep = open.repeat(1 << 20).into_bytes();
        foreign::helper_answer(&deep);
        assert!(!foreign::pack_index(&deep));
        let tar = tar_of(&[
            ("entry.json".into(), deep.clone()),
            ("files.json".into(), deep.clone()),
        ])
        .unwrap();
        assert!(!foreign::portable_entry(&store, dir.path(), &tar));
    }
}

/// A file of `size` bytes that takes no disk: `with` written at its
/// start.
fn sparse(path: &Path, with: &[u8], size: u64) {
    std::fs::write(path, with).unwrap();
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(size)
        .unwrap();
}

#[test]
fn a_portable_entry_s_terabyte_files_are_refused_by_their_size() {
    const TIB: u64 = 1 << 40;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let (_, seed) = &seeds("portable_entry")[0];
    let found = members(seed);
    let refused = |path: &Path, said: &str| {
        let err = portable::import(&store, path, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains(said), "{}: {err}", path.display());
    };
    // As a tar: a header claiming a terabyte for each of the entry's files
    // in turn, its data a sparse terabyte, the other members after it.
    for name in ["entry.json", "files.json"] {
        let (first, rest): (Vec<_>, Vec<_>) = found.iter().cloned().partition(|m| m.0 == name);
        let tar = resized(&tar_of(&first).unwrap(), 0, TIB);
        let path = dir.path().join(format!("{name}.tar"));
        sparse(&path, &tar[..512], 512 + TIB);
        let rest = tar_of(&rest).unwrap();
        std::os::unix::fs::FileExt::write_all_at(
            &File::options().write(true).open(&path).unwrap(),
            &rest,
            512 + TIB,
        )
        .unwrap();
        refused(&path, "larger than");
    }
    // As a directory: each file a sparse terabyte in turn.
    for (i, name) in ["entry.json", "files.json", "blob"].into_iter().enumerate() {
        let entry = dir.path().join(format!("dir-{i}"));
        std::fs::create_dir_all(entry.join("blobs")).unwrap();
        for (member, bytes) in &found {
            let path = entry.join(member);
            let blob = member.starts_with("blobs/");
            if member == name || (name == "blob" && blob) {
                sparse(&path, bytes, TIB);
            } else {
                std::fs::write(&path, bytes).unwrap();
            }
        }
        let said = if name == "blob" {
            "not the size the manifest gives"
        } else {
            "larger than"
        };
        refused(&entry, said);
    }
}
