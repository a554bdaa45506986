//! Evaluates selectors and templates in a YAML tree, keeping spans.
//!
//! A list item `{if: EXPR, then: X, else: Y}` is replaced by the items of the
//! branch taken; a scalar containing `${{` is rendered. Nothing else changes,
//! so errors found later in the typed model still point at the right text.

use std::sync::Arc;

use minijinja::value::Value;

use crate::error::{Problem, ProblemKind};
use crate::jinja::{Scope, environment, template_problem};
use crate::source::SourceFile;
use crate::yaml::{Node, NodeKind};

/// Renders nodes under one scope, collecting problems.
pub(crate) struct Renderer<'a> {
    pub(crate) scope: Arc<Scope>,
    pub(crate) source: &'a SourceFile,
    pub(crate) problems: Vec<Problem>,
}

impl<'a> Renderer<'a> {
    pub(crate) fn new(scope: Arc<Scope>, source: &'a SourceFile) -> Self {
        Self {
            scope,
            source,
            problems: Vec::new(),
        }
    }

    /// True once a render was cut short for a missing variant key or output.
    fn stopped(&self) -> bool {
        self.scope.need().is_some()
    }

    fn context(&self) -> Value {
        Value::from_dyn_object(self.scope.clone())
    }

    fn fail(&mut self, node: &Node, err: &minijinja::Error) {
        if !self.stopped() && !self.scope.has_problems() {
            let problem = template_problem(&self.scope, self.source, node, err);
            self.problems.push(problem);
        }
    }

    /// Renders a whole subtree.
    pub(crate) fn render(&mut self, node: &Node) -> Node {
        match &node.kind {
            NodeKind::Scalar(s) if s.value.contains("${{") => {
                match environment().render_str(&s.value, self.context()) {
                    Ok(text) => Node::scalar(text, true, node.span),
                    Err(err) => {
                        self.fail(node, &err);
                        Node::scalar("", true, node.span)
                    }
                }
            }
            NodeKind::Scalar(_) => node.clone(),
            NodeKind::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    self.render_item(item, &mut out);
                }
                Node {
                    kind: NodeKind::Seq(out),
                    span: node.span,
                }
            }
            NodeKind::Map(entries) => Node {
                kind: NodeKind::Map(
                    entries
                        .iter()
                        .map(|(k, v)| (k.clone(), self.render(v)))
                        .collect(),
                ),
                span: node.span,
            },
        }
    }

    /// Renders one list item into `out`: a selector adds its branch's items,
    /// a template that renders to nothing adds nothing.
    fn render_item(&mut self, item: &Node, out: &mut Vec<Node>) {
        if self.stopped() {
            return;
        }
        if item.get("if").is_none() {
            let templated = item.as_str().is_some_and(|s| s.contains("${{"));
            let rendered = self.render(item);
            if !(templated && rendered.is_null()) {
                out.push(rendered);
            }
            return;
        }
        for (key, _) in item.as_map().unwrap_or_default() {
            if !["if", "then", "else"].contains(&key.name.as_str()) {
                self.problems.push(
                    Problem::new(
                        self.source,
                        ProblemKind::UnknownKey {
                            key: key.name.clone(),
                            section: "a selector".into(),
                        },
                        key.span,
                    )
                    .with_help("a selector has `if`, `then` and optionally `else`"),
                );
            }
        }
        let Some(condition) = item.get("if") else {
            return;
        };
        if item.get("then").is_none() {
            self.problems.push(Problem::new(
                self.source,
                ProblemKind::MissingKey {
                    key: "then".into(),
                    section: "selector".into(),
                },
                item.key("if").map_or(item.span, |k| k.span),
            ));
            return;
        }
        let Some(taken) = self.condition(condition) else {
            return;
        };
        let branch = if taken {
            item.get("then")
        } else {
            item.get("else")
        };
        if let Some(branch) = branch {
            match &branch.kind {
                NodeKind::Seq(items) => {
                    for inner in items {
                        self.render_item(inner, out);
                    }
                }
                _ => self.render_item(branch, out),
            }
        }
    }

    /// Evaluates a bare (or `${{ }}`-wrapped) boolean expression.
    pub(crate) fn condition(&mut self, node: &Node) -> Option<bool> {
        let Some(text) = node.as_str() else {
            self.problems.push(Problem::new(
                self.source,
                ProblemKind::WrongType {
                    expected: "an expression",
                    found: node.describe(),
                },
                node.span,
            ));
            return None;
        };
        let expr = crate::jinja::whole_expression(text).unwrap_or(text);
        let result = crate::jinja::compile_expression(expr).and_then(|e| e.eval(self.context()));
        match result {
            Ok(value) => Some(value.is_true()),
            Err(err) => {
                self.fail(node, &err);
                None
            }
        }
    }
}

/// Evaluates a selector that may only use platform variables, as in variant
/// files.
pub(crate) fn eval_platform_condition(
    expr: &str,
    target: rattler_conda_types::Subdir,
) -> Result<bool, String> {
    // Variant files are read for the target platform, so it also stands in
    // for the build platform here.
    let ctx: std::collections::BTreeMap<&str, Value> = crate::jinja::platform_names()
        .iter()
        .filter_map(|&name| Some((name, crate::jinja::platform_value(name, target, target)?)))
        .collect();
    crate::jinja::compile_expression(expr)
        .and_then(|e| e.eval(ctx))
        .map(|v| v.is_true())
        .map_err(|e| e.detail().map_or_else(|| e.to_string(), str::to_string))
}
