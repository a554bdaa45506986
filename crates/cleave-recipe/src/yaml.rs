//! A YAML tree that remembers where every node came from.
//!
//! Recipes are plain YAML (no anchors, aliases or tags), so this loader builds
//! its own small tree from the scanner's events instead of a general YAML
//! value. That keeps byte spans on every key and scalar, rejects duplicate
//! keys, and turns every malformed input into an error instead of a panic.

use miette::SourceSpan;
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::error::{Problem, ProblemKind, RecipeErrors};
use crate::source::{CharIndex, SourceFile};

/// One node of a recipe document.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What the node holds.
    pub kind: NodeKind,
    /// Where it is in the source file.
    pub span: SourceSpan,
}

/// The three shapes a YAML node can have.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A string, number, boolean or null, kept as written.
    Scalar(Scalar),
    /// A list.
    Seq(Vec<Node>),
    /// A mapping, in source order.
    Map(Vec<(Key, Node)>),
}

/// A scalar's text and whether YAML would coerce it (unquoted).
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    /// The text after YAML unquoting and folding.
    pub value: String,
    /// True for unquoted scalars, which may mean `null`, `true` or a number.
    pub plain: bool,
}

/// A mapping key and its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The key text.
    pub name: String,
    /// Where the key is written.
    pub span: SourceSpan,
}

impl Node {
    /// A plain (unquoted) scalar node, used when rendering produces new text.
    pub fn scalar(value: impl Into<String>, plain: bool, span: SourceSpan) -> Self {
        Node {
            kind: NodeKind::Scalar(Scalar {
                value: value.into(),
                plain,
            }),
            span,
        }
    }

    /// True for an empty value, `~` or `null` written without quotes.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar(s) if s.plain && matches!(s.value.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The scalar text, if this is a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar(s) => Some(&s.value),
            _ => None,
        }
    }

    /// The mapping entries, if this is a mapping.
    pub fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.kind {
            NodeKind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The items, if this is a list.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The value of `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    /// The key entry of `key` in a mapping, for pointing errors at it.
    pub fn key(&self, key: &str) -> Option<&Key> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(k, _)| k)
    }

    /// A short word for the node's shape, for "expected X, found Y".
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar(_) if self.is_null() => "nothing (null)",
            NodeKind::Scalar(_) => "a scalar",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }
}

/// Parses one YAML document whose top level must be a mapping.
pub fn parse(source: &SourceFile) -> Result<Node, RecipeErrors> {
    let text = source.text();
    let chars = CharIndex::new(text);
    let mut loader = Loader {
        source,
        chars: &chars,
        parser: Parser::new_from_str(text),
    };
    loader
        .document()
        .map_err(|problem| RecipeErrors::from(*problem))
}

struct Loader<'a> {
    source: &'a SourceFile,
    chars: &'a CharIndex,
    parser: Parser<std::str::Chars<'a>>,
}

enum Frame {
    Seq(SourceSpan, Vec<Node>),
    Map(SourceSpan, Vec<(Key, Node)>, Option<Key>),
}

impl Loader<'_> {
    fn next(&mut self) -> Result<(Event, SourceSpan), Box<Problem>> {
        match self.parser.next_token() {
            Ok((event, mark)) => {
                let span = self.point(mark);
                Ok((event, span))
            }
            Err(err) => {
                let span = self.point(*err.marker());
                Err(self.problem(ProblemKind::Yaml(err.info().to_string()), span))
            }
        }
    }

    fn point(&self, mark: Marker) -> SourceSpan {
        let offset = self.chars.byte(mark.index());
        SourceSpan::new(offset.into(), 0)
    }

    fn problem(&self, kind: ProblemKind, span: SourceSpan) -> Box<Problem> {
        Box::new(Problem::new(self.source, kind, span))
    }

    /// Widens a zero-length start point to the written extent of a node that
    /// starts there: the whole scalar, or the rest of its first line.
    fn extent(&self, start: SourceSpan, value: &str, style: Option<TScalarStyle>) -> SourceSpan {
        let text = self.source.text();
        let offset = start.offset();
        let rest = &text[offset.min(text.len())..];
        let line_len = rest.find('\n').unwrap_or(rest.len());
        let line = &rest[..line_len];
        let len = match style {
            Some(TScalarStyle::Plain) if line.starts_with(value) => value.len(),
            Some(TScalarStyle::SingleQuoted) => closing_quote(line, '\'').unwrap_or(line_len),
            Some(TScalarStyle::DoubleQuoted) => closing_quote(line, '"').unwrap_or(line_len),
            _ => line.trim_end().len(),
        };
        SourceSpan::new(offset.into(), len)
    }

    fn document(&mut self) -> Result<Node, Box<Problem>> {
        let mut stack: Vec<Frame> = Vec::new();
        let mut root: Option<Node> = None;
        loop {
            let (event, at) = self.next()?;
            let node = match event {
                Event::StreamStart | Event::DocumentStart | Event::Nothing => continue,
                Event::DocumentEnd | Event::StreamEnd => {
                    if matches!(event, Event::DocumentEnd) {
                        // A second document after the first is not a recipe.
                        let (next, at) = self.next()?;
                        if !matches!(next, Event::StreamEnd) {
                            return Err(self.problem(ProblemKind::MultipleDocuments, at));
                        }
                    }
                    return match root {
                        Some(node) if node.as_map().is_some() => Ok(node),
                        Some(node) => Err(self.problem(
                            ProblemKind::TopLevelNotMapping {
                                found: node.describe(),
                            },
                            node.span,
                        )),
                        None => Err(self.problem(ProblemKind::EmptyDocument, at)),
                    };
                }
                Event::Alias(_) => return Err(self.problem(ProblemKind::Alias, at)),
                Event::Scalar(value, style, anchor, tag) => {
                    if anchor != 0 {
                        return Err(self.problem(ProblemKind::Anchor, at));
                    }
                    if tag.is_some() {
                        return Err(self.problem(ProblemKind::Tag, at));
                    }
                    let span = self.extent(at, &value, Some(style));
                    Node::scalar(value, style == TScalarStyle::Plain, span)
                }
                Event::SequenceStart(anchor, ref tag) | Event::MappingStart(anchor, ref tag) => {
                    if anchor != 0 {
                        return Err(self.problem(ProblemKind::Anchor, at));
                    }
                    if tag.is_some() {
                        return Err(self.problem(ProblemKind::Tag, at));
                    }
                    let span = self.extent(at, "", None);
                    stack.push(if matches!(event, Event::SequenceStart(..)) {
                        Frame::Seq(span, Vec::new())
                    } else {
                        Frame::Map(span, Vec::new(), None)
                    });
                    continue;
                }
                Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                    Some(Frame::Seq(span, items)) => Node {
                        kind: NodeKind::Seq(items),
                        span,
                    },
                    Some(Frame::Map(span, entries, _)) => Node {
                        kind: NodeKind::Map(entries),
                        span,
                    },
                    None => {
                        return Err(
                            self.problem(ProblemKind::Yaml("unbalanced document".into()), at)
                        );
                    }
                },
            };
            match stack.last_mut() {
                None => root = Some(node),
                Some(Frame::Seq(_, items)) => items.push(node),
                Some(Frame::Map(_, entries, pending)) => match pending.take() {
                    Some(key) => entries.push((key, node)),
                    None => {
                        let NodeKind::Scalar(scalar) = node.kind else {
                            return Err(self.problem(ProblemKind::ComplexKey, node.span));
                        };
                        if let Some((first, _)) =
                            entries.iter().find(|(k, _)| k.name == scalar.value)
                        {
                            let (line, column) = self.source.line_col(first.span.offset());
                            return Err(self.problem(
                                ProblemKind::DuplicateKey {
                                    key: scalar.value,
                                    line,
                                    column,
                                },
                                node.span,
                            ));
                        }
                        *pending = Some(Key {
                            name: scalar.value,
                            span: node.span,
                        });
                    }
                },
            }
        }
    }
}

/// Length up to and including the quote that closes the one at `line[0]`.
fn closing_quote(line: &str, quote: char) -> Option<usize> {
    let mut chars = line.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        if quote == '"' && c == '\\' {
            chars.next();
        } else if c == quote {
            if quote == '\'' && line[i + 1..].starts_with('\'') {
                chars.next();
                continue;
            }
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Node, RecipeErrors> {
        parse(&SourceFile::new("t.yaml", text))
    }

    #[test]
    fn spans_cover_scalars_and_keys() {
        let text = "package:\n  name: \"foo\"\n  version: 1.0 # comment\n";
        let root = load(text).unwrap();
        let package = root.get("package").unwrap();
        let name = package.get("name").unwrap();
        assert_eq!(&text[name.span.offset()..][..name.span.len()], "\"foo\"");
        let version = package.get("version").unwrap();
        assert_eq!(&text[version.span.offset()..][..version.span.len()], "1.0");
        let key = package.key("version").unwrap();
        assert_eq!(&text[key.span.offset()..][..key.span.len()], "version");
    }

    #[test]
    fn multibyte_text_keeps_byte_offsets() {
        let text = "about:\n  summary: \"héllo wörld\"\n  license: MIT\n";
        let root = load(text).unwrap();
        let license = root.get("about").unwrap().get("license").unwrap();
        assert_eq!(&text[license.span.offset()..][..license.span.len()], "MIT");
    }

    #[test]
    fn rejects_what_recipes_cannot_contain() {
        let cases = [
            ("a: 1\na: 2\n", "duplicate key"),
            ("a: &x 1\nb: *x\n", "anchor"),
            ("a: !!str 1\n", "tag"),
            ("- a\n", "mapping"),
            ("a: 1\n---\nb: 2\n", "one YAML document"),
            ("", "empty"),
            ("a: [1, 2\n", "YAML"),
            ("? [a]\n: 1\n", "key"),
        ];
        for (text, needle) in cases {
            let err = load(text).unwrap_err().problems()[0].to_string();
            assert!(err.contains(needle), "{text:?} gave {err:?}");
        }
    }
}
