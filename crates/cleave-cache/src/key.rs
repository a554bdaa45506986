//! Cache keys: one digest over named, path-free inputs.
//!
//! The inputs are kept next to the entry, so that a miss can be explained
//! input by input instead of as one opaque digest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// Bumped when the meaning of an entry changes, so old entries stop matching.
pub const FORMAT: u32 = 1;

/// The named inputs of a key: input name to a short value or a digest.
///
/// Values must not contain absolute paths, times or user names: the same
/// build on another machine must produce the same inputs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs(BTreeMap<String, String>);

impl Inputs {
    /// No inputs yet.
    pub fn new() -> Self {
        Inputs::default()
    }

    /// Adds or replaces one input.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    /// The inputs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The key: a digest over the format version and every input.
    pub fn key(&self) -> Digest {
        let mut hasher = blake3::Hasher::new();
        hasher.update(format!("cleave-cache {FORMAT}\n").as_bytes());
        for (name, value) in &self.0 {
            // Length-prefixed, so that no two input sets collide by
            // shifting text between a name and a value.
            for part in [name, value] {
                hasher.update(&(part.len() as u64).to_le_bytes());
                hasher.update(part.as_bytes());
            }
        }
        hasher.finalize().into()
    }

    /// How `self` differs from `older`, input by input.
    pub fn changes_since(&self, older: &Inputs) -> Vec<Change> {
        let mut changes = Vec::new();
        for (name, value) in &self.0 {
            match older.0.get(name) {
                None => changes.push(Change::Added {
                    name: name.clone(),
                    value: value.clone(),
                }),
                Some(old) if old != value => changes.push(Change::Changed {
                    name: name.clone(),
                    old: old.clone(),
                    new: value.clone(),
                }),
                Some(_) => {}
            }
        }
        for (name, value) in &older.0 {
            if !self.0.contains_key(name) {
                changes.push(Change::Removed {
                    name: name.clone(),
                    value: value.clone(),
                });
            }
        }
        changes
    }
}

/// One difference between two input sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An input only the newer set has.
    Added {
        /// Input name.
        name: String,
        /// Its value.
        value: String,
    },
    /// An input only the older set has.
    Removed {
        /// Input name.
        name: String,
        /// Its old value.
        value: String,
    },
    /// An input whose value differs.
    Changed {
        /// Input name.
        name: String,
        /// Value in the older set.
        old: String,
        /// Value in the newer set.
        new: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_depends_on_every_name_and_value_but_not_on_insertion_order() {
        let mut a = Inputs::new();
        a.insert("script", "x");
        a.insert("platform", "linux-64");
        let mut b = Inputs::new();
        b.insert("platform", "linux-64");
        b.insert("script", "x");
        assert_eq!(a.key(), b.key());
        b.insert("script", "y");
        assert_ne!(a.key(), b.key());
        let mut shifted = Inputs::new();
        shifted.insert("scriptx", "");
        shifted.insert("platform", "linux-64");
        assert_ne!(a.key(), shifted.key());
    }

    #[test]
    fn changes_name_each_differing_input() {
        let mut old = Inputs::new();
        old.insert("script", "a");
        old.insert("gone", "1");
        old.insert("same", "s");
        let mut new = Inputs::new();
        new.insert("script", "b");
        new.insert("same", "s");
        new.insert("fresh", "2");
        let changes = new.changes_since(&old);
        assert_eq!(changes.len(), 3);
        assert!(changes.contains(&Change::Changed {
            name: "script".into(),
            old: "a".into(),
            new: "b".into()
        }));
        assert!(changes.contains(&Change::Removed {
            name: "gone".into(),
            value: "1".into()
        }));
        assert!(changes.contains(&Change::Added {
            name: "fresh".into(),
            value: "2".into()
        }));
    }
}
