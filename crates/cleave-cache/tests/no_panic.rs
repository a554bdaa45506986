//! Mutated `entry.json` and `files.json` never panic the store, and are
//! never taken for the entry they garble.
//!
//! A deterministic stand-in for the cargo-fuzz target `entry_reader` in
//! `fuzz/`, so that every test run covers the same ground: byte mutations
//! of both files of a real entry, read by the store's readers and through
//! the store on disk, and value mutations of the manifest that stay valid
//! JSON, sealed as the store would have written them and restored.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::symlink;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Component, Path, PathBuf};

use cleave_cache::manifest::{EntryMeta, Item, Manifest};
use cleave_cache::store::{Capture, Select, Target, TreeSource};
use cleave_cache::{Digest, Inputs, Store};
use serde_json::{Value, json};

mod common;
use common::{Rng, entry_dir, mutate_bytes, reseal};

/// Values an item field might be given by an edit that keeps JSON valid.
fn odd_value(rng: &mut Rng) -> Value {
    rng.pick(&[
        json!(null),
        json!(-1),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(4_294_967_295u32),
        json!(1.5),
        json!(""),
        json!(".."),
        json!("/etc/passwd"),
        json!("a/../../b"),
        json!("lib"),
        json!("lib/libz.so"),
        json!("link/below"),
        json!([i64::MAX, 4_294_967_295u32]),
        json!([i64::MIN, 0]),
        json!([0, 1_000_000_000]),
        json!(0o7777),
        json!(0o170_777),
        json!("0".repeat(64)),
        json!(Digest::of(b"other").to_hex()),
        json!(["prefix", "nowhere"]),
        json!(true),
        json!("dir"),
        json!("symlink"),
        json!("file"),
        json!({}),
    ])
    .clone()
}

/// Sets one field of one item (or the roots) to an odd value, or swaps
/// two items' paths.
fn mutate_manifest(manifest: &Value, rng: &mut Rng) -> Value {
    let mut out = manifest.clone();
    for _ in 0..1 + rng.below(3) {
        let tree = *rng.pick(&["prefix", "work"]);
        let Some(items) = out["trees"][tree].as_array_mut() else {
            continue;
        };
        if items.is_empty() {
            continue;
        }
        let i = rng.below(items.len());
        match rng.below(6) {
            0 => {
                let j = rng.below(items.len());
                let path = items[j]["path"].clone();
                items[i]["path"] = path;
            }
            1 => out["roots"][*rng.pick(&["prefix", "work", "x"])] = odd_value(rng),
            _ => {
                let field = *rng.pick(&[
                    "path", "type", "blob", "size", "mode", "mtime", "roots", "binary", "target",
                ]);
                items[i][field] = odd_value(rng);
            }
        }
    }
    out
}

/// A real entry: files, links of every kind, an empty directory, and paths
/// inside file contents.
fn entry(store: &Store, root: &Path) -> Digest {
    let (prefix, work) = (root.join("prefix"), root.join("work"));
    std::fs::create_dir_all(prefix.join("lib")).unwrap();
    std::fs::create_dir_all(prefix.join("share/empty")).unwrap();
    std::fs::create_dir_all(work.join("build")).unwrap();
    std::fs::write(prefix.join("lib/libz.so.1"), b"\x7fELF\0\0rpath\0").unwrap();
    symlink("libz.so.1", prefix.join("lib/libz.so")).unwrap();
    symlink(prefix.join("lib"), prefix.join("link")).unwrap();
    symlink("nowhere", prefix.join("lib/broken")).unwrap();
    let cmake = format!("PREFIX={}\n", prefix.display());
    std::fs::write(work.join("build/CMakeCache.txt"), cmake).unwrap();
    let mut binary = b"\x7fELF\0".to_vec();
    binary.extend_from_slice(prefix.as_os_str().as_encoded_bytes());
    binary.extend_from_slice(b"\0end");
    std::fs::write(work.join("build/a.out"), &binary).unwrap();
    let mut inputs = Inputs::new();
    inputs.insert("script", "no panic");
    store
        .put(&Capture {
            name: "no-panic",
            inputs: &inputs,
            trees: vec![
                TreeSource {
                    name: "prefix",
                    dir: &prefix,
                    select: Select::All,
                },
                TreeSource {
                    name: "work",
                    dir: &work,
                    select: Select::All,
                },
            ],
            roots: vec![("prefix", &prefix), ("work", &work)],
            extra: json!({"run_exports": {"zlib": {"weak": ["zlib"]}}}),
        })
        .unwrap()
        .entry
        .meta()
        .key
}

/// Fails unless `manifest` keeps what [`Manifest::check`] promises, checked
/// here independently of it: plain relative paths, each once per tree, none
/// below a link of its tree, permission bits only, representable times.
fn assert_safe(manifest: &Manifest) {
    for items in manifest.trees.values() {
        let links: HashSet<&Path> = items
            .iter()
            .filter(|i| matches!(i, Item::Symlink { .. }))
            .map(Item::path)
            .collect();
        let mut seen = HashSet::new();
        for item in items {
            let path = item.path();
            assert!(
                path.components().count() > 0
                    && path.components().all(|c| matches!(c, Component::Normal(_))),
                "accepted the path {path:?}"
            );
            assert!(seen.insert(path), "accepted {path:?} twice");
            assert!(
                !path.ancestors().skip(1).any(|a| links.contains(a)),
                "accepted {path:?} below a link"
            );
            match item {
                Item::Dir { mode, .. } => assert!(*mode <= 0o7777, "accepted mode {mode:o}"),
                Item::File { mode, mtime, .. } => {
                    assert!(*mode <= 0o7777, "accepted mode {mode:o}");
                    assert!(mtime.1 < 1_000_000_000, "accepted mtime {mtime:?}");
                }
                Item::Symlink { .. } => {}
            }
        }
    }
}

/// Every file, link and directory below `root`, with what it holds.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for found in std::fs::read_dir(&dir).unwrap() {
            let path = found.unwrap().path();
            let kind = std::fs::symlink_metadata(&path).unwrap().file_type();
            let held = if kind.is_symlink() {
                std::fs::read_link(&path)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else if kind.is_dir() {
                pending.push(path.clone());
                Vec::new()
            } else {
                std::fs::read(&path).unwrap()
            };
            out.insert(path, held);
        }
    }
    out
}

/// Everything a build or `cleave cache` does with an entry; whether it
/// restored.
fn exercise(store: &Store, key: &Digest, into: &Path) -> bool {
    let (prefix, work) = (into.join("prefix"), into.join("work"));
    let mut restored = false;
    if let Ok(Some(found)) = store.get(key) {
        let _ = found.manifest();
        restored = found
            .restore(
                &[
                    Target {
                        tree: "prefix",
                        dir: &prefix,
                        select: Select::All,
                    },
                    Target {
                        tree: "work",
                        dir: &work,
                        select: Select::All,
                    },
                ],
                &[("prefix", &prefix), ("work", &work)],
            )
            .is_ok();
    }
    let _ = store.verify(false);
    let _ = store.entries();
    let _ = store.size_upper_bound();
    restored
}

#[test]
fn mutated_entries_give_errors_not_panics() {
    let cache = tempfile::tempdir().unwrap();
    let store = Store::open(cache.path()).unwrap();
    let built = tempfile::tempdir().unwrap();
    // Deeper than the targets below, so that binary paths can be relocated.
    let key = entry(
        &store,
        &built.path().join("built-at-a-deeper-path-than-the-targets"),
    );
    let dir = entry_dir(cache.path(), &key);
    let honest_entry = std::fs::read(dir.join("entry.json")).unwrap();
    let honest_files = std::fs::read(dir.join("files.json")).unwrap();
    let honest_manifest: Value = serde_json::from_slice(&honest_files).unwrap();
    let meta = EntryMeta::from_json(&honest_entry, &key).unwrap();
    let honest_meta = serde_json::to_value(&meta).unwrap();
    let built_before = snapshot(built.path());
    // Restores go below one directory, which nothing else writes to: what
    // is in it at the end shows that no restore wrote outside its target.
    let targets = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x5eed_ca4e_0000_0001);
    let (mut restored, mut refused, mut checked) = (0, 0, 0);
    for i in 0..3000 {
        let which = rng.below(3);
        let (entry_json, files_json) = match which {
            0 => (mutate_bytes(&honest_entry, &mut rng), honest_files.clone()),
            1 => (honest_entry.clone(), mutate_bytes(&honest_files, &mut rng)),
            _ => {
                let mutated = mutate_manifest(&honest_manifest, &mut rng);
                (honest_entry.clone(), mutated.to_string().into_bytes())
            }
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            // The readers on their own. The seal and the manifest digest
            // let through no bytes but the store's own: a changed entry.json
            // may differ only outside the metadata (the seal's hex in
            // capitals), a changed files.json not at all.
            if let Ok(read) = EntryMeta::from_json(&entry_json, &key) {
                assert_eq!(serde_json::to_value(&read).unwrap(), honest_meta);
            }
            assert_eq!(
                Manifest::from_json(&files_json, &meta).is_ok(),
                files_json == honest_files,
                "files.json read against the digest entry.json records"
            );
            // With the digest recorded as if the store had written these
            // bytes, so that the parser and the checks behind it are
            // reached: what they accept must be safe to write.
            let recorded = EntryMeta {
                manifest: Digest::of(&files_json),
                ..meta.clone()
            };
            if let Ok(manifest) = Manifest::from_json(&files_json, &recorded) {
                assert_safe(&manifest);
                checked += 1;
            }
            // Through the store on disk, for a tenth of them.
            if i % 10 == 0 {
                std::fs::write(dir.join("entry.json"), &entry_json).unwrap();
                std::fs::write(dir.join("files.json"), &files_json).unwrap();
                if which == 2 {
                    reseal(cache.path(), &key);
                }
                if exercise(&store, &key, &targets.path().join(format!("target-{i}"))) {
                    assert!(which != 1 || files_json == honest_files, "restored");
                    restored += 1;
                } else {
                    refused += 1;
                }
                // Dropped as damaged, or as it was: put it back whole.
                std::fs::remove_dir_all(&dir).ok();
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join("entry.json"), &honest_entry).unwrap();
                std::fs::write(dir.join("files.json"), &honest_files).unwrap();
            }
        }));
        assert!(
            outcome.is_ok(),
            "panic or wrong acceptance on entry.json:\n{}\nfiles.json:\n{}",
            String::from_utf8_lossy(&entry_json),
            String::from_utf8_lossy(&files_json)
        );
    }
    // Both ways were taken: the mutations reach past the digests, and the
    // checks behind them saw manifests they accept.
    assert!(
        restored > 10 && refused > 10 && checked > 100,
        "{restored} restored, {refused} refused, {checked} manifests accepted"
    );
    assert_eq!(
        snapshot(built.path()),
        built_before,
        "a restore wrote into the tree the entry was captured from"
    );
    for written in std::fs::read_dir(targets.path()).unwrap() {
        let name = written.unwrap().file_name();
        assert!(
            name.to_string_lossy().starts_with("target-"),
            "{name:?} was written outside every target"
        );
    }
}
