//! Cache helpers and the portable entry format: what a helper is sent, and
//! what cleave does with hostile entries a helper hands back (refuses them
//! before anything is written).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cleave_cache::helper::HelperConfig;
use cleave_cache::remote::Remotes;
use cleave_cache::store::{Capture, Entry, Select, TreeSource};
use cleave_cache::{CacheError, Digest, ErrorKind, Inputs, Store, portable};

mod common;
use common::write_sealed;

fn put(store: &Store, dir: &Path) -> Entry {
    let mut inputs = Inputs::new();
    inputs.insert("script", "make install");
    store
        .put(&Capture {
            name: "lib-build",
            inputs: &inputs,
            trees: vec![TreeSource {
                name: "prefix",
                dir,
                select: Select::All,
            }],
            roots: vec![("prefix", dir)],
            extra: serde_json::Value::Null,
        })
        .unwrap()
        .entry
}

fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("lib")).unwrap();
    std::fs::write(dir.path().join("lib/libx.so"), b"\x7fELF library").unwrap();
    std::fs::write(dir.path().join("lib/notes.txt"), b"notes").unwrap();
    dir
}

fn helper_script(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("helper");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn a_helper_is_sent_the_key_inputs_platform_and_a_portable_entry() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(work.path().join("store")).unwrap();
    let src = tree();
    let entry = put(&store, src.path());
    // The helper keeps what it is sent and copies the entry while it exists.
    let log = work.path().join("sent");
    let kept = work.path().join("kept");
    let body = format!(
        "cat > {log}.$1\nif [ \"$1\" = store ]; then cp -r \"$(grep -o '\"entry\":\"[^\"]*\"' {log}.store | cut -d '\"' -f 4)\" {kept}; echo '{{\"relocated_to\":\"{kept}\"}}'; else echo '{{\"found\":false}}'; fi",
        log = log.display(),
        kept = kept.display()
    );
    let helper = helper_script(work.path(), &body);
    let mut remotes =
        Remotes::new(vec![], &store).with_helpers(vec![HelperConfig::new(helper)], "linux-64");
    remotes.push(&entry, &mut |w| panic!("{w}"));
    let sent: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{}.store", log.display())).unwrap())
            .unwrap();
    assert_eq!(sent["protocol"], 1);
    assert_eq!(sent["key"], entry.meta().key.to_hex());
    assert_eq!(sent["name"], "lib-build");
    assert_eq!(sent["inputs"]["script"], "make install");
    assert_eq!(sent["platform"], "linux-64");
    let file = &sent["files"]["prefix/lib/libx.so"];
    assert_eq!(file["digest"], Digest::of(b"\x7fELF library").to_hex());
    assert_eq!(file["size"], 12);
    // The entry it was handed is portable: another store imports it.
    let other = Store::open(work.path().join("other")).unwrap();
    let imported = portable::import(&other, &kept, Some(&entry.meta().key)).unwrap();
    assert_eq!(imported.meta().key, entry.meta().key);
    assert!(
        !Path::new(sent["entry"].as_str().unwrap()).exists(),
        "the handed-over copy is gone after the call"
    );
    // Lookup gets the same fields, without the entry.
    let mut inputs = Inputs::new();
    inputs.insert("script", "make install");
    assert!(
        remotes
            .fetch(
                &other,
                &Digest::of(b"x"),
                Some(("lib-build", &inputs)),
                &mut |w| panic!("{w}")
            )
            .is_none()
    );
    let asked: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{}.lookup", log.display())).unwrap())
            .unwrap();
    assert_eq!(asked["name"], "lib-build");
    assert!(asked.get("entry").is_none() && asked.get("files").is_none());
}

#[test]
fn the_store_s_records_are_not_written_through_links_planted_in_it() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(work.path().join("store")).unwrap();
    let entry = put(&store, tree().path());
    // Another user of the store makes the directories of its records
    // links to theirs: where helpers put entries, what remotes hold, the
    // counters.
    let outside = work.path().join("outside");
    for record in ["relocated", "remotes", "stats"] {
        std::fs::create_dir_all(outside.join(record)).unwrap();
        std::os::unix::fs::symlink(outside.join(record), store.root().join(record)).unwrap();
    }
    let helper = helper_script(
        work.path(),
        "cat > /dev/null; if [ \"$1\" = store ]; then echo '{\"relocated_to\": \"there\"}'; else echo '{\"found\": false}'; fi",
    );
    let shared = format!("file://{}", work.path().join("shared").display());
    let url = cleave_cache::remote::RemoteUrl::parse(&shared).unwrap();
    let mut remotes = Remotes::new(vec![cleave_cache::remote::RemoteConfig::new(url)], &store)
        .with_helpers(vec![HelperConfig::new(helper)], "linux-64");
    remotes.push(&entry, &mut |w| panic!("{w}"));
    drop(remotes);
    for record in ["relocated", "remotes", "stats"] {
        let written: Vec<_> = std::fs::read_dir(outside.join(record)).unwrap().collect();
        assert!(written.is_empty(), "{record}: {written:?}");
    }
    assert_eq!(
        cleave_cache::remote::relocation(store.root(), &entry.meta().key),
        None
    );
}

/// A portable copy of an entry whose manifest is edited by `edit` and
/// sealed again, as a hostile helper could hand back.
fn hostile(edit: impl Fn(&mut serde_json::Value)) -> (tempfile::TempDir, Digest) {
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(work.path().join("store")).unwrap();
    let src = tree();
    let entry = put(&store, src.path());
    let dir = work.path().join("entry");
    portable::export(&entry, &dir).unwrap();
    let mut files: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("files.json")).unwrap()).unwrap();
    edit(&mut files);
    let text = files.to_string();
    std::fs::write(dir.join("files.json"), &text).unwrap();
    let sealed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("entry.json")).unwrap()).unwrap();
    let mut meta = sealed["meta"].clone();
    meta["manifest"] = Digest::of(text.as_bytes()).to_hex().into();
    write_sealed(&dir.join("entry.json"), &meta);
    (work, entry.meta().key)
}

#[test]
fn hostile_entries_from_a_helper_are_refused_before_anything_is_written() {
    let outside = tempfile::tempdir().unwrap();
    let outside_path = outside.path().display().to_string();
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let edits: Vec<(&str, Edit)> = vec![
        (
            "absolute path",
            Box::new(|f| f["trees"]["prefix"][0]["path"] = "/etc/evil".into()),
        ),
        (
            "dot-dot",
            Box::new(|f| f["trees"]["prefix"][0]["path"] = "../../evil".into()),
        ),
        (
            "below a symlink",
            Box::new(move |f| {
                let items = f["trees"]["prefix"].as_array_mut().unwrap();
                items.insert(
                    0,
                    serde_json::json!({"type": "symlink", "path": "out", "target": outside_path}),
                );
                let mut file = items.iter().find(|i| i["type"] == "file").unwrap().clone();
                file["path"] = "out/planted".into();
                items.push(file);
            }),
        ),
        (
            "wrong digest",
            Box::new(|f| {
                for item in f["trees"]["prefix"].as_array_mut().unwrap() {
                    if item["type"] == "file" {
                        item["blob"] = Digest::of(b"other").to_hex().into();
                    }
                }
            }),
        ),
    ];
    for (what, edit) in edits {
        let (work, key) = hostile(edit);
        let entry_dir = work.path().join("entry");
        let err = portable::import(
            &Store::open(work.path().join("fresh")).unwrap(),
            &entry_dir,
            Some(&key),
        )
        .err()
        .unwrap_or_else(|| panic!("{what}: imported"));
        assert_eq!(err.kind(), ErrorKind::Damaged, "{what}: {err}");
        // Through a helper: a warning and a miss.
        let helper = helper_script(
            work.path(),
            &format!(
                "echo '{{\"found\":true,\"entry\":\"{}\",\"mode\":\"in-place\"}}'",
                entry_dir.display()
            ),
        );
        let store = Store::open(work.path().join("b")).unwrap();
        let mut remotes =
            Remotes::new(vec![], &store).with_helpers(vec![HelperConfig::new(helper)], "linux-64");
        let mut warnings = Vec::new();
        let found = remotes.fetch(
            &store,
            &key,
            Some(("lib-build", &Inputs::new())),
            &mut |w| warnings.push(w),
        );
        assert!(found.is_none(), "{what}");
        assert_eq!(warnings.len(), 1, "{what}: {warnings:?}");
        assert!(store.get(&key).unwrap().is_none(), "{what}");
        assert_eq!(
            std::fs::read_dir(outside.path()).unwrap().count(),
            0,
            "{what}: something was written outside"
        );
    }
}

#[test]
fn a_portable_entry_with_a_missing_blob_is_damage() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(work.path().join("store")).unwrap();
    let src = tree();
    let entry = put(&store, src.path());
    let dir = work.path().join("entry");
    portable::export(&entry, &dir).unwrap();
    let blob = std::fs::read_dir(dir.join("blobs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(&blob).unwrap();
    // A link in its place is not followed either.
    std::os::unix::fs::symlink("/etc/hostname", &blob).unwrap();
    let fresh = Store::open(work.path().join("fresh")).unwrap();
    let err = portable::import(&fresh, &dir, None).unwrap_err();
    assert!(matches!(err, CacheError::Damaged { .. }), "{err}");
}
