//! Cache helpers end to end: the two example helpers of
//! `examples/cache-helpers` carry entries between two machines with no
//! remote configured, and helpers that fail, hang, print garbage or hand
//! back a damaged entry each cost a warning and a local build.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

mod common;
use common::machines::{Machines, archives};
use common::{assert_success, repo, stderr};

#[path = "../../cleave-cache/tests/services/mod.rs"]
mod services;

fn example(name: &str) -> String {
    repo()
        .join("examples/cache-helpers")
        .join(name)
        .display()
        .to_string()
}

/// A builds with the helper, B builds with it and runs nothing.
fn two_machines(helper: &str, env: &[(&str, &str)]) -> Machines {
    let case = Machines::new();
    let a = case.build_with("a", &["--cache-helper", helper], env);
    assert_success(&a);
    assert_eq!(case.runs(), 4, "{}", stderr(&a));
    assert!(!stderr(&a).contains("warning"), "{}", stderr(&a));
    let _ = std::fs::remove_dir_all(case.path("stg"));
    let b = case.build_with("b", &["--cache-helper", helper], env);
    assert_success(&b);
    let printed = stderr(&b);
    assert_eq!(case.runs(), 4, "B ran a script:\n{printed}");
    assert!(!printed.contains("warning"), "{printed}");
    assert!(
        printed.contains("fetched: staging `multi-build` from helper:"),
        "{printed}"
    );
    assert_eq!(archives(&case.path("out-a")), archives(&case.path("out-b")));
    case
}

#[test]
fn the_directory_helper_carries_entries_between_machines() {
    let shared = tempfile::tempdir().unwrap();
    let dir = shared.path().display().to_string();
    let case = two_machines(&example("dir-helper.py"), &[("CLEAVE_HELPER_DIR", &dir)]);
    // A's entries were stored by the helper, and A knows where they went.
    let key = std::fs::read_dir(case.path("cache-a/staging/entries"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .to_string_lossy()
        .into_owned();
    assert!(shared.path().join(&key).join("entry.json").is_file());
    let info = case.cleave("a", &["cache", "info", &key]);
    assert_success(&info);
    let text = String::from_utf8_lossy(&info.stdout).into_owned();
    assert!(text.contains(&format!("keeps it at {dir}/{key}")), "{text}");
    // The counters name the helper as a level.
    let stats = case.cleave("b", &["cache", "stats", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    let helper = &json["levels"]["last"][1];
    assert!(
        helper["remote"].as_str().unwrap().starts_with("helper:"),
        "{json}"
    );
    assert!(helper["hits"].as_u64().unwrap() >= 1, "{json}");
}

#[test]
fn the_curl_helper_carries_entries_through_a_webdav_server() {
    let dav = services::webdav();
    let url = format!("http://127.0.0.1:{}", dav.port);
    two_machines(&example("curl-helper.sh"), &[("CLEAVE_HELPER_URL", &url)]);
}

/// A helper script written for one test.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn a_helper_that_fails_hangs_or_prints_garbage_costs_a_warning() {
    let cases = [
        ("fails", "echo 'out of quota' >&2; exit 3", "failed"),
        ("hangs", "sleep 60", "did not finish within 1.0 s"),
        ("garbage", "echo 'hello there'", "answered something else"),
        ("lies", "echo '{\"found\": true}'", "named none"),
    ];
    for (name, body, said) in cases {
        let case = Machines::new();
        // From the project file, so that its timeout applies.
        let helper = script(case.tmp.path(), name, body);
        let toml = format!(
            "[cache]\nhelpers = [\"{}\"]\nhelper-timeout = \"1s\"\n",
            helper.display()
        );
        std::fs::write(case.path("cleave.toml"), toml).unwrap();
        let started = std::time::Instant::now();
        let built = case.build("a", &[]);
        assert_success(&built);
        let printed = stderr(&built);
        assert_eq!(case.runs(), 4, "{name}: {printed}");
        assert!(printed.contains(said), "{name}: {printed}");
        assert_eq!(
            printed.matches("warning: ").count(),
            1,
            "{name}: one warning, then the helper is not run again:\n{printed}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(40),
            "{name}"
        );
    }
}

#[test]
fn a_damaged_entry_from_a_helper_is_refused() {
    // Machine A stores through the directory helper; then a blob of the
    // kept entry is changed, keeping its size.
    let shared = tempfile::tempdir().unwrap();
    let dir = shared.path().display().to_string();
    let env = [("CLEAVE_HELPER_DIR", dir.as_str())];
    let helper = example("dir-helper.py");
    let case = Machines::new();
    assert_success(&case.build_with("a", &["--cache-helper", &helper], &env));
    for entry in std::fs::read_dir(shared.path()).unwrap() {
        for blob in std::fs::read_dir(entry.unwrap().path().join("blobs")).unwrap() {
            let path = blob.unwrap().path();
            let mut bytes = std::fs::read(&path).unwrap();
            if let Some(first) = bytes.first_mut() {
                *first ^= 0x20;
            }
            std::fs::write(&path, bytes).unwrap();
        }
    }
    let _ = std::fs::remove_dir_all(case.path("stg"));
    let b = case.build_with("b", &["--cache-helper", &helper], &env);
    assert_success(&b);
    let printed = stderr(&b);
    assert!(printed.contains("does not match its digest"), "{printed}");
    assert_eq!(case.runs(), 8, "B built everything itself:\n{printed}");
    // B's packages are right: the same as A's.
    assert_eq!(archives(&case.path("out-a")), archives(&case.path("out-b")));
}

#[test]
fn entries_are_exported_and_imported_by_hand() {
    let case = Machines::new();
    assert_success(&case.build("a", &[]));
    let keys: Vec<String> = std::fs::read_dir(case.path("cache-a/staging/entries"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for (i, key) in keys.iter().enumerate() {
        // As a directory and as a tar.
        let dest = case.path(&format!(
            "exported{i}{}",
            if i % 2 == 0 { ".tar" } else { "" }
        ));
        let dest = dest.display().to_string();
        assert_success(&case.cleave("a", &["cache", "export", key, &dest]));
        let imported = case.cleave("b", &["cache", "import", &dest]);
        assert_success(&imported);
    }
    let _ = std::fs::remove_dir_all(case.path("stg"));
    let b = case.build("b", &[]);
    assert_success(&b);
    assert_eq!(case.runs(), 4, "{}", stderr(&b));
}
