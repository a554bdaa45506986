//! Capture and restore of a 20,000-file / 1 GiB tree against `cp -a`, and
//! fingerprinting of a 50,000-file source tree against `b3sum` (walked as
//! a `path:` source is by default, honouring .gitignore files).
//!
//! `cargo bench -p cleave-cache --bench store` (set BENCH_DIR to choose the
//! disk, BENCH_ONLY_KEYS=1 to skip the 1 GiB part; b3sum must be on PATH). Prints Markdown rows; every
//! figure is the median of 3 runs with a warm page cache.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cleave_cache::fingerprint::{Fingerprinter, Walk};
use cleave_cache::store::{Capture, Select, Target, TreeSource};
use cleave_cache::{Inputs, Store};

mod tree;
use tree::make_tree;

const RUNS: usize = 3;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Times `f` after flushing dirty pages, so that no operation pays for the
/// writeback of the one before.
fn time(f: impl FnOnce()) -> Duration {
    sh("sync");
    let start = Instant::now();
    f();
    start.elapsed()
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn sh(cmd: &str) {
    let status = Command::new("sh").arg("-c").arg(cmd).status().unwrap();
    assert!(status.success(), "{cmd}");
}

fn main() {
    let base = std::env::var_os("BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let work = tempfile::tempdir_in(base).unwrap();
    let w = work.path();

    let mut report = String::new();
    if std::env::var_os("BENCH_ONLY_KEYS").is_none() {
        store_vs_cp(w, &mut report);
    }
    keys_vs_b3sum(w, &mut report);
    std::io::Write::write_all(&mut std::io::stdout(), report.as_bytes()).expect("stdout");
}

/// Capture and restore of 20,000 files / 1 GiB against `cp -a`.
fn store_vs_cp(w: &Path, out: &mut String) {
    let src = w.join("src");
    let bytes = make_tree(&src, 20_000, 53_687);
    let store = Store::open(w.join("store")).unwrap();
    let inputs = Inputs::new();
    let mut puts = Vec::new();
    for run in 0..RUNS {
        // A fresh store each run, so every blob is written.
        let _ = std::fs::remove_dir_all(w.join("store"));
        let store = Store::open(w.join("store")).unwrap();
        let mut i = inputs.clone();
        i.insert("run", run.to_string());
        puts.push(time(|| {
            store
                .put(&Capture {
                    name: "bench",
                    inputs: &i,
                    trees: vec![TreeSource {
                        name: "work",
                        dir: &src,
                        select: Select::All,
                    }],
                    roots: vec![("root", &src)],
                    extra: serde_json::Value::Null,
                })
                .unwrap();
        }));
    }
    let key = {
        let mut i = inputs.clone();
        i.insert("run", (RUNS - 1).to_string());
        i.key()
    };
    let entry = store.get(&key).unwrap().unwrap();
    let (mut restores, mut copies) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let dest = w.join("restored");
        restores.push(time(|| {
            entry
                .restore(
                    &[Target {
                        tree: "work",
                        dir: &dest,
                        select: Select::All,
                    }],
                    &[("root", &src)],
                )
                .unwrap();
        }));
        std::fs::remove_dir_all(&dest).unwrap();
        let copy = w.join("copied");
        copies.push(time(|| {
            sh(&format!("cp -a {} {}", src.display(), copy.display()))
        }));
        std::fs::remove_dir_all(&copy).unwrap();
    }
    let (put, restore, cp) = (median(puts), median(restores), median(copies));
    writeln!(
        out,
        "tree: 20,000 files, {:.2} GiB\n",
        bytes as f64 / (1u64 << 30) as f64
    )
    .unwrap();
    writeln!(out, "| operation | time | vs `cp -a` |").unwrap();
    writeln!(out, "|---|---:|---:|").unwrap();
    writeln!(out, "| `cp -a` of the tree | {} | 1.00x |", secs(cp)).unwrap();
    writeln!(
        out,
        "| capture (hash + store every blob) | {} | {:.2}x |",
        secs(put),
        put.as_secs_f64() / cp.as_secs_f64()
    )
    .unwrap();
    writeln!(
        out,
        "| restore (copy + verify every blob) | {} | {:.2}x |",
        secs(restore),
        restore.as_secs_f64() / cp.as_secs_f64()
    )
    .unwrap();
    std::fs::remove_dir_all(&src).unwrap();
    std::fs::remove_dir_all(w.join("store")).unwrap();
}

/// Fingerprints of a 50,000-file source tree against `b3sum`.
fn keys_vs_b3sum(w: &Path, out: &mut String) {
    let source = w.join("source");
    let bytes = make_tree(&source, 50_000, 4096);
    let mb = bytes as f64 / 1e6;
    let (mut cold, mut warm, mut b3) = (Vec::new(), Vec::new(), Vec::new());
    let walk = Walk {
        gitignore: true,
        ..Walk::default()
    };
    for run in 0..RUNS {
        let fp = Fingerprinter::new(w.join(format!("fp{run}")));
        cold.push(time(|| {
            fp.tree(&source, &walk).unwrap();
        }));
        warm.push(time(|| {
            let t = fp.tree(&source, &walk).unwrap();
            assert_eq!(t.hashed, 0);
        }));
        b3.push(time(|| {
            sh(&format!(
                "find {} -type f -print0 | xargs -0 b3sum --no-names > /dev/null",
                source.display()
            ))
        }));
    }
    let (cold, warm, b3) = (median(cold), median(warm), median(b3));
    writeln!(out, "\nsource: 50,000 files, {mb:.0} MB\n").unwrap();
    writeln!(out, "| operation | time | throughput | vs `b3sum` |").unwrap();
    writeln!(out, "|---|---:|---:|---:|").unwrap();
    writeln!(
        out,
        "| `b3sum` of every file | {} | {:.0} MB/s | 100% |",
        secs(b3),
        mb / b3.as_secs_f64()
    )
    .unwrap();
    writeln!(
        out,
        "| key, cold (no index) | {} | {:.0} MB/s | {:.0}% |",
        secs(cold),
        mb / cold.as_secs_f64(),
        100.0 * b3.as_secs_f64() / cold.as_secs_f64()
    )
    .unwrap();
    writeln!(
        out,
        "| key, warm (nothing changed) | {:.0} ms | | |",
        warm.as_secs_f64() * 1000.0
    )
    .unwrap();
}
