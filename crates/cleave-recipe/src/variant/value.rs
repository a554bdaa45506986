//! One value of a variant key, typed as the variant file wrote it.
//!
//! The type matters beyond templates: the build string hash is a digest of
//! the used variant as JSON, where `5` and `"5"` differ. `variants.yaml`
//! gives unquoted integers and booleans their type and keeps every other
//! scalar (floats included: `3.10` is not `3.1`) as text;
//! `conda_build_config.yaml` quotes the numbers of block lists. An empty
//! list item is the empty string in `variants.yaml` and null in
//! `conda_build_config.yaml`, as the peer reads them.

use std::fmt;

use minijinja::Value;
use serde::{Serialize, Serializer};

/// A variant value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VariantValue {
    /// An empty item of `conda_build_config.yaml` (YAML's null).
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer written without quotes in `variants.yaml`.
    Int(i64),
    /// A float from a flow list of `conda_build_config.yaml`, as JSON
    /// prints it (`[3.10]` is `3.1` there).
    Float(String),
    /// Anything else, as written.
    Str(String),
}

impl VariantValue {
    /// Types an unquoted scalar of `variants.yaml`.
    pub(crate) fn from_plain(text: &str) -> Self {
        match text {
            "true" | "True" | "TRUE" => return VariantValue::Bool(true),
            "false" | "False" | "FALSE" => return VariantValue::Bool(false),
            _ => {}
        }
        let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
        if !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && let Ok(n) = text.parse::<i64>()
        {
            return VariantValue::Int(n);
        }
        VariantValue::Str(text.to_string())
    }

    /// The value as a template sees it.
    pub(crate) fn to_jinja(&self) -> Value {
        match self {
            VariantValue::Null => Value::from(()),
            VariantValue::Bool(b) => Value::from(*b),
            VariantValue::Int(n) => Value::from(*n),
            VariantValue::Float(text) => text
                .parse::<f64>()
                .map_or_else(|_| Value::from(text.as_str()), Value::from),
            VariantValue::Str(s) => Value::from(s.as_str()),
        }
    }

    /// The value as JSON, for the build string hash.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            VariantValue::Null => serde_json::Value::Null,
            VariantValue::Bool(b) => serde_json::Value::Bool(*b),
            VariantValue::Int(n) => serde_json::Value::from(*n),
            VariantValue::Float(text) => text
                .parse::<serde_json::Number>()
                .map_or_else(|_| serde_json::Value::from(text.as_str()), Into::into),
            VariantValue::Str(s) => serde_json::Value::from(s.as_str()),
        }
    }
}

impl fmt::Display for VariantValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // As a template writes it.
            VariantValue::Null => f.write_str("none"),
            VariantValue::Bool(b) => write!(f, "{b}"),
            VariantValue::Int(n) => write!(f, "{n}"),
            VariantValue::Float(text) | VariantValue::Str(text) => f.write_str(text),
        }
    }
}

impl From<&str> for VariantValue {
    fn from(text: &str) -> Self {
        VariantValue::Str(text.to_string())
    }
}

impl Serialize for VariantValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

/// A variant key as the variant files and requirements compare it: `-` and
/// `.` read as `_`, so `r-base` in a file and `r_base` in a template are
/// one key.
pub(crate) fn normalize_key(key: &str) -> String {
    key.replace(['-', '.'], "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_scalars_are_typed_like_the_peer_types_them() {
        assert_eq!(VariantValue::from_plain("5"), VariantValue::Int(5));
        assert_eq!(VariantValue::from_plain("-3"), VariantValue::Int(-3));
        assert_eq!(VariantValue::from_plain("010"), VariantValue::Int(10));
        assert_eq!(VariantValue::from_plain("True"), VariantValue::Bool(true));
        assert_eq!(VariantValue::from_plain("3.10"), "3.10".into());
        assert_eq!(VariantValue::from_plain("yes"), "yes".into());
        assert_eq!(VariantValue::from_plain("1_000"), "1_000".into());
        assert_eq!(
            VariantValue::Float("3.1".into()).to_json().to_string(),
            "3.1"
        );
    }
}
