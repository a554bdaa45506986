//! The store end to end on real directories: capture, restore at the same
//! and at other paths, gc, and what the surroundings do to it (links and
//! unwritable files in a target, killed writers, named pipes, readers
//! meeting gc, a full disk). Damaged entries are in [`damage`].

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use cleave_cache::store::{Capture, GcPolicy, Select, Target, TreeSource};
use cleave_cache::{CacheError, Digest, ErrorKind, Inputs, Store};
use filetime::FileTime;

#[path = "../common/mod.rs"]
mod common;
mod damage;

use common::{TinyDisk, entry_dir, mkfifo, reseal, within_10s};

struct Built {
    root: tempfile::TempDir,
}

impl Built {
    fn prefix(&self) -> PathBuf {
        self.root.path().join("prefix")
    }
    fn work(&self) -> PathBuf {
        self.root.path().join("work")
    }
}

/// A staging result: a prefix with files of every kind and a work dir.
fn build() -> Built {
    let root = tempfile::tempdir().unwrap();
    let b = Built { root };
    let (p, w) = (b.prefix(), b.work());
    std::fs::create_dir_all(p.join("lib")).unwrap();
    std::fs::create_dir_all(p.join("share/empty")).unwrap();
    std::fs::create_dir_all(w.join("build")).unwrap();
    std::fs::write(p.join("lib/libz.so.1"), b"\x7fELF\0\0rpath\0").unwrap();
    std::fs::write(p.join("lib/copy.so"), b"\x7fELF\0\0rpath\0").unwrap();
    symlink("libz.so.1", p.join("lib/libz.so")).unwrap();
    symlink(p.join("lib/libz.so.1"), p.join("lib/abs.so")).unwrap();
    symlink("nowhere", p.join("lib/broken")).unwrap();
    std::fs::create_dir_all(p.join("bin")).unwrap();
    std::fs::write(p.join("bin/tool"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(p.join("bin/tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cmake = format!(
        "CMAKE_INSTALL_PREFIX={}\nSRC={}\n",
        p.display(),
        w.display()
    );
    std::fs::write(w.join("build/CMakeCache.txt"), cmake).unwrap();
    let mut binary = b"\x7fELF\0".to_vec();
    binary.extend_from_slice(p.join("lib").as_os_str().as_encoded_bytes());
    binary.extend_from_slice(b"\0end");
    std::fs::write(w.join("build/a.out"), &binary).unwrap();
    filetime::set_file_mtime(
        w.join("build/a.out"),
        FileTime::from_unix_time(1_600_000_000, 123),
    )
    .unwrap();
    b
}

fn inputs(script: &str) -> Inputs {
    let mut i = Inputs::new();
    i.insert("script", script);
    i
}

fn put(store: &Store, b: &Built, script: &str) -> Digest {
    let inputs = inputs(script);
    let prefix = b.prefix();
    let work = b.work();
    let new: Vec<PathBuf> = [
        "lib/libz.so.1",
        "lib/copy.so",
        "lib/libz.so",
        "lib/abs.so",
        "lib/broken",
        "bin/tool",
        "share/empty",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    store
        .put(&Capture {
            name: "lib",
            inputs: &inputs,
            trees: vec![
                TreeSource {
                    name: "prefix",
                    dir: &prefix,
                    select: Select::Only(&new),
                },
                TreeSource {
                    name: "work",
                    dir: &work,
                    select: Select::All,
                },
            ],
            roots: vec![("prefix", &prefix), ("work", &work)],
            extra: serde_json::json!({"run_exports": {}}),
        })
        .unwrap()
        .entry
        .meta()
        .key
}

fn restore(
    store: &Store,
    key: &Digest,
    at: &Path,
) -> Result<cleave_cache::store::Restored, CacheError> {
    let prefix = at.join("prefix");
    let work = at.join("work");
    let entry = store.get(key)?.expect("the entry is in the store");
    entry.restore(
        &[
            Target {
                tree: "prefix",
                dir: &prefix,
                select: Select::All,
            },
            Target {
                tree: "work",
                dir: &work,
                select: Select::All,
            },
        ],
        &[("prefix", &prefix), ("work", &work)],
    )
}

fn blob_files(store: &Store) -> Vec<PathBuf> {
    common::blob_files(store.root())
}

#[test]
fn restore_at_the_same_paths_gives_back_every_kind_of_entry() {
    let cache = tempfile::tempdir().unwrap();
    let store = Store::open(cache.path()).unwrap();
    let b = build();
    let key = put(&store, &b, "s");
    // Same place, as the engine does with key-derived build dirs.
    std::fs::remove_dir_all(b.prefix()).unwrap();
    std::fs::remove_dir_all(b.work()).unwrap();
    let done = restore(&store, &key, b.root.path()).unwrap();
    assert_eq!(done.relocated, 0);
    let p = b.prefix();
    assert_eq!(
        std::fs::read_link(p.join("lib/libz.so")).unwrap(),
        Path::new("libz.so.1")
    );
    assert_eq!(
        std::fs::read_link(p.join("lib/abs.so")).unwrap(),
        p.join("lib/libz.so.1")
    );
    assert_eq!(
        std::fs::read_link(p.join("lib/broken")).unwrap(),
        Path::new("nowhere")
    );
    assert!(p.join("share/empty").is_dir());
    assert_eq!(
        std::fs::metadata(p.join("bin/tool")).unwrap().mode() & 0o777,
        0o755
    );
    let a_out = std::fs::metadata(b.work().join("build/a.out")).unwrap();
    assert_eq!((a_out.mtime(), a_out.mtime_nsec()), (1_600_000_000, 123));
    // Two files with the same contents share one blob.
    let restored_paths = &done.trees["prefix"];
    assert!(restored_paths.contains(&PathBuf::from("lib/copy.so")));
    let before = blob_files(&store).len();
    put(&store, &b, "another key, same files");
    assert_eq!(
        blob_files(&store).len(),
        before,
        "a second entry of the same files adds no blob"
    );
}

#[test]
fn a_selective_restore_writes_only_the_chosen_items() {
    let cache = tempfile::tempdir().unwrap();
    let store = Store::open(cache.path()).unwrap();
    let b = build();
    let key = put(&store, &b, "s");
    let other = tempfile::tempdir().unwrap();
    let (p, w) = (other.path().join("prefix"), other.path().join("work"));
    let chosen = [PathBuf::from("build/CMakeCache.txt")];
    let done = store
        .get(&key)
        .unwrap()
        .unwrap()
        .restore(
            &[
                Target {
                    tree: "prefix",
                    dir: &p,
                    select: Select::All,
                },
                Target {
                    tree: "work",
                    dir: &w,
                    select: Select::Only(&chosen),
                },
            ],
            &[("prefix", &p), ("work", &w)],
        )
        .unwrap();
    assert_eq!(done.trees["work"], chosen);
    let cmake = std::fs::read_to_string(w.join("build/CMakeCache.txt")).unwrap();
    assert!(cmake.contains(&format!("SRC={}", w.display())), "{cmake}");
    assert!(!w.join("build/a.out").exists());
    assert!(p.join("lib/libz.so.1").is_file());
}

#[test]
fn restore_elsewhere_rewrites_text_binary_and_links() {
    let cache = tempfile::tempdir().unwrap();
    let store = Store::open(cache.path()).unwrap();
    let b = build();
    let key = put(&store, &b, "s");
    let other = tempfile::tempdir().unwrap();
    let done = restore(&store, &key, other.path()).unwrap();
    let (p, w) = (other.path().join("prefix"), other.path().join("work"));
    let cmake = std::fs::read_to_string(w.join("build/CMakeCache.txt")).unwrap();
    assert_eq!(
        cmake,
        format!(
            "CMAKE_INSTALL_PREFIX={}\nSRC={}\n",
            p.display(),
            w.display()
        )
    );
    // The binary keeps its length; the new path is NUL-padded.
    let old_len = std::fs::metadata(b.work().join("build/a.out"))
        .unwrap()
        .len();
    let data = std::fs::read(w.join("build/a.out")).unwrap();
    assert_eq!(data.len() as u64, old_len);
    let new_lib = p.join("lib");
    let new_lib = new_lib.as_os_str().as_encoded_bytes();
    assert_eq!(&data[5..5 + new_lib.len()], new_lib);
    assert!(data.ends_with(b"\0end"));
    assert_eq!(
        std::fs::read_link(p.join("lib/abs.so")).unwrap(),
        p.join("lib/libz.so.1")
    );
    assert_eq!(done.relocated, 2);
}

#[test]
fn a_binary_path_cannot_grow() {
    let cache = tempfile::tempdir().unwrap();
    let store = Store::open(cache.path()).unwrap();
    let b = build();
    let key = put(&store, &b, "s");
    let deeper = b
        .root
        .path()
        .join("a-much-longer-directory-name-than-before");
    let err = restore(&store, &key, &deeper).unwrap_err();
    assert!(matches!(err, CacheError::TooLong { .. }), "{err}");
    assert!(!deeper.exists(), "nothing is written before the check");
}

#[test]
fn a_link_in_the_target_is_replaced_and_never_followed() {
    let cache = tempfile::tempdir().unwrap();
    let store = Store::open(cache.path()).unwrap();
    let b = build();
    let key = put(&store, &b, "s");
    let target = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("theirs"), "not ours").unwrap();
    // A host package's link where the entry has a directory, and one where
    // it has a file: the entry's items take their places.
    std::fs::create_dir_all(target.path().join("prefix/bin")).unwrap();
    symlink(outside.path(), target.path().join("prefix/lib")).unwrap();
    symlink(
        outside.path().join("theirs"),
        target.path().join("prefix/bin/tool"),
    )
    .unwrap();
    restore(&store, &key, target.path()).unwrap();
    let lib = std::fs::symlink_metadata(target.path().join("prefix/lib")).unwrap();
    assert!(lib.is_dir());
    assert!(target.path().join("prefix/lib/libz.so.1").is_file());
    assert_eq!(
        std::fs::read_to_string(target.path().join("prefix/bin/tool")).unwrap(),
        "#!/bin/sh\n"
    );
    // Nothing outside the target was written, and the link's target stays.
    let outside_now: Vec<_> = std::fs::read_dir(outside.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside_now, ["theirs"]);
    assert_eq!(
        std::fs::read_to_string(outside.path().join("theirs")).unwrap(),
        "not ours"
    );
}

#[test]
fn a_target_that_cannot_be_written_is_its_own_error_and_keeps_the_entry() {
    let cache = tempfile::tempdir().unwrap();
    let store = Store::open(cache.path()).unwrap();
    let (key, _src) = put_files(&store, "s", &[("a", b"a\n")]);
    let target = tempfile::tempdir().unwrap();
    // A file where the target's directory goes.
    std::fs::write(target.path().join("file"), "a file").unwrap();
    let err = restore_work(&store, &key, &target.path().join("file/below")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Target, "{err}");
    assert!(err.to_string().contains("file/below"), "{err}");
    assert!(store.contains(&key));
    assert!(store.verify(false).unwrap().is_empty());
}

#[test]
fn leftovers_of_a_killed_writer_are_no_entry_and_open_or_gc_removes_them() {
    let cache = tempfile::tempdir().unwrap();
    let store = Store::open(cache.path()).unwrap();
    // What a writer killed mid-put leaves: a half-written blob and an
    // entry dir that was never renamed into place.
    let leave = || {
        std::fs::write(cache.path().join("tmp/.tmpHALF"), b"half a blob").unwrap();
        std::fs::create_dir_all(cache.path().join("tmp/entry-xyz")).unwrap();
        std::fs::write(
            cache.path().join("tmp/entry-xyz/files.json"),
            b"{\"roots\":",
        )
        .unwrap();
    };
    let left = || std::fs::read_dir(cache.path().join("tmp")).unwrap().count();
    leave();
    assert!(store.entries().unwrap().is_empty());
    store.gc(GcPolicy::default()).unwrap();
    assert_eq!(left(), 0);
    // The next open clears them too, unless a writer is at work (it holds
    // the store's lock while its files are in tmp/).
    leave();
    let writer = cleave_cache::lock::Lock::shared(&cache.path().join("lock")).unwrap();
    Store::open(cache.path()).unwrap();
    assert_eq!(left(), 2, "a writer's files are left alone");
    drop(writer);
    Store::open(cache.path()).unwrap();
    assert_eq!(left(), 0);
}

#[test]
fn gc_evicts_least_recently_used_entries_down_to_the_cap() {
    let cache = tempfile::tempdir().unwrap();
    let store = Store::open(cache.path()).unwrap();
    let mut keys = Vec::new();
    for (i, age) in [(0u8, 300i64), (1, 200), (2, 100)] {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("data"), vec![i; 1000]).unwrap();
        let inputs = inputs(&format!("entry {i}"));
        let key = inputs.key();
        store
            .put(&Capture {
                name: "x",
                inputs: &inputs,
                trees: vec![TreeSource {
                    name: "work",
                    dir: src.path(),
                    select: Select::All,
                }],
                roots: vec![],
                extra: serde_json::Value::Null,
            })
            .unwrap();
        let used = cache.path().join("entries").join(key.to_hex()).join("used");
        filetime::set_file_mtime(
            &used,
            FileTime::from_unix_time(FileTime::now().unix_seconds() - age, 0),
        )
        .unwrap();
        keys.push(key);
    }
    let report = store
        .gc(GcPolicy {
            max_size: Some(2000),
            older_than: None,
        })
        .unwrap();
    assert_eq!(report.removed.len(), 1);
    assert_eq!(
        report.removed[0].meta.key, keys[0],
        "the least recently used goes first"
    );
    assert_eq!(report.freed, 1000);
    assert_eq!(blob_files(&store).len(), 2);
    let report = store
        .gc(GcPolicy {
            max_size: None,
            older_than: Some(std::time::Duration::from_secs(150)),
        })
        .unwrap();
    assert_eq!(report.removed.len(), 1);
    assert_eq!(report.removed[0].meta.key, keys[1]);
    assert!(store.contains(&keys[2]));
    assert_eq!(store.clean().unwrap().removed.len(), 1);
    assert!(store.entries().unwrap().is_empty());
}

/// Puts `files` (name, contents) as the one tree `work` under `script`.
fn put_files(store: &Store, script: &str, files: &[(&str, &[u8])]) -> (Digest, tempfile::TempDir) {
    let src = tempfile::tempdir().unwrap();
    for (name, data) in files {
        std::fs::write(src.path().join(name), data).unwrap();
    }
    let inputs = inputs(script);
    let entry = store
        .put(&Capture {
            name: "files",
            inputs: &inputs,
            trees: vec![TreeSource {
                name: "work",
                dir: src.path(),
                select: Select::All,
            }],
            roots: vec![],
            extra: serde_json::Value::Null,
        })
        .unwrap();
    (entry.entry.meta().key, src)
}

fn restore_work(store: &Store, key: &Digest, dir: &Path) -> Result<(), CacheError> {
    let entry = store.get(key)?.ok_or(CacheError::NotFound(key.to_hex()))?;
    entry
        .restore(
            &[Target {
                tree: "work",
                dir,
                select: Select::All,
            }],
            &[],
        )
        .map(|_| ())
}

#[test]
fn leftovers_of_a_killed_removal_or_a_directory_at_a_blob_path_block_nothing() {
    let cache = tempfile::tempdir().unwrap();
    let store = Store::open(cache.path()).unwrap();
    let files: &[(&str, &[u8])] = &[("a", b"contents of a\n"), ("b", b"contents of b\n")];
    let (key, _src) = put_files(&store, "s", files);
    // A removal killed between its rename and its delete, under the name
    // an earlier version used.
    let leftover = cache
        .path()
        .join("tmp")
        .join(format!("removed-{}", key.to_hex()));
    std::fs::create_dir_all(leftover.join("x")).unwrap();
    store.remove(&key).unwrap();
    assert!(!store.contains(&key));

    // A directory where a blob goes: a restore finds the blob damaged and
    // clears the way, and a put writes the blob there.
    let (key, _src) = put_files(&store, "s", files);
    let hex = Digest::of(b"contents of a\n").to_hex();
    let blob = cache.path().join("blobs").join(&hex[..2]).join(&hex);
    std::fs::remove_file(&blob).unwrap();
    std::fs::create_dir_all(blob.join("inside")).unwrap();
    let target = tempfile::tempdir().unwrap();
    let err = restore_work(&store, &key, target.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Damaged, "{err}");
    assert!(!blob.exists());
    std::fs::create_dir_all(blob.join("inside")).unwrap();
    let (key, _src) = put_files(&store, "s", files);
    restore_work(&store, &key, target.path()).unwrap();
    assert_eq!(
        std::fs::read(target.path().join("a")).unwrap(),
        b"contents of a\n"
    );

    // gc clears what does not belong in blobs/.
    let stray = cache.path().join("blobs/zz");
    std::fs::write(&stray, "a file where a shard goes").unwrap();
    let hex = Digest::of(b"nothing").to_hex();
    let dir_blob = cache.path().join("blobs").join(&hex[..2]).join(&hex);
    std::fs::create_dir_all(&dir_blob).unwrap();
    store.gc(GcPolicy::default()).unwrap();
    assert!(!stray.exists());
    assert!(!dir_blob.exists());
    assert!(store.verify(false).unwrap().is_empty());
}

#[test]
fn a_named_pipe_never_blocks_capture_restore_or_verify() {
    let cache = tempfile::tempdir().unwrap();
    let store = Store::open(cache.path()).unwrap();
    // Left in a captured tree by a script: left out, and said so.
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("a"), "contents of a\n").unwrap();
    mkfifo(&src.path().join("jobserver"));
    let (dir, s) = (src.path().to_path_buf(), store.clone());
    let stored = within_10s("capturing a pipe", move || {
        let inputs = inputs("pipe");
        s.put(&Capture {
            name: "pipe",
            inputs: &inputs,
            trees: vec![TreeSource {
                name: "work",
                dir: &dir,
                select: Select::All,
            }],
            roots: vec![],
            extra: serde_json::Value::Null,
        })
        .unwrap()
    });
    assert_eq!(
        stored.skipped,
        [("work".to_string(), PathBuf::from("jobserver"))]
    );
    let key = stored.entry.meta().key;
    let items = stored.entry.manifest().unwrap().trees["work"].len();
    assert_eq!(items, 1);

    // Planted where a blob goes: damage, cleared, and nothing waits.
    let hex = Digest::of(b"contents of a\n").to_hex();
    let blob = cache.path().join("blobs").join(&hex[..2]).join(&hex);
    std::fs::remove_file(&blob).unwrap();
    mkfifo(&blob);
    let s = store.clone();
    let problems = within_10s("verify", move || s.verify(false).unwrap());
    assert!(
        problems[0].reason.contains("not a regular file"),
        "{problems:?}"
    );
    let (s, target) = (store.clone(), tempfile::tempdir().unwrap());
    let err = within_10s("restore", move || {
        restore_work(&s, &key, target.path()).unwrap_err()
    });
    assert_eq!(err.kind(), ErrorKind::Damaged, "{err}");
    assert!(std::fs::symlink_metadata(&blob).is_err());

    // Planted as files.json or entry.json.
    for file in ["files.json", "entry.json"] {
        let (key, _src) = put_files(&store, "s", &[("a", b"a\n")]);
        let path = entry_dir(cache.path(), &key).join(file);
        std::fs::remove_file(&path).unwrap();
        mkfifo(&path);
        let s = store.clone();
        let problems = within_10s("verify", move || s.verify(false).unwrap());
        assert_eq!(problems.len(), 1, "{file}: {problems:?}");
        let (s, target) = (store.clone(), tempfile::tempdir().unwrap());
        let found = within_10s("restore", move || {
            restore_work(&s, &key, target.path()).map_err(|e| e.kind())
        });
        assert!(found.is_err(), "{file}");
        assert!(!store.contains(&key), "{file}");
    }
}

#[test]
fn an_entry_in_use_is_not_evicted_and_one_removed_under_its_reader_is_evicted_not_damaged() {
    let cache = tempfile::tempdir().unwrap();
    let store = Store::open(cache.path()).unwrap();
    let (used, _a) = put_files(&store, "used", &[("a", b"in use\n")]);
    let (idle, _b) = put_files(&store, "idle", &[("b", b"idle\n")]);
    // A build found `used` (and will restore it later); gc and clean run
    // meanwhile.
    let found = store.get(&used).unwrap().unwrap();
    let report = store
        .gc(GcPolicy {
            max_size: Some(0),
            older_than: None,
        })
        .unwrap();
    assert_eq!(report.in_use, 1);
    assert_eq!(report.removed.len(), 1);
    assert_eq!(report.removed[0].meta.key, idle);
    let report = store.clean().unwrap();
    assert_eq!((report.in_use, report.removed.len()), (1, 0));
    let target = tempfile::tempdir().unwrap();
    found
        .restore(
            &[Target {
                tree: "work",
                dir: target.path(),
                select: Select::All,
            }],
            &[],
        )
        .unwrap();
    assert_eq!(std::fs::read(target.path().join("a")).unwrap(), b"in use\n");
    // An entry just stored is in use by whoever stored it.
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("c"), "new\n").unwrap();
    let stored = store
        .put(&Capture {
            name: "new",
            inputs: &inputs("new"),
            trees: vec![TreeSource {
                name: "work",
                dir: src.path(),
                select: Select::All,
            }],
            roots: vec![],
            extra: serde_json::Value::Null,
        })
        .unwrap();
    assert_eq!(store.clean().unwrap().in_use, 2);
    drop(stored);
    drop(found);
    let report = store.clean().unwrap();
    assert_eq!((report.in_use, report.removed.len()), (0, 2));
    assert!(common::blob_files(cache.path()).is_empty());

    // Removed under its reader all the same (by hand, or by verify): the
    // restore says the entry was evicted, and drops no blob.
    let (key, _c) = put_files(&store, "again", &[("c", b"again\n")]);
    let found = store.get(&key).unwrap().unwrap();
    store.remove(&key).unwrap();
    let err = found
        .restore(
            &[Target {
                tree: "work",
                dir: tempfile::tempdir().unwrap().path(),
                select: Select::All,
            }],
            &[],
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Evicted, "{err}");
    assert!(err.is_transient());
    assert_eq!(common::blob_files(cache.path()).len(), 1);
}

#[test]
fn a_full_disk_fails_a_put_cleanly_and_the_store_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_disk) = TinyDisk::mount(dir.path(), "256k") else {
        return;
    };
    let store = Store::open(dir.path()).unwrap();
    let src = tempfile::tempdir().unwrap();
    for i in 0..4u8 {
        std::fs::write(src.path().join(format!("big{i}")), vec![i; 100_000]).unwrap();
    }
    let big = inputs("big");
    let err = store
        .put(&Capture {
            name: "big",
            inputs: &big,
            trees: vec![TreeSource {
                name: "work",
                dir: src.path(),
                select: Select::All,
            }],
            roots: vec![],
            extra: serde_json::Value::Null,
        })
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert!(
        format!("{:?}", err).contains("StorageFull"),
        "a full disk: {err:?}"
    );
    // Nothing half-written is left in the way, and no entry appeared.
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
    assert!(store.get(&big.key()).unwrap().is_none());
    // The blobs it did write go at the next gc; then the store takes what
    // fits.
    store.gc(GcPolicy::default()).unwrap();
    assert!(common::blob_files(dir.path()).is_empty());
    let (key, _src) = put_files(&store, "small", &[("a", b"fits\n")]);
    restore_work(&store, &key, tempfile::tempdir().unwrap().path()).unwrap();
}

#[test]
fn sizes_near_the_top_of_u64_saturate_instead_of_wrapping() {
    let cache = tempfile::tempdir().unwrap();
    let store = Store::open(cache.path()).unwrap();
    // Two entries whose sizes (as another machine might have recorded
    // them) add up past 2^64.
    let mut keys = Vec::new();
    for name in ["one", "two"] {
        let (key, _src) = put_files(&store, name, &[(name, name.as_bytes())]);
        let dir = entry_dir(cache.path(), &key);
        let files = dir.join("files.json");
        let mut manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&files).unwrap()).unwrap();
        manifest["trees"]["work"][0]["size"] = serde_json::json!(u64::MAX - 1);
        std::fs::write(&files, manifest.to_string()).unwrap();
        reseal(cache.path(), &key);
        let sealed: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("entry.json")).unwrap()).unwrap();
        let mut meta = sealed["meta"].clone();
        meta["size"] = serde_json::json!(u64::MAX - 1);
        common::write_sealed(&dir.join("entry.json"), &meta);
        keys.push(key);
    }
    assert_eq!(store.size_upper_bound().unwrap(), u64::MAX);
    let report = store
        .gc(GcPolicy {
            max_size: Some(u64::MAX - 1),
            older_than: None,
        })
        .unwrap();
    assert_eq!(report.removed.len(), 1);
    assert_eq!(report.kept_bytes, u64::MAX - 1);
}
