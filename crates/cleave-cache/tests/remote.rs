//! Remote stores on real services: an entry carried from one local store to
//! another through S3 (moto), Redis, WebDAV (wsgidav) and a shared
//! directory; what it costs in requests and uploads; and what a damaged,
//! down or silent remote does to a lookup.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cleave_cache::remote::{Mode, RemoteConfig, RemoteError, RemoteUrl, Remotes};
use cleave_cache::{Digest, Store};

mod common;
mod services;

use common::{contents, no_warnings, put, restore, tree};

fn config(url: &str) -> RemoteConfig {
    let mut config = RemoteConfig::new(RemoteUrl::parse_with(url, &services::s3_env).unwrap());
    config.timeout = Duration::from_secs(5);
    config.retries = 1;
    config
}

fn remotes(store: &Store, urls: &[&str]) -> Remotes {
    Remotes::new(urls.iter().map(|u| config(u)).collect(), store)
}

/// Machine A stores and pushes; machine B, with an empty store, finds the
/// entry remotely in a handful of requests and restores the same files.
fn carries_an_entry(url: &str, files: usize) {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (store_a, store_b) = (
        Store::open(a.path()).unwrap(),
        Store::open(b.path()).unwrap(),
    );
    let src = tree(files, "one");
    let entry = put(&store_a, src.path(), "lib");
    let key = entry.meta().key;

    let mut remote_a = remotes(&store_a, &[url]);
    remote_a.push(&entry, &mut no_warnings());
    assert_eq!(remote_a.stats()[0].uploads, 1, "{url}");
    let sent = remote_a.stats()[0].requests;
    assert!(sent <= 6, "{url}: {sent} requests to upload");
    // Pushed again: one request, nothing uploaded.
    let mut again = remotes(&store_a, &[url]);
    again.push(&entry, &mut no_warnings());
    assert_eq!(
        (again.stats()[0].requests, again.stats()[0].uploads),
        (1, 0),
        "{url}"
    );

    let mut remote_b = remotes(&store_b, &[url]);
    assert!(store_b.get(&key).unwrap().is_none());
    let (found, _) = remote_b
        .fetch(&store_b, &key, None, &mut no_warnings())
        .expect("a remote hit");
    let stats = &remote_b.stats()[0];
    assert_eq!(stats.hits, 1);
    assert!(
        stats.requests <= 10,
        "{url}: {} requests for {files} files",
        stats.requests
    );
    let out = tempfile::tempdir().unwrap();
    restore(&found, out.path());
    assert_eq!(contents(out.path()), contents(src.path()), "{url}");
    drop(found);
    // Now it is a local entry of B.
    assert!(store_b.get(&key).unwrap().is_some());
}

#[test]
fn an_entry_travels_through_s3() {
    let s3 = services::s3();
    carries_an_entry(&services::s3_url(&s3, "team/cache"), 10_000);
}

#[test]
fn an_entry_travels_through_redis() {
    let redis = services::redis();
    carries_an_entry(&format!("redis://127.0.0.1:{}/0", redis.port), 2_000);
}

#[test]
fn an_entry_travels_through_webdav() {
    let dav = services::webdav();
    carries_an_entry(
        &format!("webdav+http://127.0.0.1:{}/cache", dav.port),
        2_000,
    );
}

#[test]
fn an_entry_travels_through_a_shared_directory() {
    let shared = tempfile::tempdir().unwrap();
    carries_an_entry(&format!("file://{}", shared.path().display()), 2_000);
}

#[test]
fn blobs_the_remote_holds_are_not_uploaded_again() {
    let s3 = services::s3();
    let url = services::s3_url(&s3, "dedup");
    let a = tempfile::tempdir().unwrap();
    let store = Store::open(a.path()).unwrap();
    let src = tree(500, "same");
    // Contents that do not compress, so that blobs, not the index, are
    // what an upload costs.
    for i in 0..100 {
        let noise: Vec<u8> = (0..256u32)
            .flat_map(|j| {
                Digest::of(format!("{i}/{j}").as_bytes())
                    .to_hex()
                    .into_bytes()
            })
            .collect();
        std::fs::write(src.path().join(format!("noise{i}")), noise).unwrap();
    }
    let first = put(&store, src.path(), "v1");
    let mut remote = remotes(&store, &[&url]);
    remote.push(&first, &mut no_warnings());
    let first_bytes = remote.stats()[0].bytes_up;
    // The next version changes one file.
    std::fs::write(src.path().join("d0/f0"), "edited\n").unwrap();
    let second = put(&store, src.path(), "v2");
    let mut remote = remotes(&store, &[&url]);
    remote.push(&second, &mut no_warnings());
    let second_bytes = remote.stats()[0].bytes_up;
    assert!(
        second_bytes * 5 < first_bytes,
        "second upload {second_bytes} bytes, first {first_bytes}"
    );
    // And it restores on another machine, from packs of both uploads.
    let b = tempfile::tempdir().unwrap();
    let store_b = Store::open(b.path()).unwrap();
    let (found, _) = remotes(&store_b, &[&url])
        .fetch(&store_b, &second.meta().key, None, &mut no_warnings())
        .expect("a hit");
    let out = tempfile::tempdir().unwrap();
    restore(&found, out.path());
    assert_eq!(contents(out.path()), contents(src.path()));
}

/// Pushes an entry to a shared directory and returns the directory, the
/// entry's key and B's empty store.
fn pushed_to_dir() -> (
    tempfile::TempDir,
    Digest,
    tempfile::TempDir,
    tempfile::TempDir,
) {
    let shared = tempfile::tempdir().unwrap();
    let a = tempfile::tempdir().unwrap();
    let store = Store::open(a.path()).unwrap();
    let src = tree(200, "x");
    let entry = put(&store, src.path(), "lib");
    remotes(&store, &[&format!("file://{}", shared.path().display())])
        .push(&entry, &mut no_warnings());
    (shared, entry.meta().key, a, tempfile::tempdir().unwrap())
}

fn objects(shared: &Path, kind: &str) -> Vec<PathBuf> {
    std::fs::read_dir(shared.join("cleave-v1").join(kind))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect()
}

/// Fetches `key` from the shared directory into an empty store: the
/// warnings, and whether it was found.
fn fetch_from_dir(shared: &Path, key: &Digest, b: &Path) -> (Vec<String>, bool) {
    let store = Store::open(b).unwrap();
    let mut warnings = Vec::new();
    let found = remotes(&store, &[&format!("file://{}", shared.display())])
        .fetch(&store, key, None, &mut |w| warnings.push(w))
        .is_some();
    (warnings, found)
}

#[test]
fn damaged_objects_are_refused_with_a_warning() {
    type Damage = fn(&Path);
    let damages: [(&str, Damage); 5] = [
        ("garbage index", |s| {
            std::fs::write(&objects(s, "entries")[0], b"not json").unwrap()
        }),
        ("index with another manifest", |s| {
            let path = objects(s, "entries")[0].clone();
            let mut index: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let files = index["files"].as_str().unwrap().replace("d1", "..");
            index["files"] = files.into();
            std::fs::write(&path, index.to_string()).unwrap();
        }),
        ("truncated pack", |s| {
            let pack = objects(s, "packs")[0].clone();
            let bytes = std::fs::read(&pack).unwrap();
            std::fs::write(&pack, &bytes[..bytes.len() / 2]).unwrap();
        }),
        ("flipped byte in a pack", |s| {
            let pack = objects(s, "packs")[0].clone();
            let mut bytes = std::fs::read(&pack).unwrap();
            let at = bytes.len() - 3;
            bytes[at] ^= 0x55;
            std::fs::write(&pack, &bytes).unwrap();
        }),
        ("pack replaced by another of the same size", |s| {
            let pack = objects(s, "packs")[0].clone();
            let len = std::fs::metadata(&pack).unwrap().len() as usize;
            std::fs::write(&pack, vec![0x28u8; len]).unwrap();
        }),
    ];
    for (what, damage) in damages {
        let (shared, key, _a, b) = pushed_to_dir();
        damage(shared.path());
        let (warnings, found) = fetch_from_dir(shared.path(), &key, b.path());
        assert!(!found, "{what}: a damaged entry was taken");
        assert_eq!(warnings.len(), 1, "{what}: {warnings:?}");
        assert!(warnings[0].contains("damaged"), "{what}: {}", warnings[0]);
        let store = Store::open(b.path()).unwrap();
        assert!(store.get(&key).unwrap().is_none(), "{what}");
    }
}

#[test]
fn a_remote_that_is_down_or_silent_costs_a_bounded_wait() {
    let down = format!(
        "s3://cache/x?endpoint=http://127.0.0.1:{}",
        services::free_port()
    );
    let silent = format!("redis://127.0.0.1:{}/0", services::silent());
    for url in [down, silent] {
        let a = tempfile::tempdir().unwrap();
        let store = Store::open(a.path()).unwrap();
        let mut config = config(&url);
        config.timeout = Duration::from_secs(1);
        config.retries = 1;
        let mut remotes = Remotes::new(vec![config], &store);
        let mut warnings = Vec::new();
        let started = Instant::now();
        let key = Digest::of(b"anything");
        assert!(
            remotes
                .fetch(&store, &key, None, &mut |w| warnings.push(w))
                .is_none()
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{url}: waited {:?}",
            started.elapsed()
        );
        assert_eq!(warnings.len(), 1, "{url}: {warnings:?}");
        assert!(warnings[0].contains("not used again"), "{}", warnings[0]);
        // Not asked again in this process.
        let requests = remotes.stats()[0].requests;
        assert!(
            remotes
                .fetch(&store, &key, None, &mut |w| warnings.push(w))
                .is_none()
        );
        assert_eq!(remotes.stats()[0].requests, requests, "{url}");
        assert_eq!(warnings.len(), 1);
    }
}

#[test]
fn a_hit_lower_down_is_written_back_to_the_remotes_before_it() {
    let (near, far) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (near_url, far_url) = (
        format!("file://{}", near.path().display()),
        format!("file://{}", far.path().display()),
    );
    let a = tempfile::tempdir().unwrap();
    let store = Store::open(a.path()).unwrap();
    let src = tree(100, "wb");
    let entry = put(&store, src.path(), "lib");
    remotes(&store, &[&far_url]).push(&entry, &mut no_warnings());
    let b = tempfile::tempdir().unwrap();
    let store_b = Store::open(b.path()).unwrap();
    let mut both = remotes(&store_b, &[&near_url, &far_url]);
    assert!(
        both.fetch(&store_b, &entry.meta().key, None, &mut no_warnings())
            .is_some()
    );
    let stats = both.stats();
    assert_eq!(
        (stats[0].misses, stats[0].uploads, stats[1].hits),
        (1, 1, 1)
    );
    // A read-only remote is asked but never written.
    let c = tempfile::tempdir().unwrap();
    let store_c = Store::open(c.path()).unwrap();
    let third = tempfile::tempdir().unwrap();
    let mut read_only = config(&format!("file://{}", third.path().display()));
    read_only.mode = Mode::ReadOnly;
    let mut remotes_c = Remotes::new(vec![read_only, config(&near_url)], &store_c);
    assert!(
        remotes_c
            .fetch(&store_c, &entry.meta().key, None, &mut no_warnings())
            .is_some()
    );
    assert_eq!(remotes_c.stats()[0].uploads, 0);
    assert!(!third.path().join("cleave-v1").exists());
}

#[test]
fn two_machines_storing_one_key_at_once_leave_one_good_entry() {
    let s3 = services::s3();
    let url = services::s3_url(&s3, "race");
    let src = tree(300, "race");
    let stores: Vec<(tempfile::TempDir, Store)> = (0..2)
        .map(|_| {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            (dir, store)
        })
        .collect();
    let key = std::thread::scope(|scope| {
        let handles: Vec<_> = stores
            .iter()
            .map(|(_, store)| {
                let (url, src) = (&url, src.path());
                scope.spawn(move || {
                    let entry = put(store, src, "lib");
                    remotes(store, &[url]).push(&entry, &mut no_warnings());
                    entry.meta().key
                })
            })
            .collect();
        let keys: Vec<Digest> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(keys[0], keys[1]);
        keys[0]
    });
    let c = tempfile::tempdir().unwrap();
    let store = Store::open(c.path()).unwrap();
    let (found, _) = remotes(&store, &[&url])
        .fetch(&store, &key, None, &mut no_warnings())
        .expect("a hit");
    let out = tempfile::tempdir().unwrap();
    restore(&found, out.path());
    assert_eq!(contents(out.path()), contents(src.path()));
}

#[test]
fn credentials_never_appear_in_warnings_or_stats() {
    let redis = services::redis();
    let url = format!(
        "redis://someone:secret-password-42@127.0.0.1:{}/0",
        redis.port
    );
    let a = tempfile::tempdir().unwrap();
    let store = Store::open(a.path()).unwrap();
    let mut remotes = remotes(&store, &[&url]);
    let mut warnings = Vec::new();
    assert!(
        remotes
            .fetch(&store, &Digest::of(b"k"), None, &mut |w| warnings.push(w))
            .is_none()
    );
    assert!(
        !warnings.is_empty(),
        "a server without that user must refuse it"
    );
    let printed = format!("{warnings:?} {:?} {remotes:?}", remotes.stats());
    assert!(!printed.contains("secret-password-42"), "{printed}");
}

/// An entry of one incompressible 4 MiB file, pushed to a shared
/// directory: the directory, its URL and the entry's key.
fn pushed_big() -> (tempfile::TempDir, String, Digest) {
    let shared = tempfile::tempdir().unwrap();
    let url = format!("file://{}", shared.path().display());
    let a = tempfile::tempdir().unwrap();
    let store = Store::open(a.path()).unwrap();
    let src = tempfile::tempdir().unwrap();
    let mut noise = vec![0; 4 << 20];
    blake3::Hasher::new().finalize_xof().fill(&mut noise);
    std::fs::write(src.path().join("big"), &noise).unwrap();
    let entry = put(&store, src.path(), "big");
    remotes(&store, &[&url]).push(&entry, &mut no_warnings());
    (shared, url, entry.meta().key)
}

/// What fetching `key` from `url` into `store` says: the error of a
/// fetch by hand (with its causes), and the warning of a build's lookup.
fn failed_fetch(store: &Store, url: &str, key: &Digest) -> (RemoteError, String) {
    let error = remotes(store, &[url]).fetch_first(store, key).unwrap_err();
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(e) = cause {
        text = format!("{text}: {e}");
        cause = e.source();
    }
    let mut warnings = Vec::new();
    let found = remotes(store, &[url]).fetch(store, key, None, &mut |w| warnings.push(w));
    assert!(found.is_none());
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    (error, format!("{text}\n{}", warnings.remove(0)))
}

#[test]
fn a_local_write_error_during_a_fetch_is_this_machine_s_not_damage() {
    let (_shared, url, key) = pushed_big();
    // The store's `tmp` is not a directory: nothing can be written.
    let b = tempfile::tempdir().unwrap();
    let store = Store::open(b.path()).unwrap();
    std::fs::remove_dir(b.path().join("tmp")).unwrap();
    std::fs::write(b.path().join("tmp"), b"in the way").unwrap();
    let (error, said) = failed_fetch(&store, &url, &key);
    assert!(matches!(error, RemoteError::Store(_)), "{error}");
    assert!(!said.contains("damaged"), "{said}");
    assert_eq!(said.matches("Not a directory").count(), 2, "{said}");
}

#[test]
fn a_full_local_disk_during_a_fetch_is_reported_as_such() {
    let (_shared, url, key) = pushed_big();
    let b = tempfile::tempdir().unwrap();
    let Some(_disk) = common::TinyDisk::mount(b.path(), "1m") else {
        return;
    };
    let store = Store::open(b.path().join("store")).unwrap();
    let (error, said) = failed_fetch(&store, &url, &key);
    assert!(matches!(error, RemoteError::Store(_)), "{error}");
    assert!(!said.contains("damaged"), "{said}");
    assert_eq!(said.matches("No space left on device").count(), 2, "{said}");
}

#[test]
fn an_entry_in_many_packs_uploaded_at_once_travels_whole() {
    let s3 = services::s3();
    let shared = tempfile::tempdir().unwrap();
    for url in [
        services::s3_url(&s3, "packs"),
        format!("file://{}", shared.path().display()),
    ] {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (store_a, store_b) = (
            Store::open(a.path()).unwrap(),
            Store::open(b.path()).unwrap(),
        );
        let src = tree(3_000, "packs");
        let entry = put(&store_a, src.path(), "lib");
        // Packs of 20 kB: several uploads in flight at once.
        let mut small = config(&url);
        small.pack_size = 20_000;
        let mut up = Remotes::new(vec![small], &store_a);
        up.push(&entry, &mut no_warnings());
        let sent = up.stats()[0].requests;
        assert!(sent > 5, "{url}: {sent} requests");
        let (found, _) = remotes(&store_b, &[&url])
            .fetch(&store_b, &entry.meta().key, None, &mut no_warnings())
            .expect("a hit");
        let out = tempfile::tempdir().unwrap();
        restore(&found, out.path());
        assert_eq!(contents(out.path()), contents(src.path()), "{url}");
    }
}
