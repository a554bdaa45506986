//! Keys of `build` that decide what goes into a package and how it is
//! relocated: `prefix_detection`, `always_include_files`,
//! `merge_build_and_host_envs`, `dynamic_linking.rpaths` and
//! `rpath_allowlist`.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::super::{build, recipe};
use super::flat_stderr;
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

/// What `readelf ARGS path` prints.
fn readelf(args: &[&str], path: &Path) -> String {
    let output = Command::new("readelf")
        .args(args)
        .arg(path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "readelf {args:?} {}",
        path.display()
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The `(TAG, value)` rows of the dynamic section of the ELF file at `path`.
fn dynamic(path: &Path) -> Vec<(String, String)> {
    readelf(&["-dW"], path)
        .lines()
        .filter_map(|l| {
            let (_, rest) = l.trim().split_once(" (")?;
            let (tag, value) = rest.split_once(')')?;
            Some((tag.to_string(), value.trim().to_string()))
        })
        .collect()
}

/// The search path tags of the ELF file at `path` with their values:
/// `("RUNPATH", "$ORIGIN/../lib")`.
fn search_tags(path: &Path) -> Vec<(String, String)> {
    dynamic(path)
        .into_iter()
        .filter(|(tag, _)| tag == "RPATH" || tag == "RUNPATH")
        .map(|(tag, v)| {
            let value = v
                .split_once('[')
                .map_or(v.as_str(), |(_, v)| v.trim_end_matches(']'));
            (tag, value.to_string())
        })
        .collect()
}

/// The RPATH or RUNPATH entries of the ELF file at `path`, by `readelf`.
fn search_path(path: &Path) -> Vec<String> {
    search_tags(path)
        .iter()
        .flat_map(|(_, v)| v.split(':').map(str::to_string).collect::<Vec<_>>())
        .collect()
}

/// What a program means, apart from where its tables are: the dynamic
/// entries that are not addresses of the tables a rewrite may move, the
/// dynamic symbols (name, version, type, binding, value, size; not their
/// version indices, which a rewrite may number anew), the relocations
/// (where, what, against which symbol), and the address and bytes of every
/// section that holds code or data.
fn meaning(path: &Path) -> Vec<String> {
    const TABLES: [&str; 11] = [
        "STRTAB", "STRSZ", "SYMTAB", "GNU_HASH", "HASH", "VERSYM", "VERNEED", "VERDEF", "RPATH",
        "RUNPATH", "NULL",
    ];
    let mut facts: Vec<String> = dynamic(path)
        .into_iter()
        .filter(|(tag, _)| !TABLES.contains(&tag.as_str()))
        .map(|(tag, value)| format!("dynamic {tag} {value}"))
        .collect();
    let mut symbols: Vec<String> = readelf(&["-W", "--dyn-syms"], path)
        .lines()
        .filter(|l| {
            l.trim_start()
                .split(':')
                .next()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().skip(1).collect();
            let fields: Vec<&str> = fields
                .into_iter()
                .filter(|f| !(f.starts_with('(') && f.ends_with(')')))
                .collect();
            format!("symbol {}", fields.join(" "))
        })
        .collect();
    symbols.sort();
    let mut relocations: Vec<String> = readelf(&["-W", "-r"], path)
        .lines()
        .filter(|l| l.chars().take(8).all(|c| c.is_ascii_hexdigit()) && l.len() > 8)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!("relocation {} {} {}", f[0], f[2], f[3..].join(" "))
        })
        .collect();
    relocations.sort();
    facts.extend(symbols);
    facts.extend(relocations);
    for line in readelf(&["-SW"], path).lines() {
        let Some((_, rest)) = line.split_once("] ") else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let [name, kind, address, ..] = f.as_slice() else {
            continue;
        };
        let code_or_data = [
            ".text",
            ".rodata",
            ".data",
            ".init",
            ".fini",
            ".plt",
            ".got",
            ".got.plt",
            ".init_array",
            ".fini_array",
            ".eh_frame",
            ".eh_frame_hdr",
            ".bss",
        ];
        if !code_or_data.contains(name) {
            continue;
        }
        let bytes = if *kind == "NOBITS" {
            String::new()
        } else {
            readelf(&["-x", name], path)
                .lines()
                .filter(|l| l.starts_with("  0x"))
                .map(|l| l.chars().skip(13).take(35).collect::<String>())
                .collect()
        };
        facts.push(format!("section {name} {kind} {address} {bytes}"));
    }
    facts
}

#[test]
fn every_binary_gets_its_rpath_whatever_room_its_linker_left() {
    let tmp = tempfile::tempdir().unwrap();
    let output = build(&recipe("rpath-room"), tmp.path(), "out", &[], &[]);
    assert_success(&output);
    let prefix = tmp.path().join("installed/elsewhere");
    let checked = oracle(
        &tmp.path().join("out"),
        &prefix,
        &["rpath-room"],
        &["app-none"],
    );
    assert_eq!(checked["command"]["code"], 0, "{}", checked["command"]);
    assert_eq!(checked["command"]["stdout"], "answer 42\n");
    for app in ["app-short", "app-rpath"] {
        let run = Command::new(prefix.join("bin").join(app)).output().unwrap();
        assert_success(&run);
        assert_eq!(String::from_utf8_lossy(&run.stdout), "answer 42\n", "{app}");
    }

    let tag = |t: &str, v: &str| vec![(t.to_string(), v.to_string())];
    let expected = [
        ("lib/libroom.so.1", tag("RUNPATH", "$ORIGIN")),
        ("lib/libshort.so.1", tag("RUNPATH", "$ORIGIN")),
        ("bin/app-none", tag("RUNPATH", "$ORIGIN/../lib")),
        ("bin/app-short", tag("RUNPATH", "$ORIGIN/../lib")),
        ("bin/app-rpath", tag("RPATH", "$ORIGIN/../lib")),
    ];
    for (file, search) in expected {
        let installed = prefix.join(file);
        assert_eq!(search_tags(&installed), search, "{file}");
        // The binary as linked, kept by the build.
        let name = Path::new(file).file_name().unwrap().to_string_lossy();
        let gz = prefix.join(format!("share/rpath-room/{name}.gz"));
        let original = tmp.path().join(name.as_ref());
        let unzip = Command::new("gzip").arg("-dc").arg(&gz).output().unwrap();
        assert_success(&unzip);
        std::fs::write(&original, &unzip.stdout).unwrap();
        let (before, after) = (meaning(&original), meaning(&installed));
        assert!(
            before.iter().any(|f| f.starts_with("section .text")),
            "{before:?}"
        );
        assert!(before.iter().any(|f| f.starts_with("symbol")), "{before:?}");
        assert_eq!(before, after, "{file} changed meaning");
    }
}

#[test]
fn a_binary_that_cannot_get_its_rpath_fails_the_build_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let output = build(&recipe("rpath-impossible"), tmp.path(), "out", &[], &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = flat_stderr(&output);
    assert!(
        text.contains("a binary cannot get the RPATH the recipe asks for"),
        "{text}"
    );
    assert!(
        text.contains("bin/app-headless: cannot give it the search path `$ORIGIN/../lib`"),
        "{text}"
    );
    // Without a patchelf it says what would help; with one (CI has it on
    // PATH), that patchelf failed too.
    assert!(
        text.contains("add `patchelf` to the build requirements")
            || text.contains("and so did patchelf"),
        "{text}"
    );
    assert!(
        !tmp.path().join("out/linux-64").exists()
            || std::fs::read_dir(tmp.path().join("out/linux-64"))
                .unwrap()
                .all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".conda"))
    );
}

#[test]
fn a_binary_without_rpath_that_cannot_get_one_ships_as_linked_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let output = build(&recipe("rpath-left-alone"), tmp.path(), "out", &[], &[]);
    assert_success(&output);
    let text = flat_stderr(&output);
    assert!(
        text.contains("bin/app-headless: has no RPATH and could not be given `$ORIGIN/../lib`"),
        "{text}"
    );
    let packages: Vec<_> = std::fs::read_dir(tmp.path().join("out/linux-64"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".conda")
        })
        .collect();
    assert_eq!(packages.len(), 1);
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
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(
        warnings.iter().any(|w| w.contains(
            "bin/rp-app: RPATH entry /opt/rp-dropped is outside the prefix and not in build.dynamic_linking.rpath_allowlist; removed"
        )),
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
    // Linked without one, it gets the `rpaths` all the same.
    assert_eq!(
        search_path(&prefix.join("bin/rp-bare")),
        ["$ORIGIN/../lib", "$ORIGIN/../lib/extra"]
    );
}
