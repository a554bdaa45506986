//! What the fuzz targets for cleave-cache's readers of foreign data assert:
//! a helper's answers, a remote's pack index, a portable entry. Each check
//! feeds one input to the reader and asserts what it promises; none may
//! panic, and an entry a reader admits holds only paths a restore may
//! write ([`restorable`], stated here apart from the reader's own checks).
//!
//! Shared by the targets in `fuzz_targets/` and by the deterministic test
//! `crates/cleave-cache/tests/foreign_readers.rs`, which runs them over the
//! seeds in `fuzz/seeds/` and thousands of mutations of them in every test
//! run (no cargo-fuzz needed).
//!
//! An entry's two files are guarded by digests (the seal over the
//! metadata, the manifest's digest inside it), which would stop nearly
//! every mutation before the path checks behind them. So each entry an
//! input holds is also read as the store would have written it: resealed
//! over its manifest as it now is ([`resealed`]).

use std::collections::HashSet;
use std::io::Read;
use std::path::{Component, Path};

use cleave_cache::foreign::{is_component, printable};
use cleave_cache::helper::answer::{self, Lookup, MAX_PATH};
use cleave_cache::manifest::{EntryMeta, Item, Manifest, SET_ID};
use cleave_cache::remote::pack::{self, Index, Location, MAX_GAP, frame_bound};
use cleave_cache::store::{EntryFiles, Incoming};
use cleave_cache::{Digest, Store, portable};

/// A reason printed to people holds no control characters.
fn escaped(reason: &str) {
    assert_eq!(printable(reason), reason, "not escaped: {reason:?}");
}

/// A name an answer gave: not empty, no NUL, at most `MAX_PATH` bytes.
fn plain_name(name: &[u8]) {
    assert!(!name.is_empty() && name.len() <= MAX_PATH && !name.contains(&0));
}

/// A helper's answer, read as a lookup's and as a store's.
pub fn helper_answer(data: &[u8]) {
    match answer::lookup(data) {
        Ok(Lookup::Found { entry, .. }) => plain_name(entry.as_os_str().as_encoded_bytes()),
        Ok(Lookup::Missing) => {}
        Err(reason) => escaped(&reason),
    }
    match answer::store(data) {
        Ok(Some(to)) => plain_name(to.as_bytes()),
        Ok(None) => {}
        Err(reason) => escaped(&reason),
    }
}

/// Whether a restore may write `path` below its target: not empty, not
/// absolute, no `..` or `.` component (other than the `.` a path's
/// components drop), no NUL, at most `MAX_PATH` bytes.
pub fn restorable(path: &Path) -> bool {
    let bytes = path.as_os_str().as_encoded_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_PATH
        && !bytes.contains(&0)
        && path.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Fails unless every path of an admitted manifest is [`restorable`],
/// once per tree and below no link of its tree; no file is set-user-ID
/// or set-group-ID, no mode has more than permission bits, no link
/// target holds a NUL, and every root is a plain absolute path.
fn safe(manifest: &Manifest) {
    for root in manifest.roots.values() {
        let path = Path::new(root);
        let mut parts = path.components();
        assert_eq!(parts.next(), Some(Component::RootDir), "root {root:?}");
        assert!(
            parts.all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
                && path.parent().is_some()
                && !root.contains('\0'),
            "root {root:?}"
        );
    }
    for items in manifest.trees.values() {
        let mut seen = HashSet::new();
        let links: HashSet<&Path> = items
            .iter()
            .filter(|i| matches!(i, Item::Symlink { .. }))
            .map(Item::path)
            .collect();
        for item in items {
            let path = item.path();
            assert!(restorable(path), "admitted the path {path:?}");
            assert!(seen.insert(path), "admitted {path:?} twice");
            assert!(
                !path.ancestors().skip(1).any(|a| links.contains(a)),
                "admitted {path:?} below a link"
            );
            match item {
                Item::File { mode, .. } => assert!(*mode <= 0o7777 && mode & SET_ID == 0),
                Item::Dir { mode, .. } => assert!(*mode <= 0o7777),
                Item::Symlink { target, .. } => {
                    assert!(!target.as_os_str().as_encoded_bytes().contains(&0))
                }
            }
        }
    }
}

/// `entry` (an `entry.json`) sealed again, recording the digest of
/// `files`: what the store would have written had `files` been its
/// manifest. `None` when `entry` has no metadata object to seal.
pub fn resealed(entry: &[u8], files: &[u8]) -> Option<Vec<u8>> {
    let sealed: serde_json::Value = serde_json::from_slice(entry).ok()?;
    let mut meta = sealed.get("meta")?.clone();
    *meta.get_mut("manifest")? = Digest::of(files).to_hex().into();
    let text = meta.to_string();
    let seal = Digest::of(text.as_bytes());
    Some(format!("{{\"seal\":\"{seal}\",\"meta\":{text}}}").into_bytes())
}

/// A remote's index: its entry files checked as any entry's (as they are,
/// and resealed), and the reads planned from its locations for sizes a
/// manifest might give. True when an entry was admitted.
pub fn pack_index(data: &[u8]) -> bool {
    let Ok(index) = Index::from_json(data) else {
        return false;
    };
    let named = serde_json::from_str::<serde_json::Value>(&index.entry)
        .ok()
        .and_then(|v| v["meta"]["key"].as_str()?.parse::<Digest>().ok());
    let files = index.files.clone().into_bytes();
    let entries = [
        Some(index.entry.clone().into_bytes()),
        resealed(index.entry.as_bytes(), &files),
    ];
    let mut admitted = false;
    for entry in entries.into_iter().flatten() {
        for key in named.into_iter().chain([Digest::of(b"fuzz")]) {
            let both = EntryFiles {
                entry: entry.clone(),
                files: files.clone(),
            };
            if let Ok(incoming) = Incoming::check(&key, both) {
                assert_eq!(incoming.meta().key, key);
                safe(incoming.manifest());
                admitted = true;
            }
        }
    }
    let sizes: [fn(&Location) -> u64; 3] = [|l| l.length, |l| l.length / 2, |_| 0];
    for size in sizes {
        let wanted: Vec<(Digest, u64)> = index.blobs.iter().map(|l| (l.blob, size(l))).collect();
        if let Ok(reads) = pack::plan(&index.blobs, wanted.iter().copied()) {
            planned(&reads, &wanted);
        }
    }
    admitted
}

/// Fails unless `reads` keep what [`pack::plan`] promises: every wanted
/// blob once, frames in order inside their read, within their bound,
/// near each other, and reads of one pack apart.
fn planned(reads: &[pack::PackRead], wanted: &[(Digest, u64)]) {
    let mut seen = HashSet::new();
    let mut spans: Vec<(Digest, u64, u64)> = Vec::new();
    for read in reads {
        assert!(read.start <= read.end);
        let first = read.frames.first().expect("a read has a frame");
        assert_eq!(first.0.offset, read.start);
        let mut at = read.start;
        for (i, (l, size)) in read.frames.iter().enumerate() {
            assert_eq!(l.pack, read.pack);
            assert!(l.offset >= at);
            assert!(i == 0 || l.offset - at <= MAX_GAP);
            assert!(l.length <= frame_bound(*size));
            at = l.offset + l.length;
            assert!(at <= read.end);
            seen.insert(l.blob);
        }
        assert_eq!(at, read.end);
        spans.push((read.pack, read.start, read.end));
    }
    spans.sort();
    for pair in spans.windows(2) {
        assert!(
            pair[0].0 != pair[1].0 || pair[0].2 <= pair[1].1,
            "reads overlap"
        );
    }
    let wanted: HashSet<Digest> = wanted.iter().map(|(d, _)| *d).collect();
    assert_eq!(seen, wanted);
}

/// A portable entry as the `.tar` `data`, read into `store` through
/// files in `dir`: as it is, then resealed as a `.tar` and as a
/// directory. Each read gives an entry whose every blob the store holds
/// and whose every path is [`restorable`], or a refusal. True when an
/// entry was admitted.
pub fn portable_entry(store: &Store, dir: &Path, data: &[u8]) -> bool {
    let mut admitted = imported(store, &dir.join("entry.tar"), |path| {
        std::fs::write(path, data)
    });
    let Some((members, sealed)) = resealed_members(data) else {
        return admitted;
    };
    // A tar whose seal held is read as it is above.
    if !sealed {
        admitted |= imported(store, &dir.join("resealed.tar"), |path| {
            std::fs::write(path, tar_of(&members)?)
        });
    }
    admitted |= imported(store, &dir.join("resealed"), |path| {
        let _ = std::fs::remove_dir_all(path);
        std::fs::create_dir_all(path.join("blobs"))?;
        for (name, bytes) in &members {
            // Only the names a portable entry has: the harness writes
            // nothing outside `dir` whatever the input names.
            let plain = match name.strip_prefix("blobs/") {
                Some(blob) => is_component(blob),
                None => is_component(name) && name != "blobs",
            };
            if plain {
                std::fs::write(path.join(name), bytes)?;
            }
        }
        Ok(())
    });
    admitted
}

/// Writes the input at `path` with `write`, then imports it.
fn imported(store: &Store, path: &Path, write: impl FnOnce(&Path) -> std::io::Result<()>) -> bool {
    // A tar the builder refuses to write (a name no tar may hold) is not
    // an input.
    if write(path).is_err() {
        return false;
    }
    let Ok(entry) = portable::import(store, path, None) else {
        return false;
    };
    let manifest = entry.manifest().expect("an admitted entry reads back");
    safe(&manifest);
    for (blob, _) in manifest.blobs() {
        assert!(store.has_blob(&blob));
    }
    // The store keeps the first entry of a key it is given: removed, so
    // that the next input's entry is the one checked, not this one. Its
    // blobs stay, as they would in a store in use.
    let key = entry.meta().key;
    drop(entry);
    store.remove(&key).expect("removing the admitted entry");
    true
}

/// A tar's regular members: name and contents.
type Members = Vec<(String, Vec<u8>)>;

/// The regular members of the tar `data`, by name (a leading `./`
/// removed), with `entry.json` resealed over `files.json`, and whether
/// it was sealed so already; `None` when the tar cannot be read or lacks
/// either file.
fn resealed_members(data: &[u8]) -> Option<(Members, bool)> {
    let mut archive = tar::Archive::new(data);
    let mut members = Vec::new();
    for member in archive.entries().ok()? {
        let mut member = member.ok()?;
        if !member.header().entry_type().is_file() {
            continue;
        }
        let name = member.path().ok()?.to_str()?.to_string();
        let name = name.strip_prefix("./").unwrap_or(&name).to_string();
        let mut bytes = Vec::new();
        member.read_to_end(&mut bytes).ok()?;
        members.push((name, bytes));
    }
    let find = |wanted: &str| members.iter().position(|(name, _)| name == wanted);
    let (entry, files) = (find("entry.json")?, find("files.json")?);
    let held = serde_json::from_slice::<serde_json::Value>(&members[entry].1)
        .ok()
        .and_then(|v| v["meta"]["key"].as_str()?.parse::<Digest>().ok())
        .and_then(|key| EntryMeta::from_json(&members[entry].1, &key).ok())
        .is_some_and(|meta| meta.manifest == Digest::of(&members[files].1));
    members[entry].1 = resealed(&members[entry].1, &members[files].1)?;
    Some((members, held))
}

/// A tar of `members`, as `cleave cache export` writes one.
fn tar_of(members: &[(String, Vec<u8>)]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes) in members {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, &bytes[..])?;
    }
    builder.into_inner()
}
