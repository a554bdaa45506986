//! Variant configuration: the values each variant key can take.
//!
//! Files are merged in order (a later file replaces a key's values). Keys in
//! one `zip_keys` group advance together instead of being combined.

use indexmap::IndexMap;
use miette::SourceSpan;

use crate::error::{Problem, ProblemKind, RecipeErrors};
use crate::source::SourceFile;
use crate::yaml::{self, Node, NodeKind};

/// Values of every variant key, plus the zipped groups.
#[derive(Debug, Clone, Default)]
pub struct VariantConfig {
    values: IndexMap<String, Vec<String>>,
    zips: Vec<Zip>,
}

#[derive(Debug, Clone)]
struct Zip {
    keys: Vec<String>,
    source: SourceFile,
    span: SourceSpan,
}

impl VariantConfig {
    /// Parses one variants file. Lists may use `if/then/else` selectors on
    /// the target platform.
    pub fn parse(
        source: &SourceFile,
        target: rattler_conda_types::Subdir,
    ) -> Result<Self, RecipeErrors> {
        let root = yaml::parse(source)?;
        let mut problems = Vec::new();
        let mut config = VariantConfig::default();
        let selector = |expr: &str| -> Result<bool, String> {
            crate::template::eval_platform_condition(expr, target)
        };
        for (key, value) in root.as_map().unwrap_or_default() {
            if key.name == "zip_keys" {
                for group in items(value) {
                    let keys: Vec<String> = items(group)
                        .iter()
                        .filter_map(|k| k.as_str().map(String::from))
                        .collect();
                    if keys.len() < 2 {
                        problems.push(Problem::new(
                            source,
                            ProblemKind::InvalidValue {
                                what: "zip_keys group",
                                value: source.slice(group.span).to_string(),
                                reason: "a group zips at least two keys".into(),
                            },
                            group.span,
                        ));
                        continue;
                    }
                    config.zips.push(Zip {
                        keys,
                        source: source.clone(),
                        span: group.span,
                    });
                }
                continue;
            }
            let mut values = Vec::new();
            flatten(source, value, &selector, &mut values, &mut problems);
            config.values.insert(key.name.clone(), values);
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(RecipeErrors::new(problems))
        }
    }

    /// Adds `other` on top: its keys replace ours, its zips are added.
    pub fn merge(&mut self, other: VariantConfig) {
        for (key, values) in other.values {
            self.values.insert(key, values);
        }
        for zip in other.zips {
            self.zips
                .retain(|z| !z.keys.iter().any(|k| zip.keys.contains(k)));
            self.zips.push(zip);
        }
    }

    /// Checks that zipped keys exist and have equally many values.
    pub fn validate(&self) -> Result<(), RecipeErrors> {
        let mut problems = Vec::new();
        for zip in &self.zips {
            let lengths: Vec<(&String, usize)> = zip
                .keys
                .iter()
                .map(|k| (k, self.values.get(k).map_or(0, Vec::len)))
                .collect();
            if let Some((missing, _)) = lengths.iter().find(|(k, _)| !self.values.contains_key(*k))
            {
                problems.push(Problem::new(
                    &zip.source,
                    ProblemKind::InvalidValue {
                        what: "zip_keys group",
                        value: zip.keys.join(", "),
                        reason: format!("`{missing}` has no values in any variant file"),
                    },
                    zip.span,
                ));
            } else if lengths.windows(2).any(|w| w[0].1 != w[1].1) {
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
        self.values.contains_key(key)
    }

    /// All keys, in file order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// The values `key` may take given the values already chosen: every
    /// value, unless `key` is zipped with a chosen key.
    pub fn choices(
        &self,
        key: &str,
        chosen: &std::collections::BTreeMap<String, String>,
    ) -> Vec<String> {
        let Some(values) = self.values.get(key) else {
            return Vec::new();
        };
        let zip = self.zips.iter().find(|z| z.keys.iter().any(|k| k == key));
        let mut out: Vec<String> = Vec::new();
        for (i, value) in values.iter().enumerate() {
            let consistent = zip.is_none_or(|zip| {
                zip.keys
                    .iter()
                    .all(|k| match (chosen.get(k), self.values.get(k)) {
                        (Some(have), Some(vals)) => vals.get(i) == Some(have),
                        _ => true,
                    })
            });
            if consistent && !out.contains(value) {
                out.push(value.clone());
            }
        }
        out
    }
}

fn items(node: &Node) -> Vec<&Node> {
    match &node.kind {
        NodeKind::Seq(items) => items.iter().collect(),
        _ if node.is_null() => Vec::new(),
        _ => vec![node],
    }
}

fn flatten(
    source: &SourceFile,
    node: &Node,
    selector: &dyn Fn(&str) -> Result<bool, String>,
    out: &mut Vec<String>,
    problems: &mut Vec<Problem>,
) {
    for item in items(node) {
        match &item.kind {
            NodeKind::Scalar(s) => out.push(s.value.clone()),
            NodeKind::Map(_) if item.get("if").is_some() => {
                let cond = item.get("if").and_then(Node::as_str).unwrap_or_default();
                match selector(cond) {
                    Ok(true) => {
                        if let Some(then) = item.get("then") {
                            flatten(source, then, selector, out, problems);
                        }
                    }
                    Ok(false) => {
                        if let Some(otherwise) = item.get("else") {
                            flatten(source, otherwise, selector, out, problems);
                        }
                    }
                    Err(reason) => problems.push(Problem::new(
                        source,
                        ProblemKind::Template(reason),
                        item.span,
                    )),
                }
            }
            _ => problems.push(Problem::new(
                source,
                ProblemKind::WrongType {
                    expected: "a variant value (string or number)",
                    found: item.describe(),
                },
                item.span,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn config(text: &str) -> VariantConfig {
        let source = SourceFile::new("variants.yaml", text);
        VariantConfig::parse(&source, rattler_conda_types::Subdir::Linux64).unwrap()
    }

    #[test]
    fn zipped_keys_advance_together() {
        let c = config(
            "python: ['3.11', '3.12']\nnumpy: ['1.26', '2.0']\nzip_keys: [[python, numpy]]\n",
        );
        let chosen = BTreeMap::from([("python".to_string(), "3.12".to_string())]);
        assert_eq!(c.choices("numpy", &chosen), vec!["2.0"]);
        assert_eq!(c.choices("numpy", &BTreeMap::new()), vec!["1.26", "2.0"]);
    }

    #[test]
    fn selectors_pick_platform_values() {
        let c = config("c_compiler:\n  - if: linux\n    then: gcc\n    else: clang\n");
        assert_eq!(c.choices("c_compiler", &BTreeMap::new()), vec!["gcc"]);
        // Variant selectors see the same platform variables as recipes.
        let c = config(
            "cuda:\n  - if: build_platform == 'linux-64' and not s390x and not emscripten\n    then: '12'\n",
        );
        assert_eq!(c.choices("cuda", &BTreeMap::new()), vec!["12"]);
    }

    #[test]
    fn unequal_zip_lengths_are_reported() {
        let c = config("a: [1, 2]\nb: [1]\nzip_keys: [[a, b]]\n");
        let err = c.validate().unwrap_err();
        assert!(
            err.problems()[0]
                .to_string()
                .contains("equally many values")
        );
    }
}
