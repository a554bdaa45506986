//! A writer killed with SIGKILL at any moment leaves no entry that restores
//! wrong.
//!
//! The test binary runs itself again as the writer: a process that stores
//! the same tree under new keys, one after another, until it is killed.
//! After each kill the store must hold only whole entries, each restoring
//! the tree exactly, with nothing left in `tmp/` once the store is opened.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cleave_cache::store::{Capture, Select, Target, TreeSource};
use cleave_cache::{Digest, Inputs, Store};

/// Set in the writer process: the store and the tree to capture, joined by
/// a newline.
const WRITER: &str = "CLEAVE_CACHE_CRASH_WRITER";
const TEST: &str = "a_writer_killed_at_any_moment_leaves_only_whole_entries";

/// Stores `tree` again and again, each time under a key of its own.
fn write_until_killed(store: &Path, tree: &Path) -> ! {
    let store = Store::open(store).unwrap();
    let mut round = 0u64;
    loop {
        round += 1;
        let mut inputs = Inputs::new();
        inputs.insert("round", round.to_string());
        store
            .put(&Capture {
                name: "crash",
                inputs: &inputs,
                trees: vec![TreeSource {
                    name: "work",
                    dir: tree,
                    select: Select::All,
                }],
                roots: vec![],
                extra: serde_json::Value::Null,
            })
            .unwrap();
    }
}

/// Relative path to contents of every file below `root`.
fn contents(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for found in std::fs::read_dir(&dir).unwrap() {
            let path = found.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let held = std::fs::read(&path).unwrap();
                out.insert(path.strip_prefix(root).unwrap().to_path_buf(), held);
            }
        }
    }
    out
}

#[test]
fn a_writer_killed_at_any_moment_leaves_only_whole_entries() {
    if let Some(paths) = std::env::var_os(WRITER) {
        let paths = paths.into_string().unwrap();
        let (store, tree) = paths.split_once('\n').unwrap();
        write_until_killed(Path::new(store), Path::new(tree));
    }
    let cache = tempfile::tempdir().unwrap();
    let tree = tempfile::tempdir().unwrap();
    // Enough files that a put takes a while, so that kills land inside one.
    for i in 0..100u32 {
        let dir = tree.path().join(format!("d{}", i % 10));
        std::fs::create_dir_all(&dir).unwrap();
        let body: Vec<u8> = (0..4096 + i).map(|b| (b * 7 + i) as u8).collect();
        std::fs::write(dir.join(format!("f{i}")), body).unwrap();
    }
    let expected = contents(tree.path());
    let (mut whole, mut interrupted) = (0, 0);
    for round in 0..16u64 {
        let mut writer = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
            .env(
                WRITER,
                format!("{}\n{}", cache.path().display(), tree.path().display()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // From the writer's start-up to well into its puts (close to half
        // a second); the last writer as soon as it has stored an entry,
        // however busy the machine.
        if round < 15 {
            std::thread::sleep(Duration::from_millis(5 + 2 * round * round));
        } else {
            let deadline = Instant::now() + Duration::from_secs(60);
            let entries = cache.path().join("entries");
            while std::fs::read_dir(&entries).is_ok_and(|mut d| d.next().is_none()) {
                assert!(Instant::now() < deadline, "the writer stored nothing");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        writer.kill().unwrap();
        writer.wait().unwrap();

        let tmp = cache.path().join("tmp");
        if std::fs::read_dir(&tmp).is_ok_and(|mut d| d.next().is_some()) {
            interrupted += 1;
        }
        let store = Store::open(cache.path()).unwrap();
        assert_eq!(
            std::fs::read_dir(&tmp).unwrap().count(),
            0,
            "round {round}: tmp/ is cleared when the store is opened"
        );
        // Every directory in entries/, read or not, must be a whole entry.
        for dir in std::fs::read_dir(cache.path().join("entries")).unwrap() {
            let name = dir.unwrap().file_name().into_string().unwrap();
            let key: Digest = name.parse().unwrap();
            let entry = store
                .get(&key)
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: entry {name} is not whole"));
            let target = tempfile::tempdir().unwrap();
            entry
                .restore(
                    &[Target {
                        tree: "work",
                        dir: target.path(),
                        select: Select::All,
                    }],
                    &[],
                )
                .unwrap_or_else(|e| panic!("round {round}: entry {name}: {e}"));
            assert!(
                contents(target.path()) == expected,
                "round {round}: entry {name} restores other contents"
            );
            whole += 1;
        }
        assert!(store.verify(false).unwrap().is_empty(), "round {round}");
        // The next writer starts from an empty store (blobs included), so
        // that each round's entries are its own.
        store.clean().unwrap();
    }
    // Puts finished, and kills fell inside others.
    assert!(
        whole > 0 && interrupted > 0,
        "{whole} whole entries, {interrupted} writers killed in a put"
    );
}
