//! How a comparison with the peer tells known differences from new ones:
//! each difference found, and the entries of a suite's
//! `expected-differences.toml` that excuse some of them, each with its
//! reason.

use std::path::Path;

use serde::Deserialize;

/// One way cleave's result for a recipe differs from the peer's.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub recipe: String,
    /// The package it is about, when it is about one.
    pub package: Option<String>,
    /// What differs: a kind the suite names.
    pub what: String,
    /// The path, key or test it is about, for suites that go that deep.
    pub item: Option<String>,
    pub detail: String,
    /// Listed in expected-differences.toml.
    pub expected: bool,
}

/// An entry of a suite's `expected-differences.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    pub recipe: String,
    /// The package; every package of the recipe when absent.
    pub package: Option<String>,
    /// One of the kinds the suite lets be excused.
    pub what: String,
    /// The path, key or test; every one when absent.
    pub item: Option<String>,
    pub reason: String,
}

impl Expected {
    /// Whether this entry excuses `d`.
    pub fn excuses(&self, d: &Difference) -> bool {
        self.recipe == d.recipe
            && self.what == d.what
            && (self.package.is_none() || self.package == d.package)
            && (self.item.is_none() || self.item == d.item)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedFile {
    #[serde(default)]
    difference: Vec<Expected>,
}

/// The entries of `path`; each must name one of `excusable` and give a
/// reason.
pub fn load_expected(path: &Path, excusable: &[&str]) -> Vec<Expected> {
    let text = std::fs::read_to_string(path).expect("read expected-differences.toml");
    let file: ExpectedFile = toml::from_str(&text).expect("parse expected-differences.toml");
    for entry in &file.difference {
        assert!(
            excusable.contains(&entry.what.as_str()),
            "expected-differences.toml: `what = {:?}` for {}: must be one of {excusable:?}",
            entry.what,
            entry.recipe
        );
        assert!(
            !entry.reason.trim().is_empty(),
            "expected-differences.toml: {} {:?} needs a reason",
            entry.recipe,
            entry.what
        );
    }
    file.difference
}

/// A table cell for the differences of the kinds `what`: `-` when the
/// two cannot be compared, `yes` when none differs, `expected` when every
/// one is excused, else `no (N)` with how many are not.
pub fn cell(differences: &[Difference], what: &[&str], comparable: bool) -> String {
    let mine: Vec<&Difference> = differences
        .iter()
        .filter(|d| what.contains(&d.what.as_str()))
        .collect();
    if !comparable {
        "-".to_string()
    } else if mine.is_empty() {
        "yes".to_string()
    } else if mine.iter().all(|d| d.expected) {
        "expected".to_string()
    } else {
        format!("no ({})", mine.iter().filter(|d| !d.expected).count())
    }
}
