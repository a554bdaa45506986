//! GitHub Actions workflow commands: groups, error and warning
//! annotations, and the step summary.
//!
//! Values are escaped as the runner requires: in a message `%`, `\r` and
//! `\n`; in a property (`file=`, `title=`) also `:` and `,`.

use std::io::Write;

use miette::Diagnostic;

use super::Printer;

/// Where an annotation points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Location {
    /// The file, as the recipe was given.
    pub(crate) file: String,
    /// 1-based line.
    pub(crate) line: usize,
    /// 1-based column.
    pub(crate) col: usize,
}

/// A message of a workflow command.
pub(crate) fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A property value of a workflow command.
pub(crate) fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// `::group::TITLE`.
pub(crate) fn group(printer: &Printer, title: &str) {
    printer.line(&format!("::group::{}", escape_data(title)));
}

/// `::endgroup::`.
pub(crate) fn end_group(printer: &Printer) {
    printer.line("::endgroup::");
}

/// `::warning::MESSAGE`, with a title, at a place when known.
pub(crate) fn warning(printer: &Printer, at: Option<&Location>, title: &str, message: &str) {
    printer.line(&annotation("warning", at, title, message));
}

/// The places a diagnostic and the diagnostics related to it point at,
/// each with its message: a recipe's errors name file, line and column.
pub(crate) fn locations(diagnostic: &dyn Diagnostic) -> Vec<Location> {
    located(diagnostic).into_iter().map(|(l, _)| l).collect()
}

fn located(diagnostic: &dyn Diagnostic) -> Vec<(Location, String)> {
    let mut out = Vec::new();
    if let (Some(source), Some(labels)) = (diagnostic.source_code(), diagnostic.labels()) {
        for label in labels.take(1) {
            if let Ok(contents) = source.read_span(label.inner(), 0, 0) {
                out.push((
                    Location {
                        file: contents.name().unwrap_or("recipe.yaml").to_string(),
                        line: contents.line() + 1,
                        col: contents.column() + 1,
                    },
                    diagnostic.to_string(),
                ));
            }
        }
    }
    if let Some(related) = diagnostic.related() {
        for d in related {
            out.extend(located(d));
        }
    }
    out
}

fn annotation(command: &str, location: Option<&Location>, title: &str, message: &str) -> String {
    let mut props = Vec::new();
    if let Some(l) = location {
        props.push(format!("file={}", escape_property(&l.file)));
        props.push(format!("line={}", l.line));
        props.push(format!("col={}", l.col));
    }
    props.push(format!("title={}", escape_property(title)));
    format!("::{command} {}::{}", props.join(","), escape_data(message))
}

/// `::error file=...,line=...,col=...::` for each place the error points
/// at (a recipe's problems), or one at `location`, or one without a place.
pub(crate) fn annotate_error(
    printer: &Printer,
    report: &miette::Report,
    location: Option<&Location>,
) {
    let message = console::strip_ansi_codes(&format!("{report:?}")).into_owned();
    let places = located(report.as_ref());
    if let Some(l) = location {
        printer.line(&annotation("error", Some(l), &report.to_string(), &message));
    } else if places.is_empty() {
        printer.line(&annotation("error", None, &report.to_string(), &message));
    }
    if location.is_none() {
        for (l, text) in &places {
            printer.line(&annotation("error", Some(l), text, text));
        }
    }
}

/// `::warning file=...::` for a recipe's warning.
pub(crate) fn annotate_warning(printer: &Printer, report: &miette::Report) {
    for (l, text) in located(report.as_ref()) {
        printer.line(&annotation("warning", Some(&l), text.as_str(), &text));
    }
}

/// Appends Markdown to `$GITHUB_STEP_SUMMARY`, when set; a failure is a
/// warning, not a failed build.
pub(crate) fn append_step_summary(printer: &Printer, markdown: &str) {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) else {
        return;
    };
    let written = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .and_then(|mut f| f.write_all(markdown.as_bytes()));
    if let Err(e) = written {
        warning(
            printer,
            None,
            "step summary",
            &format!(
                "cannot write the step summary to {}: {e}",
                std::path::Path::new(&path).display()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_properties_are_escaped_as_the_runner_reads_them() {
        assert_eq!(escape_data("50% done\r\nnext"), "50%25 done%0D%0Anext");
        assert_eq!(escape_property("a:b,c%"), "a%3Ab%2Cc%25");
        assert_eq!(
            annotation(
                "error",
                Some(&Location {
                    file: "r/recipe.yaml".into(),
                    line: 3,
                    col: 7
                }),
                "bad: key",
                "line one\nline two"
            ),
            "::error file=r/recipe.yaml,line=3,col=7,title=bad%3A key::line one%0Aline two"
        );
    }
}
