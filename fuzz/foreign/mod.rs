//! What the fuzz targets for cleave-cache's readers of foreign data assert:
//! a helper's answers, a remote's pack index, a portable entry. Each check
//! feeds one input to the reader and asserts what it promises; none may
//! panic.
//!
//! Shared by the targets in `fuzz_targets/` and by the deterministic test
//! `crates/cleave-cache/tests/foreign_readers.rs`, which runs them over the
//! seeds in `fuzz/seeds/` and thousands of mutations of them in every test
//! run (no cargo-fuzz needed).

use std::collections::HashSet;
use std::path::Path;

use cleave_cache::foreign::printable;
use cleave_cache::helper::answer::{self, Lookup, MAX_PATH};
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

/// A remote's index: its entry files checked as any entry's, and the
/// reads planned from its locations for sizes a manifest might give.
pub fn pack_index(data: &[u8]) {
    let Ok(index) = Index::from_json(data) else {
        return;
    };
    let named = serde_json::from_str::<serde_json::Value>(&index.entry)
        .ok()
        .and_then(|v| v["meta"]["key"].as_str()?.parse::<Digest>().ok());
    for key in named.into_iter().chain([Digest::of(b"fuzz")]) {
        let files = EntryFiles {
            entry: index.entry.clone().into_bytes(),
            files: index.files.clone().into_bytes(),
        };
        if let Ok(incoming) = Incoming::check(&key, files) {
            assert_eq!(incoming.meta().key, key);
        }
    }
    let sizes: [fn(&Location) -> u64; 3] = [|l| l.length, |l| l.length / 2, |_| 0];
    for size in sizes {
        let wanted: Vec<(Digest, u64)> = index.blobs.iter().map(|l| (l.blob, size(l))).collect();
        if let Ok(reads) = pack::plan(&index.blobs, wanted.iter().copied()) {
            planned(&reads, &wanted);
        }
    }
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

/// A portable entry as the `.tar` `data` in `dir`, read into `store`: an
/// entry whose every blob the store holds, or a refusal.
pub fn portable_entry(store: &Store, dir: &Path, data: &[u8]) {
    let path = dir.join("entry.tar");
    std::fs::write(&path, data).expect("writing the input");
    if let Ok(entry) = portable::import(store, &path, None) {
        let manifest = entry.manifest().expect("an admitted entry reads back");
        for (blob, _) in manifest.blobs() {
            assert!(store.has_blob(&blob));
        }
    }
}
