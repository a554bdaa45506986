//! Build paths inside file contents: found at capture, replaced at restore.
//!
//! Text files may grow or shrink. Binary files keep their layout: a path
//! inside a NUL-terminated string is replaced by a path no longer than
//! itself and the string is padded with NULs, the way conda relocates
//! binaries at install time. Files are rewritten as a stream ([`stream`]):
//! a file of any size costs a chunk of memory (and one string, for a
//! binary).

use std::io::{Read, Write};

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

/// The longest NUL-terminated string of a binary file a path is relocated
/// in: a string is held whole while it is rewritten, and no string a path
/// lives in (an RPATH, a configured path) comes near this.
pub(crate) const MAX_STRING: usize = 1 << 20;

/// Why a streamed relocation stopped.
#[derive(Debug)]
pub(crate) enum StreamError {
    /// Reading the input failed.
    Read(std::io::Error),
    /// Writing the output failed.
    Write(std::io::Error),
    /// A string of a binary file would grow: by this replacement.
    TooLong(usize),
    /// A binary file holds a path in a string longer than [`MAX_STRING`].
    LongString,
}

/// [`text`] or [`binary`] relocation of a stream, chunk by chunk: the same
/// bytes out as the functions give for the whole file, holding at most a
/// chunk and the longest old path (text), or a chunk and one string (a
/// binary file's, at most [`MAX_STRING`] bytes). Every byte read is shown
/// to `seen` (the caller hashes them); returns the bytes written.
///
/// The old paths are not empty and hold no NUL (a manifest's roots are
/// checked to be plain absolute paths).
pub(crate) fn stream(
    input: &mut dyn Read,
    output: &mut dyn Write,
    replacements: &[Replacement],
    binary: bool,
    chunk: usize,
    seen: &mut dyn FnMut(&[u8]),
) -> Result<u64, StreamError> {
    let Some(matcher) = matcher(replacements) else {
        return Err(StreamError::Read(std::io::Error::other(
            "the paths to replace cannot be searched for",
        )));
    };
    let mut out = Counted { output, written: 0 };
    // A match starting this far from the end of what was read may go on
    // in what comes next: it is decided with the next chunk.
    let keep = replacements.iter().map(|r| r.old.len()).max().unwrap_or(1) - 1;
    let mut pending = Vec::new();
    let mut buf = vec![0; chunk.max(1)];
    loop {
        let n = loop {
            match input.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                read => break read.map_err(StreamError::Read)?,
            }
        };
        let eof = n == 0;
        seen(&buf[..n]);
        pending.extend_from_slice(&buf[..n]);
        let decided = if eof {
            pending.len()
        } else {
            pending.len().saturating_sub(keep)
        };
        let step = Step {
            matcher: &matcher,
            replacements,
            data: &pending,
            decided,
            eof,
        };
        let done = if binary {
            step.binary(&mut out)?
        } else {
            step.text(&mut out)?
        };
        pending.drain(..done);
        if eof {
            return Ok(out.written);
        }
    }
}

/// The output of [`stream`], counted.
struct Counted<'a> {
    output: &'a mut dyn Write,
    written: u64,
}

impl Counted<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), StreamError> {
        self.output.write_all(bytes).map_err(StreamError::Write)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn zeros(&mut self, n: usize) -> Result<(), StreamError> {
        let copied = std::io::copy(&mut std::io::repeat(0).take(n as u64), self.output)
            .map_err(StreamError::Write)?;
        self.written += copied;
        Ok(())
    }
}

/// One pass of [`stream`] over what is read and not yet written.
struct Step<'a> {
    matcher: &'a AhoCorasick,
    replacements: &'a [Replacement],
    data: &'a [u8],
    /// Matches starting before this are decided.
    decided: usize,
    eof: bool,
}

impl Step<'_> {
    /// Writes what is decided, paths replaced; returns how much of the
    /// data that is.
    fn text(&self, out: &mut Counted<'_>) -> Result<usize, StreamError> {
        let mut at = 0;
        for m in self.matcher.find_iter(self.data) {
            if m.start() >= self.decided {
                break;
            }
            out.put(&self.data[at..m.start()])?;
            out.put(&self.replacements[m.pattern().as_usize()].new)?;
            at = m.end();
        }
        let upto = at.max(self.decided);
        out.put(&self.data[at..upto])?;
        Ok(upto)
    }

    /// Writes what is decided, each string holding a path rewritten and
    /// padded to its length; a string whose end is not read yet waits for
    /// the next chunk. Returns how much of the data is written.
    fn binary(&self, out: &mut Counted<'_>) -> Result<usize, StreamError> {
        let data = self.data;
        let mut at = 0;
        while let Some(m) = self.matcher.find(&data[at..]) {
            let start = at + m.start();
            if start >= self.decided {
                break;
            }
            let end = match memchr::memchr(0, &data[start..]) {
                Some(n) => start + n,
                None if self.eof => data.len(),
                None if data.len() - start > MAX_STRING => return Err(StreamError::LongString),
                None => {
                    out.put(&data[at..start])?;
                    return Ok(start);
                }
            };
            let rewritten = text(&data[start..end], self.replacements);
            if rewritten.len() > end - start {
                return Err(StreamError::TooLong(m.pattern().as_usize()));
            }
            out.put(&data[at..start])?;
            out.put(&rewritten)?;
            out.zeros(end - start - rewritten.len())?;
            at = end;
        }
        let upto = at.max(self.decided);
        out.put(&data[at..upto])?;
        Ok(upto)
    }
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

    /// Binary relocation of a whole file in place, as it was done before
    /// files were streamed: the oracle [`stream`] is checked against.
    /// Returns the first replacement that would make a string longer.
    fn binary<'r>(data: &mut [u8], replacements: &'r [Replacement]) -> Result<(), &'r Replacement> {
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

    /// xorshift64: reproducible without a dependency.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn a_stream_is_relocated_as_the_whole_file_is_in_any_chunks() {
        let replacements = [rep("/old/prefix", "/new"), rep("/old", "/n/o")];
        let pieces: [&[u8]; 6] = [b"/old/prefix/lib", b"/old", b"\0", b"x", b"/ol", b"d/pre"];
        let mut state = 0x5eed_0000_0001;
        for round in 0..400 {
            let mut data = Vec::new();
            for _ in 0..next(&mut state) % 40 {
                data.extend_from_slice(pieces[(next(&mut state) % 6) as usize]);
            }
            let is_binary = round % 2 == 1;
            let chunk = 1 + (next(&mut state) % 17) as usize;
            let mut whole = data.clone();
            let expected = if is_binary {
                binary(&mut whole, &replacements).map(|()| whole)
            } else {
                Ok(text(&data, &replacements))
            };
            let mut out = Vec::new();
            let mut seen = Vec::new();
            let got = stream(
                &mut &data[..],
                &mut out,
                &replacements,
                is_binary,
                chunk,
                &mut |b| seen.extend_from_slice(b),
            );
            assert_eq!(seen, data);
            match (expected, got) {
                (Ok(expected), Ok(n)) => {
                    assert_eq!(
                        out,
                        expected,
                        "{:?} in chunks of {chunk}",
                        String::from_utf8_lossy(&data)
                    );
                    assert_eq!(n, out.len() as u64);
                }
                (Err(_), Err(StreamError::TooLong(_))) => {}
                (expected, got) => panic!("{expected:?} / {got:?}"),
            }
        }
    }

    #[test]
    fn a_binary_string_longer_than_the_limit_is_refused() {
        let mut data = b"/old".to_vec();
        data.resize(MAX_STRING + 10, b'x');
        let got = stream(
            &mut &data[..],
            &mut Vec::new(),
            &[rep("/old", "/n")],
            true,
            64 << 10,
            &mut |_| {},
        );
        assert!(matches!(got, Err(StreamError::LongString)), "{got:?}");
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
