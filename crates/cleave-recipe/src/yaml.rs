//! A YAML tree that remembers where every node came from.
//!
//! Recipes are plain YAML (no anchors, aliases or tags), so this loader builds
//! its own small tree from the scanner's events instead of a general YAML
//! value. That keeps byte spans on every key and scalar, rejects duplicate
//! keys, and turns every malformed input into an error instead of a panic.

use std::collections::HashMap;

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

/// How deeply lists and mappings may nest: conda-forge's recipes reach 11.
/// Every later step walks the tree recursively (rendering, merging,
/// cloning, dropping), so a limit here keeps them all off the end of the
/// stack; a 40 KB file can otherwise nest 20,000 deep.
pub const MAX_DEPTH: usize = 64;

/// Parses one YAML document whose top level must be a mapping.
pub fn parse(source: &SourceFile) -> Result<Node, RecipeErrors> {
    let text = source.text();
    let chars = CharIndex::new(text);
    let lines = LineEnds::new(text);
    let mut loader = Loader {
        source,
        chars: &chars,
        lines: &lines,
        parser: Parser::new_from_str(text),
    };
    loader
        .document()
        .map_err(|problem| RecipeErrors::from(*problem))
}

struct Loader<'a> {
    source: &'a SourceFile,
    chars: &'a CharIndex,
    lines: &'a LineEnds,
    parser: Parser<std::str::Chars<'a>>,
}

/// A list or mapping whose items are still being read.
enum Frame {
    Seq(SourceSpan, Vec<Node>),
    Map(MapFrame),
}

struct MapFrame {
    span: SourceSpan,
    entries: Vec<(Key, Node)>,
    /// The key whose value comes next.
    pending: Option<Key>,
    /// Where each key is written, to find a repeated one without
    /// comparing it with every key before it.
    seen: HashMap<String, SourceSpan>,
}

/// Where each line ends, without trailing whitespace, so that the extent of
/// a node is found without scanning its line: a line of many nodes (a long
/// flow list) would otherwise be scanned once per node.
struct LineEnds {
    /// Byte offset where each line starts.
    starts: Vec<usize>,
    /// Byte offset of each line's end, trailing whitespace left out.
    trimmed_ends: Vec<usize>,
}

impl LineEnds {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        let mut trimmed_ends = Vec::new();
        for (at, _) in text.match_indices('\n') {
            trimmed_ends.push(
                starts[starts.len() - 1] + text[starts[starts.len() - 1]..at].trim_end().len(),
            );
            starts.push(at + 1);
        }
        let last = starts[starts.len() - 1];
        trimmed_ends.push(last + text[last..].trim_end().len());
        Self {
            starts,
            trimmed_ends,
        }
    }

    /// The end of the line holding `offset`, trailing whitespace left out
    /// (never before `offset`).
    fn trimmed_end(&self, offset: usize) -> usize {
        let line = self.starts.partition_point(|&start| start <= offset) - 1;
        self.trimmed_ends[line].max(offset)
    }

    /// The end of the line holding `offset`, before its newline.
    fn end(&self, offset: usize, text_len: usize) -> usize {
        let line = self.starts.partition_point(|&start| start <= offset);
        self.starts.get(line).map_or(text_len, |next| next - 1)
    }
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
    /// starts there: the whole scalar, or the rest of its first line. The
    /// cost is the scalar's length, not the line's.
    fn extent(&self, start: SourceSpan, value: &str, style: Option<TScalarStyle>) -> SourceSpan {
        let text = self.source.text();
        let offset = start.offset().min(text.len());
        let rest = &text[offset..];
        let quoted = match style {
            Some(TScalarStyle::Plain) if rest.starts_with(value) && !value.contains('\n') => {
                return SourceSpan::new(offset.into(), value.len());
            }
            Some(TScalarStyle::SingleQuoted) => closing_quote(rest, '\''),
            Some(TScalarStyle::DoubleQuoted) => closing_quote(rest, '"'),
            _ => None,
        };
        let len = match quoted {
            Some(len) => len,
            None if matches!(
                style,
                Some(TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted)
            ) =>
            {
                self.lines.end(offset, text.len()) - offset
            }
            None => self.lines.trimmed_end(offset) - offset,
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
                    if stack.len() == MAX_DEPTH {
                        // The indicator only: the line may be all of them.
                        let first = self.source.text()[at.offset()..]
                            .chars()
                            .next()
                            .map_or(0, char::len_utf8);
                        let span = SourceSpan::new(at.offset().into(), first);
                        return Err(self.problem(ProblemKind::TooDeep { limit: MAX_DEPTH }, span));
                    }
                    let span = self.extent(at, "", None);
                    stack.push(if matches!(event, Event::SequenceStart(..)) {
                        Frame::Seq(span, Vec::new())
                    } else {
                        Frame::Map(MapFrame {
                            span,
                            entries: Vec::new(),
                            pending: None,
                            seen: HashMap::new(),
                        })
                    });
                    continue;
                }
                Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                    Some(Frame::Seq(span, items)) => Node {
                        kind: NodeKind::Seq(items),
                        span,
                    },
                    Some(Frame::Map(map)) => Node {
                        kind: NodeKind::Map(map.entries),
                        span: map.span,
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
                Some(Frame::Map(map)) => match map.pending.take() {
                    Some(key) => map.entries.push((key, node)),
                    None => {
                        let NodeKind::Scalar(scalar) = node.kind else {
                            return Err(self.problem(ProblemKind::ComplexKey, node.span));
                        };
                        if let Some(first) = map.seen.get(&scalar.value) {
                            let (line, column) = self.source.line_col(first.offset());
                            return Err(self.problem(
                                ProblemKind::DuplicateKey {
                                    key: scalar.value,
                                    line,
                                    column,
                                },
                                node.span,
                            ));
                        }
                        map.seen.insert(scalar.value.clone(), node.span);
                        map.pending = Some(Key {
                            name: scalar.value,
                            span: node.span,
                        });
                    }
                },
            }
        }
    }
}

/// Length up to and including the quote that closes the one at `text[0]`
/// on the same line; `None` for a scalar that goes on to another line.
fn closing_quote(text: &str, quote: char) -> Option<usize> {
    let mut chars = text.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        if c == '\n' {
            return None;
        }
        if quote == '"' && c == '\\' {
            chars.next();
        } else if c == quote {
            if quote == '\'' && text[i + 1..].starts_with('\'') {
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
    fn nesting_deeper_than_the_limit_is_an_error_at_its_place() {
        // 40 KB of block sequences, 20,000 deep, on one line.
        let seqs = format!("a:\n  {}x\n", "- ".repeat(20_000));
        let err = load(&seqs).unwrap_err();
        let problem = &err.problems()[0];
        assert_eq!(problem.kind, ProblemKind::TooDeep { limit: MAX_DEPTH });
        // The first list too many: the 64th `- ` (the top mapping is one).
        let source = SourceFile::new("t.yaml", seqs.as_str());
        assert_eq!(
            source.line_col(problem.span.offset()),
            (2, 3 + 2 * (MAX_DEPTH - 1))
        );
        assert_eq!(source.slice(problem.span), "-");
        // Block mappings, 10,000 deep, one per line.
        let mut maps = String::new();
        for depth in 0..10_000 {
            maps.push_str(&format!("{}k{depth}:\n", " ".repeat(depth)));
        }
        let err = load(&maps).unwrap_err();
        let problem = &err.problems()[0];
        assert_eq!(problem.kind, ProblemKind::TooDeep { limit: MAX_DEPTH });
        let source = SourceFile::new("t.yaml", maps.as_str());
        // The top mapping starts on line 1, the one too many on line 65:
        // `k64:` indented by 64, and the parser marks a block mapping at
        // its first colon.
        assert_eq!(
            source.line_col(problem.span.offset()),
            (MAX_DEPTH + 1, MAX_DEPTH + 4)
        );
        // Flow collections count the same.
        let flow = format!("a: {}{}\n", "[".repeat(200), "]".repeat(200));
        let err = load(&flow).unwrap_err();
        assert_eq!(
            err.problems()[0].kind,
            ProblemKind::TooDeep { limit: MAX_DEPTH }
        );
    }

    #[test]
    fn nesting_up_to_the_limit_is_read() {
        let text = format!(
            "a: {}x{}\n",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        let mut node = load(&text).unwrap().get("a").unwrap().clone();
        let mut depth = 1;
        while let Some([inner]) = node.as_seq() {
            node = inner.clone();
            depth += 1;
        }
        assert_eq!(depth, MAX_DEPTH);
        assert_eq!(node.as_str(), Some("x"));
    }

    #[test]
    fn spans_on_a_long_line_stop_at_their_node() {
        let text = "a: ['x, y', \"z\", w, {b: c}]  \nd: 'open\n  more'\n";
        let root = load(text).unwrap();
        let items = root.get("a").unwrap().as_seq().unwrap();
        let written: Vec<&str> = items
            .iter()
            .map(|n| &text[n.span.offset()..][..n.span.len()])
            .collect();
        // A mapping is the rest of its line, trailing blanks left out.
        assert_eq!(written, ["'x, y'", "\"z\"", "w", "{b: c}]"]);
        // A quoted scalar over two lines: the rest of its first line.
        let d = root.get("d").unwrap();
        assert_eq!(&text[d.span.offset()..][..d.span.len()], "'open");
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
