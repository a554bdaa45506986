use std::collections::BTreeMap;
use std::path::{Component, Path};

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

    /// Reads a script as rattler-build does: a single line (`script:
    /// build_lib`, or a list of one item) that names a file next to the
    /// recipe (`build_lib.sh`, or the name itself when it has an extension)
    /// is that file; otherwise it is a command. `content:` is always
    /// commands, `file:` always a file.
    pub(crate) fn read(r: &mut Reader<'_>, node: &Node) -> Script {
        match &node.kind {
            NodeKind::Scalar(_) | NodeKind::Seq(_) => {
                let commands = commands(r, node);
                let file = match commands.as_slice() {
                    [line] => script_file(r.recipe_dir, line),
                    _ => None,
                };
                Script {
                    content: file.map_or(ScriptContent::Commands(commands), ScriptContent::File),
                    ..Script::default()
                }
            }
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
                        .map(|f| {
                            ScriptContent::File(
                                script_file(r.recipe_dir, &f.value).unwrap_or(f.value),
                            )
                        })
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

/// The script file a one-line script names, relative to the recipe dir,
/// found as rattler-build finds it: the line itself when it has an
/// extension, else the line with `.sh`, when that is a file in the recipe
/// dir. Without a recipe dir (a recipe read from text alone), a line that
/// ends in a script extension and has no space is taken for a file.
///
/// Only files below the recipe dir are found: an absolute path or one
/// leaving the directory stays a command, as the shell runs it.
fn script_file(recipe_dir: Option<&Path>, line: &str) -> Option<String> {
    if line.trim().is_empty() || line.contains('\n') {
        return None;
    }
    let path = Path::new(line);
    let inside = path
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !inside {
        return None;
    }
    let candidate = if path.extension().is_some() {
        path.to_path_buf()
    } else {
        path.with_extension("sh")
    };
    let Some(dir) = recipe_dir else {
        let named = !line.contains(char::is_whitespace)
            && [".sh", ".bash", ".bat", ".ps1", ".py"]
                .iter()
                .any(|ext| line.ends_with(ext));
        return named.then(|| line.to_string());
    };
    dir.join(&candidate)
        .is_file()
        .then(|| candidate.to_string_lossy().into_owned())
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
