//! Nothing read from a cache decides where cleave writes: a package entry
//! is sealed, but the place its metadata names for the archive, and the
//! item it holds, are checked before anything is written; and a push to a
//! shared directory never writes through a link someone planted there.

use std::path::Path;

use serde_json::{Value, json};

use super::common::machines::{Machines, archives};
use super::common::{assert_success, stderr};
use super::{Portable, build, build_with, forged_helper, key_of, keys, services};

/// A forged entry of `multi-data`, exported from machine A and changed by
/// `edit` (its metadata, its manifest), sealed again.
fn forge(case: &Machines, name: &str, edit: impl FnOnce(&mut Portable)) -> (String, Portable) {
    let key = key_of(case, "a", "multi-data");
    let mut entry = Portable::export(case, "a", &key, &case.path("forged").join(name).join(&key));
    edit(&mut entry);
    entry.seal();
    (key, entry)
}

/// The package tree holds one file `path` with `bytes`, and the metadata
/// names `file` as where the archive goes.
fn plant(entry: &mut Portable, file: &str, path: &str, bytes: &[u8]) {
    let blob = entry.blob(bytes);
    entry.meta["extra"]["file"] = Value::from(file);
    entry.files["trees"]["package"] = json!([{
        "type": "file", "path": path, "blob": blob, "size": bytes.len(),
        "mode": 0o644, "mtime": [0, 0]
    }]);
}

/// An edit that makes an entry hostile.
type Edit<'a> = Box<dyn Fn(&mut Portable) + 'a>;

/// B's build succeeded, refused the entry, built `multi-data` itself, and
/// its packages are A's.
fn refused_and_rebuilt(case: &Machines, machine: &str, printed: &str) {
    assert!(printed.contains("is refused"), "{printed}");
    assert_eq!(
        archives(&case.path("out-a")),
        archives(&case.path(&format!("out-{machine}"))),
        "{printed}"
    );
    let channel = case.path(&format!("out-{machine}/linux-64"));
    for entry in std::fs::read_dir(channel).unwrap() {
        let entry = entry.unwrap();
        assert!(entry.file_type().unwrap().is_file() || entry.file_type().unwrap().is_dir());
    }
}

#[test]
fn a_sealed_package_entry_from_a_helper_cannot_choose_where_its_archive_goes() {
    let case = Machines::new();
    assert_success(&build(&case, "a", &[]));
    let victim = case.path("victim");
    std::fs::create_dir_all(&victim).unwrap();
    let keys_file = victim.join("authorized_keys");
    let absolute = keys_file.display().to_string();
    let package = "multi-data-2.1.0-hb0f4dca_0.conda";
    let variants: [(&str, Edit<'_>); 4] = [
        (
            "absolute",
            Box::new(|e| plant(e, &absolute, "authorized_keys", b"ssh-ed25519 attacker")),
        ),
        (
            "parent",
            Box::new(|e| {
                plant(
                    e,
                    "../victim/authorized_keys",
                    "authorized_keys",
                    b"ssh-ed25519 attacker",
                )
            }),
        ),
        (
            "other-subdir",
            Box::new(|e| plant(e, &format!("victim/{package}"), package, b"not a package")),
        ),
        (
            "link",
            Box::new(|e| {
                e.files["trees"]["package"] = json!([{
                    "type": "symlink", "path": package, "target": "/etc/hostname"
                }]);
            }),
        ),
    ];
    let helper = forged_helper(case.tmp.path()).display().to_string();
    for (i, (name, edit)) in variants.iter().enumerate() {
        forge(&case, name, edit);
        let machine = format!("b{i}");
        let forged = case.path("forged").join(name).display().to_string();
        let _ = std::fs::remove_dir_all(case.path("stg"));
        let b = build_with(
            &case,
            &machine,
            &["--cache-helper", &helper],
            &[("FORGED", &forged)],
        );
        let printed = stderr(&b);
        assert_success(&b);
        assert!(!keys_file.exists(), "{name}: written outside:\n{printed}");
        assert!(
            !case.path(&format!("out-{machine}/victim")).exists(),
            "{name}"
        );
        refused_and_rebuilt(&case, &machine, &printed);
        // The refused entry is not kept: the package built now is.
        let again = build(&case, &machine, &[]);
        assert_success(&again);
        assert!(
            stderr(&again).contains("reused: multi-data"),
            "{}",
            stderr(&again)
        );
    }
}

#[test]
fn a_sealed_package_entry_from_a_read_only_s3_remote_cannot_either() {
    let s3 = services::s3();
    let url = services::s3_url(&s3, "team");
    let case = Machines::new();
    assert_success(&build(&case, "a", &[]));
    let keys_file = case.path("victim/authorized_keys");
    std::fs::create_dir_all(keys_file.parent().unwrap()).unwrap();
    let absolute = keys_file.display().to_string();
    let (key, forged) = forge(&case, "s3", |e| {
        plant(e, &absolute, "authorized_keys", b"ssh-ed25519 attacker")
    });
    // Machine C, the attacker's, takes the forged entry and pushes it.
    let dir = forged.dir.display().to_string();
    assert_success(&case.cleave("c", &["cache", "import", &dir]));
    assert_success(&case.cleave("c", &["cache", "push", &key, "--to", &url]));
    let _ = std::fs::remove_dir_all(case.path("stg"));
    let b = build(
        &case,
        "b",
        &["--remote", &url, "--remote-mode", "read-only"],
    );
    let printed = stderr(&b);
    assert_success(&b);
    assert!(!keys_file.exists(), "written outside:\n{printed}");
    refused_and_rebuilt(&case, "b", &printed);
}

/// Every file below `dir`, links included, not followed.
fn everything(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten() {
        let entry = entry.unwrap();
        out.push(entry.path().display().to_string());
        if entry.file_type().unwrap().is_dir() {
            out.extend(everything(&entry.path()));
        }
    }
    out
}

#[test]
fn links_planted_in_a_shared_directory_are_never_written_through() {
    let case = Machines::new();
    assert_success(&build(&case, "a", &[]));
    // Another user of the shared directory plants a dangling link where
    // each index will go, and makes `packs` a link to their directory.
    let shared = case.path("shared");
    let entries = shared.join("cleave-v1/entries");
    std::fs::create_dir_all(&entries).unwrap();
    let victim = case.path("victim");
    std::fs::create_dir_all(victim.join("packs")).unwrap();
    for key in keys(&case, "a") {
        std::os::unix::fs::symlink(victim.join(&key), entries.join(&key)).unwrap();
    }
    std::os::unix::fs::symlink(victim.join("packs"), shared.join("cleave-v1/packs")).unwrap();
    let url = format!("file://{}", shared.display());

    let pushed = case.cleave("a", &["cache", "push", "--all", "--to", &url]);
    assert!(!pushed.status.success(), "{}", stderr(&pushed));
    assert!(stderr(&pushed).contains("refused"), "{}", stderr(&pushed));
    assert_eq!(
        everything(&victim),
        [victim.join("packs").display().to_string()]
    );

    // A build that shares through the directory skips it with a warning.
    let _ = std::fs::remove_dir_all(case.path("stg"));
    let b = build(&case, "b", &["--remote", &url]);
    let printed = stderr(&b);
    assert_success(&b);
    assert_eq!(case.runs(), 8, "{printed}");
    assert!(printed.contains("refused"), "{printed}");
    assert_eq!(printed.matches("not used again").count(), 1, "{printed}");
    assert_eq!(
        everything(&victim),
        [victim.join("packs").display().to_string()]
    );
}
