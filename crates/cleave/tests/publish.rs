//! `cleave publish --to URL PKG...` and `cleave build --publish-to URL`:
//! packages copied into a channel and the channel indexed, in one step, for
//! a local directory, an S3 bucket (moto) and a quetz server, each started
//! on 127.0.0.1 and stopped by PID; py-rattler installs from every channel
//! published to. Publishing at once to one channel from two processes
//! leaves both packages listed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::quetz::Quetz;
use common::{assert_success, oracle, repo, stderr, wait_all};

#[path = "../../cleave-cache/tests/services/mod.rs"]
mod services;

/// The S3 secret in the environment of every run (never printed).
const SECRET: &str = "testing-secret-0123456789";

fn cleave(tmp: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cleave"))
        .args(args)
        .env("CLEAVE_CACHE_DIR", tmp.join("cache"))
        .env("AWS_ACCESS_KEY_ID", "testing-key")
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .current_dir(tmp)
        .output()
        .expect("run cleave")
}

/// Builds the three recipes of `tests/workflow/stack` into `tmp/built`;
/// returns the package files.
fn stack(tmp: &Path) -> Vec<PathBuf> {
    let dir = repo().join("tests/workflow/stack");
    let built = cleave(
        tmp,
        &[
            "build",
            "--recipe-dir",
            dir.to_str().unwrap(),
            "--output-dir",
            "built",
            "--staging-root",
            "stg",
        ],
        &[],
    );
    assert_success(&built);
    packages(&tmp.join("built"))
}

fn packages(channel: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(channel.join("noarch"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".conda"))
        .collect();
    found.sort();
    found
}

fn args<'a>(to: &'a str, files: &'a [PathBuf]) -> Vec<&'a str> {
    let mut args = vec!["publish", "--to", to];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    args
}

/// The package file names a local channel's noarch repodata lists.
fn listed(channel: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(channel.join("noarch/repodata.json")).unwrap();
    let repodata: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut names: Vec<String> = repodata["packages.conda"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    names.sort();
    names
}

#[test]
fn publishing_to_a_directory_makes_a_channel_clients_install_from() {
    let tmp = tempfile::tempdir().unwrap();
    let files = stack(tmp.path());
    let channel = tmp.path().join("channel");
    let url = format!("file://{}", channel.display());
    let published = cleave(tmp.path(), &args(&url, &files), &[]);
    assert_success(&published);
    let report = String::from_utf8_lossy(&published.stdout);
    assert!(
        report.contains("indexed noarch: 3 packages listed"),
        "{report}"
    );
    let checked = oracle(&channel, &tmp.path().join("env"), &["app"], &["stack-app"]);
    assert!(checked.to_string().contains("libb on liba"), "{checked}");
    // Again: nothing to do; a relative path names the same channel.
    let again = cleave(tmp.path(), &args("channel", &files), &[]);
    assert_success(&again);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("already there"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    // A URL that names no channel is a usage error.
    let bad = cleave(tmp.path(), &args("ftp://host/x", &files), &[]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}

#[test]
fn build_publish_to_publishes_what_it_built() {
    let tmp = tempfile::tempdir().unwrap();
    let channel = tmp.path().join("published");
    let dir = repo().join("tests/workflow/stack");
    let built = cleave(
        tmp.path(),
        &[
            "build",
            "--recipe-dir",
            dir.to_str().unwrap(),
            "--output-dir",
            "out",
            "--staging-root",
            "stg",
            "--publish-to",
            channel.to_str().unwrap(),
        ],
        &[],
    );
    assert_success(&built);
    assert_eq!(listed(&channel).len(), 3, "{}", stderr(&built));
    oracle(&channel, &tmp.path().join("env"), &["app"], &[]);
}

#[test]
fn two_publishers_at_once_both_end_up_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let files = stack(tmp.path());
    let channel = tmp.path().join("channel");
    for round in 0..4 {
        let dir = channel.join(format!("round-{round}"));
        // Two processes, one package each, started together.
        let children: Vec<_> = files[..2]
            .iter()
            .map(|file| {
                Command::new(env!("CARGO_BIN_EXE_cleave"))
                    .args(["publish", "--to"])
                    .arg(&dir)
                    .arg(file)
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut child in children {
            assert!(child.wait().unwrap().success());
        }
        assert_eq!(listed(&dir).len(), 2, "round {round}");
    }
}

#[test]
fn publishing_to_an_s3_bucket_makes_a_channel_clients_install_from() {
    let s3 = services::s3();
    public_bucket(&s3);
    let tmp = tempfile::tempdir().unwrap();
    let files = stack(tmp.path());
    let url = services::s3_url(&s3, "conda/team");
    let published = cleave(tmp.path(), &args(&url, &files), &[]);
    assert_success(&published);
    let report = String::from_utf8_lossy(&published.stdout);
    assert!(
        report.contains("indexed noarch: 3 packages listed"),
        "{report}"
    );
    assert!(!report.contains(SECRET) && !stderr(&published).contains(SECRET));
    // moto serves the bucket over plain http: a channel URL for clients.
    let served = format!("http://127.0.0.1:{}/cache/conda/team", s3.port);
    oracle(Path::new(&served), &tmp.path().join("env"), &["app"], &[]);
    // A different package under a published name is refused.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let renamed = other.join(files[0].file_name().unwrap());
    let mut bytes = std::fs::read(&files[1]).unwrap();
    bytes.extend_from_slice(b"not the same");
    std::fs::write(&renamed, bytes).unwrap();
    let refused = cleave(tmp.path(), &args(&url, &[renamed]), &[]);
    assert_eq!(refused.status.code(), Some(1));
}

#[test]
fn two_publishers_at_once_to_a_bucket_both_end_up_listed() {
    let s3 = services::s3();
    public_bucket(&s3);
    let tmp = tempfile::tempdir().unwrap();
    let files = stack(tmp.path());
    for round in 0..3 {
        let url = services::s3_url(&s3, &format!("round-{round}"));
        let children: Vec<_> = files[..2]
            .iter()
            .map(|file| {
                Command::new(env!("CARGO_BIN_EXE_cleave"))
                    .args(["publish", "--to", &url])
                    .arg(file)
                    .env("AWS_ACCESS_KEY_ID", "testing-key")
                    .env("AWS_SECRET_ACCESS_KEY", SECRET)
                    .output_spawned()
            })
            .collect();
        for output in wait_all(children) {
            assert_success(&output);
        }
        let served = format!(
            "http://127.0.0.1:{}/cache/round-{round}/noarch/repodata.json",
            s3.port
        );
        let repodata = http_get(&served);
        for file in &files[..2] {
            let name = file.file_name().unwrap().to_string_lossy();
            assert!(
                repodata.contains(name.as_ref()),
                "round {round}: {name} missing:\n{repodata}"
            );
        }
    }
}

#[test]
fn publishing_to_a_quetz_server_makes_a_channel_clients_install_from() {
    let quetz = Quetz::start();
    quetz.create_channel("cleave-test");
    let tmp = tempfile::tempdir().unwrap();
    let files = stack(tmp.path());
    let url = format!("quetz+http://127.0.0.1:{}/cleave-test", quetz.port);
    let published = cleave(
        tmp.path(),
        &args(&url, &files),
        &[("QUETZ_API_KEY", &quetz.key)],
    );
    assert_success(&published);
    assert!(!String::from_utf8_lossy(&published.stdout).contains(&quetz.key));
    oracle(
        Path::new(&quetz.channel_url("cleave-test")),
        &tmp.path().join("env"),
        &["app"],
        &[],
    );
    // Without a key the server refuses, and says so.
    let refused = cleave(
        tmp.path(),
        &args(&url, &files[..1]),
        &[("HOME", "/nonexistent")],
    );
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
}

/// Spawns with piped output.
trait SpawnPiped {
    fn output_spawned(&mut self) -> std::process::Child;
}

impl SpawnPiped for Command {
    fn output_spawned(&mut self) -> std::process::Child {
        self.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// Lets anyone read the objects of moto's bucket, as a public channel's
/// bucket policy does: clients then read the channel over plain http.
fn public_bucket(s3: &services::Service) {
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::cache/*"}]}"#;
    let put = Command::new("curl")
        .args([
            "-sf",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            policy,
        ])
        .arg(format!("http://127.0.0.1:{}/cache?policy", s3.port))
        .output()
        .unwrap();
    assert!(put.status.success(), "{}", stderr(&put));
}

/// The body of a plain HTTP GET.
fn http_get(url: &str) -> String {
    let output = Command::new("curl").args(["-sf", url]).output().unwrap();
    assert!(output.status.success(), "GET {url}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}
