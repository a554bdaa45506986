//! A 20,000-file / 1 GiB staging entry through remote stores on loopback:
//! upload and restore (fetch into an empty local store, then restore) from
//! an S3 server (moto), Redis, a REAPI server (BuildGrid) and a shared
//! directory, against a restore from the local store; requests and bytes
//! moved.
//!
//! Each remote's restore is compared with local restores of the same
//! entry timed just before and just after it, so that both see the same
//! machine: restores get slower as a run goes on (a second local restore
//! in the same state took 1.9 s where the first took 0.7 s, in memory),
//! and a local restore timed only before would flatter itself. Each timed
//! step starts once the page cache holds nothing dirty (`sync`).
//!
//! `cargo bench -p cleave-cache --bench remote` (moto_server,
//! redis-server and bgd on PATH: `scripts/prerequisites --with-oracles`).
//! BENCH_FILES and BENCH_MIB shrink the entry; BENCH_REMOTES picks remotes
//! (`s3,redis,reapi,dir`, all by default). Prints Markdown rows.

use std::path::Path;
use std::time::{Duration, Instant};

use cleave_cache::remote::{RemoteConfig, RemoteUrl, Remotes};
use cleave_cache::store::{Capture, Entry, Select, TreeSource};
use cleave_cache::{Inputs, Store};

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/services/mod.rs"]
mod services;
mod tree;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Writes out what earlier steps left dirty in the page cache, so that
/// a timed step does not pay for the writeback of the one before it (on
/// a slow disk that alone moved a fetch from 1.5 s to 7 s between runs).
fn settle() {
    let _ = std::process::Command::new("sync").status();
}

/// A local restore of the entry into `dir`, timed after a [`settle`],
/// then removed again.
fn local_restore(entry: &Entry, dir: &Path) -> Duration {
    settle();
    let took = restore(entry, dir);
    let _ = std::fs::remove_dir_all(dir);
    took
}

/// How long restoring the entry's prefix into `dir` takes.
fn restore(entry: &Entry, dir: &Path) -> Duration {
    let started = Instant::now();
    common::restore(entry, dir);
    started.elapsed()
}

#[allow(clippy::print_stdout, reason = "a bench prints its table")]
fn main() {
    let files = env_usize("BENCH_FILES", 20_000);
    let mib = env_usize("BENCH_MIB", 1024);
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let bytes = tree::make_tree(&src, files, mib * 1024 * 1024 / files);
    let store_a = Store::open(work.path().join("a")).unwrap();
    let mut inputs = Inputs::new();
    inputs.insert("bench", "remote");
    let started = Instant::now();
    let entry = store_a
        .put(&Capture {
            name: "bench",
            inputs: &inputs,
            trees: vec![TreeSource {
                name: "prefix",
                dir: &src,
                select: Select::All,
            }],
            roots: vec![("prefix", &src)],
            extra: serde_json::Value::Null,
        })
        .unwrap()
        .entry;
    let put = started.elapsed();
    println!(
        "entry: {files} files, {:.0} MiB; local store: put {:.2} s\n",
        bytes as f64 / 1048576.0,
        put.as_secs_f64(),
    );
    println!(
        "| remote | upload | requests up | local restore (before, after) | remote restore (fetch + restore) | vs local restore | requests down | bytes down |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let picked = std::env::var("BENCH_REMOTES").unwrap_or_else(|_| "s3,redis,reapi,dir".into());
    let picked: Vec<&str> = picked.split(',').collect();

    let s3 = services::s3();
    let redis = services::redis();
    let grid = services::buildgrid(
        services::Grid {
            storage: services::GridStorage::Memory("4GB"),
            ..services::Grid::default()
        },
        "bench",
    );
    let shared = work.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let remotes = [
        ("s3", "S3 (moto)", services::s3_url(&s3, "bench")),
        (
            "redis",
            "Redis",
            format!("redis://127.0.0.1:{}/0", redis.port),
        ),
        (
            "reapi",
            "REAPI (BuildGrid)",
            services::grpc_url(&grid, "bench"),
        ),
        (
            "dir",
            "shared directory",
            format!("file://{}", shared.display()),
        ),
    ];
    for (i, (name, label, url)) in remotes.iter().enumerate() {
        if !picked.contains(name) {
            continue;
        }
        let url = RemoteUrl::parse_with(url, &services::s3_env).unwrap();
        let mut config = RemoteConfig::new(url);
        config.timeout = Duration::from_secs(120);
        let mut up = Remotes::new(vec![config.clone()], &store_a);
        let started = Instant::now();
        up.push(&entry, &mut |w| panic!("{w}"));
        let upload = started.elapsed();
        let up_stats = up.stats()[0].clone();
        drop(up);

        let local_before = local_restore(&entry, &work.path().join(format!("local{i}")));

        let store_b = Store::open(work.path().join(format!("b{i}"))).unwrap();
        let mut down = Remotes::new(vec![config], &store_b);
        settle();
        let started = Instant::now();
        let (fetched, _) = down
            .fetch(&store_b, &entry.meta().key, None, &mut |w| panic!("{w}"))
            .unwrap();
        let fetch = started.elapsed();
        let restored = restore(&fetched, &work.path().join(format!("restore{i}")));
        let total = started.elapsed();
        let _ = std::fs::remove_dir_all(work.path().join(format!("restore{i}")));
        let local_after = local_restore(&entry, &work.path().join(format!("after{i}")));
        let local = (local_before + local_after) / 2;
        let down_stats = down.stats()[0].clone();
        println!(
            "| {label} | {:.2} s | {} | {:.2} s ({:.2}, {:.2}) | {:.2} s ({:.2} + {:.2}) | {:.2}x | {} | {:.0} MiB |",
            upload.as_secs_f64(),
            up_stats.requests,
            local.as_secs_f64(),
            local_before.as_secs_f64(),
            local_after.as_secs_f64(),
            total.as_secs_f64(),
            fetch.as_secs_f64(),
            restored.as_secs_f64(),
            total.as_secs_f64() / local.as_secs_f64(),
            down_stats.requests,
            down_stats.bytes_down as f64 / 1048576.0
        );
        drop(fetched);
        let _ = std::fs::remove_dir_all(work.path().join(format!("b{i}")));
    }
}
