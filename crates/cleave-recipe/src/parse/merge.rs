//! Building one output's tree from the recipe's sections and its own.

use miette::SourceSpan;

use super::IMPLICIT_CACHE_NAME;
use crate::yaml::{Key, Node, NodeKind};

pub(super) fn entry(node: &Node, key: &str) -> Option<(Key, Node)> {
    node.as_map()?
        .iter()
        .find(|(k, _)| k.name == key)
        .map(|(k, v)| (k.clone(), v.clone()))
}

pub(super) fn map_node(entries: Vec<(Key, Node)>, span: SourceSpan) -> Node {
    Node {
        kind: NodeKind::Map(entries),
        span,
    }
}

pub(super) fn first_key_span(node: &Node) -> SourceSpan {
    node.as_map()
        .and_then(|m| m.first())
        .map_or(node.span, |(k, _)| k.span)
}

pub(super) fn name_span(section: &Node, key: Option<&Key>) -> SourceSpan {
    section
        .get("name")
        .map(|n| n.span)
        .or(key.map(|k| k.span))
        .unwrap_or(section.span)
}

/// `staging: {name: NAME}`, for staging outputs declared another way.
pub(super) fn staging_name_entry(key: &Key, name: Node) -> (Key, Node) {
    let staging = map_node(
        vec![(
            Key {
                name: "name".into(),
                span: name.span,
            },
            name,
        )],
        key.span,
    );
    (
        Key {
            name: "staging".into(),
            span: key.span,
        },
        staging,
    )
}

/// The `staging:` entry of the top-level `cache:`.
pub(super) fn implicit_name_entry(key: &Key) -> (Key, Node) {
    staging_name_entry(key, Node::scalar(IMPLICIT_CACHE_NAME, false, key.span))
}

/// The recipe's list section (sources, tests) followed by the output's own.
pub(super) fn merged_list(root: &Node, item: &Node, section: &str) -> Option<(Key, Node)> {
    let top = entry(root, section);
    let own = entry(item, section);
    match (top, own) {
        (None, None) => None,
        (Some(e), None) | (None, Some(e)) => Some(e),
        (Some((_, top)), Some((key, own))) => {
            let mut items = as_items(top);
            items.extend(as_items(own.clone()));
            Some((
                key,
                Node {
                    kind: NodeKind::Seq(items),
                    span: own.span,
                },
            ))
        }
    }
}

/// An output's `build` section whose `skip` holds the recipe's conditions
/// followed by its own: an output is skipped when either says so, and the
/// variant keys of both are the output's (the peer joins them the same way).
pub(super) fn joined_skip(root: &Node, item: &Node, build: (Key, Node)) -> (Key, Node) {
    let top = root.get("build").and_then(|b| b.get("skip"));
    let own = item.get("build").and_then(|b| b.get("skip"));
    let (Some(top), Some(own)) = (top, own) else {
        return build;
    };
    let (key, node) = build;
    let NodeKind::Map(entries) = node.kind else {
        return (key, node);
    };
    let mut conditions = as_items(top.clone());
    conditions.extend(as_items(own.clone()));
    let entries = entries
        .into_iter()
        .map(|(k, v)| {
            if k.name == "skip" {
                let joined = Node {
                    kind: NodeKind::Seq(conditions.clone()),
                    span: v.span,
                };
                (k, joined)
            } else {
                (k, v)
            }
        })
        .collect();
    (key, map_node(entries, node.span))
}

fn as_items(node: Node) -> Vec<Node> {
    match node.kind {
        NodeKind::Seq(items) => items,
        _ if node.is_null() => Vec::new(),
        _ => vec![node],
    }
}

/// A mapping without the given keys.
pub(super) fn without(node: &Node, keys: &[&str]) -> Node {
    match &node.kind {
        NodeKind::Map(entries) => map_node(
            entries
                .iter()
                .filter(|(k, _)| !keys.contains(&k.name.as_str()))
                .cloned()
                .collect(),
            node.span,
        ),
        _ => node.clone(),
    }
}

/// A recipe-level section with the output's keys on top of it.
pub(super) fn merged_section(
    root: &Node,
    item: &Node,
    section: &str,
    skip_script: bool,
) -> Option<(Key, Node)> {
    let top = entry(root, section);
    let own = entry(item, section);
    let top_entries: Vec<(Key, Node)> = top
        .as_ref()
        .and_then(|(_, n)| n.as_map())
        .unwrap_or_default()
        .iter()
        .filter(|(k, _)| !(skip_script && k.name == "script"))
        .cloned()
        .collect();
    match own {
        Some((key, own)) if own.as_map().is_some() => {
            let own_entries = own.as_map().unwrap_or_default();
            let mut entries: Vec<(Key, Node)> = top_entries
                .into_iter()
                .filter(|(k, _)| !own_entries.iter().any(|(o, _)| o.name == k.name))
                .collect();
            entries.extend(own_entries.iter().cloned());
            Some((key, map_node(entries, own.span)))
        }
        Some(own) => Some(own),
        None => {
            let (key, top) = top?;
            if top_entries.is_empty() && top.as_map().is_some() {
                return None;
            }
            match top.as_map() {
                Some(_) => Some((key, map_node(top_entries, top.span))),
                None => Some((key, top)),
            }
        }
    }
}
