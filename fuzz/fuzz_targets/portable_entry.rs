//! Any bytes read as a portable entry's `.tar` (what a cache helper hands
//! back) give an entry the store holds whole, with only paths a restore
//! may write, or a refusal: never a panic. The entry is also read resealed
//! over its manifest (so that edits of `files.json` reach the path checks),
//! as a `.tar` and as a directory. Every run imports into one store, so
//! that blobs it accepted earlier are there, as in a store in use (an
//! admitted entry is removed once checked: the store keeps the first entry
//! of a key, and the next one must be checked, not that).

#![no_main]

use std::sync::OnceLock;

use cleave_cache::Store;
use libfuzzer_sys::fuzz_target;

#[path = "../foreign/mod.rs"]
mod foreign;

fn store() -> &'static (tempfile::TempDir, Store) {
    static STORE: OnceLock<(tempfile::TempDir, Store)> = OnceLock::new();
    STORE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = Store::open(dir.path().join("store")).expect("a store");
        (dir, store)
    })
}

fuzz_target!(|data: &[u8]| {
    let (dir, store) = store();
    foreign::portable_entry(store, dir.path(), data);
});
