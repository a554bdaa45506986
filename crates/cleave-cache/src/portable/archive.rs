//! The members of a portable entry's `.tar`, found by their headers alone.
//!
//! Only what the format needs is understood: POSIX ustar and GNU headers,
//! whose name field (with ustar's prefix) holds every name a portable
//! entry has. Data is never read here, only skipped, so a member of any
//! size costs one header read; extension members (PAX, GNU long names) are
//! skipped the same way instead of being read whole, and a member type the
//! format never holds makes the archive damaged. A general tar reader reads
//! extension members into memory, whatever size their header claims.

use std::fs::File;
use std::os::unix::fs::FileExt;

const BLOCK: u64 = 512;

/// A regular file in the archive: its name and where its data is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its path in the archive, a leading `./` removed.
    pub name: String,
    /// Where its data starts in the archive.
    pub offset: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// Why an archive cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    /// It is not a tar, or not one a portable entry can be.
    #[error("is not a tar a portable entry can be: {0}")]
    Damaged(String),
    /// Reading it failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The regular files of the archive in `file`, in archive order. The
/// first error ends the listing.
pub fn members(file: &File) -> Members<'_> {
    Members {
        file,
        len: None,
        at: 0,
        done: false,
    }
}

/// An iterator over the regular files of an archive: see [`members`].
pub struct Members<'a> {
    file: &'a File,
    len: Option<u64>,
    at: u64,
    done: bool,
}

impl Iterator for Members<'_> {
    type Item = Result<Member, TarError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.step() {
                Ok(Some(member)) => return Some(Ok(member)),
                Ok(None) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

impl Members<'_> {
    /// Reads one header: a regular file, something skipped, or the end.
    fn step(&mut self) -> Result<Option<Member>, TarError> {
        let len = match self.len {
            Some(len) => len,
            None => *self.len.insert(self.file.metadata()?.len()),
        };
        if self.at.saturating_add(BLOCK) > len {
            self.done = true;
            return if self.at == len {
                Ok(None)
            } else {
                Err(TarError::Damaged("it ends inside a header".into()))
            };
        }
        let mut header = [0u8; BLOCK as usize];
        self.file.read_exact_at(&mut header, self.at)?;
        if header.iter().all(|&b| b == 0) {
            self.done = true;
            return Ok(None);
        }
        let parsed = parse(&header, self.at).map_err(TarError::Damaged)?;
        let cut = || TarError::Damaged("a member is cut short".into());
        let data_end = parsed
            .member
            .offset
            .checked_add(parsed.member.size)
            .filter(|end| *end <= len)
            .ok_or_else(cut)?;
        self.at = data_end.checked_next_multiple_of(BLOCK).ok_or_else(cut)?;
        Ok(parsed.regular.then_some(parsed.member))
    }
}

/// One header, read.
struct Parsed {
    member: Member,
    regular: bool,
}

fn parse(header: &[u8; BLOCK as usize], at: u64) -> Result<Parsed, String> {
    let stored = octal(&header[148..156]).ok_or("a header's checksum is not a number")?;
    let sum: u64 = header
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    if stored != sum {
        return Err("a header does not match its checksum".into());
    }
    let size = size(&header[124..136]).ok_or("a header's size is not a number")?;
    let regular = match header[156] {
        b'0' | 0 => true,
        // Directories, links, PAX and GNU long-name extensions: skipped
        // by their size.
        b'1' | b'2' | b'5' | b'x' | b'g' | b'L' | b'K' => false,
        other => {
            return Err(format!(
                "a member is of type {}, which a portable entry never holds",
                other.escape_ascii()
            ));
        }
    };
    let mut name = field(&header[0..100]);
    // POSIX ustar keeps the start of a long path in its prefix field; GNU
    // headers (magic `ustar  `) use that place for other fields.
    if &header[257..263] == b"ustar\0" {
        let prefix = field(&header[345..500]);
        if !prefix.is_empty() {
            name = format!("{prefix}/{name}");
        }
    }
    let name = name.strip_prefix("./").unwrap_or(&name).to_string();
    Ok(Parsed {
        member: Member {
            name,
            offset: at + BLOCK,
            size,
        },
        regular,
    })
}

/// A NUL-terminated text field (lossy: a name that is not UTF-8 matches
/// nothing a portable entry holds).
fn field(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// An octal number padded with spaces or NULs.
fn octal(bytes: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let text = text.trim_matches(|c: char| c == ' ' || c == '\0');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

/// A size: octal, or GNU's base-256 for sizes of 8 GiB and more.
fn size(bytes: &[u8]) -> Option<u64> {
    if bytes[0] & 0x80 == 0 {
        return octal(bytes);
    }
    if bytes[0] != 0x80 || bytes[1..4].iter().any(|&b| b != 0) {
        return None;
    }
    Some(
        bytes[4..]
            .iter()
            .fold(0u64, |n, &b| (n << 8) | u64::from(b)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> tempfile::NamedTempFile {
        let mut builder = tar::Builder::new(Vec::new());
        build(&mut builder);
        let bytes = builder.into_inner().unwrap();
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, &bytes).unwrap();
        file
    }

    fn add(builder: &mut tar::Builder<Vec<u8>>, name: &str, bytes: &[u8]) {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, bytes).unwrap();
    }

    fn list(file: &File) -> Result<Vec<Member>, TarError> {
        members(file).collect()
    }

    #[test]
    fn members_are_found_by_their_headers_and_long_names_are_skipped() {
        let long = format!("./{}/x", "d".repeat(150));
        let file = archive(|b| {
            add(b, "./entry.json", b"{}");
            add(b, &long, b"long");
            add(b, "blobs/abc", b"hello");
        });
        let found = list(file.as_file()).unwrap();
        let names: Vec<&str> = found.iter().map(|m| m.name.as_str()).collect();
        // The long name's own member is skipped: its file is known by the
        // cut name of its header, which no portable entry's name is.
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!((names[0], names[2]), ("entry.json", "blobs/abc"));
        assert_ne!(names[1], &long[2..], "{names:?}");
        let hello = &found[2];
        let mut bytes = vec![0; hello.size as usize];
        file.as_file()
            .read_exact_at(&mut bytes, hello.offset)
            .unwrap();
        assert_eq!(bytes, b"hello");
    }

    #[test]
    fn a_cut_or_edited_archive_is_damaged() {
        let file = archive(|b| add(b, "entry.json", &[7; 2000]));
        let bytes = std::fs::read(file.path()).unwrap();
        std::fs::write(file.path(), &bytes[..1024]).unwrap();
        assert!(matches!(list(file.as_file()), Err(TarError::Damaged(_))));
        let mut edited = bytes.clone();
        edited[3] ^= 1;
        std::fs::write(file.path(), &edited).unwrap();
        assert!(matches!(list(file.as_file()), Err(TarError::Damaged(_))));
        std::fs::write(file.path(), b"not a tar").unwrap();
        assert!(
            list(file.as_file())
                .unwrap_err()
                .to_string()
                .contains("ends inside")
        );
    }

    #[test]
    fn a_huge_claimed_size_is_not_read() {
        // A header claiming 2 GiB in an archive of two blocks.
        let mut header = tar::Header::new_gnu();
        header.set_path("entry.json").unwrap();
        header.set_size(2 << 30);
        header.set_cksum();
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, header.as_bytes()).unwrap();
        std::io::Write::write_all(&mut file, &[0; 512]).unwrap();
        assert!(
            list(file.as_file())
                .unwrap_err()
                .to_string()
                .contains("cut short")
        );
        assert_eq!(size(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]), Some(256));
    }
}
