//! How an entry travels: one index object and a few packs.
//!
//! ```text
//! <root>/cleave-v1/entries/<key>   index: the entry's entry.json and files.json
//!                                  as stored, and where each blob is
//! <root>/cleave-v1/packs/<digest>  blobs, each one zstd frame, back to back;
//!                                  named by the BLAKE3 digest of the pack
//! ```
//!
//! A restore is one read of the index and one (ranged) read per pack it
//! names, however many files the entry has. Packs are immutable and named by
//! their contents, so two machines writing the same pack write the same
//! bytes, and an index may name packs written for other entries: blobs a
//! remote already holds are not uploaded again. The index is written last,
//! so an index that can be read names packs that were complete.
//!
//! Nothing read back is trusted: the two entry files are checked as a local
//! entry's are (seal, key, manifest digest, safe paths), a frame is
//! decompressed into at most the size the manifest gives, and every blob
//! must hash to its digest before the store takes it.

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// The layout's version, part of every object name.
pub const LAYOUT: &str = "cleave-v1";

/// Where an entry's index is.
pub fn index_path(key: &Digest) -> String {
    format!("{LAYOUT}/entries/{key}")
}

/// Where a pack is.
pub fn pack_path(pack: &Digest) -> String {
    format!("{LAYOUT}/packs/{pack}")
}

/// An entry's index object.
#[derive(Debug, Serialize, Deserialize)]
pub struct Index {
    /// The layout version of this object (1).
    pub format: u32,
    /// `entry.json`, as the store wrote it.
    pub entry: String,
    /// `files.json`, as the store wrote it.
    pub files: String,
    /// Where each blob of the entry is.
    pub blobs: Vec<Location>,
}

/// One blob in a pack.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Location {
    /// The blob.
    pub blob: Digest,
    /// The pack.
    pub pack: Digest,
    /// Where its frame starts in the pack.
    pub offset: u64,
    /// The frame's length.
    pub length: u64,
}

/// A pack being filled.
#[derive(Debug, Default)]
pub struct PackWriter {
    bytes: Vec<u8>,
    frames: Vec<(Digest, u64, u64)>,
}

impl PackWriter {
    /// Appends one blob's compressed frame.
    pub fn push(&mut self, blob: Digest, frame: &[u8]) {
        let offset = self.bytes.len() as u64;
        self.bytes.extend_from_slice(frame);
        self.frames.push((blob, offset, frame.len() as u64));
    }

    /// Bytes so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The pack's digest, its bytes and where each of its blobs is.
    pub fn finish(self) -> (Digest, Vec<u8>, Vec<Location>) {
        let pack = Digest::of(&self.bytes);
        let locations = self
            .frames
            .into_iter()
            .map(|(blob, offset, length)| Location {
                blob,
                pack,
                offset,
                length,
            })
            .collect();
        (pack, self.bytes, locations)
    }
}

/// Compresses a blob into one frame.
pub fn compress(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    zstd::bulk::compress(bytes, 3)
}

/// Decompresses one frame into exactly `size` bytes, never more: reading
/// stops one byte past `size`. Memory grows with what the frame really
/// holds, not with the size an index claims (a hostile one may claim any).
pub fn decompress(frame: &[u8], size: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    let decoder = zstd::stream::read::Decoder::with_buffer(frame).ok()?;
    let mut bytes = Vec::new();
    decoder
        .take(size.saturating_add(1))
        .read_to_end(&mut bytes)
        .ok()?;
    (bytes.len() as u64 == size).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_claimed_size_is_refused_without_reserving_it() {
        let frame = compress(b"small").unwrap();
        assert_eq!(decompress(&frame, u64::MAX), None);
        assert_eq!(decompress(&frame, 1 << 40), None);
        assert_eq!(decompress(&frame, 5).as_deref(), Some(&b"small"[..]));
    }

    #[test]
    fn a_frame_round_trips_and_refuses_a_wrong_size() {
        let data = b"hello hello hello hello".repeat(100);
        let frame = compress(&data).unwrap();
        assert_eq!(decompress(&frame, data.len() as u64).unwrap(), data);
        assert!(decompress(&frame, data.len() as u64 - 1).is_none());
        assert!(decompress(&frame, data.len() as u64 + 1).is_none());
        assert!(decompress(b"garbage", 10).is_none());
    }

    #[test]
    fn a_pack_records_where_each_frame_is() {
        let mut pack = PackWriter::default();
        pack.push(Digest::of(b"a"), b"AAA");
        pack.push(Digest::of(b"b"), b"BB");
        let (digest, bytes, locations) = pack.finish();
        assert_eq!(digest, Digest::of(b"AAABB"));
        assert_eq!(bytes, b"AAABB");
        assert_eq!(locations[1].offset, 3);
        assert_eq!(locations[1].length, 2);
    }
}
