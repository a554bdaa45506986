//! Any bytes read as a remote's index of an entry give an index or a
//! refusal, never a panic: its entry files are checked as any entry's, and
//! the reads planned from its locations take every blob once, each frame
//! within what its blob can compress to, in order, and never pass over more
//! than the gap allowed.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../foreign/mod.rs"]
mod foreign;

fuzz_target!(|data: &[u8]| foreign::pack_index(data));
