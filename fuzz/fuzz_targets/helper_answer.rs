//! Any bytes a cache helper prints, read as its answer to `lookup` and to
//! `store`, give the answer or a refusal (escaped, for a warning): never a
//! panic, and never a path or place that is empty, holds a NUL or is longer
//! than a path may be.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../foreign/mod.rs"]
mod foreign;

fuzz_target!(|data: &[u8]| foreign::helper_answer(data));
