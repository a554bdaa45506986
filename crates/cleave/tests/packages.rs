//! End-to-end tests of what a build leaves that a package or the channel
//! cannot hold as it is: FIFOs in `$PREFIX` and `$SRC_DIR`, timestamps out
//! of the zip format's range, file modes and temporary files of the output
//! channel. Each recipe is written into a temporary directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

mod common;
use common::{assert_success, stderr};

/// A recipe in a temporary directory, built with a private cache.
struct Case {
    tmp: tempfile::TempDir,
}

impl Case {
    fn new(recipe: &str) -> Case {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("recipe")).unwrap();
        std::fs::write(tmp.path().join("recipe/recipe.yaml"), recipe).unwrap();
        Case { tmp }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// `cleave build` into `out`, run by `sh -c` after `prelude` (a umask).
    fn build_with(&self, prelude: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("{prelude}\nexec \"$@\""))
            .arg("sh")
            .arg(env!("CARGO_BIN_EXE_cleave"))
            .args(["build", "--recipe"])
            .arg(self.path("recipe"))
            .arg("--output-dir")
            .arg(self.path("out"))
            .arg("--cache-dir")
            .arg(self.path("cache"))
            .arg("--staging-root")
            .arg(self.path("stg"))
            .args(extra)
            .env_remove("SOURCE_DATE_EPOCH")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied());
        cmd.output().unwrap()
    }

    fn build(&self, env: &[(&str, &str)]) -> Output {
        self.build_with("", &["--test", "skip"], env)
    }

    /// The `.conda` packages and `repodata.json` files of the channel.
    fn channel_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for subdir in ["noarch", "linux-64"] {
            for entry in std::fs::read_dir(self.path("out").join(subdir)).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if name.ends_with(".conda") || name == "repodata.json" {
                    files.push(path);
                }
            }
        }
        files.sort();
        files
    }
}

/// `text` with every run of whitespace made one space: miette wraps long
/// lines.
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

const PLAIN: &str = "schema_version: 1
package:
  name: plain
  version: \"1.0\"
build:
  noarch: generic
  script:
    - mkdir -p $PREFIX/share && echo x > $PREFIX/share/x
";

#[test]
fn a_fifo_in_the_prefix_fails_the_build_naming_it_instead_of_hanging() {
    let case = Case::new(&PLAIN.replace(
        "echo x > $PREFIX/share/x",
        "echo x > $PREFIX/share/x && mkfifo $PREFIX/share/pipe",
    ));
    let output = case.build(&[]);
    let err = flat(&stderr(&output));
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("$PREFIX/share/pipe is a FIFO"), "{err}");
}

#[test]
fn a_fifo_in_a_staging_work_dir_is_left_out_of_the_cache_with_a_warning() {
    let case = Case::new(
        "schema_version: 1
recipe:
  name: piped
  version: \"1.0\"
outputs:
  - staging:
      name: piped-build
    build:
      script:
        - mkfifo $SRC_DIR/pipe
        - echo kept > $SRC_DIR/kept.txt
        - mkdir -p $PREFIX/share && echo x > $PREFIX/share/x
  - package:
      name: piped
    inherit: piped-build
    build:
      noarch: generic
      script:
        - test -f kept.txt && test ! -e pipe
",
    );
    let output = case.build(&[]);
    assert_success(&output);
    let err = flat(&stderr(&output));
    assert!(
        err.contains("not stored") && err.contains("work/pipe"),
        "{err}"
    );
}

/// The mode bits of `path`.
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_channel_is_written_with_the_umasks_modes() {
    for (umask, expected) in [("022", 0o644), ("027", 0o640)] {
        let case = Case::new(PLAIN);
        assert_success(&case.build_with(&format!("umask {umask}"), &["--test", "skip"], &[]));
        let files = case.channel_files();
        assert_eq!(files.len(), 3, "{files:?}");
        for file in files {
            assert_eq!(
                mode(&file),
                expected,
                "{} with umask {umask}",
                file.display()
            );
        }
    }
}

#[test]
fn stale_temporary_files_of_killed_builds_are_removed_and_live_ones_kept() {
    let case = Case::new(PLAIN);
    let noarch = case.path("out/noarch");
    std::fs::create_dir_all(&noarch).unwrap();
    let hour_ago = filetime::FileTime::from_system_time(
        std::time::SystemTime::now() - Duration::from_secs(3600),
    );
    let stale = noarch.join(".cleave-partial-stale");
    let stale_dir = noarch.join(".cleave-partial-staledir");
    std::fs::write(&stale, "half a package").unwrap();
    std::fs::create_dir(&stale_dir).unwrap();
    std::fs::write(stale_dir.join("plain-1.0-h0_0.conda"), "half").unwrap();
    // Another build still writing (it holds the lock), and one that just
    // started (younger than a minute): both kept.
    let live = noarch.join(".cleave-partial-live");
    let young = noarch.join(".cleave-partial-young");
    let held = std::fs::File::create(&live).unwrap();
    held.lock().unwrap();
    std::fs::write(&young, "just started").unwrap();
    for path in [&stale, &stale_dir, &live] {
        filetime::set_file_mtime(path, hour_ago).unwrap();
    }
    assert_success(&case.build(&[]));
    assert!(!stale.exists() && !stale_dir.exists());
    assert!(live.exists() && young.exists());
}

#[test]
fn source_date_epoch_outside_the_zip_range_is_clamped_in_the_archive_only() {
    for epoch in ["0", "315532799", "4354819200", "99999999999"] {
        let case = Case::new(PLAIN);
        let output = case.build(&[("SOURCE_DATE_EPOCH", epoch)]);
        assert_success(&output);
        let repodata: serde_json::Value =
            serde_json::from_slice(&std::fs::read(case.path("out/noarch/repodata.json")).unwrap())
                .unwrap();
        let record = repodata["packages.conda"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .clone();
        let millis: i64 = epoch.parse::<i64>().unwrap() * 1000;
        assert_eq!(record["timestamp"], millis, "{epoch}");
    }
    for bad in ["-1", "soon", "999999999999999"] {
        let case = Case::new(PLAIN);
        let output = case.build(&[("SOURCE_DATE_EPOCH", bad)]);
        let err = flat(&stderr(&output));
        assert_eq!(output.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("SOURCE_DATE_EPOCH"), "{err}");
    }
}
