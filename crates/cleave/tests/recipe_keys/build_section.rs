//! Keys of `build` that decide what goes into a package and how it is
//! relocated: `prefix_detection`, `always_include_files`,
//! `merge_build_and_host_envs`, `dynamic_linking.rpaths` and
//! `rpath_allowlist`.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::super::{build, recipe};
use crate::common::{assert_success, index, oracle, package, paths, stderr, strings};

/// The paths.json entry of `path` in the package called `name`.
fn entry<'a>(checked: &'a Value, name: &str, path: &str) -> &'a Value {
    package(checked, name)["paths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["_path"] == path)
        .unwrap_or_else(|| panic!("no {path} in {name}"))
}

/// The `file_mode` of `path` in package `name`, `None` without a placeholder.
fn file_mode(checked: &Value, name: &str, path: &str) -> Option<String> {
    let e = entry(checked, name, path);
    assert_eq!(
        e.get("prefix_placeholder").is_some(),
        e.get("file_mode").is_some(),
        "{e}"
    );
    e.get("file_mode").map(|m| m.as_str().unwrap().to_string())
}

#[test]
fn prefix_detection_decides_placeholders_and_their_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let output = build(&recipe("prefix-detection"), tmp.path(), "out", &[], &[]);
    assert_success(&output);
    let prefix = tmp.path().join("env");
    let checked = oracle(&tmp.path().join("out"), &prefix, &["pd-globs"], &[]);
    let mode = |name: &str, file: &str| file_mode(&checked, name, &format!("share/{name}/{file}"));
    let (text, binary) = (Some("text".to_string()), Some("binary".to_string()));

    assert_eq!(mode("pd-globs", "plain.txt"), text);
    assert_eq!(mode("pd-globs", "data.bin"), binary);
    assert_eq!(mode("pd-globs", "ignored/skip.txt"), None);
    assert_eq!(mode("pd-globs", "forced.txt"), binary);
    assert_eq!(mode("pd-globs", "forced.bin"), text);

    assert_eq!(mode("pd-no-binary", "plain.txt"), text);
    assert_eq!(mode("pd-no-binary", "data.bin"), None);
    assert_eq!(mode("pd-no-binary", "forced.bin"), None);

    for file in ["plain.txt", "data.bin", "forced.txt"] {
        assert_eq!(mode("pd-none", file), None, "{file}");
    }

    // Installed: the ignored file still names the build prefix, the
    // others the install prefix (the forced binary one NUL-padded to the
    // length it had).
    let read = |file: &str| std::fs::read(prefix.join("share/pd-globs").join(file)).unwrap();
    let installed = prefix.to_string_lossy().into_owned();
    assert_eq!(
        read("plain.txt"),
        format!("built in {installed}\n").as_bytes()
    );
    let skipped = String::from_utf8(read("ignored/skip.txt")).unwrap();
    assert!(!skipped.contains(&installed), "{skipped}");
    let forced = read("forced.txt");
    let packaged =
        entry(&checked, "pd-globs", "share/pd-globs/forced.txt")["size_in_bytes"].clone();
    assert_eq!(packaged, forced.len());
    assert!(forced.starts_with(format!("built in {installed}\n\0").as_bytes()));
}

#[test]
fn always_included_files_of_a_host_dependency_are_packaged() {
    let tmp = tempfile::tempdir().unwrap();
    assert_success(&build(
        &recipe("always-include"),
        tmp.path(),
        "out",
        &[],
        &[],
    ));
    let prefix = tmp.path().join("env");
    let checked = oracle(&tmp.path().join("out"), &prefix, &["ai-user"], &[]);
    assert_eq!(
        paths(&checked, "ai-user"),
        ["share/ai-dep/shared.txt", "share/ai-user/own.txt"]
    );
    assert_eq!(strings(&checked["installed"]).len(), 1);
    // It held the prefix it was installed into for the build; installed
    // again, it holds the new one.
    assert_eq!(
        file_mode(&checked, "ai-user", "share/ai-dep/shared.txt").as_deref(),
        Some("text")
    );
    let text = std::fs::read_to_string(prefix.join("share/ai-dep/shared.txt")).unwrap();
    assert_eq!(text, format!("from ai-dep in {}\n", prefix.display()));
}

#[test]
fn merged_environments_are_one_prefix_and_only_host_run_exports_apply() {
    let tmp = tempfile::tempdir().unwrap();
    let output = build(&recipe("merge-envs"), tmp.path(), "out", &[], &[]);
    assert_success(&output);
    let prefix = tmp.path().join("env");
    let checked = oracle(&tmp.path().join("out"), &prefix, &["me-user"], &[]);
    let user = index(&checked, "me-user");
    assert_eq!(strings(&user["depends"]), ["me-lib >=1.0,<2.0a0"]);
    // The tool's and the library's files are theirs, not me-user's.
    assert_eq!(paths(&checked, "me-user"), ["share/me-user/made.txt"]);
    let made = std::fs::read_to_string(prefix.join("share/me-user/made.txt")).unwrap();
    assert_eq!(made, "tool output\n");
}

/// The RPATH or RUNPATH entries of the ELF file at `path`, by `readelf`.
fn search_path(path: &Path) -> Vec<String> {
    let output = Command::new("readelf")
        .arg("-d")
        .arg(path)
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.lines()
        .filter(|l| l.contains("(RPATH)") || l.contains("(RUNPATH)"))
        .filter_map(|l| Some(l.split_once('[')?.1.trim_end_matches(']').to_string()))
        .flat_map(|v| v.split(':').map(str::to_string).collect::<Vec<_>>())
        .collect()
}

#[test]
fn rpaths_are_written_and_only_allow_listed_entries_outside_stay() {
    let tmp = tempfile::tempdir().unwrap();
    let output = build(&recipe("rpaths"), tmp.path(), "out", &[], &[]);
    assert_success(&output);
    let text = stderr(&output);
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert_eq!(warnings.len(), 2, "{text}");
    assert!(
        warnings.iter().any(|w| w.contains(
            "bin/rp-app: RPATH entry /opt/rp-dropped is outside the prefix and not in build.dynamic_linking.rpath_allowlist; removed"
        )),
        "{text}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("bin/rp-bare has no RPATH or RUNPATH")),
        "{text}"
    );

    // Installed elsewhere, the program finds libextra in lib/extra through
    // the `rpaths` entry alone.
    let prefix = tmp.path().join("some/other/env");
    let checked = oracle(&tmp.path().join("out"), &prefix, &["rpaths"], &["rp-app"]);
    assert_eq!(checked["command"]["code"], 0, "{}", checked["command"]);
    assert_eq!(checked["command"]["stdout"], "answer 42\n");
    assert_eq!(
        search_path(&prefix.join("bin/rp-app")),
        ["$ORIGIN/../lib", "$ORIGIN/../lib/extra", "/opt/rp-allowed"]
    );
    assert_eq!(
        search_path(&prefix.join("lib/extra/libextra.so.1")),
        ["$ORIGIN/..", "$ORIGIN"]
    );
    assert!(search_path(&prefix.join("bin/rp-bare")).is_empty());
}
