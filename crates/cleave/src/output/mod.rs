//! What cleave shows, and how: the global output settings (verbosity,
//! colours, log style), the `tracing` subscriber, and the reporters that
//! turn a build's events into progress bars, plain lines, JSON lines or
//! GitHub Actions commands.
//!
//! Data goes to stdout; everything else to stderr, through
//! [`Printer::line`], which suspends the progress bars while it writes
//! (as rattler-bin's writer does), so that a line never breaks a bar. Bars
//! are drawn only in a terminal: in a pipe or a CI log the same steps are
//! plain lines, with a line every [`Printer::interval`] for a step that
//! takes long, and no escape codes unless colours are forced.

mod build;
mod github;
mod json;
mod logging;
mod progress;
mod summary;

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressDrawTarget};

use crate::cli::{ColorArg, GlobalArgs, LogStyle};

pub(crate) use build::BuildReporter;
pub(crate) use github::Location;
pub(crate) use summary::Summary;

/// How a run shows its output, resolved from the flags and the
/// environment once, at the start.
#[derive(Debug)]
pub(crate) struct Printer {
    /// The style in use (`fancy` outside a terminal draws no bars).
    pub(crate) style: LogStyle,
    /// -1 with `-q`, 0 by default, 1 and 2 with `-v` and `-vv`.
    pub(crate) verbosity: i8,
    /// Whether stderr gets colours.
    pub(crate) color: bool,
    /// Whether progress bars are drawn.
    pub(crate) bars: bool,
    /// Where bars are drawn; lines are written through it.
    multi: MultiProgress,
    /// When the command started, for times in JSON records.
    pub(crate) started: Instant,
    /// How often a long step without bars says it is still running.
    pub(crate) interval: Duration,
}

static PRINTER: OnceLock<Printer> = OnceLock::new();

/// Sets the output up from the global flags: call once, before anything
/// is printed.
pub(crate) fn init(args: &GlobalArgs) -> &'static Printer {
    let printer = PRINTER.get_or_init(|| Printer::new(args));
    logging::init(printer);
    printer
}

/// The printer [`init`] made (a plain one if none was).
pub(crate) fn printer() -> &'static Printer {
    PRINTER.get_or_init(|| {
        Printer::new(&GlobalArgs {
            verbose: 0,
            quiet: 0,
            color: ColorArg::Auto,
            log_style: None,
        })
    })
}

impl Printer {
    fn new(args: &GlobalArgs) -> Printer {
        let terminal =
            std::io::stderr().is_terminal() && std::env::var("TERM").map_or(true, |t| t != "dumb");
        let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0");
        let color = match args.color {
            ColorArg::Always => true,
            ColorArg::Never => false,
            ColorArg::Auto if set("CLICOLOR_FORCE") => true,
            ColorArg::Auto => terminal && !set("NO_COLOR"),
        };
        console::set_colors_enabled(color);
        console::set_colors_enabled_stderr(color);
        let style = args.log_style.unwrap_or_else(|| {
            if std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true") {
                LogStyle::Github
            } else {
                LogStyle::Fancy
            }
        });
        let verbosity = if args.quiet > 0 {
            -1
        } else {
            args.verbose.min(2) as i8
        };
        // Trace logs would scroll bars away: -vv is plain, as in
        // rattler-build.
        let bars = style == LogStyle::Fancy && terminal && (0..2).contains(&verbosity);
        let multi = MultiProgress::with_draw_target(if bars {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let interval = std::env::var("CLEAVE_PROGRESS_INTERVAL")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map_or(Duration::from_secs(30), Duration::from_secs_f64);
        let printer = Printer {
            style,
            verbosity,
            color,
            bars,
            multi,
            started: Instant::now(),
            interval,
        };
        printer.install_miette_hook();
        printer
    }

    /// Diagnostics in this run's colours; no links or escape codes
    /// outside a terminal.
    fn install_miette_hook(&self) {
        let (color, links) = (self.color, self.bars);
        let _ = miette::set_hook(Box::new(move |_| {
            Box::new(
                miette::MietteHandlerOpts::new()
                    .color(color)
                    .terminal_links(links)
                    // Paths in messages (a kept work dir) stay whole, to
                    // be copied.
                    .wrap_lines(false)
                    .build(),
            )
        }));
    }

    /// Whether this is `-q`.
    pub(crate) fn quiet(&self) -> bool {
        self.verbosity < 0
    }

    /// Writes one line to stderr, above the bars.
    pub(crate) fn line(&self, text: &str) {
        let write = || {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{text}");
        };
        if self.bars {
            self.multi.suspend(write);
        } else {
            write();
        }
    }

    /// The bars' canvas.
    pub(crate) fn multi(&self) -> &MultiProgress {
        &self.multi
    }

    /// Seconds since the command started, for JSON records.
    pub(crate) fn elapsed(&self) -> f64 {
        (self.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
    }

    /// An error to show: the rendered diagnostic, in this run's style, and
    /// an annotation at `location` on GitHub.
    pub(crate) fn error(&self, report: &miette::Report, location: Option<&Location>) {
        match self.style {
            LogStyle::Json => {
                let text = format!("{report:?}");
                let mut record = serde_json::json!({
                    "type": "error",
                    "time": self.elapsed(),
                    "message": report.to_string(),
                    "report": console::strip_ansi_codes(&text),
                });
                let found = location
                    .cloned()
                    .or_else(|| github::locations(report.as_ref()).into_iter().next());
                if let Some(loc) = found {
                    json::place(&mut record, &loc);
                }
                self.line(&record.to_string());
            }
            LogStyle::Github => {
                self.line(&format!("{report:?}"));
                github::annotate_error(self, report, location);
            }
            LogStyle::Fancy | LogStyle::Plain => self.line(&format!("{report:?}")),
        }
    }

    /// A warning outside a build (a recipe's deprecated form).
    pub(crate) fn warning(&self, report: &miette::Report) {
        if self.quiet() {
            return;
        }
        match self.style {
            LogStyle::Json => self.line(
                &serde_json::json!({
                    "type": "warning",
                    "time": self.elapsed(),
                    "message": report.to_string(),
                    "report": console::strip_ansi_codes(&format!("{report:?}")),
                })
                .to_string(),
            ),
            LogStyle::Github => {
                self.line(&format!("{report:?}"));
                github::annotate_warning(self, report);
            }
            LogStyle::Fancy | LogStyle::Plain => self.line(&format!("{report:?}")),
        }
    }
}

/// A duration as people read it: `0.4s`, `12.3s`, `2m05s`, `1h02m`.
pub(crate) fn human_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        let s = s.round() as u64;
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        let m = (s / 60.0).round() as u64;
        format!("{}h{:02}m", m / 60, m % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human_duration(Duration::from_millis(400)), "0.4s");
        assert_eq!(human_duration(Duration::from_secs(125)), "2m05s");
        assert_eq!(human_duration(Duration::from_secs(3720)), "1h02m");
    }
}
