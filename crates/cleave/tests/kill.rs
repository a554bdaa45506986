//! `cleave build` killed at a random moment of a staging build, by SIGKILL
//! to cleave alone or to its whole process group, or during its script by
//! SIGKILL to every process named `cleave` at once (`killall -9 cleave`):
//! no process of its script outlives it, the next build of the same recipe
//! (same staging root, same cache) succeeds, its packages are byte for
//! byte those of a clean build, and `cleave cache verify` finds nothing
//! damaged.
//!
//! The staging script appends to files in `$PREFIX` from the foreground
//! and from a background job: a leftover of a killed build would add lines
//! to the next build's files. It also leaves a `sleep 30` behind, which
//! only the guard's killing of the script's processes ends early. Four
//! trials run by default, two killing cleave alone and two its process
//! group; `CLEAVE_KILL_TRIALS=N` runs N (the figures are printed).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
#[path = "../../cleave-build/tests/processes/mod.rs"]
mod processes;
use common::{assert_success, stderr};
use processes::gone_within;

const RECIPE: &str = r#"schema_version: 1
recipe:
  name: killed
  version: "1.0"
outputs:
  - staging:
      name: killed-build
    build:
      script:
        - echo "$$" >> "$RECIPE_DIR/../pids.log"
        - mkdir -p $PREFIX/share/killed
        - ( for i in $(seq 25); do echo "bg $i" >> $PREFIX/share/killed/bg.log; sleep 0.03; done ) &
        - bg=$! && echo "$bg" >> "$RECIPE_DIR/../pids.log"
        - sleep 30 > /dev/null 2>&1 &
        - echo "$!" >> "$RECIPE_DIR/../pids.log"
        - for i in $(seq 25); do echo "fg $i" >> $PREFIX/share/killed/fg.log; echo "line $i"; sleep 0.03; done
        - wait $bg
        - echo done > built.txt
  - package:
      name: killed-data
    inherit: killed-build
    build:
      noarch: generic
      script:
        - cat built.txt >> $PREFIX/share/killed/fg.log
"#;

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

    /// `cleave ARGS` with the cache `cache`, in its own process group.
    fn cleave(&self, cache: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cleave"));
        cmd.args(args)
            .env("CLEAVE_CACHE_DIR", self.path(cache))
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .env("NO_COLOR", "1")
            .current_dir(self.tmp.path())
            .process_group(0);
        cmd
    }

    fn build(&self, cache: &str, out: &str) -> Command {
        let root = self.path("stg");
        let mut cmd = self.cleave(
            cache,
            &[
                "build",
                "--recipe",
                "recipe",
                "--output-dir",
                out,
                "--test",
                "skip",
                "--staging-root",
            ],
        );
        cmd.arg(root);
        cmd
    }

    /// The packages below `out`, by file name, with their bytes.
    fn packages(&self, out: &str) -> Vec<(String, Vec<u8>)> {
        let mut found = Vec::new();
        for subdir in ["noarch", "linux-64"] {
            let Ok(dir) = std::fs::read_dir(self.path(out).join(subdir)) else {
                continue;
            };
            for entry in dir {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if name.ends_with(".conda") {
                    found.push((name, std::fs::read(&path).unwrap()));
                }
            }
        }
        found.sort();
        found
    }

    /// The pids the staging scripts recorded, emptied.
    fn take_pids(&self) -> Vec<i32> {
        let file = self.path("pids.log");
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let _ = std::fs::remove_file(&file);
        text.lines().filter_map(|l| l.trim().parse().ok()).collect()
    }
}

/// A number in `0..bound` that differs from run to run.
fn random_below(bound: u64, salt: u64) -> u64 {
    RandomState::new().hash_one(salt) % bound.max(1)
}

/// SIGKILL to a pid, or to a process group as `-PGID`; the build may
/// have finished just before, so a failure is no error.
fn kill(target: &str) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", target])
        .stderr(Stdio::null())
        .status();
}

#[allow(
    clippy::print_stderr,
    reason = "the figures of a long run are the point of running it"
)]
#[test]
fn a_killed_build_leaves_nothing_running_and_the_next_one_matches_a_clean_build() {
    let trials: usize = std::env::var("CLEAVE_KILL_TRIALS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(4);
    let case = Case::new(RECIPE);
    let started = Instant::now();
    let clean = case.build("cache-clean", "out-clean").output().unwrap();
    assert_success(&clean);
    let span = started.elapsed().as_millis() as u64;
    let reference = case.packages("out-clean");
    assert_eq!(reference.len(), 1, "{}", stderr(&clean));
    case.take_pids();

    let (mut during_script, mut rebuilt, mut by_group) = (0, 0, 0);
    for trial in 0..trials {
        let cache = format!("cache-{trial}");
        let out = format!("out-{trial}");
        let mut child = case
            .build(&cache, &out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(random_below(span, trial as u64)));
        let pid = child.id().to_string();
        let group = trial % 2 == 1;
        if group {
            // The whole process group: cleave and anything in its group.
            kill(&format!("-{pid}"));
            by_group += 1;
        } else {
            kill(&pid);
        }
        child.wait().unwrap();
        let pids = case.take_pids();
        during_script += usize::from(!pids.is_empty());
        for pid in pids {
            assert!(
                gone_within(pid, Duration::from_secs(5)),
                "trial {trial}: process {pid} of the killed build's script is still running"
            );
        }

        let next: Output = case.build(&cache, &out).output().unwrap();
        assert_success(&next);
        rebuilt += usize::from(!case.take_pids().is_empty());
        assert!(
            case.packages(&out) == reference,
            "trial {trial}: the packages differ from a clean build's\n{}",
            stderr(&next)
        );
        let verify = case.cleave(&cache, &["cache", "verify"]).output().unwrap();
        let report = String::from_utf8_lossy(&verify.stdout).into_owned();
        assert!(
            verify.status.success() && report.contains("0 damaged entries"),
            "trial {trial}: {report}"
        );
        std::fs::remove_dir_all(case.path(&cache)).unwrap();
        std::fs::remove_dir_all(case.path(&out)).unwrap();
    }
    eprintln!(
        "{trials} builds killed ({by_group} by process group), {during_script} while the staging \
         script ran; {rebuilt} next builds ran the staging script again, the others reused it; \
         every next build matched the clean build and left a clean cache"
    );
}

/// A staging script that appends a line per 0.1 s, 40 in all, to a file it
/// packages and to one beside the recipe that no build removes.
const SLOW_RECIPE: &str = r#"schema_version: 1
recipe:
  name: slow
  version: "1.0"
outputs:
  - staging:
      name: slow-build
    build:
      script:
        - echo "$$" >> "$RECIPE_DIR/../pids.log"
        - mkdir -p $PREFIX/share/slow
        - for i in $(seq 40); do echo "line $i" >> $PREFIX/share/slow/lines.txt; echo "line $i" >> "$RECIPE_DIR/../progress.log"; sleep 0.1; done
  - package:
      name: slow-data
    inherit: slow-build
    build:
      noarch: generic
"#;

/// `root` and its descendants, with their names (`comm`), from `/proc`.
fn tree(root: u32) -> Vec<(i32, String)> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold spaces and parens.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if let Some(ppid) = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<i32>().ok())
        {
            all.push((pid, ppid, stat[open + 1..close].to_string()));
        }
    }
    let root = i32::try_from(root).unwrap();
    let mut found: Vec<(i32, String)> = all
        .iter()
        .filter(|(pid, ..)| *pid == root)
        .map(|(pid, _, name)| (*pid, name.clone()))
        .collect();
    let mut i = 0;
    while i < found.len() {
        let parent = found[i].0;
        found.extend(
            all.iter()
                .filter(|(_, ppid, _)| *ppid == parent)
                .map(|(pid, _, name)| (*pid, name.clone())),
        );
        i += 1;
    }
    found
}

/// Lines in `progress.log` so far.
fn progress(case: &Case) -> usize {
    std::fs::read_to_string(case.path("progress.log"))
        .unwrap_or_default()
        .lines()
        .count()
}

#[test]
fn killall_cleave_during_the_script_stops_it_and_the_next_build_is_right() {
    let case = Case::new(SLOW_RECIPE);
    let clean = case.build("cache-clean", "out-clean").output().unwrap();
    assert_success(&clean);
    let reference = case.packages("out-clean");
    assert_eq!(reference.len(), 1, "{}", stderr(&clean));
    case.take_pids();
    std::fs::remove_file(case.path("progress.log")).unwrap();

    let mut child = case
        .build("cache", "out")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while progress(&case) < 3 {
        assert!(Instant::now() < deadline, "the staging script never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    // As `killall -9 cleave`: every process named `cleave` (of this build,
    // not of the machine), stopped first so that all die at once.
    let named: Vec<String> = tree(child.id())
        .into_iter()
        .filter(|(_, name)| name == "cleave")
        .map(|(pid, _)| pid.to_string())
        .collect();
    assert!(!named.is_empty());
    for signal in ["-STOP", "-KILL"] {
        let _ = Command::new("kill")
            .arg(signal)
            .arg("--")
            .args(&named)
            .stderr(Stdio::null())
            .status();
    }
    child.wait().unwrap();
    // The file stops growing: two looks half a second apart agree, well
    // before the 3.7 s the script had left to run.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut lines = progress(&case);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = progress(&case);
        if now == lines {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the killed build's script still writes: {now} lines"
        );
        lines = now;
    }
    assert!(lines < 40, "the script finished before it was killed");
    for pid in case.take_pids() {
        assert!(
            gone_within(pid, Duration::from_secs(5)),
            "process {pid} of the killed build's script is still running"
        );
    }

    let next = case.build("cache", "out").output().unwrap();
    assert_success(&next);
    assert!(
        case.packages("out") == reference,
        "the packages differ from a clean build's\n{}",
        stderr(&next)
    );
}
