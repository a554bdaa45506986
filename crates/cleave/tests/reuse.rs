//! End-to-end tests of package outputs as cached actions: `cleave build`
//! on the recipes in `tests/reuse/`, copied to a temporary directory so
//! that the tests can edit them. Scripts count their runs in `runs.log`
//! beside the recipe copy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{RecipeCopy, assert_success, index, oracle, stderr};

/// A copy of `tests/reuse/NAME` in a fresh temporary directory.
struct Case(RecipeCopy);

impl std::ops::Deref for Case {
    type Target = RecipeCopy;
    fn deref(&self) -> &RecipeCopy {
        &self.0
    }
}

impl Case {
    fn new(name: &str) -> Case {
        Case(RecipeCopy::new("reuse", name))
    }

    /// `cleave build` into `out`, with `cache` as the cache dir and one
    /// staging root for every build of the case; `SOURCE_DATE_EPOCH` fixed,
    /// or unset with `clock`.
    fn command(&self, out: &str, cache: &str, extra: &[&str], clock: bool) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cleave"));
        cmd.args(["build", "--recipe"])
            .arg(&self.recipe)
            .arg("--output-dir")
            .arg(self.path(out))
            .arg("--cache-dir")
            .arg(self.path(cache))
            .arg("--staging-root")
            .arg(self.path("stg"))
            .args(extra)
            .env("NO_COLOR", "1")
            .current_dir(self.tmp.path());
        if clock {
            cmd.env_remove("SOURCE_DATE_EPOCH");
        } else {
            cmd.env("SOURCE_DATE_EPOCH", "1700000000");
        }
        cmd.output().expect("run cleave")
    }

    fn build(&self, out: &str, cache: &str, extra: &[&str]) -> Output {
        self.command(out, cache, extra, false)
    }

    /// The lines of runs.log: which scripts ran, in order.
    fn runs(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("runs.log"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }
}

/// Every archive of an output channel, by file name, with its bytes.
fn archives(channel: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut found = BTreeMap::new();
    for subdir in ["noarch", "linux-64"] {
        let Ok(entries) = std::fs::read_dir(channel.join(subdir)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".conda") {
                found.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    found
}

#[test]
fn a_second_build_runs_no_script_and_writes_the_same_bytes() {
    let case = Case::new("multi");
    let first = case.build("out1", "cache", &[]);
    assert_success(&first);
    assert_eq!(
        case.runs(),
        ["staging", "libmulti", "multi-devel", "multi-data"]
    );
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        stdout.contains("(3 built, 0 reused from the cache)"),
        "{stdout}"
    );

    let second = case.build("out2", "cache", &[]);
    assert_success(&second);
    assert_eq!(case.runs().len(), 4, "{}", stderr(&second));
    assert_eq!(stderr(&second).matches("nothing runs").count(), 3);
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(
        stdout.contains("(0 built, 3 reused from the cache)"),
        "{stdout}"
    );
    let (one, two) = (archives(&case.path("out1")), archives(&case.path("out2")));
    assert_eq!(one.len(), 3);
    assert_eq!(
        one, two,
        "the reused packages are the built ones, byte for byte"
    );
    // The reused packages are indexed and install.
    let checked = oracle(&case.path("out2"), &case.path("env"), &["multi-devel"], &[]);
    assert_eq!(index(&checked, "multi-devel")["name"], "multi-devel");
}

#[test]
fn editing_one_outputs_script_rebuilds_that_output_only() {
    let case = Case::new("multi");
    assert_success(&case.build("out", "cache", &[]));
    case.edit("recipe.yaml", |text| {
        text.replace(
            "        - echo multi-devel >> $RECIPE_DIR/../runs.log\n",
            "        - echo multi-devel >> $RECIPE_DIR/../runs.log\n        - echo edited\n",
        )
    });
    let second = case.build("out", "cache", &[]);
    assert_success(&second);
    assert_eq!(
        case.runs(),
        [
            "staging",
            "libmulti",
            "multi-devel",
            "multi-data",
            "multi-devel"
        ],
        "{}",
        stderr(&second)
    );
    assert_eq!(stderr(&second).matches("nothing runs").count(), 2);
}

#[test]
fn a_staging_build_with_a_sibling_in_its_host_environment_hits_the_second_time() {
    let case = Case::new("sibling-host");
    // Without SOURCE_DATE_EPOCH the sibling's archive changes with the
    // clock; its key does not.
    let build = |out: &str| case.command(out, "cache", &[], true);
    assert_success(&build("out1"));
    assert_eq!(case.runs(), ["staging"]);
    // The sibling's cache entry dropped: it is built again, with a new
    // timestamp and so a new archive digest; the staging build, whose host
    // environment holds it, still hits.
    let entries = case.path("cache/staging/entries");
    let sibling_entries: Vec<PathBuf> = std::fs::read_dir(&entries)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|dir| {
            std::fs::read_to_string(dir.join("entry.json"))
                .unwrap()
                .contains("\"name\":\"sibling-exports\"")
        })
        .collect();
    assert_eq!(sibling_entries.len(), 1);
    std::fs::remove_dir_all(&sibling_entries[0]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = build("out2");
    assert_success(&second);
    assert_ne!(
        archives(&case.path("out1")),
        archives(&case.path("out2")),
        "the sibling was built again, with another timestamp"
    );
    assert_eq!(case.runs(), ["staging"], "{}", stderr(&second));
    assert!(
        stderr(&second).contains("its script does not run"),
        "{}",
        stderr(&second)
    );
    let checked = oracle(
        &case.path("out2"),
        &case.path("env"),
        &["sibling-user"],
        &[],
    );
    let depends = index(&checked, "sibling-user")["depends"].clone();
    assert!(
        depends
            .to_string()
            .contains("sibling-exports >=1.0.0,<1.1.0a0"),
        "{depends}"
    );
}

#[test]
fn two_output_dirs_give_the_same_bytes_with_source_date_epoch() {
    let case = Case::new("multi");
    // Separate caches: both build everything, in the same canonical dirs.
    assert_success(&case.build("out1", "cache1", &[]));
    assert_success(&case.build("elsewhere/out2", "cache2", &[]));
    assert_eq!(case.runs().len(), 8);
    let (one, two) = (
        archives(&case.path("out1")),
        archives(&case.path("elsewhere/out2")),
    );
    assert_eq!(one.len(), 3);
    assert_eq!(one, two);
    // Including the output that inherits nothing, whose files hold $PREFIX.
    assert!(one.keys().any(|name| name.starts_with("multi-data-")));
}

#[test]
fn a_package_whose_tests_failed_is_not_reused_and_untested_ones_are_tested() {
    let case = Case::new("multi");
    case.edit("recipe.yaml", |text| {
        text.replace(
            "test -f $PREFIX/share/multi/where.txt",
            "test -f $PREFIX/missing",
        )
    });
    let failed = case.build("out", "cache", &[]);
    assert!(!failed.status.success());
    assert!(
        stderr(&failed).contains("multi-data"),
        "{}",
        stderr(&failed)
    );
    // Tests skipped: built again (the failed package was not kept), and
    // kept as untested.
    assert_success(&case.build("out", "cache", &["--test", "skip"]));
    let runs = case.runs().iter().filter(|r| *r == "multi-data").count();
    assert_eq!(runs, 2);
    // With tests: an untested package is not taken as tested; it is built
    // and its (failing) tests run.
    let again = case.build("out", "cache", &[]);
    assert!(!again.status.success());
    let runs = case.runs().iter().filter(|r| *r == "multi-data").count();
    assert_eq!(runs, 3);
}
