//! Damaged entries: a flipped byte or a missing blob, a manifest edited to
//! write outside its target or into other files, swapped blobs, entries
//! that cannot be read at all, and times no system can represent. Each is
//! found before anything wrong is written, and the entry is dropped so
//! that the build stores it again.

use super::*;

#[test]
fn a_flipped_byte_or_a_missing_blob_is_found_on_restore_and_by_verify() {
    let cache = tempfile::tempdir().unwrap();
    let store = Store::open(cache.path()).unwrap();
    let b = build();
    let key = put(&store, &b, "s");
    assert!(store.verify(false).unwrap().is_empty());

    let blobs = blob_files(&store);
    let victim = blobs
        .iter()
        .find(|p| std::fs::metadata(p).unwrap().len() > 4)
        .unwrap();
    let mut data = std::fs::read(victim).unwrap();
    data[1] ^= 0x20;
    std::fs::write(victim, &data).unwrap();
    let problems = store.verify(false).unwrap();
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].reason.contains("does not match"),
        "{:?}",
        problems[0]
    );

    let target = tempfile::tempdir().unwrap();
    let err = restore(&store, &key, target.path()).unwrap_err();
    assert!(matches!(err, CacheError::Damaged { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Damaged);
    // The restore dropped the bad blob, so that a rebuild stores it
    // afresh, and the entry.
    assert!(!victim.exists());
    assert!(!store.contains(&key));
    assert!(store.verify(false).unwrap().is_empty());

    // A missing blob: the same.
    let key = put(&store, &b, "s");
    std::fs::remove_file(&blobs[0]).unwrap();
    let problems = store.verify(false).unwrap();
    assert!(problems[0].reason.contains("missing"), "{:?}", problems[0]);
    let err = restore(&store, &key, tempfile::tempdir().unwrap().path()).unwrap_err();
    assert!(matches!(err, CacheError::Damaged { .. }), "{err}");
    assert!(!store.contains(&key));
}

#[test]
fn an_unsafe_manifest_is_refused_before_anything_is_written() {
    let cache = tempfile::tempdir().unwrap();
    let store = Store::open(cache.path()).unwrap();
    let b = build();
    for evil in [
        "../../escaped",
        "/tmp/absolute-escape",
        "lib/libz.so/through-link",
    ] {
        let key = put(&store, &b, "s");
        let files = entry_dir(cache.path(), &key).join("files.json");
        let honest = std::fs::read_to_string(&files).unwrap();
        std::fs::write(&files, honest.replace("\"bin/tool\"", &format!("{evil:?}"))).unwrap();
        // As if the store had written it: the paths are what is refused.
        reseal(cache.path(), &key);
        let target = tempfile::tempdir().unwrap();
        let err = restore(&store, &key, target.path()).unwrap_err();
        assert!(matches!(err, CacheError::Unsafe { .. }), "{evil}: {err}");
        assert_eq!(
            std::fs::read_dir(target.path()).unwrap().count(),
            0,
            "{evil}"
        );
        assert!(!store.contains(&key), "{evil}: a damaged entry is dropped");
    }
}

#[test]
fn an_edited_manifest_or_metadata_is_damage_on_restore_and_for_verify() {
    let cache = tempfile::tempdir().unwrap();
    let store = Store::open(cache.path()).unwrap();
    let b = build();
    let key = put(&store, &b, "s");
    let dir = entry_dir(cache.path(), &key);
    let (files, entry) = (dir.join("files.json"), dir.join("entry.json"));
    let honest_files = std::fs::read_to_string(&files).unwrap();
    let honest_entry = std::fs::read_to_string(&entry).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&honest_files).unwrap();
    let blob_of = |path: &str| {
        manifest["trees"]["prefix"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["path"] == path)
            .unwrap()["blob"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (tool, lib) = (blob_of("bin/tool"), blob_of("lib/libz.so.1"));
    // Edits that leave valid JSON, each of which would restore other files
    // than the ones stored.
    let edits: Vec<(&str, String, String)> = vec![
        (
            "a path renamed",
            honest_files.replace("\"bin/tool\"", "\"bin/renamed\""),
            honest_entry.clone(),
        ),
        (
            "two blobs swapped",
            honest_files
                .replace(&tool, "SWAP")
                .replace(&lib, &tool)
                .replace("SWAP", &lib),
            honest_entry.clone(),
        ),
        (
            "a mode",
            honest_files.replace("\"mode\":493", "\"mode\":511"),
            honest_entry.clone(),
        ),
        (
            "run exports in entry.json",
            honest_files.clone(),
            honest_entry.replace("\"run_exports\":{}", "\"run_exports\":{\"x\":1}"),
        ),
    ];
    for (what, edited_files, edited_entry) in edits {
        assert!(
            edited_files != honest_files || edited_entry != honest_entry,
            "{what}: the edit changed nothing"
        );
        put(&store, &b, "s");
        std::fs::write(&files, &edited_files).unwrap();
        std::fs::write(&entry, &edited_entry).unwrap();
        let problems = store.verify(false).unwrap();
        assert_eq!(problems.len(), 1, "{what}: {problems:?}");
        // Damaged metadata is a miss; a damaged manifest fails the
        // restore. Either way nothing is written and the entry is dropped.
        let target = tempfile::tempdir().unwrap();
        if let Some(found) = store.get(&key).unwrap() {
            let err = restore(&store, &key, target.path()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Damaged, "{what}: {err}");
            assert_eq!(found.meta().key, key);
        }
        assert!(!target.path().join("prefix/bin").exists(), "{what}");
        assert!(!store.contains(&key), "{what}");
    }
    // An entry copied under another key is not that key's entry.
    put(&store, &b, "s");
    let other = inputs("other").key();
    let copy = entry_dir(cache.path(), &other);
    std::fs::create_dir_all(&copy).unwrap();
    for file in ["entry.json", "files.json", "used"] {
        std::fs::copy(dir.join(file), copy.join(file)).unwrap();
    }
    let problems = store.verify(false).unwrap();
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].reason.contains("belongs to the entry"),
        "{problems:?}"
    );
    assert!(store.get(&other).unwrap().is_none());
}

#[test]
fn swapped_blobs_of_the_same_size_are_all_dropped_and_stored_afresh() {
    let cache = tempfile::tempdir().unwrap();
    let store = Store::open(cache.path()).unwrap();
    let files: &[(&str, &[u8])] = &[("a", b"AAAA\n"), ("b", b"BBBB\n"), ("c", b"CCCC\n")];
    let (key, _src) = put_files(&store, "s", files);
    let blob = |data: &[u8]| {
        let hex = Digest::of(data).to_hex();
        cache.path().join("blobs").join(&hex[..2]).join(hex)
    };
    let swap = || {
        // a's blob holds b's bytes and b's blob a's: same sizes, wrong
        // digests.
        std::fs::write(blob(b"AAAA\n"), b"BBBB\n").unwrap();
        std::fs::write(blob(b"BBBB\n"), b"AAAA\n").unwrap();
    };
    // A put of the same files does not trust a blob because it is there
    // with the right size: it writes every blob it stores.
    swap();
    let (again, _src) = put_files(&store, "s", files);
    assert_eq!(again, key);
    let target = tempfile::tempdir().unwrap();
    restore_work(&store, &key, target.path()).unwrap();
    assert_eq!(std::fs::read(target.path().join("a")).unwrap(), b"AAAA\n");
    assert_eq!(std::fs::read(target.path().join("b")).unwrap(), b"BBBB\n");
    assert!(store.verify(false).unwrap().is_empty());

    // A restore that meets one bad blob drops every bad blob of the entry
    // (other entries may share them), keeps the good ones, and drops the
    // entry.
    swap();
    let err = restore_work(&store, &key, tempfile::tempdir().unwrap().path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Damaged, "{err}");
    assert!(!blob(b"AAAA\n").exists());
    assert!(!blob(b"BBBB\n").exists());
    assert!(blob(b"CCCC\n").exists());
    assert!(store.get(&key).unwrap().is_none());
}

#[test]
fn an_unreadable_entry_is_a_miss_that_is_stored_again_and_gc_removes_it() {
    let cache = tempfile::tempdir().unwrap();
    let store = Store::open(cache.path()).unwrap();
    let b = build();
    let key = put(&store, &b, "s");
    let dir = entry_dir(cache.path(), &key);
    type Breakage = (&'static str, fn(&Path));
    let breakages: [Breakage; 4] = [
        ("garbage", |dir| {
            std::fs::write(dir.join("entry.json"), "garbage").unwrap()
        }),
        ("no entry.json", |dir| {
            std::fs::remove_file(dir.join("entry.json")).unwrap()
        }),
        ("an empty entry.json", |dir| {
            std::fs::write(dir.join("entry.json"), "").unwrap()
        }),
        ("a file for a directory", |dir| {
            std::fs::remove_dir_all(dir).unwrap();
            std::fs::write(dir, "not an entry").unwrap();
        }),
    ];
    for (what, break_it) in breakages {
        break_it(&dir);
        assert!(!store.contains(&key), "{what}");
        assert!(store.get(&key).unwrap().is_none(), "{what}: a miss");
        // Stored again where the unreadable entry was, and whole.
        assert_eq!(put(&store, &b, "s"), key, "{what}");
        restore(&store, &key, tempfile::tempdir().unwrap().path()).unwrap();
    }
    // A put that meets one in the way replaces it as well.
    std::fs::write(dir.join("entry.json"), "garbage").unwrap();
    assert_eq!(put(&store, &b, "s"), key);
    assert!(store.get(&key).unwrap().is_some());

    // gc removes what cannot be read, whatever its policy, and keeps the
    // blobs of what can.
    let other = entry_dir(cache.path(), &inputs("other").key());
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("entry.json"), "{").unwrap();
    std::fs::create_dir_all(cache.path().join("entries/not-a-key")).unwrap();
    let report = store.gc(GcPolicy::default()).unwrap();
    assert_eq!(report.unreadable, 2);
    assert_eq!(report.kept, 1);
    assert_eq!(
        std::fs::read_dir(cache.path().join("entries"))
            .unwrap()
            .count(),
        1
    );
    restore(&store, &key, tempfile::tempdir().unwrap().path()).unwrap();
    // So does `verify` with repair.
    std::fs::write(dir.join("entry.json"), "garbage").unwrap();
    let problems = store.verify(true).unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(!dir.exists());
}

#[test]
fn extreme_modification_times_in_a_manifest_never_panic() {
    let cache = tempfile::tempdir().unwrap();
    let store = Store::open(cache.path()).unwrap();
    for (seconds, nanos, valid) in [
        (i64::MAX, 0, true),
        (i64::MIN, 0, true),
        (253_402_300_800, 5, true),
        (-1, 999_999_999, true),
        (0, u32::MAX, false),
        (1, 1_000_000_000, false),
    ] {
        let (key, _src) = put_files(&store, "times", &[("a", b"a\n")]);
        let files = entry_dir(cache.path(), &key).join("files.json");
        let mut manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&files).unwrap()).unwrap();
        manifest["trees"]["work"][0]["mtime"] = serde_json::json!([seconds, nanos]);
        std::fs::write(&files, manifest.to_string()).unwrap();
        reseal(cache.path(), &key);
        let what = format!("({seconds}, {nanos})");
        let target = tempfile::tempdir().unwrap();
        match restore_work(&store, &key, target.path()) {
            // The kernel takes or refuses a time the manifest allows.
            Ok(()) => assert!(valid, "{what}"),
            Err(e) if valid => assert_eq!(e.kind(), ErrorKind::Target, "{what}: {e}"),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Damaged, "{what}: {e}");
                assert!(e.to_string().contains("out of range"), "{what}: {e}");
            }
        }
        store.remove(&key).unwrap();
    }
}
