//! Any bytes read as a cache entry's `entry.json` or `files.json` yield an
//! entry or a refusal (damage), never a panic.
//!
//! The digests that guard both files would stop nearly every input before
//! the parsers and checks behind them, so each input is also presented as
//! the store would have written it: sealed, and recorded by the metadata.

#![no_main]

use cleave_cache::manifest::{EntryMeta, Manifest};
use cleave_cache::{Digest, Inputs};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = Digest::of(b"fuzz");
    // As entry.json on disk: the seal and the key decide first, and what
    // is accepted is the entry asked for.
    if let Ok(meta) = EntryMeta::from_json(data, &key) {
        assert_eq!(meta.key, key);
    }
    // As the metadata text inside a good seal.
    if let Ok(text) = std::str::from_utf8(data) {
        let sealed = format!(
            "{{\"seal\":\"{}\",\"meta\":{text}}}",
            Digest::of(text.as_bytes())
        );
        if let Ok(meta) = EntryMeta::from_json(sealed.as_bytes(), &key) {
            assert_eq!(meta.key, key);
        }
    }
    // As files.json whose digest the metadata records.
    let meta = EntryMeta {
        key,
        name: String::new(),
        created: 0,
        inputs: Inputs::new(),
        items: 0,
        size: 0,
        extra: serde_json::Value::Null,
        manifest: Digest::of(data),
    };
    if let Ok(manifest) = Manifest::from_json(data, &meta) {
        let _ = manifest
            .blobs()
            .fold(0u64, |sum, (_, size)| sum.saturating_add(size));
    }
});
