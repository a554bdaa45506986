//! Which packaged files hold the build prefix, and how installers replace
//! it: `build.prefix_detection`, with rattler-build's rules.
//!
//! A file that contains the build prefix gets it as its
//! `prefix_placeholder` in paths.json, with a `file_mode`:
//! - `text`: the installer replaces the prefix by the install prefix, of
//!   whatever length;
//! - `binary`: the replacement is padded with NUL bytes to the placeholder's
//!   length, so that offsets inside the file (ELF string tables) stay put.
//!
//! The mode is guessed from the first KiB, as rattler-build guesses it
//! (with the `content_inspector` heuristic): text unless it holds a NUL
//! byte, a UTF-16 or UTF-32 byte-order mark, or starts a PDF. Then the
//! recipe's settings apply, in rattler-build's order:
//! - `ignore: true` gives no file a placeholder; `ignore: [globs]` gives
//!   none to the files they match;
//! - `force_file_type.binary` / `.text` globs decide the mode (binary
//!   first); a file forced to be binary is also looked at as one;
//! - `ignore_binary_files: true` gives no placeholder to a file that is
//!   binary, by guess or by force.
//!
//! Python bytecode (`.pyc`, `.pyo`) never gets a placeholder: the paths in
//! it are marshalled strings with their lengths in front, which neither
//! kind of replacement keeps intact.

use std::path::Path;

use cleave_recipe::model::PrefixDetection;
use globset::GlobSet;
use rattler_conda_types::package::{FileMode, PrefixPlaceholder};

use crate::error::BuildError;
use crate::package::capture::glob_set;

/// How much of a file the text/binary guess reads, as rattler-build's.
const INSPECTED_BYTES: usize = 1024;

/// The compiled `prefix_detection` settings of one package.
pub(crate) struct PrefixRules {
    /// `ignore: true`.
    ignore_all: bool,
    ignore: GlobSet,
    force_text: GlobSet,
    force_binary: GlobSet,
    ignore_binary_files: bool,
}

impl PrefixRules {
    /// Compiles the globs of `settings` (the recipe already checked them).
    pub(crate) fn new(settings: &PrefixDetection) -> Result<Self, BuildError> {
        Ok(PrefixRules {
            ignore_all: settings.ignore_all,
            ignore: glob_set(&settings.ignore)?,
            force_text: glob_set(&settings.force_text)?,
            force_binary: glob_set(&settings.force_binary)?,
            ignore_binary_files: settings.ignore_binary_files,
        })
    }

    /// The placeholder of the file at `path` (relative to the prefix) with
    /// contents `bytes`, or `None` when it has none: it does not contain
    /// `prefix`, or the settings leave it out.
    pub(crate) fn placeholder(
        &self,
        path: &Path,
        bytes: &[u8],
        prefix: &str,
    ) -> Option<PrefixPlaceholder> {
        if prefix.is_empty() || self.ignore_all || self.ignore.is_match(path) || is_bytecode(path) {
            return None;
        }
        let forced = if self.force_binary.is_match(path) {
            Some(FileMode::Binary)
        } else if self.force_text.is_match(path) {
            Some(FileMode::Text)
        } else {
            None
        };
        let guessed = guess_mode(bytes);
        // A file forced to be text is still looked at as what it is: only
        // the mode it is recorded with changes.
        let binary = forced == Some(FileMode::Binary) || guessed == FileMode::Binary;
        if binary && self.ignore_binary_files {
            return None;
        }
        if !contains(bytes, prefix.as_bytes()) {
            return None;
        }
        Some(PrefixPlaceholder {
            file_mode: forced.unwrap_or(guessed),
            placeholder: prefix.to_string(),
            experimental_offsets: None,
        })
    }
}

/// Text or binary, from the first KiB of `bytes`.
fn guess_mode(bytes: &[u8]) -> FileMode {
    let head = &bytes[..bytes.len().min(INSPECTED_BYTES)];
    // The UTF-16 marks (UTF-32's little-endian one starts the same, and
    // its big-endian one with NULs); a UTF-8 mark is text.
    let wide = head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]);
    if wide || head.contains(&0) || head.starts_with(b"%PDF") {
        FileMode::Binary
    } else {
        FileMode::Text
    }
}

fn is_bytecode(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "pyc" || e == "pyo")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "/b/host_env_placehold";

    fn rules(settings: PrefixDetection) -> PrefixRules {
        PrefixRules::new(&settings).unwrap()
    }

    fn mode(rules: &PrefixRules, path: &str, bytes: &[u8]) -> Option<FileMode> {
        rules
            .placeholder(Path::new(path), bytes, PREFIX)
            .map(|p| p.file_mode)
    }

    fn text() -> Vec<u8> {
        format!("prefix={PREFIX}\n").into_bytes()
    }

    fn binary() -> Vec<u8> {
        let mut bytes = b"\x7fELF\0\0".to_vec();
        bytes.extend_from_slice(PREFIX.as_bytes());
        bytes
    }

    #[test]
    fn the_mode_is_guessed_from_the_first_kib() {
        let plain = rules(PrefixDetection::default());
        assert_eq!(mode(&plain, "a.txt", &text()), Some(FileMode::Text));
        assert_eq!(mode(&plain, "lib/a.so", &binary()), Some(FileMode::Binary));
        assert_eq!(mode(&plain, "a.txt", b"no prefix here"), None);
        // A NUL past the first KiB does not make a file binary.
        let mut late = text();
        late.resize(2000, b' ');
        late.push(0);
        assert_eq!(mode(&plain, "a.txt", &late), Some(FileMode::Text));
        let mut utf16 = vec![0xFF, 0xFE];
        utf16.extend(text());
        assert_eq!(mode(&plain, "a.txt", &utf16), Some(FileMode::Binary));
        assert_eq!(mode(&plain, "cache.pyc", &text()), None);
    }

    #[test]
    fn ignore_takes_all_files_or_those_its_globs_match() {
        let all = rules(PrefixDetection {
            ignore_all: true,
            ..PrefixDetection::default()
        });
        assert_eq!(mode(&all, "a.txt", &text()), None);
        let some = rules(PrefixDetection {
            ignore: vec!["share/keep/**".into()],
            ..PrefixDetection::default()
        });
        assert_eq!(mode(&some, "share/keep/a.txt", &text()), None);
        assert_eq!(mode(&some, "share/a.txt", &text()), Some(FileMode::Text));
    }

    #[test]
    fn forced_types_set_the_mode_and_binary_wins() {
        let forced = rules(PrefixDetection {
            force_text: vec!["lib/*.so".into(), "both.txt".into()],
            force_binary: vec!["share/*.txt".into(), "both.txt".into()],
            ..PrefixDetection::default()
        });
        assert_eq!(mode(&forced, "lib/a.so", &binary()), Some(FileMode::Text));
        assert_eq!(
            mode(&forced, "share/a.txt", &text()),
            Some(FileMode::Binary)
        );
        assert_eq!(mode(&forced, "both.txt", &text()), Some(FileMode::Binary));
    }

    #[test]
    fn ignore_binary_files_skips_binaries_guessed_or_forced() {
        let skip = rules(PrefixDetection {
            ignore_binary_files: true,
            force_binary: vec!["forced.txt".into()],
            force_text: vec!["lib/text.so".into()],
            ..PrefixDetection::default()
        });
        assert_eq!(mode(&skip, "lib/a.so", &binary()), None);
        assert_eq!(mode(&skip, "forced.txt", &text()), None);
        // Forcing text changes the recorded mode, not what the file is.
        assert_eq!(mode(&skip, "lib/text.so", &binary()), None);
        assert_eq!(mode(&skip, "a.txt", &text()), Some(FileMode::Text));
    }
}
