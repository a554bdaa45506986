//! The variant part of a build string: `py312h1a2b3c4`.
//!
//! The digest is computed exactly as conda-build and rattler-build compute
//! it, so a package cleave builds carries the build string those tools give
//! the same recipe and variant: the first seven hex digits of the SHA-1 of
//! the used variant written as Python's `json.dumps(variant,
//! sort_keys=True, ensure_ascii=False)` writes it. Channels, lock files and
//! `pin_subpackage(..., exact=True)` pins of other recipes then agree on
//! which build is meant.

use std::collections::BTreeMap;

use sha1::{Digest, Sha1};

/// The prefix and digest of one used variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VariantHash {
    /// `py312`, `np2py312`, `py` for noarch python, or empty.
    pub(crate) prefix: String,
    /// Seven lowercase hex digits.
    pub(crate) digest: String,
}

impl VariantHash {
    /// Hashes `used` (normalized keys, JSON values). A noarch python
    /// package's prefix is `py` whatever its variant.
    pub(crate) fn new(used: &BTreeMap<String, serde_json::Value>, noarch_python: bool) -> Self {
        let digest = Sha1::digest(python_json(used).as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let prefix = if noarch_python {
            "py".to_string()
        } else {
            language_prefix(used)
        };
        VariantHash {
            prefix,
            digest: hex[..7].to_string(),
        }
    }

    /// `{prefix}h{digest}`, the part of the build string before the number.
    pub(crate) fn tag(&self) -> String {
        format!("{}h{}", self.prefix, self.digest)
    }
}

/// `{"a": 1, "b": "x"}`: Python's separators, keys in code point order,
/// non-ASCII written as is.
fn python_json(map: &BTreeMap<String, serde_json::Value>) -> String {
    let entries: Vec<String> = map
        .iter()
        .map(|(k, v)| {
            let key = serde_json::Value::from(k.as_str());
            format!("{key}: {v}")
        })
        .collect();
    format!("{{{}}}", entries.join(", "))
}

/// `np`, `py`, `pl`, `lua` and `r` with the leading parts of their
/// versions, in that order: `np2py312`.
fn language_prefix(used: &BTreeMap<String, serde_json::Value>) -> String {
    let parts = [
        ("numpy", "np", 2),
        ("python", "py", 2),
        ("perl", "pl", 3),
        ("lua", "lua", 2),
        ("r_base", "r", 2),
        ("r", "r", 2),
    ];
    let mut prefix = String::new();
    let mut r_done = false;
    for (key, short, pieces) in parts {
        let Some(value) = used.get(key) else {
            continue;
        };
        if short == "r" {
            if r_done {
                continue;
            }
            r_done = true;
        }
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let version: String = text.split('.').take(pieces).collect();
        prefix.push_str(short);
        prefix.push_str(&version);
    }
    prefix
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn hash(pairs: &[(&str, serde_json::Value)], noarch_python: bool) -> String {
        let used = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        VariantHash::new(&used, noarch_python).tag()
    }

    #[test]
    fn digests_match_conda_build_and_rattler_build() {
        // Build strings the peer gave the same variants.
        assert_eq!(
            hash(&[("target_platform", json!("linux-64"))], false),
            "hb0f4dca"
        );
        assert_eq!(
            hash(
                &[
                    ("numpy", json!("2")),
                    ("python", json!("3.12.* *_cpython")),
                    ("target_platform", json!("linux-64")),
                ],
                false
            ),
            "np2py312he04f25c"
        );
        assert_eq!(
            hash(
                &[
                    ("mykey", json!("abc")),
                    ("target_platform", json!("linux-64"))
                ],
                false
            ),
            "h282407a"
        );
    }

    #[test]
    fn prefixes_follow_the_language_keys() {
        let used = [
            ("perl", json!("5.32.1")),
            ("lua", json!(5)),
            ("r_base", json!("4.3")),
        ];
        assert!(hash(&used, false).starts_with("pl5321lua5r43h"));
        assert!(hash(&used, true).starts_with("pyh"));
    }
}
