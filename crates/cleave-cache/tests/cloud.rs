//! Azure Blob Storage and Google Cloud Storage as remote stores, against
//! their emulators (Azurite, fake-gcs-server): an entry carried from one
//! local store to another in a handful of requests, the endpoint in the
//! URL and the credentials from the environment; anonymous reads where the
//! service allows them and no anonymous writes where it does not; damaged
//! objects refused; a service that is down costs one bounded wait.

use std::time::{Duration, Instant};

use cleave_cache::remote::{Mode, RemoteConfig, RemoteUrl, Remotes};
use cleave_cache::{Digest, Store};

mod common;
mod services;

use common::{contents, no_warnings, put, restore, tree};

/// A remote as a build with the Azure variables of the tests (and no
/// Google ones) in its environment configures it.
fn config(url: &str) -> RemoteConfig {
    let mut config = RemoteConfig::new(RemoteUrl::parse_with(url, &services::azure_env).unwrap());
    config.timeout = Duration::from_secs(5);
    config.retries = 1;
    config
}

fn remotes(store: &Store, urls: &[&str]) -> Remotes {
    Remotes::new(urls.iter().map(|u| config(u)).collect(), store)
}

/// Machine A stores and pushes to `url`; machine B, with an empty store,
/// finds the entry through `read_url` in a handful of requests and
/// restores the same files.
fn carries_an_entry(url: &str, read_url: &str, files: usize) {
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
    let mut again = remotes(&store_a, &[url]);
    again.push(&entry, &mut no_warnings());
    assert_eq!(
        (again.stats()[0].requests, again.stats()[0].uploads),
        (1, 0),
        "{url}: pushed again, one request and nothing uploaded"
    );

    let mut config = config(read_url);
    config.mode = Mode::ReadOnly;
    let mut remote_b = Remotes::new(vec![config], &store_b);
    let (found, _) = remote_b
        .fetch(&store_b, &key, None, &mut no_warnings())
        .expect("a remote hit");
    let stats = &remote_b.stats()[0];
    assert_eq!(stats.hits, 1);
    assert!(
        stats.requests <= 10,
        "{read_url}: {} requests",
        stats.requests
    );
    let out = tempfile::tempdir().unwrap();
    restore(&found, out.path());
    assert_eq!(contents(out.path()), contents(src.path()), "{read_url}");
}

#[test]
fn an_entry_travels_through_azure_blob_storage() {
    let azure = services::azurite();
    let url = services::azblob_url(&azure, "team/cache");
    carries_an_entry(&url, &url, 5_000);
    // What A stored is in the container, under the URL's prefix.
    let blobs = services::azure_blobs(&azure, "team/cache/cleave-v1/");
    assert!(blobs.iter().any(|b| b.contains("/entries/")), "{blobs:?}");
    assert!(blobs.iter().any(|b| b.contains("/packs/")), "{blobs:?}");
}

#[test]
fn an_azure_container_anyone_may_read_is_read_without_credentials() {
    let azure = services::azurite();
    let url = services::azblob_url(&azure, "public");
    carries_an_entry(&url, &format!("{url}&anonymous=true"), 500);
}

#[test]
fn an_anonymous_write_to_azure_is_refused_with_a_warning() {
    let azure = services::azurite();
    let url = format!("{}&anonymous=true", services::azblob_url(&azure, "anon"));
    let a = tempfile::tempdir().unwrap();
    let store = Store::open(a.path()).unwrap();
    let src = tree(20, "anon");
    let entry = put(&store, src.path(), "lib");
    let mut warnings = Vec::new();
    remotes(&store, &[&url]).push(&entry, &mut |w| warnings.push(w));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(services::azure_blobs(&azure, "anon/").is_empty());
    let printed = format!("{warnings:?}");
    assert!(!printed.contains(services::AZURE_KEY), "{printed}");
}

#[test]
fn an_entry_travels_through_google_cloud_storage() {
    let gcs = services::fake_gcs();
    let url = services::gcs_url(&gcs, "team/cache");
    carries_an_entry(&url, &url, 5_000);
    let objects = services::gcs_objects(&gcs, "team/cache/cleave-v1/");
    assert!(objects.iter().any(|o| o.contains("/packs/")), "{objects:?}");
}

#[test]
fn the_gcs_emulator_s_address_comes_from_storage_emulator_host() {
    let gcs = services::fake_gcs();
    let endpoint = format!("http://127.0.0.1:{}", gcs.port);
    let env = |name: &str| (name == "STORAGE_EMULATOR_HOST").then(|| endpoint.clone());
    let url = RemoteUrl::parse_with("gcs://cache/env", &env).unwrap();
    let a = tempfile::tempdir().unwrap();
    let store = Store::open(a.path()).unwrap();
    let src = tree(20, "env");
    let entry = put(&store, src.path(), "lib");
    let mut remote = Remotes::new(vec![RemoteConfig::new(url)], &store);
    remote.push(&entry, &mut no_warnings());
    assert_eq!(remote.stats()[0].uploads, 1);
    assert!(!services::gcs_objects(&gcs, "env/cleave-v1/").is_empty());
}

/// Which damage each service's test does to what A pushed.
enum Damage {
    GarbageIndex,
    TruncatedPack,
    FlippedByte,
}

/// Pushes an entry to a service, damages it with `damage` (given the
/// names of its objects and a reader and writer of them) and fetches it
/// into an empty store: refused, with one warning saying it is damaged.
fn damaged_is_refused(
    url: &str,
    list: &dyn Fn(&str) -> Vec<String>,
    get: &dyn Fn(&str) -> Vec<u8>,
    set: &dyn Fn(&str, &[u8]),
) {
    for (i, damage) in [
        Damage::GarbageIndex,
        Damage::TruncatedPack,
        Damage::FlippedByte,
    ]
    .into_iter()
    .enumerate()
    {
        let prefix = format!("damage{i}");
        let url = url.replace("PREFIX", &prefix);
        let a = tempfile::tempdir().unwrap();
        let store = Store::open(a.path()).unwrap();
        let src = tree(200, &prefix);
        let entry = put(&store, src.path(), "lib");
        let key = entry.meta().key;
        remotes(&store, &[&url]).push(&entry, &mut no_warnings());
        let objects = list(&format!("{prefix}/cleave-v1/"));
        let index = objects.iter().find(|o| o.contains("/entries/")).unwrap();
        let pack = objects.iter().find(|o| o.contains("/packs/")).unwrap();
        match damage {
            Damage::GarbageIndex => set(index, b"<html>502 Bad Gateway</html>"),
            Damage::TruncatedPack => {
                let bytes = get(pack);
                set(pack, &bytes[..bytes.len() / 2]);
            }
            Damage::FlippedByte => {
                let mut bytes = get(pack);
                let at = bytes.len() - 3;
                bytes[at] ^= 0x55;
                set(pack, &bytes);
            }
        }
        let b = tempfile::tempdir().unwrap();
        let store_b = Store::open(b.path()).unwrap();
        let mut warnings = Vec::new();
        let found =
            remotes(&store_b, &[&url]).fetch(&store_b, &key, None, &mut |w| warnings.push(w));
        assert!(found.is_none(), "{url}: a damaged entry was taken");
        assert_eq!(warnings.len(), 1, "{url}: {warnings:?}");
        assert!(warnings[0].contains("damaged"), "{url}: {}", warnings[0]);
        assert!(store_b.get(&key).unwrap().is_none());
    }
}

#[test]
fn damaged_objects_in_azure_blob_storage_are_refused() {
    let azure = services::azurite();
    damaged_is_refused(
        &services::azblob_url(&azure, "PREFIX"),
        &|prefix| services::azure_blobs(&azure, prefix),
        &|name| services::azure_get(&azure, name),
        &|name, bytes| services::azure_put(&azure, name, bytes),
    );
}

#[test]
fn damaged_objects_in_google_cloud_storage_are_refused() {
    let gcs = services::fake_gcs();
    damaged_is_refused(
        &services::gcs_url(&gcs, "PREFIX"),
        &|prefix| services::gcs_objects(&gcs, prefix),
        &|name| services::gcs_get(&gcs, name),
        &|name, bytes| services::gcs_put(&gcs, name, bytes),
    );
}

#[test]
fn azure_or_gcs_down_costs_one_bounded_wait() {
    let port = services::free_port();
    for url in [
        format!("azblob://cache/x?endpoint=http://127.0.0.1:{port}/cleavetest"),
        format!("gcs://cache/x?endpoint=http://127.0.0.1:{port}&anonymous=true"),
    ] {
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
        assert!(
            !warnings[0].contains(services::AZURE_KEY),
            "{}",
            warnings[0]
        );
        let requests = remotes.stats()[0].requests;
        assert!(
            remotes
                .fetch(&store, &key, None, &mut |w| warnings.push(w))
                .is_none()
        );
        assert_eq!(remotes.stats()[0].requests, requests, "{url}");
    }
}
