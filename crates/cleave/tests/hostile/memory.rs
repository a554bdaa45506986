//! Every read of foreign data is bounded by the size its format allows,
//! and checked before it is read: a helper's 2 GiB sparse blob or
//! `entry.json`, a remote index of 300 MB, an index that is a link to
//! `/dev/zero`, a compile entry that says its compile printed 65 MiB.
//! Each build runs with 512 MiB of data memory: a read that is not bounded
//! aborts it.

use std::fs::File;

use std::process::Command;

use serde_json::{Value, json};

use super::common::machines::{Machines, archives};
use super::common::{assert_success, repo, stderr};
use super::{LIMIT, Portable, bounded, build, forged_helper, key_of, keys, with_memory_limit};

const MEMORY_MIB: u64 = 512;

/// Machine `machine`'s build, with extra arguments and environment, under
/// the memory limit.
fn limited_build(
    case: &Machines,
    machine: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let _ = std::fs::remove_dir_all(case.path("stg"));
    let args = case.build_args(machine, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let command = with_memory_limit(case.command(machine, &args, env), MEMORY_MIB);
    bounded(command, LIMIT).0
}

/// A sparse file of `size` bytes: no disk, but that many bytes to read.
fn sparse(path: &std::path::Path, size: u64) {
    File::create(path).unwrap().set_len(size).unwrap();
}

#[test]
fn a_helper_s_huge_sparse_files_are_refused_by_their_size() {
    let case = Machines::new();
    assert_success(&build(&case, "a", &[]));
    let key = key_of(&case, "a", "multi-data");
    let helper = forged_helper(case.tmp.path()).display().to_string();
    // A blob 2 GiB long where the manifest says 1,967 bytes; then an
    // `entry.json` of 2 GiB.
    let blob_case = case.path("forged/blob").join(&key);
    let entry = Portable::export(&case, "a", &key, &blob_case);
    let blob = entry.files["trees"]["package"][0]["blob"].as_str().unwrap();
    sparse(&blob_case.join("blobs").join(blob), 2 << 30);
    let meta_case = case.path("forged/meta").join(&key);
    Portable::export(&case, "a", &key, &meta_case);
    sparse(&meta_case.join("entry.json"), 2 << 30);

    for (i, (what, said)) in [
        ("blob", "not the size the manifest gives"),
        ("meta", "larger than"),
    ]
    .into_iter()
    .enumerate()
    {
        let forged = case.path("forged").join(what).display().to_string();
        let machine = format!("b{i}");
        let b = limited_build(
            &case,
            &machine,
            &["--cache-helper", &helper],
            &[("FORGED", &forged)],
        );
        let printed = stderr(&b);
        assert_success(&b);
        assert!(printed.contains(said), "{what}: {printed}");
        assert_eq!(
            archives(&case.path("out-a")),
            archives(&case.path(&format!("out-{machine}")))
        );
    }
}

#[test]
fn a_shared_directory_s_huge_or_endless_index_is_refused() {
    let case = Machines::new();
    assert_success(&build(&case, "a", &[]));
    let keys = keys(&case, "a");
    // An index of 300 MB (sparse) for every entry.
    let big = case.path("big/cleave-v1/entries");
    std::fs::create_dir_all(&big).unwrap();
    for key in &keys {
        sparse(&big.join(key), 300 << 20);
    }
    let url = format!("file://{}", case.path("big").display());
    let b = limited_build(
        &case,
        "b",
        &["--remote", &url, "--remote-mode", "read-only"],
        &[],
    );
    let printed = stderr(&b);
    assert_success(&b);
    assert!(printed.contains("larger than"), "{printed}");
    assert_eq!(case.runs(), 8, "{printed}");

    // An index that is a link to /dev/zero.
    let zero = case.path("zero/cleave-v1/entries");
    std::fs::create_dir_all(&zero).unwrap();
    for key in &keys {
        std::os::unix::fs::symlink("/dev/zero", zero.join(key)).unwrap();
    }
    let url = format!("file://{}", case.path("zero").display());
    let c = limited_build(
        &case,
        "c",
        &["--remote", &url, "--remote-mode", "read-only"],
        &[],
    );
    let printed = stderr(&c);
    assert_success(&c);
    assert!(printed.contains("not a regular file"), "{printed}");
    assert_eq!(case.runs(), 12, "{printed}");
}

#[test]
fn a_compile_entry_that_printed_more_than_a_compile_may_is_compiled_again() {
    let case = Machines::new();
    std::fs::write(case.path("x.c"), "int f(void) { return 2; }\n").unwrap();
    let helper = repo().join("examples/cache-helpers/dir-helper.py");
    let kept = case.path("helper-dir");
    let cc = |machine: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cleave"));
        command
            .args(["cc", "cc", "-c", "x.c", "-o", "x.o"])
            .env("CLEAVE_CACHE_DIR", case.path(&format!("cache-{machine}")))
            .env("CLEAVE_CACHE_HELPER", &helper)
            .env("CLEAVE_HELPER_DIR", &kept)
            .env("HOME", case.path(&format!("home-{machine}")))
            .current_dir(case.tmp.path());
        let (out, _) = bounded(command, LIMIT);
        assert_success(&out);
        out
    };
    cc("a");
    // The helper's copy of the result now says the compile printed 65 MiB
    // on stderr.
    let mut forged = 0;
    for dir in std::fs::read_dir(&kept).unwrap() {
        let dir = dir.unwrap().path();
        let sealed: Value =
            serde_json::from_slice(&std::fs::read(dir.join("entry.json")).unwrap()).unwrap();
        if sealed["meta"]["extra"]["kind"] != "compile" {
            continue;
        }
        let mut entry = Portable {
            dir: dir.clone(),
            meta: sealed["meta"].clone(),
            files: serde_json::from_slice(&std::fs::read(dir.join("files.json")).unwrap()).unwrap(),
        };
        let printed = vec![b'!'; 65 << 20];
        let blob = entry.blob(&printed);
        let items = entry.files["trees"]["out"].as_array_mut().unwrap();
        items.retain(|i| i["path"] != "stderr");
        items.push(json!({
            "type": "file", "path": "stderr", "blob": blob, "size": printed.len(),
            "mode": 0o644, "mtime": [0, 0]
        }));
        entry.seal();
        forged += 1;
    }
    assert_eq!(forged, 1);
    std::fs::remove_file(case.path("x.o")).unwrap();
    let b = cc("b");
    assert!(
        b.stderr.len() < 1 << 20,
        "{} bytes on stderr",
        b.stderr.len()
    );
    assert!(case.path("x.o").is_file());
    let stats = case.cleave("b", &["cache", "stats", "--json"]);
    let stats: Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["compile"]["hits"], 0, "{stats:#}");
    let misses = &stats["compile"]["counts"]["misses"];
    assert_eq!(misses["damaged entry recompiled"], 1, "{stats:#}");
}
