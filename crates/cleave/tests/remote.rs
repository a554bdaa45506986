//! Two machines sharing a cache through a remote store: machine A builds
//! with the remote, machine B (its own cache dir, output dir and HOME, an
//! empty local store) builds the same recipe and runs no script, for each
//! service the tests can run here (S3 by moto, Redis, WebDAV by wsgidav, a
//! shared directory). And what a remote that is down costs: a warning.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{assert_success, index, oracle, repo, stderr};

#[path = "../../cleave-cache/tests/services/mod.rs"]
mod services;

const SECRET: &str = "testing-secret-0123456789";

/// A copy of `tests/reuse/multi`, whose scripts count their runs in
/// `runs.log`, in a fresh temporary directory.
struct Case {
    tmp: tempfile::TempDir,
    recipe: PathBuf,
}

impl Case {
    fn new() -> Case {
        let tmp = tempfile::tempdir().unwrap();
        let recipe = tmp.path().join("multi");
        std::fs::create_dir_all(&recipe).unwrap();
        let text = std::fs::read_to_string(repo().join("tests/reuse/multi/recipe.yaml"));
        std::fs::write(recipe.join("recipe.yaml"), text.unwrap()).unwrap();
        Case { tmp, recipe }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// `cleave ARGS` as machine `machine` runs it: its own cache dir and
    /// HOME; the S3 credentials in its environment.
    fn cleave(&self, machine: &str, args: &[&str]) -> Output {
        let home = self.path(&format!("home-{machine}"));
        std::fs::create_dir_all(&home).unwrap();
        Command::new(env!("CARGO_BIN_EXE_cleave"))
            .args(args)
            .arg("--cache-dir")
            .arg(self.path(&format!("cache-{machine}")))
            .env("HOME", &home)
            .env("AWS_ACCESS_KEY_ID", "testing-key")
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .env("NO_COLOR", "1")
            .current_dir(self.tmp.path())
            .output()
            .expect("run cleave")
    }

    /// `cleave build` on machine `machine` into `out-MACHINE`.
    fn build(&self, machine: &str, extra: &[&str]) -> Output {
        let out = self.path(&format!("out-{machine}"));
        let recipe = self.recipe.display().to_string();
        let out = out.display().to_string();
        let stg = self.path("stg").display().to_string();
        let mut args = vec![
            "build",
            "--recipe",
            &recipe,
            "--output-dir",
            &out,
            "--staging-root",
            &stg,
        ];
        args.extend_from_slice(extra);
        self.cleave(machine, &args)
    }

    fn runs(&self) -> usize {
        std::fs::read_to_string(self.path("runs.log"))
            .unwrap_or_default()
            .lines()
            .count()
    }
}

/// Every archive of an output channel, by file name, with its bytes.
fn archives(channel: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut found = BTreeMap::new();
    for subdir in ["noarch", "linux-64"] {
        for entry in std::fs::read_dir(channel.join(subdir))
            .into_iter()
            .flatten()
        {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".conda") {
                found.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    found
}

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
