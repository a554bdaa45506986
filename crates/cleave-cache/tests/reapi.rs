//! A REAPI server as a remote store, against a real one (BuildGrid): an
//! entry carried from one local store to another, in a handful of
//! requests; read back by BuildGrid's own client; damaged and hostile
//! results refused; collected blobs a miss; a server that is down, silent,
//! full, read-only, behind TLS or a token.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use cleave_cache::remote::{RemoteConfig, RemoteUrl, Remotes, action_digest};
use cleave_cache::{Digest, Store};
use sha2::Digest as _;

mod common;
mod services;

use common::{no_warnings, put, restore};
use services::{Grid, GridStorage};

/// A prefix-like tree: `files` small files in 50 directories, a 300 kB
/// file, `big` bytes that do not compress (ByteStream's, when above a
/// batch), an executable, a symlink and an empty directory.
fn tree(files: usize, big: usize, salt: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..files {
        let sub = dir.path().join(format!("d{}", i % 50));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("f{i}")), format!("file {i} of {salt}\n")).unwrap();
    }
    std::fs::write(dir.path().join("mid"), vec![7u8; 300_000]).unwrap();
    std::fs::write(dir.path().join("big"), noise(big, salt)).unwrap();
    let tool = dir.path().join("bin/tool");
    std::fs::create_dir_all(tool.parent().unwrap()).unwrap();
    std::fs::write(&tool, "#!/bin/sh\necho hi\n").unwrap();
    set_mode(&tool, 0o755);
    std::os::unix::fs::symlink("bin/tool", dir.path().join("link")).unwrap();
    std::fs::create_dir_all(dir.path().join("empty")).unwrap();
    dir
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `len` bytes that do not compress.
fn noise(len: usize, salt: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(&Digest::of(format!("{salt}/{i}").as_bytes()).0);
        i += 1;
    }
    out.truncate(len);
    out
}

fn config_with(url: &str, env: &dyn Fn(&str) -> Option<String>) -> RemoteConfig {
    let mut config = RemoteConfig::new(RemoteUrl::parse_with(url, env).unwrap());
    config.timeout = Duration::from_secs(5);
    config.retries = 1;
    config
}

fn remotes(store: &Store, url: &str) -> Remotes {
    Remotes::new(vec![config_with(url, &|_| None)], store)
}

/// Every item below `dir`: path, and contents (files), target (links) or
/// nothing (directories), with the mode bits of files.
fn contents(dir: &Path) -> Vec<(PathBuf, String, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let path = e.path();
            let rel = path.strip_prefix(dir).unwrap().to_path_buf();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.push((
                    rel,
                    "link".into(),
                    target.as_os_str().as_encoded_bytes().to_vec(),
                ));
            } else if meta.is_dir() {
                out.push((rel, "dir".into(), Vec::new()));
                stack.push(path);
            } else {
                let mode = format!("file {:o}", meta.permissions().mode() & 0o111);
                out.push((rel, mode, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn stores() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

fn sha256(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn an_entry_travels_through_buildgrid_in_a_handful_of_requests() {
    let grid = services::buildgrid(Grid::default(), "main");
    let url = services::grpc_url(&grid, "main");
    let (_a, store_a) = stores();
    let src = tree(10_000, 6 << 20, "one");
    let entry = put(&store_a, src.path(), "lib");
    let key = entry.meta().key;

    let mut up = remotes(&store_a, &url);
    up.push(&entry, &mut no_warnings());
    let sent = &up.stats()[0];
    assert_eq!(sent.uploads, 1);
    assert!(sent.requests <= 12, "{} requests to upload", sent.requests);
    assert!(sent.bytes_up > 6 << 20, "{sent:?}");
    // Pushed again from another process: capabilities and the result.
    let mut again = remotes(&store_a, &url);
    again.push(&entry, &mut no_warnings());
    assert_eq!(
        (again.stats()[0].requests, again.stats()[0].uploads),
        (2, 0)
    );

    let (_b, store_b) = stores();
    let mut down = remotes(&store_b, &url);
    let (found, from) = down
        .fetch(&store_b, &key, None, &mut no_warnings())
        .expect("a hit");
    assert_eq!(from, url.trim_end_matches('/'));
    let got = &down.stats()[0];
    assert_eq!(got.hits, 1);
    assert!(got.requests <= 12, "{} requests to fetch", got.requests);
    let out = tempfile::tempdir().unwrap();
    restore(&found, out.path());
    assert_eq!(contents(out.path()), contents(src.path()));
    drop(found);
    assert!(
        store_b.get(&key).unwrap().is_some(),
        "a local entry of B now"
    );
    // Another instance of the same server is another cache.
    let (_c, store_c) = stores();
    let other = services::grpc_url(&grid, "main");
    let other = other.replace("/main", "/other");
    let mut warnings = Vec::new();
    let missed = remotes(&store_c, &other).fetch(&store_c, &key, None, &mut |w| warnings.push(w));
    assert!(missed.is_none());
    assert_eq!(warnings.len(), 1, "no instance `other`: {warnings:?}");
}

/// A tonic client of the test's own, for what BuildGrid's CLI cannot do:
/// read and write results as they are.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn digest_of(text: &str) -> re::Digest {
    let (hash, size) = text.split_once('/').unwrap();
    re::Digest {
        hash: hash.into(),
        size_bytes: size.parse().unwrap(),
    }
}

fn get_result(port: u16, key: &Digest) -> re::ActionResult {
    use re::action_cache_client::ActionCacheClient;
    runtime().block_on(async {
        let mut client = ActionCacheClient::connect(format!("http://127.0.0.1:{port}"))
            .await
            .unwrap();
        let request = re::GetActionResultRequest {
            action_digest: Some(digest_of(&action_digest(key))),
            ..Default::default()
        };
        client
            .get_action_result(request)
            .await
            .unwrap()
            .into_inner()
    })
}

fn set_result(port: u16, key: &Digest, result: re::ActionResult) {
    use re::action_cache_client::ActionCacheClient;
    runtime().block_on(async {
        let mut client = ActionCacheClient::connect(format!("http://127.0.0.1:{port}"))
            .await
            .unwrap();
        let request = re::UpdateActionResultRequest {
            action_digest: Some(digest_of(&action_digest(key))),
            action_result: Some(result),
            ..Default::default()
        };
        client.update_action_result(request).await.unwrap();
    });
}

#[test]
fn buildgrid_reads_what_cleave_stored_and_cleave_finds_what_buildgrid_stored() {
    let grid = services::buildgrid(Grid::default(), "");
    let remote = format!("http://127.0.0.1:{}", grid.port);
    let url = services::grpc_url(&grid, "");
    let (_a, store) = stores();
    let src = tree(200, 5 << 20, "interop");
    // BuildGrid's client uploads the big file first: cleave finds it there
    // and does not send it again.
    services::bgd(&[
        "cas",
        "--remote",
        &remote,
        "upload-file",
        &src.path().join("big").display().to_string(),
    ]);
    let entry = put(&store, src.path(), "lib");
    let mut up = remotes(&store, &url);
    up.push(&entry, &mut no_warnings());
    let sent = up.stats()[0].bytes_up;
    assert!(sent < 5 << 20, "{sent} bytes sent: the big file went again");

    // BuildGrid's client finds the result under the entry's Action digest
    // and materialises its tree: every file, with its executable bit.
    let key = entry.meta().key;
    let json = services::bgd(&[
        "actioncache",
        "--remote",
        &remote,
        "get",
        "--json",
        &action_digest(&key),
    ]);
    let result: serde_json::Value = serde_json::from_str(&json).unwrap();
    let dirs = result["outputDirectories"].as_array().unwrap();
    assert_eq!(dirs[0]["path"], "trees/prefix", "{json}");
    let root = &dirs[0]["rootDirectoryDigest"];
    let root = format!(
        "{}/{}",
        root["hash"].as_str().unwrap(),
        root["sizeBytes"].as_str().unwrap()
    );
    let out = tempfile::tempdir().unwrap();
    let there = out.path().join("tree");
    services::bgd(&[
        "cas",
        "--remote",
        &remote,
        "download-dir",
        &root,
        &there.display().to_string(),
    ]);
    let files = |items: Vec<(PathBuf, String, Vec<u8>)>| -> Vec<(PathBuf, String, Vec<u8>)> {
        items
            .into_iter()
            .filter(|(_, kind, _)| kind.starts_with("file"))
            .collect()
    };
    assert_eq!(files(contents(&there)), files(contents(src.path())));
    // And the entry's own files, byte for byte.
    let entry_json = result["outputFiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "cleave/entry.json")
        .expect("entry.json in the result");
    let digest = format!(
        "{}/{}",
        entry_json["digest"]["hash"].as_str().unwrap(),
        entry_json["digest"]["sizeBytes"].as_str().unwrap()
    );
    let copy = out.path().join("entry.json");
    services::bgd(&[
        "cas",
        "--remote",
        &remote,
        "download-file",
        &digest,
        &copy.display().to_string(),
    ]);
    let stored = std::fs::read(common::entry_dir(store.root(), &key).join("entry.json")).unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), stored);
}

/// Pushes an entry to a BuildGrid server keeping its blobs on disk; the
/// server, its disk, the entry's key and source.
fn pushed_to_disk() -> (
    services::Service,
    tempfile::TempDir,
    Digest,
    tempfile::TempDir,
) {
    let disk = tempfile::tempdir().unwrap();
    let grid = services::buildgrid(
        Grid {
            storage: GridStorage::Disk(disk.path().to_path_buf()),
            ..Grid::default()
        },
        "",
    );
    let (_a, store) = stores();
    let src = tree(100, 10_000, "hostile");
    let entry = put(&store, src.path(), "lib");
    remotes(&store, &services::grpc_url(&grid, "")).push(&entry, &mut no_warnings());
    (grid, disk, entry.meta().key, src)
}

/// Where BuildGrid's disk storage keeps the blob of SHA-256 `hash`.
fn on_disk(disk: &Path, hash: &str) -> PathBuf {
    disk.join("cas/objects").join(&hash[..2]).join(&hash[2..])
}

fn flip(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

fn output_file<'a>(result: &'a mut re::ActionResult, path: &str) -> &'a mut re::OutputFile {
    result
        .output_files
        .iter_mut()
        .find(|f| f.path == path)
        .unwrap()
}

#[test]
fn damaged_and_hostile_results_are_refused_with_a_warning() {
    type Damage = fn(&services::Service, &Path, &Digest, &Path);
    let damages: [(&str, Damage); 7] = [
        ("a flipped byte in a file", |_, disk, _, src| {
            let bytes = std::fs::read(src.join("d1/f1")).unwrap();
            flip(&on_disk(disk, &sha256(&bytes)));
        }),
        ("a flipped byte in files.json", |grid, disk, key, _| {
            let mut result = get_result(grid.port, key);
            let hash = output_file(&mut result, "cleave/files.json")
                .digest
                .clone()
                .unwrap()
                .hash;
            flip(&on_disk(disk, &hash));
        }),
        ("an output path with ..", |grid, _, key, _| {
            let mut result = get_result(grid.port, key);
            output_file(&mut result, "cleave/files.json").path = "cleave/../../files.json".into();
            set_result(grid.port, key, result);
        }),
        ("an absolute output path", |grid, _, key, _| {
            let mut result = get_result(grid.port, key);
            result.output_directories[0].path = "/etc".into();
            set_result(grid.port, key, result);
        }),
        ("a huge size", |grid, _, key, _| {
            let mut result = get_result(grid.port, key);
            let file = output_file(&mut result, "cleave/entry.json");
            file.digest.as_mut().unwrap().size_bytes = 1 << 40;
            set_result(grid.port, key, result);
        }),
        ("the result of another entry", |grid, _, key, _| {
            let (_o, other_store) = stores();
            let other_src = tree(10, 100, "other");
            let other = put(&other_store, other_src.path(), "other");
            let url = services::grpc_url(grid, "");
            remotes(&other_store, &url).push(&other, &mut no_warnings());
            set_result(grid.port, key, get_result(grid.port, &other.meta().key));
        }),
        ("a Tree that lacks a file", |grid, _, key, _| {
            let mut result = get_result(grid.port, key);
            let empty_tree = re::Tree {
                root: Some(re::Directory::default()),
                children: vec![],
            };
            let bytes = prost::Message::encode_to_vec(&empty_tree);
            let digest = re::Digest {
                hash: sha256(&bytes),
                size_bytes: bytes.len() as i64,
            };
            let file =
                std::env::temp_dir().join(format!("cleave-empty-tree-{}", std::process::id()));
            std::fs::write(&file, &bytes).unwrap();
            let remote = format!("http://127.0.0.1:{}", grid.port);
            services::bgd(&[
                "cas",
                "--remote",
                &remote,
                "upload-file",
                &file.display().to_string(),
            ]);
            let _ = std::fs::remove_file(&file);
            result.output_directories[0].tree_digest = Some(digest);
            set_result(grid.port, key, result);
        }),
    ];
    for (what, damage) in damages {
        let (grid, disk, key, src) = pushed_to_disk();
        damage(&grid, disk.path(), &key, src.path());
        let (_b, store) = stores();
        let mut warnings = Vec::new();
        let found = remotes(&store, &services::grpc_url(&grid, ""))
            .fetch(&store, &key, None, &mut |w| warnings.push(w))
            .is_some();
        assert!(!found, "{what}: a damaged entry was taken");
        assert_eq!(warnings.len(), 1, "{what}: {warnings:?}");
        assert!(warnings[0].contains("damaged"), "{what}: {}", warnings[0]);
        assert!(store.get(&key).unwrap().is_none(), "{what}");
    }
}

#[test]
fn collected_blobs_are_a_miss_and_the_entry_is_stored_again() {
    // A CAS of 1 MB: the second entry's blobs push the first one's out.
    let grid = services::buildgrid(
        Grid {
            storage: GridStorage::Memory("1MB"),
            ..Grid::default()
        },
        "",
    );
    let url = services::grpc_url(&grid, "");
    let (_a, store) = stores();
    let first_src = tree(10, 700_000, "first");
    let first = put(&store, first_src.path(), "first");
    remotes(&store, &url).push(&first, &mut no_warnings());
    let second_src = tree(10, 700_000, "second");
    let second = put(&store, second_src.path(), "second");
    remotes(&store, &url).push(&second, &mut no_warnings());

    // Another machine misses the first, without a warning, builds it
    // (the same key) and stores it again in the same process.
    let (_b, store_b) = stores();
    let mut remote_b = remotes(&store_b, &url);
    let key = first.meta().key;
    assert!(
        remote_b
            .fetch(&store_b, &key, None, &mut no_warnings())
            .is_none()
    );
    assert_eq!(remote_b.stats()[0].misses, 1);
    let rebuilt = put(&store_b, first_src.path(), "first");
    assert_eq!(rebuilt.meta().key, key);
    remote_b.push(&rebuilt, &mut no_warnings());
    assert_eq!(remote_b.stats()[0].uploads, 1);
    let (_c, store_c) = stores();
    assert!(
        remotes(&store_c, &url)
            .fetch(&store_c, &key, None, &mut no_warnings())
            .is_some()
    );
}

/// Looks an entry up in `url` and asserts what it cost: one warning,
/// within `bound`, naming `says`; the remote not asked again.
fn costs_one_warning(url: &str, bound: Duration, says: &str) {
    let (_a, store) = stores();
    let mut config = config_with(url, &|_| None);
    config.timeout = Duration::from_secs(1);
    let mut remotes = Remotes::new(vec![config], &store);
    let src = tree(5, 100, "down");
    let entry = put(&store, src.path(), "lib");
    let mut warnings = Vec::new();
    let started = Instant::now();
    remotes.push(&entry, &mut |w| warnings.push(w));
    assert!(
        started.elapsed() < bound,
        "{url}: waited {:?}",
        started.elapsed()
    );
    assert_eq!(warnings.len(), 1, "{url}: {warnings:?}");
    assert!(warnings[0].contains("not used again"), "{}", warnings[0]);
    assert!(warnings[0].contains(says), "{url}: {}", warnings[0]);
    let requests = remotes.stats()[0].requests;
    let key = Digest::of(b"anything");
    assert!(
        remotes
            .fetch(&store, &key, None, &mut |w| warnings.push(w))
            .is_none()
    );
    assert_eq!(remotes.stats()[0].requests, requests, "{url}: asked again");
    assert_eq!(warnings.len(), 1);
}

#[test]
fn a_server_that_is_down_or_silent_costs_a_bounded_wait() {
    let down = format!("grpc://127.0.0.1:{}", services::free_port());
    costs_one_warning(&down, Duration::from_secs(10), "UNAVAILABLE");
    // Its HTTP/2 handshake never ends: the keepalive or the request's
    // timeout gives up, whichever comes first.
    let silent = format!("grpc://127.0.0.1:{}", services::silent());
    costs_one_warning(&silent, Duration::from_secs(10), "asking its capabilities");
}

#[test]
fn a_full_server_answers_resource_exhausted_and_costs_a_bounded_wait() {
    let disk = tempfile::tempdir().unwrap();
    let Some(_tiny) = common::TinyDisk::mount(disk.path(), "256k") else {
        return;
    };
    let grid = services::buildgrid(
        Grid {
            storage: GridStorage::Disk(disk.path().to_path_buf()),
            ..Grid::default()
        },
        "",
    );
    let url = services::grpc_url(&grid, "");
    let (_a, store) = stores();
    let src = tree(5, 2 << 20, "full");
    let entry = put(&store, src.path(), "lib");
    let mut config = config_with(&url, &|_| None);
    config.timeout = Duration::from_secs(2);
    let mut remotes = Remotes::new(vec![config], &store);
    let mut warnings = Vec::new();
    let started = Instant::now();
    remotes.push(&entry, &mut |w| warnings.push(w));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("RESOURCE_EXHAUSTED"),
        "{}",
        warnings[0]
    );
    assert!(warnings[0].contains("not used again"), "{}", warnings[0]);
}

#[test]
fn a_read_only_action_cache_is_read_and_never_written() {
    let grid = services::buildgrid(
        Grid {
            allow_updates: false,
            ..Grid::default()
        },
        "",
    );
    let url = services::grpc_url(&grid, "");
    let (_a, store) = stores();
    let mut remotes = remotes(&store, &url);
    let mut warnings = Vec::new();
    for salt in ["one", "two"] {
        let src = tree(5, 100, salt);
        let entry = put(&store, src.path(), salt);
        remotes.push(&entry, &mut |w| warnings.push(w));
    }
    assert_eq!(
        warnings.len(),
        1,
        "one warning, then no more pushes: {warnings:?}"
    );
    assert!(
        warnings[0].contains("takes no action results"),
        "{}",
        warnings[0]
    );
    assert_eq!(remotes.stats()[0].uploads, 0);
    let requests = remotes.stats()[0].requests;
    assert!(
        remotes
            .fetch(&store, &Digest::of(b"k"), None, &mut |w| warnings.push(w))
            .is_none()
    );
    assert!(remotes.stats()[0].requests > requests, "still read");
    assert_eq!(warnings.len(), 1);
}

/// Carries an entry through `url` with variables `env`: the warnings (one
/// for the push and one for the lookup where the server refuses), and
/// whether the entry came back.
fn carried(url: &str, env: &dyn Fn(&str) -> Option<String>) -> (Vec<String>, bool) {
    let (_a, store) = stores();
    let src = tree(20, 100_000, url);
    let entry = put(&store, src.path(), "lib");
    let mut warnings = Vec::new();
    Remotes::new(vec![config_with(url, env)], &store).push(&entry, &mut |w| warnings.push(w));
    let (_b, store_b) = stores();
    let found = Remotes::new(vec![config_with(url, env)], &store_b)
        .fetch(&store_b, &entry.meta().key, None, &mut |w| warnings.push(w))
        .is_some();
    (warnings, found)
}

#[test]
fn grpcs_with_a_private_ca_and_mutual_tls() {
    let certs = tempfile::tempdir().unwrap();
    let [ca, cert, key, client_cert, client_key] = services::certificates(certs.path());
    for mutual in [false, true] {
        let clients = mutual.then(|| ca.clone());
        let grid = services::buildgrid(
            Grid {
                tls: Some((cert.clone(), key.clone(), clients)),
                ..Grid::default()
            },
            "",
        );
        let url = format!("grpcs://127.0.0.1:{}", grid.port);
        let vars = |with_client: bool| {
            let (ca, cert, key) = (ca.clone(), client_cert.clone(), client_key.clone());
            move |name: &str| match name {
                "CLEAVE_REMOTE_CA_FILE" => Some(ca.display().to_string()),
                "CLEAVE_REMOTE_CLIENT_CERT" if with_client => Some(cert.display().to_string()),
                "CLEAVE_REMOTE_CLIENT_KEY" if with_client => Some(key.display().to_string()),
                _ => None,
            }
        };
        let (warnings, found) = carried(&url, &vars(true));
        assert!(
            found && warnings.is_empty(),
            "mutual {mutual}: {warnings:?}"
        );
        // The system's roots do not know the test's CA.
        let (warnings, found) = carried(&url, &|_| None);
        assert!(!found && warnings.len() == 2, "{warnings:?}");
        assert!(warnings[0].contains("UnknownIssuer"), "{}", warnings[0]);
        if mutual {
            let (warnings, found) = carried(&url, &vars(false));
            assert!(
                !found && warnings.len() == 2,
                "no client certificate: {warnings:?}"
            );
        }
    }
}

#[test]
fn a_bearer_token_from_the_environment_is_sent_and_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("jwt.secret");
    std::fs::write(&secret, "a-shared-secret-for-the-test").unwrap();
    let token = std::process::Command::new("python3")
        .args([
            "-c",
            "import jwt, sys, time; print(jwt.encode({'sub': 'cleave', 'exp': int(time.time()) + 3600}, sys.argv[1], algorithm='HS256'))",
            "a-shared-secret-for-the-test",
        ])
        .output()
        .unwrap();
    assert!(token.status.success(), "PyJWT comes with BuildGrid");
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();
    let grid = services::buildgrid(
        Grid {
            jwt_secret: Some(secret),
            ..Grid::default()
        },
        "",
    );
    let url = format!("{}?token_env=GRID_TOKEN", services::grpc_url(&grid, ""));
    let with = |name: &str| (name == "GRID_TOKEN").then(|| token.clone());
    let (warnings, found) = carried(&url, &with);
    assert!(found && warnings.is_empty(), "{warnings:?}");
    let wrong = |name: &str| (name == "GRID_TOKEN").then(|| format!("{token}x"));
    let (warnings, found) = carried(&url, &wrong);
    assert!(!found && warnings.len() == 2, "{warnings:?}");
    assert!(warnings[0].contains("UNAUTHENTICATED"), "{}", warnings[0]);
    assert!(
        !format!("{warnings:?}").contains(&token[10..]),
        "{warnings:?}"
    );
    let (warnings, found) = carried(&url, &|_| None);
    assert!(!found && warnings.len() == 2, "{warnings:?}");
    let (_a, store) = stores();
    let remotes = Remotes::new(vec![config_with(&url, &with)], &store);
    let printed = format!("{remotes:?} {:?}", remotes.stats());
    assert!(!printed.contains(&token), "{printed}");
}
