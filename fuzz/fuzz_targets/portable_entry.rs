//! Any bytes read as a portable entry's `.tar` (what a cache helper hands
//! back) give an entry the store holds whole, or a refusal: never a panic.
//! Every run imports into one store, so that entries it accepted earlier
//! are there, as in a real store.

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
