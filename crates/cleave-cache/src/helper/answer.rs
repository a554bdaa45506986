//! A helper's answers, read as what they are: foreign text. Each is one
//! JSON object of the fields protocol 1 defines, checked here, where it is
//! read: the entry a lookup names is a path cleave only reads from (a
//! directory or a regular file, opened without blocking), and where a
//! store says the entry went is text for people, kept and printed escaped.
//! Both are bounded and hold no NUL.

use std::path::PathBuf;

use serde::Deserialize;

use crate::foreign::printable;

/// The longest path or place an answer may name: the system's `PATH_MAX`.
pub const MAX_PATH: usize = 4096;

/// How the helper hands an entry over.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The entry may go away as soon as the helper exits.
    Copy,
    /// The entry stays readable until the build ends.
    InPlace,
}

/// A lookup's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The helper does not have the entry.
    Missing,
    /// The helper has it at `entry`.
    Found {
        /// A portable entry: a directory or a `.tar`.
        entry: PathBuf,
        /// How it is handed over.
        mode: Mode,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LookupAnswer {
    found: bool,
    entry: Option<String>,
    mode: Option<Mode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreAnswer {
    relocated_to: Option<String>,
}

/// A name from an answer, if it may be one: not empty, no NUL, at most
/// [`MAX_PATH`] bytes.
fn checked(field: &str, text: String) -> Result<String, String> {
    if text.is_empty() || text.contains('\0') || text.len() > MAX_PATH {
        return Err(format!(
            "its `{field}` is empty, holds a NUL or is longer than {MAX_PATH} bytes"
        ));
    }
    Ok(text)
}

/// Reads a lookup's answer. The error says what is wrong, escaped.
pub fn lookup(bytes: &[u8]) -> Result<Lookup, String> {
    let answer: LookupAnswer = serde_json::from_slice(bytes)
        .map_err(|e| printable(&format!("lookup answered something else: {e}")).into_owned())?;
    match (answer.found, answer.entry) {
        (false, _) => Ok(Lookup::Missing),
        (true, None) => Err("lookup found an entry but named none".into()),
        (true, Some(entry)) => Ok(Lookup::Found {
            entry: PathBuf::from(checked("entry", entry)?),
            mode: answer.mode.unwrap_or(Mode::Copy),
        }),
    }
}

/// Reads a store's answer: where the helper says the entry went, if it
/// says. The error says what is wrong, escaped.
pub fn store(bytes: &[u8]) -> Result<Option<String>, String> {
    let answer: StoreAnswer = serde_json::from_slice(bytes)
        .map_err(|e| printable(&format!("store answered something else: {e}")).into_owned())?;
    answer
        .relocated_to
        .map(|to| checked("relocated_to", to))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_and_checked() {
        assert_eq!(lookup(br#"{"found": false}"#), Ok(Lookup::Missing));
        assert_eq!(
            lookup(br#"{"found": true, "entry": "/e", "mode": "in-place"}"#),
            Ok(Lookup::Found {
                entry: "/e".into(),
                mode: Mode::InPlace
            })
        );
        assert!(
            lookup(br#"{"found": true}"#)
                .unwrap_err()
                .contains("named none")
        );
        assert!(lookup(br#"{"found": true, "entry": "a\u0000b"}"#).is_err());
        assert!(
            lookup(br#"{"found": true, "\u001b[2J": 1}"#)
                .unwrap_err()
                .contains("\\u{1b}")
        );
        assert_eq!(store(b"{}"), Ok(None));
        assert_eq!(
            store(br#"{"relocated_to": "s3://x"}"#),
            Ok(Some("s3://x".into()))
        );
        let long = format!(r#"{{"relocated_to": "{}"}}"#, "x".repeat(MAX_PATH + 1));
        assert!(store(long.as_bytes()).is_err());
    }
}
