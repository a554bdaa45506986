//! Evaluates selectors and templates in a YAML tree, keeping spans.
//!
//! A list item `{if: EXPR, then: X, else: Y}` is replaced by the items of the
//! branch taken; a scalar containing `${{` is rendered. Nothing else changes,
//! so errors found later in the typed model still point at the right text.

use std::sync::Arc;

use minijinja::value::Value;

use crate::error::{Problem, ProblemKind};
use crate::jinja::{Field, Scope, environment, template_problem};
use crate::source::SourceFile;
use crate::yaml::{Node, NodeKind};

/// Renders nodes under one scope, collecting problems.
pub(crate) struct Renderer<'a> {
    pub(crate) scope: Arc<Scope>,
    pub(crate) source: &'a SourceFile,
    pub(crate) problems: Vec<Problem>,
    /// The mapping keys from the output's root to the node being rendered.
    path: Vec<String>,
    /// The `env` keys of the script being rendered.
    script_env: Vec<String>,
}

impl<'a> Renderer<'a> {
    pub(crate) fn new(scope: Arc<Scope>, source: &'a SourceFile) -> Self {
        Self {
            scope,
            source,
            problems: Vec::new(),
            path: Vec::new(),
            script_env: Vec::new(),
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
        let field = field_at(&self.path);
        let previous = self.scope.enter(field);
        let rendered = self.render_in(node, field);
        self.scope.leave(previous);
        rendered
    }

    fn render_in(&mut self, node: &Node, field: Field) -> Node {
        match &node.kind {
            NodeKind::Scalar(s) if s.value.contains("${{") => {
                let rendered = environment().render_str(&s.value, self.context());
                if field == Field::Script {
                    self.warn_unknown_build_names(node);
                }
                match rendered {
                    Ok(text) => Node::scalar(text, true, node.span),
                    Err(err)
                        if field == Field::Script
                            && !self.stopped()
                            && err.kind() != minijinja::ErrorKind::SyntaxError =>
                    {
                        // Scripts are filled in again when they run; what
                        // cannot be rendered now is left for then. A syntax
                        // error would fail then too, so it is an error now.
                        let problem = template_problem(&self.scope, self.source, node, &err);
                        let reason = problem.to_string();
                        self.problems.push(
                            problem
                                .with_help(format!(
                                    "left as written for the build to fill in ({reason})"
                                ))
                                .into_warning(),
                        );
                        node.clone()
                    }
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
            NodeKind::Map(entries) => {
                if field == Field::Script {
                    self.script_env = node
                        .get("env")
                        .and_then(Node::as_map)
                        .unwrap_or_default()
                        .iter()
                        .map(|(k, _)| k.name.clone())
                        .collect();
                }
                Node {
                    kind: NodeKind::Map(
                        entries
                            .iter()
                            .map(|(k, v)| {
                                self.path.push(k.name.clone());
                                let rendered = self.render(v);
                                self.path.pop();
                                (k.clone(), rendered)
                            })
                            .collect(),
                    ),
                    span: node.span,
                }
            }
        }
    }

    /// Warns about script names that are neither recipe variables, nor set
    /// by the build, nor in the script's `env`: most likely typos.
    fn warn_unknown_build_names(&mut self, node: &Node) {
        let known = self.scope.known_names();
        for name in self.scope.take_unknown_build_names() {
            if self.script_env.contains(&name) {
                continue;
            }
            let written = self.source.slice(node.span);
            let span = written.find(&name).map_or(node.span, |at| {
                miette::SourceSpan::new((node.span.offset() + at).into(), name.len())
            });
            let help = match crate::error::suggest(&name, known.iter().map(String::as_str)) {
                Some(close) => format!("did you mean `{close}`?"),
                None => "set it in the script's `env:` if the build needs it".to_string(),
            };
            self.problems.push(
                Problem::new(self.source, ProblemKind::BuildTimeName { name }, span)
                    .with_help(help)
                    .into_warning(),
            );
        }
    }

    /// Renders one list item into `out`: a selector adds its branch's items,
    /// a template that renders to nothing adds nothing.
    fn render_item(&mut self, item: &Node, out: &mut Vec<Node>) {
        let mut chosen = Vec::new();
        self.select(item, &mut chosen);
        for item in chosen {
            if self.stopped() {
                return;
            }
            let templated = item.as_str().is_some_and(|s| s.contains("${{"));
            let rendered = self.render(&item);
            if !(templated && rendered.is_null()) {
                out.push(rendered);
            }
        }
    }

    /// The items of a list, its selectors replaced by the items of the
    /// branches taken; the items themselves are not rendered.
    pub(crate) fn selected(&mut self, list: &Node) -> Vec<Node> {
        let mut out = Vec::new();
        match &list.kind {
            NodeKind::Seq(items) => {
                for item in items {
                    self.select(item, &mut out);
                }
            }
            _ => self.select(list, &mut out),
        }
        out
    }

    /// Adds `item` to `out`, or for a selector the items of the branch taken.
    fn select(&mut self, item: &Node, out: &mut Vec<Node>) {
        if self.stopped() {
            return;
        }
        if item.get("if").is_none() {
            out.push(item.clone());
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
                        self.select(inner, out);
                    }
                }
                _ => self.select(branch, out),
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
        // A condition is decided now, whatever field it is in.
        let previous = self.scope.enter(Field::Plain);
        let eval = |expr: &str| crate::jinja::compile_expression(expr)?.eval(self.context());
        let result = match crate::jinja::whole_expression(text) {
            // A template's text is the condition, as the peer reads it:
            // `${{ 'false' if x else 'true' }}` is false or true, not a
            // non-empty string; an empty text is no condition.
            Some(expr) => eval(expr).and_then(|value| match value.as_str() {
                Some(text) if text.trim().is_empty() => Ok(Value::from(false)),
                Some(text) => eval(text.trim()).map_err(|err| {
                    minijinja::Error::new(
                        err.kind(),
                        format!(
                            "the template gives `{text}`, which is not a condition ({})",
                            err.detail().unwrap_or("not an expression")
                        ),
                    )
                }),
                None => Ok(value),
            }),
            None if text.contains("${{") => self.inline_templates(text).and_then(|e| eval(&e)),
            None => eval(text),
        };
        self.scope.leave(previous);
        match result {
            Ok(value) => Some(value.is_true()),
            Err(err) => {
                self.fail(node, &err);
                None
            }
        }
    }
}

impl Renderer<'_> {
    /// An expression with `${{ ... }}` parts written into it
    /// (`linux and ${{ variant }} == "default"`): each part is evaluated
    /// and put back as a literal, so the value compares as a value.
    fn inline_templates(&self, text: &str) -> Result<String, minijinja::Error> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 3..];
            let Some(end) = after.find("}}") else {
                return Err(minijinja::Error::new(
                    minijinja::ErrorKind::SyntaxError,
                    "`${{` without its `}}`",
                ));
            };
            let value =
                crate::jinja::compile_expression(after[..end].trim())?.eval(self.context())?;
            out.push_str(&literal(&value));
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// A value written as an expression literal.
fn literal(value: &Value) -> String {
    if value.is_none() || value.is_undefined() {
        return "none".into();
    }
    serde_json::to_string(value).unwrap_or_else(|_| format!("{:?}", value.to_string()))
}

/// The kind of field at `path` (mapping keys from an output's root).
fn field_at(path: &[String]) -> Field {
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    match path.as_slice() {
        ["build", "string"] => Field::BuildString,
        ["build" | "tests", "script"] | ["build" | "tests", "script", "content"] => Field::Script,
        ["source", "patches"] => Field::Patches,
        ["about", "license_file"] => Field::LicenseFile,
        _ => Field::Plain,
    }
}
