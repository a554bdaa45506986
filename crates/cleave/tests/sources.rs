//! End-to-end tests of sources that meet symlinks: an archive, a script or
//! a restored staging tree leaves a link to a directory outside the work
//! dir, and a later source (a path source's files, a `target_directory`, a
//! `file_name`, a patch) must not write through it. Each case is a recipe
//! made in a temporary directory, with `outside/` beside it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{assert_success, stderr};

/// A recipe directory in a temporary directory, with `outside/victim`.
struct Case {
    tmp: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("recipe")).unwrap();
        std::fs::create_dir_all(tmp.path().join("outside")).unwrap();
        std::fs::write(tmp.path().join("outside/victim"), "untouched").unwrap();
        Case { tmp }
    }

    fn recipe(&self) -> PathBuf {
        self.tmp.path().join("recipe")
    }

    fn outside(&self) -> PathBuf {
        self.tmp.path().join("outside")
    }

    /// Writes `recipe.yaml`, with `OUTSIDE` replaced by the outside dir.
    fn write_recipe(&self, text: &str) {
        let text = text.replace("OUTSIDE", &self.outside().display().to_string());
        std::fs::write(self.recipe().join("recipe.yaml"), text).unwrap();
    }

    /// `pkg-1.0.tar.gz` beside the recipe: `pkg-1.0/a.txt` and
    /// `pkg-1.0/link -> outside`.
    fn linked_tarball(&self) {
        let staging = self.tmp.path().join("tarball/pkg-1.0");
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::write(staging.join("a.txt"), "a\n").unwrap();
        std::os::unix::fs::symlink(self.outside(), staging.join("link")).unwrap();
        let status = Command::new("tar")
            .arg("-czf")
            .arg(self.recipe().join("pkg-1.0.tar.gz"))
            .arg("-C")
            .arg(self.tmp.path().join("tarball"))
            .arg("pkg-1.0")
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// `rel` below the recipe with `content`.
    fn file(&self, rel: &str, content: &str) {
        let path = self.recipe().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    fn build(&self) -> Output {
        Command::new(env!("CARGO_BIN_EXE_cleave"))
            .arg("build")
            .arg("--recipe")
            .arg(self.recipe())
            .arg("--output-dir")
            .arg(self.tmp.path().join("out"))
            .arg("--cache-dir")
            .arg(self.tmp.path().join("cache"))
            .arg("--staging-root")
            .arg(self.tmp.path().join("stg"))
            .args(["--test", "skip"])
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }

    /// The build failed naming `link`, and wrote nothing outside.
    fn assert_refused(&self, output: &Output, link: &str) {
        let err = flat(&stderr(output));
        assert_eq!(output.status.code(), Some(1), "{err}");
        let outside = self.outside().display().to_string();
        assert!(
            err.contains(&format!("`{link}`, a symlink to {outside}")),
            "{err}"
        );
        assert!(err.contains("never writes through a link"), "{err}");
        assert_untouched(&self.outside());
    }
}

/// `text` with every run of whitespace made one space: miette wraps long
/// lines.
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn assert_untouched(outside: &Path) {
    let names: Vec<String> = std::fs::read_dir(outside)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["victim"]);
    assert_eq!(
        std::fs::read_to_string(outside.join("victim")).unwrap(),
        "untouched"
    );
}

const PACKAGE: &str = "schema_version: 1
package:
  name: linky
  version: \"1.0\"
build:
  noarch: generic
  script:
    - mkdir -p $PREFIX/share
    - cp a.txt $PREFIX/share/
source:
  - path: pkg-1.0.tar.gz
";

#[test]
fn a_path_source_is_not_written_through_an_archives_link() {
    let case = Case::new();
    case.linked_tarball();
    case.file("src/link/victim", "overwritten");
    case.file("src/link/new", "new");
    case.write_recipe(&format!("{PACKAGE}  - path: src\n"));
    case.assert_refused(&case.build(), "link");
}

#[test]
fn a_target_directory_or_file_name_through_a_link_is_refused() {
    for source in [
        "  - path: extra.txt\n    target_directory: link/sub\n",
        "  - path: extra.txt\n    file_name: link/victim\n",
        "  - path: pkg-1.0.tar.gz\n    target_directory: link\n",
    ] {
        let case = Case::new();
        case.linked_tarball();
        case.file("extra.txt", "overwritten");
        case.write_recipe(&format!("{PACKAGE}{source}"));
        case.assert_refused(&case.build(), "link");
    }
}

#[test]
fn a_patch_is_not_applied_through_a_link() {
    let case = Case::new();
    case.linked_tarball();
    case.file(
        "fix.patch",
        "--- a/link/victim\n+++ b/link/victim\n@@ -1 +1 @@\n-untouched\n+patched\n",
    );
    case.write_recipe(&format!("{PACKAGE}    patches:\n      - fix.patch\n"));
    let output = case.build();
    let err = flat(&stderr(&output));
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("fix.patch would write"), "{err}");
    assert!(err.contains("`link/victim` lies below `link`"), "{err}");
    assert_untouched(&case.outside());
}

#[test]
fn an_output_source_is_not_written_through_a_link_in_the_restored_staging_tree() {
    let case = Case::new();
    case.file("src/link/victim", "overwritten");
    case.write_recipe(
        "schema_version: 1
recipe:
  name: restored
  version: \"1.0\"
outputs:
  - staging:
      name: restored-build
    build:
      script:
        - ln -s OUTSIDE $SRC_DIR/link
        - mkdir -p $PREFIX/share && echo x > $PREFIX/share/x
  - package:
      name: restored
    inherit: restored-build
    source:
      - path: src
    build:
      noarch: generic
      script:
        - test -L $SRC_DIR/link
",
    );
    case.assert_refused(&case.build(), "link");
}

#[test]
fn a_link_in_a_source_is_kept_as_a_link() {
    let case = Case::new();
    case.linked_tarball();
    case.write_recipe(&PACKAGE.replace(
        "    - cp a.txt $PREFIX/share/\n",
        "    - cp a.txt $PREFIX/share/\n    - test \"$(readlink link)\" = OUTSIDE\n",
    ));
    assert_success(&case.build());
    assert_untouched(&case.outside());
}
