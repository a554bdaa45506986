//! Where in the file a part of a rendered string was written.
//!
//! A template error knows its byte range in the template text; the text is
//! the YAML value, which for quoted and block scalars is not the text in
//! the file. For a plain or simply quoted value the template appears in
//! the file as is; for a literal block (`|`) each line of the value is one
//! line of the file, indented. Either way the error can point at the line
//! and column it is about, not at the start of the value.

use std::ops::Range;

use miette::SourceSpan;

use crate::source::SourceFile;

/// The span in `source` of `range` of `template`, the value of the node
/// written at `span`; `None` when it cannot be traced.
pub(crate) fn locate(
    source: &SourceFile,
    span: SourceSpan,
    template: &str,
    range: Range<usize>,
) -> Option<SourceSpan> {
    let written = source.slice(span);
    if let Some(at) = written.find(template) {
        return Some(SourceSpan::new(
            (span.offset() + at + range.start).into(),
            range.len(),
        ));
    }
    let text = source.text();
    // A literal block: the value's lines are the file's lines from the
    // first one on (the span starts there, or at the `|` header before it).
    let first_line = template.lines().next()?;
    let mut start = if written.starts_with('|') {
        span.offset() + text.get(span.offset()..)?.find('\n')? + 1
    } else if template.contains('\n') && text.get(span.offset()..)?.starts_with(first_line) {
        span.offset()
    } else {
        return None;
    };
    let before = template.get(..range.start)?;
    let line_index = before.matches('\n').count();
    let column = range.start - before.rfind('\n').map_or(0, |i| i + 1);
    let line = template.lines().nth(line_index)?;
    for _ in 0..line_index {
        start += text.get(start..)?.find('\n')? + 1;
    }
    let file_line = text.get(start..)?.lines().next()?;
    let indent = if line.is_empty() {
        0
    } else {
        file_line.find(line)?
    };
    let len = range.len().min(line.len().saturating_sub(column));
    Some(SourceSpan::new((start + indent + column).into(), len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_spanned_from_its_first_line_maps_too() {
        let text = "script: |\n  echo one\n  echo ${{ bad( }}\n";
        let source = SourceFile::new("r.yaml", text);
        let start = text.find("echo one").unwrap();
        let template = "echo one\necho ${{ bad( }}\n";
        let at = template.find("bad").unwrap();
        let span = locate(
            &source,
            SourceSpan::new(start.into(), 8),
            template,
            at..at + 3,
        )
        .unwrap();
        assert_eq!(source.line_col(span.offset()), (3, 12));
    }

    #[test]
    fn block_lines_map_to_their_own_line() {
        let text = "script: |\n  echo one\n  echo ${{ bad( }}\n";
        let source = SourceFile::new("r.yaml", text);
        let start = text.find('|').unwrap();
        let template = "echo one\necho ${{ bad( }}\n";
        let at = template.find("bad").unwrap();
        let span = locate(
            &source,
            SourceSpan::new(start.into(), 1),
            template,
            at..at + 3,
        )
        .unwrap();
        assert_eq!(source.slice(span), "bad");
        assert_eq!(source.line_col(span.offset()), (3, 12));
    }
}
