//! Recipe text together with the name it is reported under.
//!
//! Every diagnostic points into one of these, so spans are plain byte ranges
//! and the text is shared cheaply between all the errors of one file.

use std::sync::Arc;

use miette::{NamedSource, SourceSpan};

/// A file's text and the name errors show for it.
#[derive(Debug, Clone)]
pub struct SourceFile {
    name: Arc<str>,
    text: Arc<str>,
}

impl SourceFile {
    /// Wraps `text` so that errors report it as `name` (usually a path).
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            name: Arc::from(name.into()),
            text: Arc::from(text.into()),
        }
    }

    /// The name errors use for this file.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The whole text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The text a span covers, or "" for a span outside the text.
    pub fn slice(&self, span: SourceSpan) -> &str {
        self.text
            .get(span.offset()..span.offset() + span.len())
            .unwrap_or("")
    }

    /// A handle miette can render snippets from.
    pub fn named_source(&self) -> NamedSource<Arc<str>> {
        NamedSource::new(&self.name, Arc::clone(&self.text))
    }

    /// 1-based line and column of a byte offset, for one-line messages.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }
}

/// Converts the parser's character indices into byte offsets.
///
/// The YAML scanner counts characters; miette wants bytes. For ASCII text the
/// two agree, so the table is only built for text with multi-byte characters.
pub(crate) struct CharIndex {
    offsets: Option<Vec<usize>>,
    len: usize,
}

impl CharIndex {
    pub(crate) fn new(text: &str) -> Self {
        let offsets = (!text.is_ascii()).then(|| {
            text.char_indices()
                .map(|(byte, _)| byte)
                .chain(std::iter::once(text.len()))
                .collect()
        });
        Self {
            offsets,
            len: text.len(),
        }
    }

    pub(crate) fn byte(&self, char_index: usize) -> usize {
        match &self.offsets {
            None => char_index.min(self.len),
            Some(offsets) => offsets.get(char_index).copied().unwrap_or(self.len),
        }
    }
}
