//! The `tracing` subscriber: what the libraries log (cleave's crates,
//! rattler, resolvo), filtered by verbosity or by `CLEAVE_LOG` /
//! `RUST_LOG`, written in the run's style through the printer.

use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use super::Printer;
use crate::cli::LogStyle;

/// cleave's own crates, which `-v` opens up first.
const OURS: &[&str] = &[
    "cleave",
    "cleave_build",
    "cleave_cache",
    "cleave_compile",
    "cleave_recipe",
];

/// The filter: `CLEAVE_LOG`, else `RUST_LOG` (which rattler-build
/// honours), else one made from the verbosity.
fn filter(verbosity: i8) -> EnvFilter {
    for var in ["CLEAVE_LOG", "RUST_LOG"] {
        if let Ok(text) = std::env::var(var)
            && let Ok(filter) = EnvFilter::try_new(&text)
        {
            return filter;
        }
    }
    let (ours, others) = match verbosity {
        ..0 => ("error", "error"),
        0 => ("warn", "warn"),
        1 => ("debug", "warn,rattler=info,resolvo=info"),
        _ => ("trace", "info,rattler=debug"),
    };
    let mut text = others.to_string();
    for krate in OURS {
        let _ = write!(text, ",{krate}={ours}");
    }
    EnvFilter::new(text)
}

/// Installs the subscriber (once; a second call does nothing).
pub(super) fn init(printer: &'static Printer) {
    let _ = tracing_subscriber::registry()
        .with(filter(printer.verbosity))
        .with(LogLayer { printer })
        .try_init();
}

/// Writes each event as one line in the printer's style.
struct LogLayer {
    printer: &'static Printer,
}

impl<S: Subscriber> Layer<S> for LogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = *meta.level();
        let p = self.printer;
        match p.style {
            LogStyle::Json => {
                let record = serde_json::json!({
                    "type": "log",
                    "time": p.elapsed(),
                    "level": level.as_str().to_ascii_lowercase(),
                    "target": meta.target(),
                    "message": fields.message,
                    "fields": fields.rest,
                });
                p.line(&record.to_string());
            }
            LogStyle::Github if level <= Level::WARN => {
                let command = if level == Level::ERROR {
                    "error"
                } else {
                    "warning"
                };
                p.line(&format!(
                    "::{command}::{}",
                    super::github::escape_data(&fields.line(meta.target()))
                ));
            }
            _ => {
                let tag = match level {
                    Level::ERROR => console::style("error").red().bold(),
                    Level::WARN => console::style("warning").yellow().bold(),
                    Level::INFO => console::style("info").green(),
                    Level::DEBUG => console::style("debug").blue(),
                    Level::TRACE => console::style("trace").dim(),
                }
                .for_stderr();
                p.line(&format!("{tag}: {}", fields.line(meta.target())));
            }
        }
    }
}

/// An event's message and its other fields.
#[derive(Default)]
struct Fields {
    message: String,
    rest: serde_json::Map<String, serde_json::Value>,
}

impl Fields {
    /// `target: message key=value ...`.
    fn line(&self, target: &str) -> String {
        let mut text = format!("{target}: {}", self.message);
        for (k, v) in &self.rest {
            match v {
                serde_json::Value::String(s) => {
                    let _ = write!(text, " {k}={s}");
                }
                other => {
                    let _ = write!(text, " {k}={other}");
                }
            }
        }
        text
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.rest.insert(field.name().to_string(), value.into());
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.rest.insert(field.name().to_string(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.rest.insert(field.name().to_string(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.rest.insert(field.name().to_string(), value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.rest.insert(field.name().to_string(), text.into());
        }
    }
}
