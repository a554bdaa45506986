use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::ProblemKind;
use crate::read::Reader;
use crate::yaml::{Node, NodeKind};

/// A build or test script with the environment it runs in.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Script {
    /// The interpreter (`bash` when not given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    /// Extra environment variables, rendered.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Names of variables passed through from the caller's environment but
    /// kept out of logs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Directory to run in, relative to the work dir.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// What to run.
    pub content: ScriptContent,
}

/// The body of a script: inline commands or a file next to the recipe.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScriptContent {
    /// Lines run in order by one shell (empty: nothing to run).
    Commands(Vec<String>),
    /// A script file, relative to the recipe directory.
    File(String),
}

impl Default for ScriptContent {
    fn default() -> Self {
        ScriptContent::Commands(Vec::new())
    }
}

impl Script {
    /// True when there is nothing to run.
    pub fn is_empty(&self) -> bool {
        matches!(&self.content, ScriptContent::Commands(c) if c.is_empty())
    }

    /// A script that runs the given file.
    pub fn file(path: impl Into<String>) -> Self {
        Script {
            content: ScriptContent::File(path.into()),
            ..Script::default()
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>, node: &Node) -> Script {
        match &node.kind {
            NodeKind::Scalar(s) if looks_like_file(&s.value) => Script::file(s.value.trim()),
            NodeKind::Scalar(_) | NodeKind::Seq(_) => Script {
                content: ScriptContent::Commands(commands(r, node)),
                ..Script::default()
            },
            NodeKind::Map(_) => {
                let keys = ["interpreter", "env", "secrets", "cwd", "content", "file"];
                let Some(node) = r.map(node, "script", &keys) else {
                    return Script::default();
                };
                let content = match (node.get("content"), node.get("file")) {
                    (Some(_), Some(_)) => {
                        if let Some(key) = node.key("file") {
                            r.report(
                                ProblemKind::Conflict {
                                    first: "file",
                                    second: "content",
                                },
                                key.span,
                            );
                        }
                        ScriptContent::default()
                    }
                    (Some(content), None) => ScriptContent::Commands(commands(r, content)),
                    (None, Some(_)) => r
                        .opt_string(node, "file")
                        .map(|f| ScriptContent::File(f.value))
                        .unwrap_or_default(),
                    (None, None) => ScriptContent::default(),
                };
                Script {
                    interpreter: r.opt_string(node, "interpreter").map(|s| s.value),
                    env: node
                        .get("env")
                        .map(|env| string_map(r, env, "script env"))
                        .unwrap_or_default(),
                    secrets: r
                        .opt_strings(node, "secrets")
                        .into_iter()
                        .map(|s| s.value)
                        .collect(),
                    cwd: r.opt_string(node, "cwd").map(|s| s.value),
                    content,
                }
            }
        }
    }
}

/// A one-line script that names a script file rather than a command.
fn looks_like_file(text: &str) -> bool {
    let text = text.trim();
    !text.contains(char::is_whitespace)
        && [".sh", ".bash", ".bat", ".ps1", ".py"]
            .iter()
            .any(|ext| text.ends_with(ext))
}

fn commands(r: &mut Reader<'_>, node: &Node) -> Vec<String> {
    r.strings(node).into_iter().map(|s| s.value).collect()
}

/// A mapping of names to scalar values, e.g. environment variables.
pub(crate) fn string_map(
    r: &mut Reader<'_>,
    node: &Node,
    section: &str,
) -> BTreeMap<String, String> {
    let Some(entries) = node.as_map() else {
        r.map(node, section, &[]);
        return BTreeMap::new();
    };
    entries
        .iter()
        .filter_map(|(k, v)| {
            let value = if v.is_null() {
                String::new()
            } else {
                r.string(v)?.value
            };
            Some((k.name.clone(), value))
        })
        .collect()
}
