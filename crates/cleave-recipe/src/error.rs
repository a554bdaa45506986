//! Errors in recipes and variant files, each pointing at the offending text.
//!
//! A recipe is checked as a whole: parsing and rendering collect every
//! [`Problem`] they find and return them together as [`RecipeErrors`], so a
//! user fixes a file in one round instead of one error per run.

use std::fmt;
use std::sync::Arc;

use miette::{Diagnostic, NamedSource, SourceSpan};

use crate::source::SourceFile;

/// What is wrong, independent of where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The YAML scanner rejected the text.
    #[error("invalid YAML: {0}")]
    Yaml(String),
    /// The file holds more than one YAML document.
    #[error("a recipe is one YAML document, but a second one starts here")]
    MultipleDocuments,
    /// The file holds no document at all.
    #[error("the file is empty")]
    EmptyDocument,
    /// The top level is a list or scalar.
    #[error("the top level must be a mapping, found {found}")]
    TopLevelNotMapping {
        /// What was found instead.
        found: &'static str,
    },
    /// YAML aliases (`*name`) are not part of the recipe format.
    #[error("YAML aliases are not supported in recipes")]
    Alias,
    /// YAML anchors (`&name`) are not part of the recipe format.
    #[error("YAML anchors are not supported in recipes")]
    Anchor,
    /// YAML tags (`!!str`) are not part of the recipe format.
    #[error("YAML tags are not supported in recipes")]
    Tag,
    /// Lists and mappings nested deeper than the reader allows.
    #[error("lists and mappings nest more than {limit} deep here")]
    TooDeep {
        /// The deepest nesting read.
        limit: usize,
    },
    /// Variant keys that multiply into more renders than a recipe may have.
    #[error(
        "rendering `{output}` would make at least {count} variants, more than the {limit} a recipe may have: {keys}"
    )]
    TooManyVariants {
        /// The output being rendered.
        output: String,
        /// How many variants the recipe would have.
        count: String,
        /// The limit.
        limit: u64,
        /// The keys that multiplied, with their counts.
        keys: String,
    },
    /// A list or mapping used as a mapping key.
    #[error("mapping keys must be plain strings")]
    ComplexKey,
    /// The same key twice in one mapping.
    #[error("duplicate key `{key}` (first defined at line {line}, column {column})")]
    DuplicateKey {
        /// The repeated key.
        key: String,
        /// Line of the first definition.
        line: usize,
        /// Column of the first definition.
        column: usize,
    },
    /// A key the section does not know.
    #[error("unknown key `{key}` in {section}")]
    UnknownKey {
        /// The key as written.
        key: String,
        /// The section it appeared in.
        section: String,
    },
    /// A required key is absent.
    #[error("{section} is missing `{key}`")]
    MissingKey {
        /// The missing key.
        key: String,
        /// The section that needs it.
        section: String,
    },
    /// A value of the wrong shape.
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// What the field takes.
        expected: &'static str,
        /// What was written.
        found: &'static str,
    },
    /// A value of the right shape that does not parse.
    #[error("invalid {what} `{value}`: {reason}")]
    InvalidValue {
        /// The kind of value, e.g. "version".
        what: &'static str,
        /// The value as rendered.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A dependency that is not a valid conda match spec.
    #[error("invalid match spec `{spec}`: {reason}")]
    MatchSpec {
        /// The spec as rendered.
        spec: String,
        /// The parser's reason.
        reason: String,
    },
    /// A Jinja syntax or evaluation error.
    #[error("template error: {0}")]
    Template(String),
    /// A Jinja expression refers to a name nothing defines.
    #[error("undefined variable `{name}`")]
    UndefinedVariable {
        /// The undefined name.
        name: String,
    },
    /// Only schema version 1 exists.
    #[error("unsupported schema_version `{found}`; cleave reads schema_version 1")]
    SchemaVersion {
        /// The version written.
        found: String,
    },
    /// Two keys that exclude each other.
    #[error("`{first}` and `{second}` cannot both be given")]
    Conflict {
        /// The key pointed at.
        first: &'static str,
        /// The key it conflicts with.
        second: &'static str,
    },
    /// `inherit` names a staging output that does not exist.
    #[error("`inherit` names `{name}`, but the recipe has no staging output of that name")]
    UnknownStaging {
        /// The name written.
        name: String,
    },
    /// `pin_subpackage` names something that is not an output here.
    #[error("pin_subpackage names `{name}`, which is not an output of this recipe")]
    UnknownPinTarget {
        /// The name written.
        name: String,
    },
    /// Two outputs with the same name.
    #[error("two outputs are named `{name}`")]
    DuplicateOutput {
        /// The shared name.
        name: String,
    },
    /// Outputs depend on each other in a loop.
    #[error("outputs depend on each other in a cycle: {path}")]
    Cycle {
        /// The loop, as `a -> b -> a`.
        path: String,
    },
    /// A script template names something only the build's environment
    /// could define.
    #[error(
        "`{name}` is not a recipe variable; the build fills it in from the script's environment, empty if unset"
    )]
    BuildTimeName {
        /// The name.
        name: String,
    },
    /// A form that still works but has a current replacement.
    #[error("{what} is deprecated")]
    Deprecated {
        /// The form written.
        what: String,
    },
    /// A key a staging output cannot carry.
    #[error("a staging output cannot have `{key}`")]
    StagingKey {
        /// The key written.
        key: String,
    },
    /// A key the format has but cleave does not implement. It is an error,
    /// never skipped: a build that quietly lacks a feature the recipe asks
    /// for makes a different package than the recipe describes.
    #[error("{feature} is not supported by cleave")]
    Unsupported {
        /// The feature, naming the key.
        feature: String,
    },
}

/// One error at one place in one file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}")]
pub struct Problem {
    /// What is wrong.
    pub kind: ProblemKind,
    /// The offending text.
    pub span: SourceSpan,
    /// A suggestion for fixing it, if there is one.
    pub help: Option<String>,
    label: &'static str,
    severity: miette::Severity,
    source_name: Arc<str>,
    named: NamedSource<Arc<str>>,
}

impl Problem {
    /// A problem at `span` in `source`, labelled with a default text.
    pub fn new(source: &SourceFile, kind: ProblemKind, span: SourceSpan) -> Self {
        let label = default_label(&kind);
        Self {
            kind,
            span,
            help: None,
            label,
            severity: miette::Severity::Error,
            source_name: Arc::from(source.name()),
            named: source.named_source(),
        }
    }

    /// Adds a hint line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Turns the problem into a warning: reported, but the recipe renders.
    pub fn into_warning(mut self) -> Self {
        self.severity = miette::Severity::Warning;
        self
    }

    /// True for a warning rather than an error.
    pub fn is_warning(&self) -> bool {
        self.severity == miette::Severity::Warning
    }

    /// The name of the file the problem is in.
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// The same problem in `source`, a file with the same offsets (a
    /// variant file whose false selectors were blanked before parsing is
    /// reported with its original text).
    pub(crate) fn in_source(mut self, source: &SourceFile) -> Self {
        self.source_name = Arc::from(source.name());
        self.named = source.named_source();
        self
    }
}

fn default_label(kind: &ProblemKind) -> &'static str {
    match kind {
        ProblemKind::UnknownKey { .. } => "unknown key",
        ProblemKind::MissingKey { .. } => "in this section",
        ProblemKind::DuplicateKey { .. } => "defined again here",
        ProblemKind::MatchSpec { .. } => "not a match spec",
        ProblemKind::UndefinedVariable { .. } => "used here",
        ProblemKind::Template(_) => "in this template",
        ProblemKind::Cycle { .. } => "part of the cycle",
        ProblemKind::DuplicateOutput { .. } => "second output with this name",
        ProblemKind::Unsupported { .. } => "not supported",
        ProblemKind::TooDeep { .. } => "too deep",
        ProblemKind::TooManyVariants { .. } => "this output",
        _ => "here",
    }
}

impl Diagnostic for Problem {
    fn severity(&self) -> Option<miette::Severity> {
        Some(self.severity)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.named)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        Some(Box::new(std::iter::once(
            miette::LabeledSpan::new_primary_with_span(Some(self.label.to_string()), self.span),
        )))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
}

/// How many problems a report shows; the others are counted, not shown.
/// Showing one costs a scan of the file up to it, so a file of thousands
/// of errors (generated, or written to hurt) would take minutes to report.
pub const SHOWN_PROBLEMS: usize = 100;

/// Every problem found in a recipe, in source order.
#[derive(Debug, Clone)]
pub struct RecipeErrors {
    problems: Vec<Problem>,
}

impl RecipeErrors {
    /// Sorts and deduplicates; rendering every variant can find the same
    /// problem many times.
    pub fn new(mut problems: Vec<Problem>) -> Self {
        problems.sort_by(|a, b| {
            (a.source_name(), a.span.offset(), a.to_string()).cmp(&(
                b.source_name(),
                b.span.offset(),
                b.to_string(),
            ))
        });
        problems.dedup_by(|a, b| {
            a.source_name() == b.source_name() && a.span == b.span && a.kind == b.kind
        });
        Self { problems }
    }

    /// The individual problems.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// The same problems, reported against `source` (see [`Problem::in_source`]).
    pub(crate) fn in_source(self, source: &SourceFile) -> Self {
        Self::new(
            self.problems
                .into_iter()
                .map(|p| p.in_source(source))
                .collect(),
        )
    }
}

impl From<Problem> for RecipeErrors {
    fn from(problem: Problem) -> Self {
        Self::new(vec![problem])
    }
}

impl fmt::Display for RecipeErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.problems.first().map_or("recipe", |p| p.source_name());
        let warnings = self.problems.iter().filter(|p| p.is_warning()).count();
        match self.problems.len() - warnings {
            1 => write!(f, "{name}: 1 error")?,
            n => write!(f, "{name}: {n} errors")?,
        }
        match warnings {
            0 => {}
            1 => write!(f, ", 1 warning")?,
            n => write!(f, ", {n} warnings")?,
        }
        if self.problems.len() > SHOWN_PROBLEMS {
            write!(f, " (the first {SHOWN_PROBLEMS} shown)")?;
        }
        Ok(())
    }
}

impl std::error::Error for RecipeErrors {}

impl Diagnostic for RecipeErrors {
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(
            self.problems
                .iter()
                .take(SHOWN_PROBLEMS)
                .map(|p| p as &dyn Diagnostic),
        ))
    }
}

/// Problems for every key of `node` (a mapping) that `known` lacks, each with
/// the closest known key or the list of known keys as a hint.
pub(crate) fn unknown_keys(
    source: &SourceFile,
    node: &crate::yaml::Node,
    section: &str,
    known: &[&str],
) -> Vec<Problem> {
    node.as_map()
        .unwrap_or_default()
        .iter()
        .filter(|(key, _)| !known.contains(&key.name.as_str()))
        .map(|(key, _)| {
            let help = match suggest(&key.name, known.iter().copied()) {
                Some(close) => format!("did you mean `{close}`?"),
                None => format!("{section} takes: {}", known.join(", ")),
            };
            let kind = ProblemKind::UnknownKey {
                key: key.name.clone(),
                section: section.to_string(),
            };
            Problem::new(source, kind, key.span).with_help(help)
        })
        .collect()
}

/// The closest known word to `word`, for "did you mean" hints.
pub fn suggest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::jaro_winkler(word, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}
