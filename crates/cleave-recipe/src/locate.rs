//! Where a value is written, for problems found after rendering: a `path`
//! source that does not exist, a build script that fails. The parsed
//! recipe keeps every output's tree with its spans; this looks a value up
//! by the keys that hold it, so that such an error points at the recipe's
//! line as a recipe error does.

use miette::SourceSpan;

use crate::error::Problem;
use crate::parse::Recipe;
use crate::source::SourceFile;
use crate::yaml::Node;
use crate::{IMPLICIT_CACHE_NAME, ProblemKind};

impl Recipe {
    /// The span of `section.key` (`build.script`, `source.path`) in the
    /// output named `output`, else in the first output that has it; with
    /// `value`, preferably one whose text is that value. A section that is
    /// a list is searched item by item.
    pub fn locate(
        &self,
        output: Option<&str>,
        section: &str,
        key: &str,
        value: Option<&str>,
    ) -> Option<SourceSpan> {
        let named = |node: &Node| -> Option<String> {
            ["package", "staging"]
                .iter()
                .find_map(|k| node.get(k)?.get("name")?.as_str().map(str::to_string))
        };
        let mut units: Vec<&crate::parse::Unit> = self.units.iter().collect();
        // The named output first; the others after it, as a fallback.
        units.sort_by_key(|u| {
            let name = if u.implicit {
                Some(IMPLICIT_CACHE_NAME.to_string())
            } else {
                named(&u.node)
            };
            output.is_none() || name.as_deref() != output
        });
        let found: Vec<&Node> = units
            .iter()
            .filter_map(|unit| unit.node.get(section))
            .flat_map(|node| -> Vec<&Node> {
                match node.as_seq() {
                    Some(items) => items.iter().collect(),
                    None => vec![node],
                }
            })
            .filter_map(|m| m.get(key))
            .collect();
        value
            .and_then(|v| found.iter().find(|n| n.as_str() == Some(v)))
            .or(found.first())
            .map(|n| n.span)
    }

    /// The recipe file.
    pub fn source(&self) -> &SourceFile {
        &self.source
    }

    /// A problem at `span` of the recipe, for an error found while
    /// building: an `InvalidValue` of `what`.
    pub fn problem_at(
        &self,
        span: SourceSpan,
        what: &'static str,
        value: String,
        reason: String,
    ) -> Problem {
        Problem::new(
            &self.source,
            ProblemKind::InvalidValue {
                what,
                value,
                reason,
            },
            span,
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::SourceFile;

    #[test]
    fn a_value_is_found_in_its_output_by_keys_and_text() {
        let text = "recipe: {name: r, version: '1'}\noutputs:\n  - package: {name: a}\n    source:\n      - path: one\n      - path: two\n    build: {script: echo a}\n  - package: {name: b}\n    build: {script: echo b}\n";
        let recipe =
            crate::parse(SourceFile::new("recipe.yaml", text), ".".into()).expect("parses");
        let at = |span: miette::SourceSpan| recipe.source().line_col(span.offset());
        let two = recipe
            .locate(Some("a"), "source", "path", Some("two"))
            .unwrap();
        assert_eq!(at(two), (6, 15));
        let script = recipe.locate(Some("b"), "build", "script", None).unwrap();
        assert_eq!(at(script), (9, 21));
        // A templated path that renders to other text: the output's first.
        let other = recipe
            .locate(Some("a"), "source", "path", Some("x"))
            .unwrap();
        assert_eq!(at(other), (5, 15));
    }
}
