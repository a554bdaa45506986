//! Many `cleave build`s at once, sharing a cache and a staging root: eight
//! of a recipe with a staging build and eight of one without, half into
//! their own output dirs and half into one shared channel. Every build
//! succeeds, the scripts run once, every package is the same bytes
//! wherever it landed, and the shared channel lists each package once.
//! A second test runs `cleave cache gc --max-size 1` and `cache clean` in
//! a loop beside the builds: the store may lose entries (scripts then run
//! again), but no build may fail or produce other bytes. The store pins
//! the entries builds are using, so gc and clean leave those alone.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

mod common;
use common::{assert_success, stderr, wait_all};

const STAGED: &str = r##"schema_version: 1
recipe:
  name: together
  version: "1.0"
outputs:
  - staging:
      name: together-build
    build:
      script:
        - echo run >> "$RECIPE_DIR/../runs-staged.log"
        - mkdir -p $PREFIX/lib $PREFIX/include
        - for i in $(seq 50); do echo "lib $i" > $PREFIX/lib/l$i.txt; done
        - echo "#define T 1" > $PREFIX/include/t.h
        - sleep 0.5
  - package:
      name: together-lib
    inherit: together-build
    build:
      noarch: generic
      files:
        - lib/**
  - package:
      name: together-dev
    inherit: together-build
    build:
      noarch: generic
      files:
        - include/**
"##;

const PLAIN: &str = r#"schema_version: 1
package:
  name: alone
  version: "1.0"
build:
  noarch: generic
  script:
    - echo run >> "$RECIPE_DIR/../runs-plain.log"
    - mkdir -p $PREFIX/share && echo alone > $PREFIX/share/alone.txt
    - sleep 0.5
"#;

struct Case {
    tmp: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        let tmp = tempfile::tempdir().unwrap();
        for (dir, text) in [("staged", STAGED), ("plain", PLAIN)] {
            std::fs::create_dir(tmp.path().join(dir)).unwrap();
            std::fs::write(tmp.path().join(dir).join("recipe.yaml"), text).unwrap();
        }
        Case { tmp }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn cleave(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cleave"));
        cmd.args(args)
            .env("CLEAVE_CACHE_DIR", self.path("cache"))
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .env("NO_COLOR", "1")
            .current_dir(self.tmp.path());
        cmd
    }

    fn spawn_build(&self, recipe: &str, out: &str) -> Child {
        let root = self.path("stg");
        self.cleave(&[
            "build",
            "--recipe",
            recipe,
            "--output-dir",
            out,
            "--test",
            "skip",
        ])
        .arg("--staging-root")
        .arg(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    }

    /// Eight builds of each recipe at once: what each build was, with its
    /// output, and the output dirs used.
    fn build_all(&self) -> (Vec<(String, Output)>, Vec<String>) {
        let mut children = Vec::new();
        let mut outs = Vec::new();
        for i in 0..8 {
            for recipe in ["staged", "plain"] {
                let out = if i % 2 == 0 {
                    "shared".to_string()
                } else {
                    format!("out-{recipe}-{i}")
                };
                children.push((format!("{recipe} #{i}"), self.spawn_build(recipe, &out)));
                outs.push(out);
            }
        }
        let (whats, children): (Vec<String>, Vec<Child>) = children.into_iter().unzip();
        let finished = whats.into_iter().zip(wait_all(children)).collect();
        outs.sort();
        outs.dedup();
        (finished, outs)
    }

    fn runs(&self, which: &str) -> usize {
        std::fs::read_to_string(self.path(&format!("runs-{which}.log")))
            .map_or(0, |t| t.lines().count())
    }

    /// Every package below the output dirs, by file name: all copies of
    /// one package must be the same bytes.
    fn packages(&self, outs: &[String]) -> Vec<(String, Vec<u8>)> {
        let mut found: Vec<(String, Vec<u8>)> = Vec::new();
        for out in outs {
            for path in files(&self.path(out).join("noarch")) {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                assert!(!name.starts_with('.'), "{name} left in {out}");
                if !name.ends_with(".conda") {
                    continue;
                }
                let bytes = std::fs::read(&path).unwrap();
                match found.iter().find(|(n, _)| *n == name) {
                    Some((_, first)) => assert!(*first == bytes, "{name} differs in {out}"),
                    None => found.push((name, bytes)),
                }
            }
        }
        found.sort();
        found
    }

    /// The package names the shared channel's repodata lists.
    fn shared_listing(&self) -> Vec<String> {
        let text = std::fs::read(self.path("shared/noarch/repodata.json")).unwrap();
        let repodata: serde_json::Value = serde_json::from_slice(&text).unwrap();
        let mut names: Vec<String> = repodata["packages.conda"]
            .as_object()
            .unwrap()
            .values()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    }
}

fn assert_all_succeeded(finished: &[(String, Output)]) {
    for (what, output) in finished {
        assert!(
            output.status.success(),
            "build {what} failed:\n{}",
            stderr(output)
        );
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[test]
fn sixteen_builds_at_once_run_each_script_once_and_agree_byte_for_byte() {
    let case = Case::new();
    let (finished, outs) = case.build_all();
    assert_all_succeeded(&finished);
    assert_eq!((case.runs("staged"), case.runs("plain")), (1, 1));
    let packages = case.packages(&outs);
    let names: Vec<&str> = packages.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(
        case.shared_listing(),
        ["alone", "together-dev", "together-lib"]
    );
    let verify = case.cleave(&["cache", "verify"]).output().unwrap();
    assert_success(&verify);
}

#[test]
fn builds_beside_a_looping_gc_and_clean_all_succeed_with_the_same_bytes() {
    let case = Case::new();
    let done = AtomicBool::new(false);
    // The builds' failures are asserted after the scope: a panic inside it
    // would wait for the trimmer, which only stops when told to.
    let (finished, outs, rounds) = std::thread::scope(|scope| {
        let trimmer = scope.spawn(|| {
            let mut rounds = 0;
            while !done.load(Ordering::Relaxed) {
                let args: &[&str] = if rounds % 2 == 0 {
                    &["cache", "gc", "--max-size", "1"]
                } else {
                    &["cache", "clean"]
                };
                let output = case.cleave(args).output().unwrap();
                assert_success(&output);
                rounds += 1;
            }
            rounds
        });
        let (finished, outs) = case.build_all();
        done.store(true, Ordering::Relaxed);
        (finished, outs, trimmer.join().unwrap())
    });
    assert_all_succeeded(&finished);
    assert!(rounds > 0);
    let packages = case.packages(&outs);
    assert_eq!(packages.len(), 3);
    assert_eq!(
        case.shared_listing(),
        ["alone", "together-dev", "together-lib"]
    );
    let verify = case.cleave(&["cache", "verify"]).output().unwrap();
    assert_success(&verify);
}
