//! What this machine knows a remote holds: where blobs it uploaded or
//! downloaded sit in the remote's packs. An upload names those packs in
//! its index instead of sending the blobs again (after checking that each
//! pack is still there).
//!
//! One file per remote in the store, `remotes/<digest of the URL>`, a line
//! per blob. Lines are appended in one write each, so processes sharing the
//! store add to it without a lock; a line that does not parse is skipped.

use std::collections::HashMap;

use super::pack::Location;
use crate::digest::Digest;
use crate::foreign::limits;
use crate::shared_dir::{SharedDir, SharedDirError};

/// The record of one remote.
#[derive(Debug)]
pub struct Known {
    /// The store, whose files another user of it may have replaced: read
    /// and written without following a link.
    store: SharedDir,
    /// The record, below the store.
    path: String,
    blobs: Option<HashMap<Digest, Location>>,
}

impl Known {
    /// The record of the remote shown as `url`, in the store at `store`.
    pub fn new(store: &std::path::Path, url: &str) -> Known {
        Known {
            store: SharedDir::new(store.to_path_buf()),
            path: format!("remotes/{}", Digest::of(url.as_bytes()).to_hex()),
            blobs: None,
        }
    }

    fn load(&mut self) -> &mut HashMap<Digest, Location> {
        self.blobs.get_or_insert_with(|| {
            // Only a regular file, and at most the size of a record of
            // some 400,000 blobs (a line is 150 bytes). A larger one starts
            // afresh; anything else counts as empty.
            let bytes = match self.store.read(&self.path, limits::RECORD) {
                Ok(bytes) => bytes.unwrap_or_default(),
                Err(SharedDirError::TooLarge(_)) => {
                    let _ = self.store.remove(&self.path);
                    Vec::new()
                }
                Err(_) => Vec::new(),
            };
            String::from_utf8_lossy(&bytes)
                .lines()
                .filter_map(parse)
                .map(|l| (l.blob, l))
                .collect()
        })
    }

    /// Where the remote holds `blob`, as far as this machine knows.
    pub fn get(&mut self, blob: &Digest) -> Option<Location> {
        self.load().get(blob).cloned()
    }

    /// Forgets every blob of a pack the remote no longer has.
    pub fn forget_pack(&mut self, pack: &Digest) {
        self.load().retain(|_, l| l.pack != *pack);
    }

    /// Records locations. The record is an optimisation: failing to write
    /// it costs an upload later, nothing else.
    pub fn record(&mut self, locations: &[Location]) {
        let blobs = self.load();
        let mut lines = String::new();
        for l in locations {
            if blobs.get(&l.blob) != Some(l) {
                lines.push_str(&format!(
                    "{} {} {} {}\n",
                    l.blob, l.pack, l.offset, l.length
                ));
                blobs.insert(l.blob, l.clone());
            }
        }
        if lines.is_empty() {
            return;
        }
        let _ = self.store.append(&self.path, lines.as_bytes());
    }
}

fn parse(line: &str) -> Option<Location> {
    let mut parts = line.split(' ');
    let location = Location {
        blob: parts.next()?.parse().ok()?,
        pack: parts.next()?.parse().ok()?,
        offset: parts.next()?.parse().ok()?,
        length: parts.next()?.parse().ok()?,
    };
    parts.next().is_none().then_some(location)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_locations_are_read_back_and_garbage_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let location = Location {
            blob: Digest::of(b"a"),
            pack: Digest::of(b"p"),
            offset: 7,
            length: 9,
        };
        Known::new(dir.path(), "s3://b").record(std::slice::from_ref(&location));
        let file = dir
            .path()
            .join("remotes")
            .join(Digest::of(b"s3://b").to_hex());
        let mut text = std::fs::read_to_string(&file).unwrap();
        text.push_str("garbage line\n");
        std::fs::write(&file, text).unwrap();
        let mut known = Known::new(dir.path(), "s3://b");
        assert_eq!(known.get(&location.blob), Some(location.clone()));
        known.forget_pack(&location.pack);
        assert_eq!(known.get(&location.blob), None);
        assert_eq!(
            Known::new(dir.path(), "s3://other").get(&location.blob),
            None
        );
    }
}
