//! Packages written from a prefix read back as valid conda archives.

use std::path::{Path, PathBuf};

use cleave_build::layout::OutputDirs;
use cleave_build::package::capture::new_entries;
use cleave_build::package::{PackageContents, PackageFormat, write};
use cleave_recipe::model::{PackageOutput, RenderedOutput};
use cleave_recipe::{RenderConfig, SourceFile};
use rattler_conda_types::Subdir;
use rattler_conda_types::package::{FileMode, PackageFile, PathType, PathsJson};

fn output() -> PackageOutput {
    let text = "package:\n  name: libdemo\n  version: \"1.0\"\nrequirements:\n  run_exports:\n    - ${{ pin_subpackage('libdemo', upper_bound='x') }}\nabout:\n  license: MIT\n  summary: demo\n";
    let recipe = cleave_recipe::parse(SourceFile::new("recipe.yaml", text), ".".into()).unwrap();
    let mut config = RenderConfig::native();
    config.target_platform = Subdir::Linux64;
    let rendered = cleave_recipe::render(&recipe, &config).unwrap();
    match rendered.outputs.into_iter().next() {
        Some(RenderedOutput::Package(p)) => *p,
        other => panic!("unexpected {other:?}"),
    }
}

/// A prefix with a text file and a binary naming the prefix, links and an
/// empty directory.
fn fill(prefix: &Path) {
    let p = prefix.to_str().unwrap();
    std::fs::create_dir_all(prefix.join("lib/pkgconfig")).unwrap();
    std::fs::create_dir_all(prefix.join("share/empty")).unwrap();
    std::fs::write(
        prefix.join("lib/pkgconfig/demo.pc"),
        format!("prefix={p}\n"),
    )
    .unwrap();
    std::fs::write(
        prefix.join("lib/libdemo.so.1"),
        [b"\x7fELF\0\0".as_slice(), p.as_bytes(), b"\0rest"].concat(),
    )
    .unwrap();
    std::os::unix::fs::symlink("libdemo.so.1", prefix.join("lib/libdemo.so")).unwrap();
    std::os::unix::fs::symlink(
        prefix.join("lib/libdemo.so.1"),
        prefix.join("lib/pkgconfig/abs-link"),
    )
    .unwrap();
    std::fs::write(prefix.join("README"), "no prefix here\n").unwrap();
}

fn build(root: &Path, channel: &Path, format: PackageFormat) -> PathBuf {
    let dirs = OutputDirs::new(root, "libdemo-1.0-h0_0");
    dirs.recreate(|| {}).unwrap();
    fill(&dirs.host_prefix);
    let entries = new_entries(&dirs.host_prefix).unwrap();
    let recipe_file = root.join("recipe.yaml");
    std::fs::write(&recipe_file, "package: {name: libdemo, version: '1.0'}\n").unwrap();
    let output = output();
    let contents = PackageContents {
        output: &output,
        target: Subdir::Linux64,
        depends: vec!["libc >=2".into()],
        constrains: vec![],
        prefix: &dirs.host_prefix,
        build_prefix: &dirs.build_prefix,
        from_host: &[],
        inherited_libraries: &Default::default(),
        entries: &entries,
        moved: &Default::default(),
        link: None,
        recipe_file: &recipe_file,
        recipe_dir: root,
        work_dir: &dirs.work,
        rendered: "rendered: true\n".into(),
        timestamp: jiff::Timestamp::from_second(1_700_000_000).unwrap(),
        licenses: &[],
        channels: &["https://conda.anaconda.org/conda-forge/".to_string()],
    };
    let written = write(&contents, channel, &dirs.root.join("pkg"), format).unwrap();
    assert_eq!(written.paths.len(), 6);
    written.path
}

#[test]
fn conda_package_has_metadata_placeholders_and_relative_links() {
    let root = tempfile::tempdir().unwrap();
    let channel = root.path().join("channel");
    let archive = build(&root.path().join("a"), &channel, PackageFormat::Conda);
    assert_eq!(
        archive,
        channel
            .join("linux-64")
            .join(format!("libdemo-1.0-{}.conda", output().build.string))
    );
    let leftovers: Vec<_> = std::fs::read_dir(channel.join("linux-64"))
        .unwrap()
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "no partial files left next to the package"
    );

    let extracted = root.path().join("x");
    rattler_package_streaming::fs::extract_conda(&archive, &extracted).unwrap();
    let paths = PathsJson::from_package_directory(&extracted).unwrap();
    let entry = |p: &str| {
        paths
            .paths
            .iter()
            .find(|e| e.relative_path == Path::new(p))
            .unwrap_or_else(|| panic!("{p} missing"))
            .clone()
    };
    assert_eq!(
        entry("lib/pkgconfig/demo.pc")
            .prefix_placeholder
            .unwrap()
            .file_mode,
        FileMode::Text
    );
    assert_eq!(
        entry("lib/libdemo.so.1")
            .prefix_placeholder
            .unwrap()
            .file_mode,
        FileMode::Binary
    );
    assert!(entry("README").prefix_placeholder.is_none());
    assert_eq!(entry("lib/libdemo.so").path_type, PathType::SoftLink);
    // Empty directories are in the archive but not in paths.json, which
    // installers would reject.
    assert!(extracted.join("share/empty").is_dir());
    assert!(
        paths
            .paths
            .iter()
            .all(|e| e.path_type != PathType::Directory)
    );
    let link = std::fs::read_link(extracted.join("lib/pkgconfig/abs-link")).unwrap();
    assert!(link.is_relative(), "{}", link.display());
    assert_eq!(
        extracted
            .join("lib/pkgconfig")
            .join(link)
            .canonicalize()
            .unwrap(),
        extracted.join("lib/libdemo.so.1").canonicalize().unwrap()
    );
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(extracted.join("info/index.json")).unwrap())
            .unwrap();
    assert_eq!(index["name"], "libdemo");
    assert_eq!(index["subdir"], "linux-64");
    assert_eq!(index["depends"], serde_json::json!(["libc >=2"]));
    assert_eq!(index["timestamp"], 1_700_000_000_000i64);
    // Absent fields are left out, as rattler-build writes them: no nulls.
    let about: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(extracted.join("info/about.json")).unwrap())
            .unwrap();
    for (file, json) in [("index.json", &index), ("about.json", &about)] {
        let nulls: Vec<&String> = json
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, v)| v.is_null())
            .map(|(k, _)| k)
            .collect();
        assert!(nulls.is_empty(), "{file} has nulls: {nulls:?}");
    }
    assert!(index.get("constrains").is_none(), "{index}");
    assert_eq!(
        about["channels"],
        serde_json::json!(["https://conda.anaconda.org/conda-forge/"])
    );
    assert_eq!(about["summary"], "demo");
    assert!(about.get("license_file").is_none(), "{about}");
    // The tests travel with the package, even when there are none.
    assert_eq!(
        std::fs::read_to_string(extracted.join("info/tests/tests.yaml")).unwrap(),
        "[]\n"
    );
    let run_exports = std::fs::read_to_string(extracted.join("info/run_exports.json")).unwrap();
    assert!(
        run_exports.contains("libdemo >=1.0,<2.0a0"),
        "{run_exports}"
    );
    let files = std::fs::read_to_string(extracted.join("info/files")).unwrap();
    assert!(
        !files.contains("share/empty"),
        "directories are not files:\n{files}"
    );
}

#[test]
fn same_inputs_give_byte_identical_packages() {
    let root = tempfile::tempdir().unwrap();
    let a = build(
        &root.path().join("a"),
        &root.path().join("ca"),
        PackageFormat::Conda,
    );
    let b = build(
        &root.path().join("a"),
        &root.path().join("cb"),
        PackageFormat::Conda,
    );
    assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
}

#[test]
fn tar_bz2_packages_extract_too() {
    let root = tempfile::tempdir().unwrap();
    let archive = build(
        &root.path().join("a"),
        &root.path().join("c"),
        PackageFormat::TarBz2,
    );
    assert!(archive.to_str().unwrap().ends_with(".tar.bz2"));
    let extracted = root.path().join("x");
    rattler_package_streaming::fs::extract_tar_bz2(&archive, &extracted).unwrap();
    assert!(extracted.join("info/paths.json").is_file());
    assert!(extracted.join("lib/libdemo.so.1").is_file());
}
