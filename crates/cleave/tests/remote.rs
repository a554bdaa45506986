//! Two machines sharing a cache through a remote store: machine A builds
//! with the remote, machine B (its own cache dir, output dir and HOME, an
//! empty local store) builds the same recipe and runs no script, for each
//! service the tests can run here (S3 by moto, Redis, WebDAV by wsgidav, a
//! shared directory, a REAPI server by BuildGrid). And what a remote that
//! is down costs: a warning.

mod common;
use common::machines::{Machines as Case, SECRET, archives};
use common::{assert_success, index, oracle, stderr};

#[path = "../../cleave-cache/tests/services/mod.rs"]
mod services;

/// A builds and fills the remote; B builds from it and runs nothing.
fn two_machines(url: &str) -> Case {
    let case = Case::new();
    let a = case.build("a", &["--remote", url]);
    assert_success(&a);
    assert_eq!(case.runs(), 4, "{}", stderr(&a));
    assert!(!stderr(&a).contains("warning"), "{}", stderr(&a));
    // Nothing of A's builds is left on "machine B".
    let _ = std::fs::remove_dir_all(case.path("stg"));

    let b = case.build("b", &["--remote", url]);
    assert_success(&b);
    let printed = stderr(&b);
    assert_eq!(case.runs(), 4, "B ran a script:\n{printed}");
    assert!(!printed.contains("warning"), "{printed}");
    assert!(
        printed.contains("fetched: staging `multi-build`"),
        "{printed}"
    );
    assert_eq!(
        archives(&case.path("out-a")),
        archives(&case.path("out-b")),
        "{url}: B's packages are A's, byte for byte"
    );
    assert!(!printed.contains(SECRET) && !stderr(&a).contains(SECRET));
    case
}

#[test]
fn machine_b_builds_nothing_with_an_s3_remote() {
    let s3 = services::s3();
    let case = two_machines(&services::s3_url(&s3, "team"));
    // B's packages install at B's paths: the prefix-dependent file names
    // the prefix it was installed into.
    let env = case.path("env-b");
    let checked = oracle(&case.path("out-b"), &env, &["multi-data"], &[]);
    assert_eq!(index(&checked, "multi-data")["name"], "multi-data");
    let text = std::fs::read_to_string(env.join("share/multi/where.txt")).unwrap();
    assert!(text.contains(&env.display().to_string()), "{text}");
    // The counters say where B's entries came from, without credentials.
    let stats = case.cleave("b", &["cache", "stats", "--json"]);
    assert_success(&stats);
    let json: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    let last = &json["levels"]["last"];
    assert_eq!(last[0]["remote"], "local", "{json}");
    assert!(last[0]["misses"].as_u64().unwrap() >= 1, "{json}");
    assert!(
        last[1]["remote"]
            .as_str()
            .unwrap()
            .starts_with("s3://cache/team"),
        "{json}"
    );
    assert!(last[1]["hits"].as_u64().unwrap() >= 1, "{json}");
    assert_eq!(last[1]["uploads"], 0, "{json}");
    assert!(!String::from_utf8_lossy(&stats.stdout).contains(SECRET));
}

#[test]
fn machine_b_builds_nothing_with_a_redis_remote() {
    let redis = services::redis();
    two_machines(&format!("redis://127.0.0.1:{}/1", redis.port));
}

#[test]
fn a_plus_in_a_redis_password_is_a_plus() {
    // RFC 3986 user info: `+` is itself, `%2B` is a `+` too.
    let redis = services::redis_with_password("pa+ss+word");
    two_machines(&format!("redis://:pa+ss%2Bword@127.0.0.1:{}/1", redis.port));
}

#[test]
fn machine_b_builds_nothing_with_a_webdav_remote() {
    let dav = services::webdav();
    two_machines(&format!("webdav+http://127.0.0.1:{}/cleave", dav.port));
}

#[test]
fn machine_b_builds_nothing_with_a_shared_directory() {
    let shared = tempfile::tempdir().unwrap();
    two_machines(&format!("file://{}", shared.path().display()));
}

#[test]
fn machine_b_builds_nothing_with_a_reapi_remote() {
    let grid = services::buildgrid(services::Grid::default(), "cleave");
    let url = services::grpc_url(&grid, "cleave");
    let case = two_machines(&url);
    let stats = case.cleave("b", &["cache", "stats", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    let last = &json["levels"]["last"];
    assert_eq!(last[1]["remote"], url.as_str(), "{json}");
    assert!(last[1]["hits"].as_u64().unwrap() >= 1, "{json}");
    // What B took is what A's build stored: BuildGrid's own client finds
    // the staging entry's result under its Action digest.
    let key = std::fs::read_dir(case.path("cache-a/staging/entries"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|k| {
            let meta = std::fs::read_to_string(
                case.path(&format!("cache-a/staging/entries/{k}/entry.json")),
            );
            meta.unwrap().contains("\"name\":\"multi-build\"")
        })
        .expect("the staging entry");
    let action = cleave_cache::remote::action_digest(&key.parse().unwrap());
    let remote = format!("http://127.0.0.1:{}", grid.port);
    let json = services::bgd(&[
        "actioncache",
        "--remote",
        &remote,
        "--instance-name",
        "cleave",
        "get",
        "--json",
        &action,
    ]);
    assert!(json.contains("cleave/entry.json"), "{json}");
}

#[test]
fn a_reapi_remote_that_is_down_costs_a_warning_not_a_build() {
    let case = Case::new();
    let url = format!("grpc://127.0.0.1:{}/cleave", services::free_port());
    let built = case.build("a", &["--remote", &url]);
    assert_success(&built);
    let printed = stderr(&built);
    assert_eq!(case.runs(), 4, "{printed}");
    assert_eq!(printed.matches("not used again").count(), 1, "{printed}");
}

#[test]
fn a_remote_that_is_down_costs_a_warning_not_a_build() {
    let case = Case::new();
    let url = format!(
        "s3://cache/x?endpoint=http://127.0.0.1:{}",
        services::free_port()
    );
    let built = case.build("a", &["--remote", &url]);
    assert_success(&built);
    let printed = stderr(&built);
    assert_eq!(case.runs(), 4, "{printed}");
    assert_eq!(printed.matches("not used again").count(), 1, "{printed}");
    assert!(!printed.contains(SECRET), "{printed}");
}

#[test]
fn a_read_only_remote_is_never_written() {
    let shared = tempfile::tempdir().unwrap();
    let url = format!("file://{}", shared.path().display());
    let case = Case::new();
    assert_success(&case.build("a", &["--remote", &url, "--remote-mode", "read-only"]));
    assert!(!shared.path().join("cleave-v1").exists());
}

#[test]
fn entries_are_pushed_and_pulled_by_hand() {
    let case = Case::new();
    assert_success(&case.build("a", &[]));
    let shared = tempfile::tempdir().unwrap();
    let url = format!("file://{}", shared.path().display());
    let pushed = case.cleave("a", &["cache", "push", "--all", "--to", &url]);
    assert_success(&pushed);
    let text = String::from_utf8_lossy(&pushed.stdout).into_owned();
    assert!(text.contains("4 entries uploaded"), "{text}");
    let again = case.cleave("a", &["cache", "push", "--all", "--to", &url]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 entries uploaded"));

    let keys: Vec<String> = std::fs::read_dir(case.path("cache-a/staging/entries"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for key in &keys {
        let pulled = case.cleave("b", &["cache", "pull", key, "--from", &url]);
        assert_success(&pulled);
    }
    let _ = std::fs::remove_dir_all(case.path("stg"));
    let b = case.build("b", &[]);
    assert_success(&b);
    assert_eq!(case.runs(), 4, "{}", stderr(&b));
}

#[test]
fn a_silent_remote_costs_its_timeout_and_a_warning() {
    let case = Case::new();
    let port = services::silent();
    let toml = format!(
        "[[cache.remote]]\nurl = \"redis://127.0.0.1:{port}/0\"\ntimeout = \"1s\"\nretries = 0\n"
    );
    std::fs::write(case.path("cleave.toml"), toml).unwrap();
    let started = std::time::Instant::now();
    let built = case.build("a", &[]);
    assert_success(&built);
    let printed = stderr(&built);
    assert_eq!(case.runs(), 4, "{printed}");
    assert_eq!(printed.matches("not used again").count(), 1, "{printed}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn garbage_and_truncated_objects_cost_a_warning_and_a_local_build() {
    let shared = tempfile::tempdir().unwrap();
    let url = format!("file://{}", shared.path().display());
    let case = Case::new();
    assert_success(&case.build("a", &["--remote", &url]));
    // Every index becomes garbage but one, whose packs are cut in half.
    let objects = |kind: &str| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(shared.path().join("cleave-v1").join(kind))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    };
    let indexes = objects("entries");
    for index in &indexes[1..] {
        std::fs::write(index, b"<html>502 Bad Gateway</html>").unwrap();
    }
    for pack in objects("packs") {
        let bytes = std::fs::read(&pack).unwrap();
        std::fs::write(&pack, &bytes[..bytes.len() / 2]).unwrap();
    }
    let _ = std::fs::remove_dir_all(case.path("stg"));
    let b = case.build("b", &["--remote", &url]);
    assert_success(&b);
    let printed = stderr(&b);
    assert!(printed.contains("damaged"), "{printed}");
    assert!(!printed.contains("fetched:"), "{printed}");
    assert_eq!(case.runs(), 8, "B built everything itself:\n{printed}");
    assert_eq!(archives(&case.path("out-a")), archives(&case.path("out-b")));
}
