//! The readers of foreign data never panic and keep their promises: a
//! deterministic stand-in for the cargo-fuzz targets `helper_answer`,
//! `pack_index` and `portable_entry` in `fuzz/`, running their checks
//! (`fuzz/foreign/mod.rs`) over the seeds in `fuzz/seeds/` and a few
//! thousand mutations of them, so that every test run covers that ground
//! without cargo-fuzz.

use std::io::Read;
use std::path::{Path, PathBuf};

use cleave_cache::Store;
use serde_json::{Value, json};

mod common;
#[path = "../../../fuzz/foreign/mod.rs"]
mod foreign;

use common::{Rng, mutate_bytes};

/// Mutations per seed.
const ROUNDS: usize = 1000;

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
/// input that panicked.
fn run(target: &str, mutate: impl Fn(&[u8], &mut Rng) -> Vec<u8>, check: impl Fn(&[u8])) {
    let mut rng = Rng(0x5eed_f0e1_9000_0001);
    for (path, seed) in seeds(target) {
        check(&seed);
        for round in 0..ROUNDS {
            let input = mutate(&seed, &mut rng);
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&input)));
            if caught.is_err() {
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

/// A value an edit that keeps JSON valid might put somewhere.
fn odd_value(rng: &mut Rng) -> Value {
    rng.pick(&[
        json!(null),
        json!(0),
        json!(1),
        json!(-1),
        json!(u64::MAX),
        json!(u64::MAX / 2),
        json!(4 << 20),
        json!((4 << 20) + 1),
        json!(""),
        json!("\u{1b}[2K\r"),
        json!("a\u{0}b"),
        json!("x".repeat(5000)),
        json!("0".repeat(64)),
        json!(true),
        json!([]),
        json!({}),
    ])
    .clone()
}

/// An edit of a JSON object's fields (or of its bytes).
fn mutate_json(bytes: &[u8], rng: &mut Rng, fields: &[&str]) -> Vec<u8> {
    let Ok(mut value) = serde_json::from_slice::<Value>(bytes) else {
        return mutate_bytes(bytes, rng);
    };
    if rng.below(3) == 0 {
        return mutate_bytes(bytes, rng);
    }
    for _ in 0..1 + rng.below(3) {
        let field = *rng.pick(fields);
        value[field] = odd_value(rng);
    }
    value.to_string().into_bytes()
}

#[test]
fn helper_answers_never_panic_and_name_only_plain_paths() {
    run(
        "helper_answer",
        |seed, rng| mutate_json(seed, rng, &["found", "entry", "mode", "relocated_to", "x"]),
        foreign::helper_answer,
    );
}

/// An edit of an index: a location's field, a location copied or moved,
/// or the bytes.
fn mutate_index(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let Ok(mut index) = serde_json::from_slice::<Value>(bytes) else {
        return mutate_bytes(bytes, rng);
    };
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
                let field = *rng.pick(&["offset", "length", "blob", "pack"]);
                blobs[i][field] = odd_value(rng);
            }
            _ => return mutate_bytes(bytes, rng),
        }
    }
    index.to_string().into_bytes()
}

#[test]
fn remote_indexes_never_panic_and_plan_only_bounded_reads() {
    run("pack_index", mutate_index, foreign::pack_index);
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

/// An edit of a portable entry's tar: its bytes (headers included), or one
/// member's contents or name in an archive that stays valid.
fn mutate_tar(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut found = members(bytes);
    if found.is_empty() || rng.below(2) == 0 {
        return mutate_bytes(bytes, rng);
    }
    let i = rng.below(found.len());
    match rng.below(3) {
        0 => found[i].1 = mutate_bytes(&found[i].1, rng),
        1 => {
            found[i].0 = rng
                .pick(&["entry.json", "files.json", "./blobs/x", "blobs"])
                .to_string()
        }
        _ => {
            let copy = found[i].clone();
            found.push(copy);
        }
    }
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in found {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        if builder.append_data(&mut header, &name, &data[..]).is_err() {
            return mutate_bytes(bytes, rng);
        }
    }
    builder.into_inner().unwrap_or_default()
}

#[test]
fn portable_entries_never_panic_and_enter_the_store_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    run("portable_entry", mutate_tar, |data| {
        foreign::portable_entry(&store, dir.path(), data)
    });
    // The seeds themselves are good entries.
    assert!(!store.entries().unwrap().is_empty());
}
