//! The local channel index: only new or changed archives are read, a
//! package rewritten under its name gets a new record, concurrent writers
//! all end up listed, and a package whose name and index.json disagree is
//! refused.

use std::path::{Path, PathBuf};

use cleave_channel::index::index_channel;
use cleave_channel::local::{Overwrite, Placed, publish};
use rattler_conda_types::compression_level::CompressionLevel;
use rattler_package_streaming::write::write_conda_package;
use serde_json::Value;

/// Writes `<dir>/<name>-<version>-0.conda` holding one file whose
/// contents are `payload`; returns its path.
fn package(dir: &Path, name: &str, version: &str, payload: &str) -> PathBuf {
    let tree = tempfile::tempdir().unwrap();
    let root = tree.path();
    std::fs::create_dir_all(root.join("info")).unwrap();
    std::fs::create_dir_all(root.join("share")).unwrap();
    let index = serde_json::json!({
        "name": name, "version": version, "build": "0", "build_number": 0,
        "subdir": "linux-64", "depends": [], "arch": "x86_64", "platform": "linux",
    });
    std::fs::write(root.join("info/index.json"), index.to_string()).unwrap();
    std::fs::write(root.join("share/payload.txt"), payload).unwrap();
    std::fs::write(
        root.join("info/paths.json"),
        r#"{"paths": [], "paths_version": 1}"#,
    )
    .unwrap();
    let id = format!("{name}-{version}-0");
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(format!("{id}.conda"));
    let file = std::fs::File::create(&path).unwrap();
    let paths = [
        root.join("info/index.json"),
        root.join("info/paths.json"),
        root.join("share/payload.txt"),
    ];
    write_conda_package(
        file,
        root,
        &paths,
        CompressionLevel::Default,
        None,
        &id,
        None,
        None,
    )
    .unwrap();
    path
}

fn repodata(channel: &Path) -> Value {
    let text = std::fs::read_to_string(channel.join("linux-64/repodata.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn only_new_or_changed_archives_are_read() {
    let tmp = tempfile::tempdir().unwrap();
    let channel = tmp.path().join("channel");
    for i in 0..5 {
        package(&channel.join("linux-64"), &format!("p{i}"), "1.0", "x");
    }
    let first = index_channel(&channel, &["linux-64"]).unwrap();
    let linux = first.iter().find(|s| s.subdir == "linux-64").unwrap();
    assert_eq!((linux.packages, linux.read), (5, 5));
    assert!(channel.join("noarch/repodata.json").is_file());

    // One more: only it is read.
    package(&channel.join("linux-64"), "new", "1.0", "x");
    let second = index_channel(&channel, &["linux-64"]).unwrap();
    let linux = second.iter().find(|s| s.subdir == "linux-64").unwrap();
    assert_eq!((linux.packages, linux.read), (6, 1));

    // Rewritten under the same name (a rebuild): read again, new digest.
    let before = repodata(&channel)["packages.conda"]["p0-1.0-0.conda"]["sha256"].clone();
    package(&channel.join("linux-64"), "p0", "1.0", "changed contents");
    let third = index_channel(&channel, &["linux-64"]).unwrap();
    let linux = third.iter().find(|s| s.subdir == "linux-64").unwrap();
    assert_eq!((linux.packages, linux.read), (6, 1));
    let after = repodata(&channel)["packages.conda"]["p0-1.0-0.conda"]["sha256"].clone();
    assert_ne!(before, after, "the rewritten package has a new record");

    // A removed file leaves the index.
    std::fs::remove_file(channel.join("linux-64/p1-1.0-0.conda")).unwrap();
    let fourth = index_channel(&channel, &["linux-64"]).unwrap();
    let linux = fourth.iter().find(|s| s.subdir == "linux-64").unwrap();
    assert_eq!((linux.packages, linux.read), (5, 0));
    assert!(repodata(&channel)["packages.conda"]["p1-1.0-0.conda"].is_null());
}

#[test]
fn a_damaged_sidecar_or_index_costs_a_full_read_not_a_wrong_record() {
    let tmp = tempfile::tempdir().unwrap();
    let channel = tmp.path().join("channel");
    package(&channel.join("linux-64"), "a", "1.0", "x");
    index_channel(&channel, &["linux-64"]).unwrap();
    std::fs::write(channel.join(".cleave-index/linux-64.json"), "{not json").unwrap();
    let again = index_channel(&channel, &["linux-64"]).unwrap();
    assert_eq!(
        again.iter().find(|s| s.subdir == "linux-64").unwrap().read,
        1
    );
    std::fs::write(channel.join("linux-64/repodata.json"), "[]").unwrap();
    let again = index_channel(&channel, &["linux-64"]).unwrap();
    assert_eq!(
        again.iter().find(|s| s.subdir == "linux-64").unwrap().read,
        1
    );
    assert!(repodata(&channel)["packages.conda"]["a-1.0-0.conda"]["sha256"].is_string());
}

#[test]
fn concurrent_publishers_all_end_up_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let channel = tmp.path().join("channel");
    let sources = tmp.path().join("built");
    let files: Vec<PathBuf> = (0..16)
        .map(|i| package(&sources, &format!("c{i}"), "1.0", &format!("{i}")))
        .collect();
    publish(&channel, &files[..1], Overwrite::Refuse).unwrap();
    std::thread::scope(|scope| {
        for file in &files[1..] {
            let channel = &channel;
            scope.spawn(move || {
                publish(channel, std::slice::from_ref(file), Overwrite::Refuse).unwrap();
            });
        }
    });
    let listed = repodata(&channel)["packages.conda"]
        .as_object()
        .unwrap()
        .len();
    assert_eq!(listed, 16);
}

#[test]
fn publishing_refuses_a_different_file_of_the_same_name() {
    let tmp = tempfile::tempdir().unwrap();
    let channel = tmp.path().join("channel");
    let first = package(&tmp.path().join("one"), "same", "1.0", "one");
    let second = package(&tmp.path().join("two"), "same", "1.0", "two");
    let (added, _) = publish(&channel, std::slice::from_ref(&first), Overwrite::Refuse).unwrap();
    assert_eq!(added[0].placed, Placed::New);
    let (again, _) = publish(&channel, std::slice::from_ref(&first), Overwrite::Refuse).unwrap();
    assert_eq!(again[0].placed, Placed::Same);
    let err = publish(&channel, std::slice::from_ref(&second), Overwrite::Refuse).unwrap_err();
    assert!(err.to_string().contains("--force"), "{err}");
    let (forced, _) = publish(&channel, &[second], Overwrite::Replace).unwrap();
    assert_eq!(forced[0].placed, Placed::Replaced);
}

#[test]
fn a_package_whose_name_and_index_disagree_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let real = package(&tmp.path().join("built"), "real", "1.0", "x");
    let renamed = tmp.path().join("other-1.0-0.conda");
    std::fs::copy(&real, &renamed).unwrap();
    let err = publish(&tmp.path().join("channel"), &[renamed], Overwrite::Refuse).unwrap_err();
    assert!(err.to_string().contains("real-1.0-0.conda"), "{err}");
    // A directory that holds other things is not made a channel.
    std::fs::write(tmp.path().join("notes.txt"), "mine").unwrap();
    let err = publish(tmp.path(), &[real], Overwrite::Refuse).unwrap_err();
    assert!(err.to_string().contains("not a channel"), "{err}");
}
