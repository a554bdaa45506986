//! Variant configuration: the values each variant key can take.
//!
//! Two file formats are read: `variants.yaml` (lists with `if/then/else`
//! selectors and `${{ }}` templates) and conda-build's
//! `conda_build_config.yaml` (`# [selector]` line comments), which is
//! what conda-forge's global pinning is written in. Files are merged in
//! order: a later file replaces a key's values, and a later `zip_keys`
//! replaces the earlier ones. Keys in one `zip_keys` group advance
//! together instead of being combined.

mod file;
mod hash;
mod value;

use std::collections::BTreeMap;

use indexmap::IndexMap;
use miette::SourceSpan;
use rattler_conda_types::Subdir;

use crate::error::{Problem, ProblemKind, RecipeErrors};
use crate::source::SourceFile;

pub(crate) use hash::VariantHash;
pub use value::VariantValue;
pub(crate) use value::normalize_key;

/// Values of every variant key, plus the zipped groups.
#[derive(Debug, Clone, Default)]
pub struct VariantConfig {
    values: IndexMap<String, Vec<VariantValue>>,
    zips: Vec<Zip>,
    /// Whether the file(s) this came from had a `zip_keys` entry at all: a
    /// later file's `zip_keys`, even an empty one, replaces the earlier.
    has_zip_keys: bool,
}

#[derive(Debug, Clone)]
struct Zip {
    keys: Vec<String>,
    source: SourceFile,
    span: SourceSpan,
}

/// The platforms a variant file is read for: its selectors test them.
#[derive(Debug, Clone, Copy)]
pub struct VariantPlatforms {
    /// The platform packages are built for.
    pub target: Subdir,
    /// The platform the build runs on.
    pub build: Subdir,
}

impl VariantConfig {
    /// Parses one variant file. A file named `conda_build_config.yaml` is
    /// read as conda-build reads it (`# [selector]` line comments, numbers
    /// in lists kept as text); any other file as `variants.yaml`.
    pub fn parse(source: &SourceFile, platforms: VariantPlatforms) -> Result<Self, RecipeErrors> {
        let name = std::path::Path::new(source.name())
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name == "conda_build_config.yaml" {
            file::parse_conda_build_config(source, platforms)
        } else {
            file::parse_variants(source, platforms)
        }
    }

    /// Adds `other` on top: its keys replace ours; its `zip_keys`, if it
    /// has any, replace ours.
    pub fn merge(&mut self, other: VariantConfig) {
        for (key, values) in other.values {
            self.values.insert(key, values);
        }
        if other.has_zip_keys {
            self.zips = other.zips;
            self.has_zip_keys = true;
        }
    }

    /// Replaces the values of `key` with `values`, as rattler-build's
    /// `--variant KEY=VALUE,...` does after reading the variant files: each
    /// value is text (`5` is `"5"` in the build string hash, as the peer
    /// hashes it), and a zipped group must still have equally many values
    /// per key ([`VariantConfig::validate`]).
    pub fn set(&mut self, key: &str, values: &[String]) {
        let values = values
            .iter()
            .map(|v| VariantValue::Str(v.clone()))
            .collect();
        self.values.insert(normalize_key(key), values);
    }

    /// Checks that every zipped group whose keys all have values has
    /// equally many of them. A group with a key no file sets (a
    /// platform-specific key, on another platform) is zipped up to its
    /// shortest list instead.
    pub fn validate(&self) -> Result<(), RecipeErrors> {
        let mut problems = Vec::new();
        for zip in &self.zips {
            let lengths: Option<Vec<(&String, usize)>> = zip
                .keys
                .iter()
                .map(|k| self.values.get(k).map(|v| (k, v.len())))
                .collect();
            let Some(lengths) = lengths else {
                continue;
            };
            if lengths.windows(2).any(|w| w[0].1 != w[1].1) {
                let detail: Vec<String> =
                    lengths.iter().map(|(k, n)| format!("{k}: {n}")).collect();
                problems.push(Problem::new(
                    &zip.source,
                    ProblemKind::InvalidValue {
                        what: "zip_keys group",
                        value: zip.keys.join(", "),
                        reason: format!(
                            "zipped keys need equally many values ({})",
                            detail.join(", ")
                        ),
                    },
                    zip.span,
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(RecipeErrors::new(problems))
        }
    }

    /// True if the config gives values for `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.values.contains_key(&normalize_key(key))
    }

    /// All keys, in file order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// The values of `key`, in file order.
    pub fn values(&self, key: &str) -> &[VariantValue] {
        self.values
            .get(&normalize_key(key))
            .map_or(&[], Vec::as_slice)
    }

    /// The values `key` may take given the values already chosen: every
    /// value, unless `key` is zipped with a chosen key.
    pub fn choices(&self, key: &str, chosen: &BTreeMap<String, VariantValue>) -> Vec<VariantValue> {
        let key = normalize_key(key);
        let Some(values) = self.values.get(&key) else {
            return Vec::new();
        };
        let zip = self.zips.iter().find(|z| z.keys.contains(&key));
        // A group with an unset key is cut to its shortest list.
        let limit = zip
            .map(|zip| {
                zip.keys
                    .iter()
                    .filter_map(|k| self.values.get(k).map(Vec::len))
                    .min()
                    .unwrap_or(values.len())
            })
            .unwrap_or(values.len());
        let mut out: Vec<VariantValue> = Vec::new();
        // Values seen, so that a long list is deduplicated in linear time.
        let mut seen = std::collections::HashSet::new();
        for (i, value) in values.iter().enumerate().take(limit) {
            let consistent = zip.is_none_or(|zip| {
                zip.keys
                    .iter()
                    .all(|k| match (chosen.get(k), self.values.get(k)) {
                        (Some(have), Some(vals)) => vals.get(i) == Some(have),
                        _ => true,
                    })
            });
            if consistent && seen.insert(value) {
                out.push(value.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const LINUX: VariantPlatforms = VariantPlatforms {
        target: Subdir::Linux64,
        build: Subdir::Linux64,
    };

    fn config(name: &str, text: &str) -> VariantConfig {
        let source = SourceFile::new(name, text);
        VariantConfig::parse(&source, LINUX).unwrap()
    }

    fn strings(values: Vec<VariantValue>) -> Vec<String> {
        values.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn zipped_keys_advance_together() {
        let c = config(
            "variants.yaml",
            "python: ['3.11', '3.12']\nnumpy: ['1.26', '2.0']\nzip_keys: [[python, numpy]]\n",
        );
        let chosen = BTreeMap::from([("python".to_string(), VariantValue::from("3.12"))]);
        assert_eq!(strings(c.choices("numpy", &chosen)), ["2.0"]);
        assert_eq!(
            strings(c.choices("numpy", &BTreeMap::new())),
            ["1.26", "2.0"]
        );
    }

    #[test]
    fn a_zip_group_with_an_unset_key_is_cut_to_its_shortest_list() {
        let c = config(
            "variants.yaml",
            "a: [1, 2, 3]\nb: [x, y]\nzip_keys: [[a, b, cuda]]\n",
        );
        c.validate().unwrap();
        assert_eq!(strings(c.choices("a", &BTreeMap::new())), ["1", "2"]);
    }

    #[test]
    fn unequal_zip_lengths_are_reported() {
        let c = config("variants.yaml", "a: [1, 2]\nb: [1]\nzip_keys: [[a, b]]\n");
        let err = c.validate().unwrap_err();
        assert!(
            err.problems()[0]
                .to_string()
                .contains("equally many values")
        );
    }

    #[test]
    fn later_files_replace_keys_and_zips() {
        let mut c = config(
            "variants.yaml",
            "a: [1, 2]\nb: [1, 2]\nzip_keys: [[a, b]]\n",
        );
        c.merge(config("ci.yaml", "a: [3]\nzip_keys: []\n"));
        assert_eq!(strings(c.choices("a", &BTreeMap::new())), ["3"]);
        assert_eq!(strings(c.choices("b", &BTreeMap::new())), ["1", "2"]);
        c.validate().unwrap();
    }

    #[test]
    fn a_set_key_replaces_the_files_values_as_text() {
        let mut c = config("variants.yaml", "python-version: ['3.11']\nn: [1]\n");
        c.set("python_version", &["3.12".into(), "3.13".into()]);
        c.set("n", &["5".into()]);
        assert_eq!(
            strings(c.choices("python-version", &BTreeMap::new())),
            ["3.12", "3.13"]
        );
        assert_eq!(c.values("n"), [VariantValue::Str("5".into())]);
    }

    #[test]
    fn keys_are_normalized() {
        let c = config("variants.yaml", "r-base: ['4.3']\n");
        assert!(c.contains("r_base"));
        assert!(c.contains("r-base"));
    }
}
