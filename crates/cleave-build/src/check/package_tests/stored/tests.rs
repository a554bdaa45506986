use super::*;
use cleave_recipe::model::RenderedOutput;
use cleave_recipe::{RenderConfig, SourceFile};
use rattler_conda_types::Subdir;

const RECIPE: &str = r#"
package:
  name: demo
  version: "1.0"
tests:
  - package_contents:
      files: [lib/libdemo.so]
  - script:
      - demo --version
  - script:
      - demo --help
      - demo --version
  - python:
      imports: [demo]
      pip_check: false
      python_version: "3.12.*"
  - requirements:
      run: [zlib]
      build: [make]
    files:
      recipe: [test.c, data/]
    script:
      - cc test.c
  - downstream: demo-user
  - script: run_test
  - script:
      - if: win
        then: demo.exe --version
  - perl:
      uses: [Demo]
"#;

/// The package output of `RECIPE` rendered for linux-64 in `dir`, which
/// holds the files its tests name.
fn output(dir: &Path) -> PackageOutput {
    std::fs::write(dir.join("test.c"), "int main() { return 0; }\n").unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/input.txt"), "x\n").unwrap();
    std::fs::write(dir.join("run_test.sh"), "demo --check\n").unwrap();
    let recipe =
        cleave_recipe::parse(SourceFile::new("recipe.yaml", RECIPE), dir.to_path_buf()).unwrap();
    let mut config = RenderConfig::native();
    config.target_platform = Subdir::Linux64;
    let rendered = cleave_recipe::render(&recipe, &config).unwrap();
    match rendered.outputs.into_iter().next() {
        Some(RenderedOutput::Package(p)) => *p,
        other => panic!("unexpected {other:?}"),
    }
}

fn yaml(text: &str) -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(text).unwrap()
}

#[test]
fn tests_are_stored_as_rattler_build_writes_them() {
    let dir = tempfile::tempdir().unwrap();
    let recipe_dir = dir.path().join("recipe");
    std::fs::create_dir_all(&recipe_dir).unwrap();
    let output = output(&recipe_dir);
    let root = dir.path().join("pkg");
    std::fs::create_dir_all(&root).unwrap();
    let mut tree = Tree::new(&root);
    let files = write(&output, &recipe_dir, &dir.path().join("work"), &mut tree).unwrap();

    // The script test's files are package files in its own directory, its
    // place in the list without the package_contents test.
    let test_files = Path::new("etc/conda/test-files/demo/3");
    assert_eq!(
        files,
        [test_files.join("data/input.txt"), test_files.join("test.c")]
    );
    assert_eq!(
        std::fs::read_to_string(root.join(test_files).join("test.c")).unwrap(),
        "int main() { return 0; }\n"
    );
    let stored = std::fs::read_to_string(root.join(TESTS_YAML)).unwrap();
    assert_eq!(
        yaml(&stored),
        yaml(
            r#"
- script:
    content: demo --version
- script:
  - demo --help
  - demo --version
- python:
    imports: [demo]
    pip_check: false
    python_version: "3.12.*"
- script:
    content: cc test.c
    cwd: etc/conda/test-files/demo/3
  requirements:
    run: [zlib]
    build: [make]
  files:
    recipe: [test.c, data/]
- downstream: demo-user
- script:
    content: |
      demo --check
- perl:
    uses: [Demo]
"#
        ),
        "{stored}"
    );
}

#[test]
fn stored_tests_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let recipe_dir = dir.path().join("recipe");
    std::fs::create_dir_all(&recipe_dir).unwrap();
    let output = output(&recipe_dir);
    let root = dir.path().join("pkg");
    std::fs::create_dir_all(&root).unwrap();
    write(
        &output,
        &recipe_dir,
        &dir.path().join("work"),
        &mut Tree::new(&root),
    )
    .unwrap();
    let tests = read(&root).unwrap();
    assert_eq!(tests.len(), 7);
    let StoredTest::Commands(files_test) = &tests[3] else {
        panic!("{tests:?}");
    };
    assert_eq!(
        files_test.script.cwd.as_deref(),
        Some(Path::new("etc/conda/test-files/demo/3"))
    );
    assert_eq!(files_test.script.content.text(), "cc test.c");
    assert_eq!(files_test.requirements.run, ["zlib"]);
    let StoredTest::Python { python } = &tests[2] else {
        panic!("{tests:?}");
    };
    assert!(!python.pip_check);
    assert_eq!(python.python_version.specs(), ["3.12.*"]);
    assert!(matches!(&tests[4], StoredTest::Downstream(d) if d.downstream == "demo-user"));
    // A package without tests stores none; one from before, nothing.
    assert!(read(dir.path()).unwrap().is_empty());
}

#[test]
fn stored_tests_from_elsewhere_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let stored = dir.path().join(TESTS_YAML);
    std::fs::create_dir_all(stored.parent().unwrap()).unwrap();
    let invalid = |text: &str| {
        std::fs::write(&stored, text).unwrap();
        match read(dir.path()) {
            Err(StoredError::Invalid { reason, .. }) => reason,
            other => panic!("{text}: {other:?}"),
        }
    };
    assert!(invalid("- script:\n    content: ls\n    cwd: ../../etc\n").contains("leaves"));
    assert!(invalid("- script:\n    file: /etc/passwd\n").contains("file"));
    assert!(invalid("script: ls\n").contains("sequence"));
    std::fs::write(&stored, "#".repeat((MAX_TESTS_YAML + 1) as usize)).unwrap();
    assert!(matches!(
        read(dir.path()),
        Err(StoredError::TooLarge { .. })
    ));
    // Another tool's package_contents test is read, not run here.
    std::fs::write(&stored, "- package_contents:\n    files: [a]\n").unwrap();
    assert!(matches!(
        read(dir.path()).unwrap()[0],
        StoredTest::PackageContents { .. }
    ));
    // Only a regular file is read.
    std::fs::remove_file(&stored).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", &stored).unwrap();
    assert!(matches!(read(dir.path()), Err(StoredError::Io { .. })));
}

/// A `.tar.bz2` package at `dir/demo-1.0-0.tar.bz2` holding one entry
/// at `info/tests/tests.yaml`, made by `entry`.
fn tar_bz2_with(dir: &Path, entry: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> PathBuf {
    let mut builder = tar::Builder::new(Vec::new());
    entry(&mut builder);
    let tar = builder.into_inner().unwrap();
    let path = dir.join("demo-1.0-0.tar.bz2");
    let mut encoder =
        bzip2::write::BzEncoder::new(std::fs::File::create(&path).unwrap(), Default::default());
    std::io::Write::write_all(&mut encoder, &tar).unwrap();
    encoder.finish().unwrap();
    path
}

fn header(kind: tar::EntryType, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_cksum();
    header
}

#[test]
fn stored_tests_are_read_from_a_package_archive() {
    let dir = tempfile::tempdir().unwrap();
    let text = b"- script:\n    content: echo hi\n- downstream: demo-user\n";
    let package = tar_bz2_with(dir.path(), |b| {
        b.append_data(
            &mut header(tar::EntryType::Regular, text.len() as u64),
            TESTS_YAML,
            &text[..],
        )
        .unwrap();
    });
    let tests = read_archive(&package).unwrap();
    assert_eq!(tests.len(), 2);
    assert!(matches!(&tests[1], StoredTest::Downstream(d) if d.downstream == "demo-user"));
}

#[test]
fn a_hostile_tests_yaml_in_an_archive_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // A link standing where the list should be is not followed.
    let package = tar_bz2_with(dir.path(), |b| {
        b.append_link(
            &mut header(tar::EntryType::Symlink, 0),
            TESTS_YAML,
            "/etc/passwd",
        )
        .unwrap();
    });
    let err = read_archive(&package).unwrap_err();
    assert!(matches!(err, StoredError::Invalid { .. }), "{err}");
    // A size beyond the bound is refused before anything is read.
    let big = vec![b'#'; (MAX_TESTS_YAML + 1) as usize];
    let package = tar_bz2_with(dir.path(), |b| {
        b.append_data(
            &mut header(tar::EntryType::Regular, big.len() as u64),
            TESTS_YAML,
            &big[..],
        )
        .unwrap();
    });
    let err = read_archive(&package).unwrap_err();
    assert!(matches!(err, StoredError::TooLarge { .. }), "{err}");
    // A package without the list stores no tests.
    let package = tar_bz2_with(dir.path(), |b| {
        b.append_data(
            &mut header(tar::EntryType::Regular, 2),
            "info/index.json",
            &b"{}"[..],
        )
        .unwrap();
    });
    assert!(read_archive(&package).unwrap().is_empty());
}
