//! Build paths inside file contents: found at capture, replaced at restore.
//!
//! Text files may grow or shrink. Binary files keep their layout: a path
//! inside a NUL-terminated string is replaced by a path no longer than
//! itself and the string is padded with NULs, the way conda relocates
//! binaries at install time.

use aho_corasick::{AhoCorasick, MatchKind};
use memchr::memmem;

/// One path to replace: what the file holds, what it should hold.
#[derive(Debug, Clone)]
pub(crate) struct Replacement {
    pub old: Vec<u8>,
    pub new: Vec<u8>,
}

/// Replaces every occurrence of any old path in one pass, the longest match
/// winning, so a new path that happens to contain an old one is never
/// rewritten twice.
pub(crate) fn text(data: &[u8], replacements: &[Replacement]) -> Vec<u8> {
    let Some(matcher) = matcher(replacements) else {
        return data.to_vec();
    };
    let news: Vec<&[u8]> = replacements.iter().map(|r| r.new.as_slice()).collect();
    matcher.replace_all_bytes(data, &news)
}

fn matcher(replacements: &[Replacement]) -> Option<AhoCorasick> {
    AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .build(replacements.iter().map(|r| &r.old))
        .ok()
}

/// Replaces in place, keeping every NUL-terminated string at its offset and
/// length. Returns the first replacement that would make a string longer.
pub(crate) fn binary<'r>(
    data: &mut [u8],
    replacements: &'r [Replacement],
) -> Result<(), &'r Replacement> {
    let Some(matcher) = matcher(replacements) else {
        return Ok(());
    };
    let mut from = 0;
    while let Some(found) = matcher.find(&data[from..]) {
        let start = from + found.start();
        let end = memchr::memchr(0, &data[start..]).map_or(data.len(), |n| start + n);
        let rewritten = text(&data[start..end], replacements);
        if rewritten.len() > end - start {
            return Err(&replacements[found.pattern().as_usize()]);
        }
        data[start..start + rewritten.len()].copy_from_slice(&rewritten);
        data[start + rewritten.len()..end].fill(0);
        from = end.max(start + 1);
    }
    Ok(())
}

/// Finds which of several paths occur in a stream of chunks.
pub(crate) struct Scanner {
    needles: Vec<memmem::Finder<'static>>,
    found: Vec<bool>,
    carry: Vec<u8>,
    overlap: usize,
    saw_nul: bool,
}

impl Scanner {
    pub fn new(needles: &[Vec<u8>]) -> Self {
        let overlap = needles.iter().map(Vec::len).max().unwrap_or(1).max(1) - 1;
        Scanner {
            needles: needles
                .iter()
                .map(|n| memmem::Finder::new(n).into_owned())
                .collect(),
            found: vec![false; needles.len()],
            carry: Vec::new(),
            overlap,
            saw_nul: false,
        }
    }

    /// Looks at the next chunk of the stream.
    pub fn feed(&mut self, chunk: &[u8]) {
        if !self.saw_nul && memchr::memchr(0, chunk).is_some() {
            self.saw_nul = true;
        }
        if self.needles.is_empty() {
            return;
        }
        // Occurrences across a chunk boundary: search the carried tail of
        // the previous chunk joined with the head of this one.
        if !self.carry.is_empty() {
            let head = &chunk[..chunk.len().min(self.overlap)];
            let mut joint = std::mem::take(&mut self.carry);
            joint.extend_from_slice(head);
            self.search(&joint);
        }
        self.search(chunk);
        let keep = chunk.len().min(self.overlap);
        self.carry = chunk[chunk.len() - keep..].to_vec();
    }

    fn search(&mut self, data: &[u8]) {
        for (i, finder) in self.needles.iter().enumerate() {
            if !self.found[i] && finder.find(data).is_some() {
                self.found[i] = true;
            }
        }
    }

    /// Indexes of the needles seen, and whether the stream held a NUL byte.
    pub fn finish(self) -> (Vec<usize>, bool) {
        let found = (0..self.found.len()).filter(|&i| self.found[i]).collect();
        (found, self.saw_nul)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(old: &str, new: &str) -> Replacement {
        Replacement {
            old: old.into(),
            new: new.into(),
        }
    }

    #[test]
    fn text_replacement_may_change_length() {
        let out = text(b"-I/a/x/include -L/a/x/lib", &[rep("/a/x", "/bb/yy")]);
        assert_eq!(out, b"-I/bb/yy/include -L/bb/yy/lib");
    }

    #[test]
    fn binary_replacement_pads_each_string_with_nuls() {
        let mut data = b"\x7fELF\0/long/prefix/lib:/long/prefix/x\0tail".to_vec();
        let len = data.len();
        binary(&mut data, &[rep("/long/prefix", "/p")]).unwrap();
        assert_eq!(data.len(), len);
        assert_eq!(&data[..5], b"\x7fELF\0");
        let end = 5 + b"/p/lib:/p/x".len();
        assert_eq!(&data[5..end], b"/p/lib:/p/x");
        assert!(data[end..len - 5].iter().all(|&b| b == 0));
        assert_eq!(&data[len - 4..], b"tail");
    }

    #[test]
    fn a_new_path_containing_the_old_one_is_not_rewritten_twice() {
        let out = text(b"/s/p and /s", &[rep("/s/p", "/s/x/p"), rep("/s", "/s/x")]);
        assert_eq!(out, b"/s/x/p and /s/x");
    }

    #[test]
    fn binary_replacement_refuses_a_longer_path() {
        let mut data = b"\0/short\0".to_vec();
        assert!(binary(&mut data, &[rep("/short", "/much/longer")]).is_err());
    }

    #[test]
    fn scanner_finds_paths_split_across_chunks() {
        let mut s = Scanner::new(&[b"/build/root".to_vec(), b"/other".to_vec()]);
        s.feed(b"xxxx/bui");
        s.feed(b"ld/rootyyy");
        assert_eq!(s.finish(), (vec![0], false));
        let mut s = Scanner::new(&[b"/build/root".to_vec()]);
        s.feed(b"\0abc");
        assert_eq!(s.finish(), (vec![], true));
    }
}
