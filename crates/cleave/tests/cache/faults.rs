//! The cache when something goes wrong: builds killed while storing,
//! damaged, edited or unreadable entries, named pipes, links where the
//! staging build wrote directories, blobs this process cannot read, gc and
//! clean running beside builds, entries evicted under a build, a full disk,
//! leftovers of killed writers. Each costs at most a rebuild and a
//! warning, never a wrong package.

use super::*;

#[test]
fn a_build_killed_while_storing_leaves_no_entry_and_the_next_one_rebuilds() {
    let case = Case::new("slow");
    let recipe = case.recipe.to_str().unwrap();
    let root = case.path("stg");
    let mut child = case
        .cleave(&[
            "build",
            "-r",
            recipe,
            "--output-dir",
            "out",
            "--test",
            "skip",
            "--staging-root",
            root.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Blobs go through the store's tmp/ dir: kill as soon as one shows.
    let tmp = case.path("cache/staging/tmp");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut caught = false;
    while Instant::now() < deadline {
        if std::fs::read_dir(&tmp).is_ok_and(|mut d| d.next().is_some()) {
            caught = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(caught, "the build ended before it stored anything");
    let list = case.cleave(&["cache", "list"]).output().unwrap();
    assert!(stdout(&list).contains("0 entries"), "{}", stdout(&list));

    let again = case.build("out", &[]);
    assert_success(&again);
    assert_eq!(case.runs(), 2);
    package(&case.path("out"), "slow");
}

#[test]
fn a_damaged_entry_is_found_by_verify_then_discarded_and_rebuilt() {
    let case = Case::new("split");
    assert_success(&case.build("out", &[]));
    let verify = case.cleave(&["cache", "verify"]).output().unwrap();
    assert_success(&verify);

    // Flip one byte of the blob holding liba.txt's contents, and one of
    // each package archive (`.conda` files are zip archives), so that the
    // packages are built again and restore the staging entry.
    let blobs = case.path("cache/staging/blobs");
    let victim = walk(&blobs)
        .into_iter()
        .find(|p| std::fs::read(p).unwrap() == b"hello\npatched\n")
        .expect("the blob of lib/liba.txt");
    std::fs::write(&victim, b"hello\npatcheD\n").unwrap();
    let archives: Vec<PathBuf> = walk(&blobs)
        .into_iter()
        .filter(|p| std::fs::read(p).unwrap().starts_with(b"PK"))
        .collect();
    assert_eq!(archives.len(), 2, "the two packages' archives");
    for archive in &archives {
        let mut bytes = std::fs::read(archive).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(archive, bytes).unwrap();
    }
    let verify = case.cleave(&["cache", "verify"]).output().unwrap();
    assert_eq!(verify.status.code(), Some(1));
    assert!(
        stdout(&verify).contains("split-build: blob"),
        "{}",
        stdout(&verify)
    );
    assert!(
        stdout(&verify).contains("split-lib: blob"),
        "{}",
        stdout(&verify)
    );

    let rebuilt = case.build("out", &[]);
    assert_success(&rebuilt);
    assert_eq!(
        stderr(&rebuilt).matches("is damaged").count(),
        3,
        "{}",
        stderr(&rebuilt)
    );
    assert_eq!(case.runs(), 2);
    let checked = oracle(&case.path("out"), &case.path("env"), &["split-lib"], &[]);
    assert_eq!(strings(&checked["installed"]).len(), 1);
    assert_eq!(
        std::fs::read_to_string(case.path("env/lib/liba.txt")).unwrap(),
        "hello\npatched\n"
    );

    // A missing blob: found, and `verify --remove` drops the entry.
    let blob = walk(&blobs)
        .into_iter()
        .find(|p| std::fs::read(p).unwrap() == b"#define A 1\n")
        .unwrap();
    std::fs::remove_file(blob).unwrap();
    let verify = case
        .cleave(&["cache", "verify", "--remove"])
        .output()
        .unwrap();
    assert_success(&verify);
    assert!(
        stdout(&verify).contains("is missing"),
        "{}",
        stdout(&verify)
    );
    // The packages' entries are whole; only the staging entry goes.
    assert!(
        stdout(&verify).contains("1 damaged entries removed; 2 entries in the cache"),
        "{}",
        stdout(&verify)
    );
}

/// The entry directories of the case's store whose metadata says `kind`
/// (`package`; a staging entry has no kind).
fn entry_dirs(case: &Case, package: bool) -> Vec<PathBuf> {
    let entries = case.path("cache/staging/entries");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(entries)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|dir| {
            let meta = std::fs::read_to_string(dir.join("entry.json")).unwrap_or_default();
            meta.contains("\"kind\":\"package\"") == package
        })
        .collect();
    dirs.sort();
    dirs
}

/// Drops the packages' entries, so that the next build packages again and
/// restores the staging entry.
fn drop_package_entries(case: &Case) {
    for dir in entry_dirs(case, true) {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn an_edited_manifest_is_found_by_verify_and_the_entry_is_rebuilt() {
    let case = Case::new("split");
    assert_success(&case.build("out", &[]));
    let staging = entry_dirs(&case, false);
    assert_eq!(staging.len(), 1);
    // Still valid JSON, and every blob whole: only the digest of the
    // manifest tells.
    let files = staging[0].join("files.json");
    let text = std::fs::read_to_string(&files).unwrap();
    std::fs::write(
        &files,
        text.replace("\"lib/liba.txt\"", "\"lib/renamed.txt\""),
    )
    .unwrap();
    let verify = case.cleave(&["cache", "verify"]).output().unwrap();
    assert_eq!(verify.status.code(), Some(1), "{}", stdout(&verify));
    assert!(
        stdout(&verify).contains("files.json"),
        "{}",
        stdout(&verify)
    );

    drop_package_entries(&case);
    let rebuilt = case.build("out2", &[]);
    assert_success(&rebuilt);
    assert!(
        stderr(&rebuilt).contains("is damaged"),
        "{}",
        stderr(&rebuilt)
    );
    assert_eq!(case.runs(), 2);
    oracle(&case.path("out2"), &case.path("env"), &["split-lib"], &[]);
    assert!(case.path("env/lib/liba.txt").is_file());
    assert!(!case.path("env/lib/renamed.txt").exists());
    assert_success(&case.cleave(&["cache", "verify"]).output().unwrap());
}

#[test]
fn swapped_blobs_of_the_same_size_are_rebuilt_once() {
    let case = Case::new("split");
    // Pairs of files of one size: the first bad blob a restore meets is
    // not the only one.
    case.edit("build.sh", |t| {
        t + "for i in $(seq 10 29); do echo A$i > \"$PREFIX/lib/a$i\"; echo B$i > \"$PREFIX/lib/b$i\"; done\n"
    });
    assert_success(&case.build("out", &[]));
    let blobs = case.path("cache/staging/blobs");
    let all = walk(&blobs);
    let find = |data: &[u8]| {
        all.iter()
            .find(|p| std::fs::read(p).unwrap() == data)
            .unwrap()
            .clone()
    };
    for i in 10..30 {
        let (a, b) = (format!("A{i}\n"), format!("B{i}\n"));
        let (a_blob, b_blob) = (find(a.as_bytes()), find(b.as_bytes()));
        std::fs::write(&a_blob, &b).unwrap();
        std::fs::write(&b_blob, &a).unwrap();
    }
    drop_package_entries(&case);

    let rebuilt = case.build("out2", &[]);
    assert_success(&rebuilt);
    assert_eq!(
        stderr(&rebuilt).matches("is damaged").count(),
        1,
        "{}",
        stderr(&rebuilt)
    );
    assert_eq!(case.runs(), 2);
    assert_success(&case.cleave(&["cache", "verify"]).output().unwrap());
    oracle(&case.path("out2"), &case.path("env"), &["split-lib"], &[]);
    for i in 10..30 {
        let a = std::fs::read_to_string(case.path(&format!("env/lib/a{i}"))).unwrap();
        assert_eq!(a, format!("A{i}\n"));
    }
}

#[test]
fn unreadable_entries_are_built_again_and_gc_removes_them() {
    let case = Case::new("split");
    assert_success(&case.build("out", &[]));
    let entries = case.path("cache/staging/entries");
    let every_entry = || -> Vec<PathBuf> {
        std::fs::read_dir(&entries)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    };
    assert_eq!(every_entry().len(), 3);
    for dir in every_entry() {
        std::fs::write(dir.join("entry.json"), "garbage").unwrap();
    }
    let again = case.build("out2", &[]);
    assert_success(&again);
    assert_eq!(case.runs(), 2);
    for dir in every_entry() {
        std::fs::remove_file(dir.join("entry.json")).unwrap();
    }
    let again = case.build("out3", &[]);
    assert_success(&again);
    assert_eq!(case.runs(), 3);
    // And the entries stored then are whole: the next build hits.
    assert_success(&case.build("out4", &[]));
    assert_eq!(case.runs(), 3);

    let junk = entries.join("0".repeat(64));
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("entry.json"), "{").unwrap();
    let gc = case.cleave(&["cache", "gc"]).output().unwrap();
    assert_success(&gc);
    assert!(
        stdout(&gc).contains("removed 1 unreadable entries"),
        "{}",
        stdout(&gc)
    );
    assert!(!junk.exists());
    assert_eq!(every_entry().len(), 3);
    assert_success(&case.cleave(&["cache", "verify"]).output().unwrap());
}

#[test]
fn a_removal_killed_half_way_or_a_directory_at_a_blob_path_does_not_block_builds() {
    let case = Case::new("split");
    assert_success(&case.build("out", &[]));
    let staging = entry_dirs(&case, false).remove(0);
    let key = staging.file_name().unwrap().to_str().unwrap().to_string();
    let blobs = case.path("cache/staging/blobs");
    let blob_of = |data: &[u8]| {
        walk(&blobs)
            .into_iter()
            .find(|p| std::fs::read(p).is_ok_and(|d| d == data))
            .unwrap()
    };
    // What a process killed inside a removal of the entry leaves.
    let leftover = case.path(&format!("cache/staging/tmp/removed-{key}"));
    std::fs::create_dir_all(leftover.join("x")).unwrap();
    // The entry is damaged, so this build removes it.
    std::fs::write(blob_of(b"hello\npatched\n"), b"hello\npatcheD\n").unwrap();
    drop_package_entries(&case);
    let again = case.build("out2", &[]);
    assert_success(&again);
    assert_eq!(case.runs(), 2);

    // A directory where a blob goes.
    let blob = blob_of(b"#define A 1\n");
    std::fs::remove_file(&blob).unwrap();
    std::fs::create_dir_all(blob.join("inside")).unwrap();
    drop_package_entries(&case);
    let again = case.build("out3", &[]);
    assert_success(&again);
    assert_eq!(case.runs(), 3);
    assert!(blob.is_file());
    assert_success(&case.cleave(&["cache", "verify"]).output().unwrap());
}

/// Runs `cmd`, failing the test if it takes more than a minute (it is
/// killed then): for commands that must not block.
fn output_within_a_minute(mut cmd: Command) -> Output {
    output_within(Duration::from_secs(60), &mut cmd)
}

#[test]
fn named_pipes_in_the_build_or_the_store_block_nothing() {
    let case = Case::new("split");
    // A script that leaves pipes behind, as a make jobserver or a test
    // server may.
    case.edit("build.sh", |t| {
        t + "mkfifo jobserver.fifo \"$PREFIX/lib/control.fifo\"\n"
    });
    let recipe = case.recipe.to_str().unwrap().to_string();
    let staging_root = case.path("stg");
    let build = |out: &str| {
        let mut cmd = case.cleave(&[
            "build",
            "-r",
            &recipe,
            "--output-dir",
            out,
            "--staging-root",
            staging_root.to_str().unwrap(),
            "--test",
            "skip",
        ]);
        cmd.stdin(Stdio::null());
        output_within_a_minute(cmd)
    };
    let first = build("out");
    assert_success(&first);
    assert!(
        stderr(&first).contains("not stored") && stderr(&first).contains("work/jobserver.fifo"),
        "{}",
        stderr(&first)
    );
    // Planted in the store where a blob goes.
    let blob = walk(&case.path("cache/staging/blobs"))
        .into_iter()
        .find(|p| std::fs::read(p).is_ok_and(|d| d == b"#define A 1\n"))
        .unwrap();
    std::fs::remove_file(&blob).unwrap();
    let status = Command::new("mkfifo").arg(&blob).status().unwrap();
    assert!(status.success());
    let verify = output_within_a_minute(case.cleave(&["cache", "verify"]));
    assert_eq!(verify.status.code(), Some(1), "{}", stdout(&verify));
    assert!(
        stdout(&verify).contains("not a regular file"),
        "{}",
        stdout(&verify)
    );
    drop_package_entries(&case);
    let again = build("out2");
    assert_success(&again);
    assert_eq!(case.runs(), 2);
}

#[test]
fn a_link_a_host_package_ships_where_the_staging_build_wrote_a_directory_is_replaced() {
    let case = Case::new("over-link");
    copy_dir(&repo().join("tests/cache/linkdep"), &case.path("linkdep"));
    let dep = case
        .cleave(&[
            "build",
            "-r",
            case.path("linkdep").to_str().unwrap(),
            "--output-dir",
            "channel",
            "--test",
            "skip",
        ])
        .output()
        .unwrap();
    assert_success(&dep);
    let built = case.build("out", &["-c", "channel"]);
    assert_success(&built);
    // The entry is whole: it is not discarded, and the staging script ran
    // once.
    assert!(!stderr(&built).contains("damaged"), "{}", stderr(&built));
    assert_eq!(case.runs(), 1);
    let checked = oracle(&case.path("out"), &case.path("env"), &["over-link"], &[]);
    assert_eq!(
        paths(&checked, "over-link"),
        ["share/data/from-staging.txt"]
    );
    assert_success(&case.cleave(&["cache", "verify"]).output().unwrap());
}

/// `cmd` run without the capabilities that let root read any file, so that
/// a file of mode 000 cannot be read (a test's stand-in for another user's
/// files or a permission problem). Without root, `cmd` as it is.
fn without_read_override(cmd: &Command) -> Command {
    let uid = Command::new("id").arg("-u").output().unwrap();
    let mut out = if String::from_utf8_lossy(&uid.stdout).trim() == "0" {
        let mut setpriv = Command::new("setpriv");
        setpriv
            .args([
                "--inh-caps=-dac_override,-dac_read_search",
                "--bounding-set=-dac_override,-dac_read_search",
                "--",
            ])
            .arg(cmd.get_program());
        setpriv
    } else {
        Command::new(cmd.get_program())
    };
    out.args(cmd.get_args());
    for (name, value) in cmd.get_envs() {
        match value {
            Some(value) => out.env(name, value),
            None => out.env_remove(name),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        out.current_dir(dir);
    }
    out
}

#[test]
fn a_blob_that_cannot_be_read_is_no_damage_and_the_entry_stays() {
    use std::os::unix::fs::PermissionsExt;
    let case = Case::new("split");
    assert_success(&case.build("out", &[]));
    let blob = walk(&case.path("cache/staging/blobs"))
        .into_iter()
        .find(|p| std::fs::read(p).is_ok_and(|d| d == b"hello\npatched\n"))
        .unwrap();
    std::fs::set_permissions(&blob, std::fs::Permissions::from_mode(0o000)).unwrap();
    drop_package_entries(&case);

    let recipe = case.recipe.to_str().unwrap().to_string();
    let staging_root = case.path("stg");
    let build = case.cleave(&[
        "build",
        "-r",
        &recipe,
        "--output-dir",
        "out2",
        "--staging-root",
        staging_root.to_str().unwrap(),
        "--test",
        "skip",
    ]);
    let rebuilt = without_read_override(&build).output().unwrap();
    assert_success(&rebuilt);
    let err = stderr(&rebuilt);
    assert!(err.contains("without the cache"), "{err}");
    assert!(!err.contains("damaged"), "{err}");
    assert_eq!(case.runs(), 2);
    assert_eq!(entry_dirs(&case, false).len(), 1, "the entry stays");
    assert!(blob.exists());
    oracle(&case.path("out2"), &case.path("env"), &["split-lib"], &[]);
    assert_eq!(
        std::fs::read_to_string(case.path("env/lib/liba.txt")).unwrap(),
        "hello\npatched\n"
    );

    // verify says so, and does not remove it.
    let verify = without_read_override(&case.cleave(&["cache", "verify", "--remove"]))
        .output()
        .unwrap();
    let text = stdout(&verify);
    assert_eq!(verify.status.code(), Some(1), "{text}");
    assert!(text.contains("cannot be read"), "{text}");
    assert!(text.contains("0 damaged entries"), "{text}");
    assert_eq!(entry_dirs(&case, false).len(), 1, "the entry stays");
    std::fs::set_permissions(&blob, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_success(&case.cleave(&["cache", "verify"]).output().unwrap());
}

#[test]
fn builds_survive_a_concurrent_gc_and_clean() {
    let case = Case::new("split");
    assert_success(&case.build("out", &[]));
    // gc down to nothing and clean, over and over, while six builds run.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trims = {
        let stop = stop.clone();
        let cache = case.path("cache");
        std::thread::spawn(move || {
            let mut trims = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for args in [&["cache", "gc", "--max-size", "1"][..], &["cache", "clean"]] {
                    let out = Command::new(env!("CARGO_BIN_EXE_cleave"))
                        .args(args)
                        .env("CLEAVE_CACHE_DIR", &cache)
                        .output()
                        .unwrap();
                    assert_success(&out);
                    trims += 1;
                }
            }
            trims
        })
    };
    let recipe = case.recipe.to_str().unwrap().to_string();
    let staging_root = case.path("stg");
    let builds: Vec<_> = (1..=6)
        .map(|i| {
            case.cleave(&[
                "build",
                "-r",
                &recipe,
                "--output-dir",
                &format!("out{i}"),
                "--staging-root",
                staging_root.to_str().unwrap(),
                "--test",
                "skip",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let outputs = wait_all(builds);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(trims.join().unwrap() > 2);
    for (i, output) in outputs.iter().enumerate() {
        assert_success(output);
        assert!(!stderr(output).contains("damaged"), "{}", stderr(output));
        package(&case.path(&format!("out{}", i + 1)), "split-lib");
    }
}

#[test]
fn an_entry_evicted_under_a_build_is_built_again() {
    let case = Case::new("split");
    // split-lib is built first; its script removes every entry of the
    // store by hand (gc and clean leave an entry in use alone), so that
    // split-dev finds the staging entry gone when it restores it.
    case.edit("recipe.yaml", |t| {
        t.replace(
            "        - lib/**\n",
            "        - lib/**\n      script:\n        - rm -rf \"$RECIPE_DIR\"/../cache/staging/entries/*\n",
        )
    });
    let built = case.build("out", &[]);
    assert_success(&built);
    let err = stderr(&built);
    assert!(
        err.contains("was evicted while in use; building it again"),
        "{err}"
    );
    assert_eq!(case.runs(), 2);
    // split-dev's script copies a file of the work directory, which it has
    // from the second run's entry.
    let checked = oracle(&case.path("out"), &case.path("env"), &["split-dev"], &[]);
    assert!(
        paths(&checked, "split-dev").contains(&"share/split/from-work.txt".to_string()),
        "{checked}"
    );
    package(&case.path("out"), "split-lib");
}

#[test]
fn a_full_cache_disk_costs_a_warning_not_the_build() {
    let case = Case::new("split");
    // Four pages: less than the staging entry's files take.
    let Some(_disk) = TinyDisk::mount(&case.path("cache"), "16k") else {
        return;
    };
    let built = case.build("out", &[]);
    assert_success(&built);
    let err = stderr(&built);
    assert!(
        err.contains("staging `split-build`: not stored in the cache"),
        "{err}"
    );
    assert!(err.contains("No space left on device"), "{err}");
    package(&case.path("out"), "split-lib");
    package(&case.path("out"), "split-dev");
    // Nothing was kept: the next build runs the script again, and works.
    assert_success(&case.build("out2", &[]));
    assert_eq!(case.runs(), 2);
    package(&case.path("out2"), "split-lib");
}

#[test]
fn an_extreme_modification_time_in_a_manifest_does_not_crash_the_build() {
    let case = Case::new("split");
    assert_success(&case.build("out", &[]));
    let files = entry_dirs(&case, false)[0].join("files.json");
    let text = std::fs::read_to_string(&files).unwrap();
    let mtime = text.find("\"mtime\":[").unwrap() + "\"mtime\":[".len();
    let end = mtime + text[mtime..].find(']').unwrap();
    let edited = format!(
        "{}9223372036854775807,4294967295{}",
        &text[..mtime],
        &text[end..]
    );
    std::fs::write(&files, edited).unwrap();
    drop_package_entries(&case);
    let again = case.build("out2", &[]);
    assert_success(&again);
    assert!(stderr(&again).contains("is damaged"), "{}", stderr(&again));
    assert_eq!(case.runs(), 2);
}

#[test]
fn leftovers_of_killed_writers_go_at_the_next_command() {
    let case = Case::new("split");
    assert_success(&case.build("out", &[]));
    let tmp = case.path("cache/staging/tmp");
    std::fs::write(tmp.join(".tmpHALF"), b"half a blob").unwrap();
    std::fs::create_dir_all(tmp.join("entry-killed")).unwrap();
    std::fs::write(tmp.join("entry-killed/files.json"), b"{").unwrap();
    let list = case.cleave(&["cache", "list"]).output().unwrap();
    assert_success(&list);
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
}
