//! Requirement rewriting after a render: variant values for bare names,
//! and an output's pins of itself.

use crate::jinja::{Need, Scope};
use crate::model::{PIN_SUBPACKAGE_MARK, PinArgs, pin_spec_for};
use crate::variant::{VariantValue, normalize_key};
use crate::yaml::{Node, NodeKind};

pub(super) fn keys_of(node: &Node) -> Vec<String> {
    match &node.kind {
        NodeKind::Seq(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(String::from))
            .collect(),
        NodeKind::Scalar(s) if !node.is_null() => vec![s.value.clone()],
        _ => Vec::new(),
    }
}

/// A bare build or host requirement whose name is a variant key gets the
/// variant's value: `python` with `python: [3.12]` becomes `python 3.12.*`,
/// with conda-forge's `3.12.* *_cpython` it becomes `python 3.12.* *_cpython`.
/// Run requirements are left alone: their versions come from run exports.
pub(super) fn pin_variant_requirements(scope: &Scope, node: &mut Node) -> Result<(), Need> {
    let Some(NodeKind::Map(entries)) = find_mut(node, "requirements").map(|n| &mut n.kind) else {
        return Ok(());
    };
    for (key, list) in entries.iter_mut() {
        if key.name != "build" && key.name != "host" {
            continue;
        }
        let NodeKind::Seq(items) = &mut list.kind else {
            continue;
        };
        for item in items {
            let NodeKind::Scalar(scalar) = &mut item.kind else {
                continue;
            };
            let name = scalar.value.trim();
            if name.is_empty()
                || name.contains(|c: char| c.is_whitespace() || "=<>!~*[:".contains(c))
            {
                continue;
            }
            let value = scope
                .variant_value(&normalize_key(name))
                .map_err(|_| scope.need().unwrap_or(Need::Key(normalize_key(name))))?;
            if let Some(value) = value {
                scalar.value = spec_from_value(name, &value);
            }
        }
    }
    Ok(())
}

/// `name =v` for a plain version (conda's "this series"), else `name v`.
fn spec_from_value(name: &str, value: &VariantValue) -> String {
    let text = value.to_string();
    if text.chars().all(|c| c.is_alphanumeric() || c == '.') {
        format!("{name} {text}.*")
    } else {
        format!("{name} {text}")
    }
}

fn find_mut<'n>(node: &'n mut Node, key: &str) -> Option<&'n mut Node> {
    match &mut node.kind {
        NodeKind::Map(entries) => entries
            .iter_mut()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v),
        _ => None,
    }
}

/// Replaces `pin_subpackage` markers for the output itself, now that its
/// version and build string are known.
pub(super) fn resolve_self_pins(node: &mut Node, name: &str, version: &str, build: &str) {
    match &mut node.kind {
        NodeKind::Scalar(s) => {
            if let Some(json) = s.value.trim().strip_prefix(PIN_SUBPACKAGE_MARK)
                && let Ok(args) = serde_json::from_str::<PinArgs>(json)
                && args.name == name
            {
                s.value = pin_spec_for(&args, version, build);
            }
        }
        NodeKind::Seq(items) => items
            .iter_mut()
            .for_each(|i| resolve_self_pins(i, name, version, build)),
        NodeKind::Map(entries) => entries
            .iter_mut()
            .for_each(|(_, v)| resolve_self_pins(v, name, version, build)),
    }
}

pub(super) fn to_json(node: &Node) -> serde_json::Value {
    match &node.kind {
        _ if node.is_null() => serde_json::Value::Null,
        NodeKind::Scalar(s) => serde_json::Value::String(s.value.clone()),
        NodeKind::Seq(items) => items.iter().map(to_json).collect(),
        NodeKind::Map(entries) => entries
            .iter()
            .map(|(k, v)| (k.name.clone(), to_json(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_values_become_specs() {
        assert_eq!(spec_from_value("numpy", &"2".into()), "numpy 2.*");
        assert_eq!(spec_from_value("numpy", &VariantValue::Int(2)), "numpy 2.*");
        assert_eq!(
            spec_from_value("python", &"3.12.* *_cpython".into()),
            "python 3.12.* *_cpython"
        );
        assert_eq!(spec_from_value("openssl", &">=3".into()), "openssl >=3");
    }
}
