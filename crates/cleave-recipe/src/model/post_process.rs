use serde::Serialize;

use crate::error::ProblemKind;
use crate::read::Reader;
use crate::yaml::Node;

/// One `build.post_process` step: a regex replacement in the packaged text
/// files that `files` selects.
///
/// The regex is checked here, so a bad one is reported at its line before
/// anything builds; the engine compiles it again from the text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PostProcess {
    /// Globs of the files to edit, relative to the prefix.
    pub files: Vec<String>,
    /// The pattern, in the syntax of Rust's `regex` crate.
    pub regex: String,
    /// What replaces each match; `$1`, `${name}` refer to groups.
    pub replacement: String,
}

const KEYS: &[&str] = &["files", "regex", "replacement"];

impl PostProcess {
    pub(crate) fn read_all(r: &mut Reader<'_>, node: &Node) -> Vec<PostProcess> {
        if node.as_map().is_some() {
            // A single step written without the list.
            return PostProcess::read(r, node).into_iter().collect();
        }
        r.items(node)
            .into_iter()
            .filter_map(|item| PostProcess::read(r, item))
            .collect()
    }

    fn read(r: &mut Reader<'_>, node: &Node) -> Option<PostProcess> {
        let node = r.map(node, "post_process", KEYS)?;
        let mut missing = false;
        for key in KEYS {
            if node.get(key).is_none() {
                missing = true;
                r.report(
                    ProblemKind::MissingKey {
                        key: (*key).to_string(),
                        section: "post_process".into(),
                    },
                    node.span,
                );
            }
        }
        let files = node.get("files").map(|n| r.globs(n)).unwrap_or_default();
        let regex =
            r.opt_string(node, "regex")
                .and_then(|text| match regex::Regex::new(&text.value) {
                    Ok(_) => Some(text.value),
                    Err(err) => {
                        r.report(
                            ProblemKind::InvalidValue {
                                what: "regex",
                                value: text.value,
                                reason: regex_reason(&err),
                            },
                            text.span,
                        );
                        None
                    }
                });
        // An empty replacement deletes the matches; YAML writes it as null.
        let replacement = match node.get("replacement") {
            Some(n) if n.is_null() => Some(String::new()),
            Some(_) => r.opt_string(node, "replacement").map(|s| s.value),
            None => None,
        };
        if missing {
            return None;
        }
        Some(PostProcess {
            files,
            regex: regex?,
            replacement: replacement?,
        })
    }
}

/// The regex crate's message without its drawing of the pattern: the
/// report already points at the pattern in the recipe.
fn regex_reason(err: &regex::Error) -> String {
    let text = err.to_string();
    text.lines()
        .find_map(|line| line.trim().strip_prefix("error: "))
        .map_or(text.clone(), str::to_string)
}
