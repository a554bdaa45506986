//! Typed reading of rendered YAML nodes, collecting every problem found.
//!
//! The model modules describe each section with these helpers; a problem is
//! recorded and reading goes on, so one pass reports everything wrong.

use std::path::Path;

use miette::SourceSpan;

use crate::error::{Problem, ProblemKind, unknown_keys};
use crate::source::SourceFile;
use crate::yaml::{Node, NodeKind};

/// Reads nodes into typed values, keeping the problems it meets.
pub(crate) struct Reader<'a> {
    pub(crate) source: &'a SourceFile,
    pub(crate) problems: Vec<Problem>,
    /// The recipe's directory, where a script may name a file.
    pub(crate) recipe_dir: Option<&'a Path>,
}

/// A text value and where it was written.
#[derive(Debug, Clone)]
pub(crate) struct Spanned {
    pub(crate) value: String,
    pub(crate) span: SourceSpan,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(source: &'a SourceFile) -> Self {
        Self {
            source,
            problems: Vec::new(),
            recipe_dir: None,
        }
    }

    /// A reader that finds the script files `recipe_dir` holds.
    pub(crate) fn in_dir(source: &'a SourceFile, recipe_dir: &'a Path) -> Self {
        Self {
            recipe_dir: Some(recipe_dir),
            ..Self::new(source)
        }
    }

    pub(crate) fn report(&mut self, kind: ProblemKind, span: SourceSpan) {
        self.problems.push(Problem::new(self.source, kind, span));
    }

    pub(crate) fn report_with_help(&mut self, kind: ProblemKind, span: SourceSpan, help: String) {
        self.problems
            .push(Problem::new(self.source, kind, span).with_help(help));
    }

    /// Paths that may start at a directory only the build knows
    /// (`${{ RECIPE_DIR }}/fix.patch`): a leading `${{ NAME }}/` of one of
    /// `searched` (the directories cleave looks in for them anyway) is
    /// dropped; any other such start is reported as unsupported.
    pub(crate) fn late_bound_paths(
        &mut self,
        parent: &Node,
        key: &str,
        searched: &[&str],
        what: &str,
    ) -> Vec<String> {
        let mut paths = Vec::new();
        for path in self.opt_strings(parent, key) {
            let rest = path
                .value
                .strip_prefix("${{ ")
                .and_then(|p| p.split_once(" }}"));
            match rest {
                Some((name, rest)) if searched.contains(&name) => {
                    paths.push(rest.trim_start_matches('/').to_string());
                }
                Some((name, _)) => self.report_with_help(
                    ProblemKind::Unsupported {
                        feature: format!("taking {what} from `${{{{ {name} }}}}`"),
                    },
                    path.span,
                    format!(
                        "give the path relative to {}",
                        searched
                            .iter()
                            .map(|s| format!("`${{{{ {s} }}}}`"))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ),
                ),
                None => paths.push(path.value),
            }
        }
        paths
    }

    /// Reports `key` of the mapping `parent`, when present, as a feature
    /// cleave does not implement, pointing at the key and saying what to
    /// write instead.
    pub(crate) fn unsupported(&mut self, parent: &Node, key: &str, feature: &str, help: &str) {
        if let Some(key) = parent.key(key) {
            self.report_with_help(
                ProblemKind::Unsupported {
                    feature: feature.to_string(),
                },
                key.span,
                help.to_string(),
            );
        }
    }

    fn wrong_type(&mut self, expected: &'static str, node: &Node) {
        self.report(
            ProblemKind::WrongType {
                expected,
                found: node.describe(),
            },
            node.span,
        );
    }

    /// Checks that `node` is a mapping with only `known` keys; returns it.
    pub(crate) fn map<'n>(
        &mut self,
        node: &'n Node,
        section: &str,
        known: &[&str],
    ) -> Option<&'n Node> {
        if node.as_map().is_none() {
            if !node.is_null() {
                self.wrong_type("a mapping", node);
            }
            return None;
        }
        let problems = unknown_keys(self.source, node, section, known);
        self.problems.extend(problems);
        Some(node)
    }

    /// A scalar as text; numbers and booleans are taken as written.
    pub(crate) fn string(&mut self, node: &Node) -> Option<Spanned> {
        match &node.kind {
            NodeKind::Scalar(s) if !node.is_null() => Some(Spanned {
                value: s.value.clone(),
                span: node.span,
            }),
            _ => {
                self.wrong_type("a string", node);
                None
            }
        }
    }

    /// The text of an optional field, `None` when absent or null.
    pub(crate) fn opt_string(&mut self, parent: &Node, key: &str) -> Option<Spanned> {
        let node = parent.get(key)?;
        if node.is_null() {
            return None;
        }
        self.string(node)
    }

    /// A boolean field: `true`/`false` or `yes`/`no` in any case, as
    /// written or as a template's text (an empty text is the field's
    /// default, read by the caller as an absent value).
    pub(crate) fn bool(&mut self, node: &Node) -> Option<bool> {
        let text = node.as_str().map(|t| t.trim().to_ascii_lowercase());
        match text.as_deref() {
            Some("true" | "yes") => Some(true),
            Some("false" | "no") => Some(false),
            _ => {
                self.wrong_type("true or false", node);
                None
            }
        }
    }

    pub(crate) fn opt_bool(&mut self, parent: &Node, key: &str) -> Option<bool> {
        parent
            .get(key)
            .filter(|n| !n.is_null())
            .and_then(|n| self.bool(n))
    }

    pub(crate) fn u64(&mut self, node: &Node) -> Option<u64> {
        match node.as_str().and_then(|s| s.trim().parse().ok()) {
            Some(n) => Some(n),
            None => {
                self.wrong_type("a non-negative integer", node);
                None
            }
        }
    }

    /// A list of strings; a single scalar counts as a list of one.
    pub(crate) fn strings(&mut self, node: &Node) -> Vec<Spanned> {
        match &node.kind {
            _ if node.is_null() => Vec::new(),
            NodeKind::Scalar(_) => self.string(node).into_iter().collect(),
            NodeKind::Seq(items) => items.iter().filter_map(|i| self.string(i)).collect(),
            NodeKind::Map(_) => {
                self.wrong_type("a list of strings", node);
                Vec::new()
            }
        }
    }

    pub(crate) fn opt_strings(&mut self, parent: &Node, key: &str) -> Vec<Spanned> {
        parent.get(key).map(|n| self.strings(n)).unwrap_or_default()
    }

    /// Glob patterns, each checked to compile.
    pub(crate) fn globs(&mut self, node: &Node) -> Vec<String> {
        self.strings(node)
            .into_iter()
            .filter_map(|g| match globset::Glob::new(&g.value) {
                Ok(_) => Some(g.value),
                Err(err) => {
                    self.report(
                        ProblemKind::InvalidValue {
                            what: "glob",
                            value: g.value,
                            reason: err.kind().to_string(),
                        },
                        g.span,
                    );
                    None
                }
            })
            .collect()
    }

    /// Items of a list; a single non-list value counts as a list of one.
    pub(crate) fn items<'n>(&mut self, node: &'n Node) -> Vec<&'n Node> {
        match &node.kind {
            _ if node.is_null() => Vec::new(),
            NodeKind::Seq(items) => items.iter().collect(),
            _ => vec![node],
        }
    }
}
