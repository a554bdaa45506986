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
//! Nothing read back is trusted: an index is read up to
//! [`limits::INDEX`](crate::foreign::limits::INDEX) bytes, the two entry
//! files in it are checked as a local entry's are (seal, key, manifest
//! digest, safe paths), a frame may be no longer than its blob could
//! compress to ([`frame_bound`]), reads skip no more than [`MAX_GAP`]
//! bytes of other entries' frames, and a frame is decompressed as a
//! stream into at most the size the manifest gives, hashed on its way into
//! the store.

use std::collections::{BTreeMap, HashMap};

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

impl Index {
    /// Reads an index object: it must parse and be of format 1, and each
    /// location's end must be a number. What it names is checked by its
    /// reader: the entry files as any entry's, the locations by [`plan`].
    pub fn from_json(bytes: &[u8]) -> Result<Index, String> {
        let index: Index =
            serde_json::from_slice(bytes).map_err(|e| format!("its index does not parse: {e}"))?;
        if index.format != 1 {
            return Err(format!("index format {} is not 1", index.format));
        }
        if let Some(l) = index
            .blobs
            .iter()
            .find(|l| l.offset.checked_add(l.length).is_none())
        {
            return Err(format!(
                "its index places blob {} past any pack's end",
                l.blob
            ));
        }
        Ok(index)
    }
}

/// The most bytes a zstd frame of `size` bytes of input may have: zstd's
/// bound (the input and 1/256 of it) with room to spare for the frame's
/// header. A longer frame in an index is damage, and is never read.
pub fn frame_bound(size: u64) -> u64 {
    size.saturating_add(size >> 7).saturating_add(1 << 10)
}

/// The most bytes of frames another entry needs that a read of a pack
/// passes over; frames further apart are read by separate requests.
pub const MAX_GAP: u64 = 4 << 20;

/// One ranged read of a pack, and the frames to take from it in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackRead {
    /// The pack.
    pub pack: Digest,
    /// Where the read starts.
    pub start: u64,
    /// Where it ends (exclusive).
    pub end: u64,
    /// Each frame's location and its blob's size in the manifest, by
    /// offset.
    pub frames: Vec<(Location, u64)>,
}

/// The reads that bring `wanted` blobs (digest and the manifest's size)
/// from the packs `locations` name: per pack, frames by offset, runs of
/// frames at most [`MAX_GAP`] apart in one read. Refused: a wanted blob
/// the index does not locate, a frame longer than [`frame_bound`] of its
/// blob's size, and frames that overlap.
pub fn plan(
    locations: &[Location],
    wanted: impl IntoIterator<Item = (Digest, u64)>,
) -> Result<Vec<PackRead>, String> {
    let located: HashMap<Digest, &Location> = locations.iter().map(|l| (l.blob, l)).collect();
    let mut by_pack: BTreeMap<Digest, Vec<(Location, u64)>> = BTreeMap::new();
    for (blob, size) in wanted {
        let l = located
            .get(&blob)
            .ok_or_else(|| format!("its index does not locate blob {blob}"))?;
        if l.length > frame_bound(size) {
            return Err(format!(
                "its index gives blob {blob} a frame of {} bytes, more than {size} bytes can compress to",
                l.length
            ));
        }
        by_pack
            .entry(l.pack)
            .or_default()
            .push(((*l).clone(), size));
    }
    let mut reads = Vec::new();
    for (pack, mut frames) in by_pack {
        frames.sort_by_key(|(l, _)| l.offset);
        frames.dedup_by_key(|(l, _)| l.blob);
        let mut current: Option<PackRead> = None;
        for (l, size) in frames {
            let end = l.offset + l.length;
            match &mut current {
                Some(read) if l.offset < read.end => {
                    return Err(format!("its index has frames that overlap in pack {pack}"));
                }
                Some(read) if l.offset - read.end <= MAX_GAP => {
                    read.end = end;
                    read.frames.push((l, size));
                }
                _ => {
                    reads.extend(current.take());
                    current = Some(PackRead {
                        pack,
                        start: l.offset,
                        end,
                        frames: vec![(l, size)],
                    });
                }
            }
        }
        reads.extend(current);
    }
    Ok(reads)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(blob: &[u8], pack: &[u8], offset: u64, length: u64) -> Location {
        Location {
            blob: Digest::of(blob),
            pack: Digest::of(pack),
            offset,
            length,
        }
    }

    #[test]
    fn reads_are_planned_per_pack_and_run_of_near_frames() {
        let index = [
            at(b"a", b"p", 0, 10),
            at(b"b", b"p", 10, 10),
            at(b"c", b"p", 20 + MAX_GAP + 1, 10),
            at(b"d", b"q", 5, 10),
        ];
        let wanted = [b"a", b"b", b"c", b"d"].map(|b| (Digest::of(b), 10));
        let reads = plan(&index, wanted).unwrap();
        let ranges: Vec<(u64, u64, usize)> = reads
            .iter()
            .map(|r| (r.start, r.end, r.frames.len()))
            .collect();
        let mut expected = vec![(0, 20, 2), (20 + MAX_GAP + 1, 31 + MAX_GAP, 1), (5, 15, 1)];
        if Digest::of(b"q") < Digest::of(b"p") {
            expected.rotate_right(1);
        }
        assert_eq!(ranges, expected);
    }

    #[test]
    fn hostile_locations_are_refused_before_anything_is_read() {
        let wanted = [(Digest::of(b"a"), 10), (Digest::of(b"b"), 10)];
        let overlap = [at(b"a", b"p", 0, 10), at(b"b", b"p", 5, 10)];
        assert!(plan(&overlap, wanted).unwrap_err().contains("overlap"));
        let long = [at(b"a", b"p", 0, 1 << 40), at(b"b", b"p", 0, 10)];
        assert!(plan(&long, wanted).unwrap_err().contains("compress to"));
        let missing = [at(b"a", b"p", 0, 10)];
        assert!(
            plan(&missing, wanted)
                .unwrap_err()
                .contains("does not locate")
        );
        let past = format!(
            r#"{{"format":1,"entry":"","files":"","blobs":[{{"blob":"{}","pack":"{}","offset":{},"length":2}}]}}"#,
            Digest::of(b"a"),
            Digest::of(b"p"),
            u64::MAX
        );
        assert!(
            Index::from_json(past.as_bytes())
                .unwrap_err()
                .contains("past")
        );
        assert!(Index::from_json(b"{}").is_err());
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
