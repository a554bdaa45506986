//! The end of a build: the table of packages on stdout with each one's
//! time, the build's total and what the caches saved; the same as a JSON
//! record, and as Markdown in `$GITHUB_STEP_SUMMARY`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use cleave_build::engine::{BuildReport, Outcome};

use super::{Printer, github, human_duration};
use crate::cli::LogStyle;
use crate::commands::build::human_size;

/// The compile cache's counters, or their growth over a step.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CompileCounts {
    /// Calls served from the cache.
    pub(crate) hits: u64,
    /// Calls that could be cached (hits and misses).
    pub(crate) cacheable: u64,
    /// Compile time the hits did not spend, in microseconds.
    pub(crate) saved_us: u64,
}

impl CompileCounts {
    /// What was counted since `mark`.
    pub(crate) fn since(&self, mark: &CompileCounts) -> CompileCounts {
        CompileCounts {
            hits: self.hits.saturating_sub(mark.hits),
            cacheable: self.cacheable.saturating_sub(mark.cacheable),
            saved_us: self.saved_us.saturating_sub(mark.saved_us),
        }
    }

    fn add(&mut self, other: &CompileCounts) {
        self.hits += other.hits;
        self.cacheable += other.cacheable;
        self.saved_us += other.saved_us;
    }
}

/// What became of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StepResult {
    /// It ran.
    Built,
    /// A staging build found in the cache.
    Cached,
    /// A package taken from the cache.
    Reused,
    /// It failed.
    Failed,
    /// A package a channel has already: not built.
    Skipped,
    /// Not built: something it needs failed.
    NotBuilt,
}

/// One staging build or package output of the build.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    /// `staging` or `package`.
    pub(crate) kind: &'static str,
    /// Its name (with version and build string for a package).
    pub(crate) what: String,
    pub(crate) started: Instant,
    /// How long it took, once it ended.
    pub(crate) duration: Option<Duration>,
    pub(crate) result: StepResult,
    /// With a cache hit, how long the build that made the entry took.
    pub(crate) saved: Option<Duration>,
    /// The remote the entry came from.
    pub(crate) fetched: Option<String>,
    /// The compile cache's work during the step.
    pub(crate) compile: CompileCounts,
}

/// What the summary shows.
pub(crate) struct Summary<'a> {
    /// Each package output and what became of it.
    pub(crate) report: &'a BuildReport,
    pub(crate) steps: &'a [Step],
    pub(crate) output_dir: &'a Path,
    pub(crate) total: Duration,
}

impl Summary<'_> {
    /// What the caches saved: staging hits, reused packages, compile hits.
    fn savings(&self) -> (Duration, Vec<String>) {
        let mut parts = Vec::new();
        let mut total = Duration::ZERO;
        for step in self.steps.iter().filter(|s| s.result == StepResult::Cached) {
            let saved = step.saved.unwrap_or_default();
            total += saved;
            parts.push(format!(
                "staging `{}` ({})",
                step.what,
                human_duration(saved)
            ));
        }
        let reused: Vec<&Step> = self
            .steps
            .iter()
            .filter(|s| s.result == StepResult::Reused)
            .collect();
        if !reused.is_empty() {
            let saved: Duration = reused.iter().filter_map(|s| s.saved).sum();
            total += saved;
            parts.push(format!(
                "{} reused package{} ({})",
                reused.len(),
                if reused.len() == 1 { "" } else { "s" },
                human_duration(saved)
            ));
        }
        let compile = self.compile();
        if compile.hits > 0 {
            let saved = Duration::from_micros(compile.saved_us);
            total += saved;
            parts.push(format!(
                "compile cache {} of {} calls ({})",
                compile.hits,
                compile.cacheable,
                human_duration(saved)
            ));
        }
        (total, parts)
    }

    fn compile(&self) -> CompileCounts {
        let mut sum = CompileCounts::default();
        for s in self.steps {
            sum.add(&s.compile);
        }
        sum
    }

    /// Prints the summary in `printer`'s style: the table on stdout, and
    /// a record (JSON) or a step summary (GitHub).
    pub(crate) fn print(&self, printer: &Printer) -> std::io::Result<()> {
        if !self.report.outputs.is_empty() {
            let mut out = std::io::stdout().lock();
            std::io::Write::write_all(&mut out, self.table().as_bytes())?;
        }
        match printer.style {
            LogStyle::Json => printer.line(&self.json(printer).to_string()),
            LogStyle::Github => github::append_step_summary(printer, &self.markdown()),
            LogStyle::Fancy | LogStyle::Plain => {}
        }
        Ok(())
    }

    fn table(&self) -> String {
        let rows: Vec<[String; 8]> = self
            .report
            .outputs
            .iter()
            .map(|o| {
                let (subdir, state, size, files, time) = match &o.outcome {
                    Outcome::Built(p) => (
                        p.subdir.clone(),
                        if p.reused { "reused" } else { "built" },
                        human_size(p.size),
                        p.files.to_string(),
                        human_duration(p.duration),
                    ),
                    Outcome::Skipped { .. } => (
                        String::new(),
                        "skipped",
                        String::new(),
                        String::new(),
                        String::new(),
                    ),
                    Outcome::Failed => (
                        String::new(),
                        "failed",
                        String::new(),
                        String::new(),
                        String::new(),
                    ),
                    Outcome::NotBuilt { .. } => (
                        String::new(),
                        "not built",
                        String::new(),
                        String::new(),
                        String::new(),
                    ),
                };
                [
                    o.name.clone(),
                    o.version.clone(),
                    o.build.clone(),
                    subdir,
                    state.to_string(),
                    size,
                    files,
                    time,
                ]
            })
            .collect();
        let header = [
            "package", "version", "build", "subdir", "", "size", "files", "time",
        ];
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            cells
                .iter()
                .zip(widths)
                .enumerate()
                .map(|(i, (c, w))| {
                    if i >= 5 {
                        format!("{c:>w$}")
                    } else {
                        format!("{c:<w$}")
                    }
                })
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        let mut text = String::new();
        let _ = writeln!(text, "{}", line(&header.map(String::from)));
        for row in &rows {
            let _ = writeln!(text, "{}", line(row));
        }
        let count =
            |f: fn(&Outcome) -> bool| self.report.outputs.iter().filter(|o| f(&o.outcome)).count();
        let built = count(|o| matches!(o, Outcome::Built(p) if !p.reused));
        let reused = count(|o| matches!(o, Outcome::Built(p) if p.reused));
        let packages = built + reused;
        let mut others = String::new();
        for (n, what) in [
            (
                count(|o| matches!(o, Outcome::Skipped { .. })),
                "skipped: already in a channel",
            ),
            (count(|o| matches!(o, Outcome::Failed)), "failed"),
            (
                count(|o| matches!(o, Outcome::NotBuilt { .. })),
                "not built",
            ),
        ] {
            if n > 0 {
                let _ = write!(others, "; {n} {what}");
            }
        }
        let _ = writeln!(
            text,
            "\n{packages} package{} in {} ({built} built, {reused} reused from the cache{others}) in {}",
            if packages == 1 { "" } else { "s" },
            self.output_dir.display(),
            human_duration(self.total),
        );
        let (saved, parts) = self.savings();
        if !parts.is_empty() {
            let _ = writeln!(
                text,
                "the caches saved about {}: {}",
                human_duration(saved),
                parts.join(", ")
            );
        }
        text
    }

    fn json(&self, printer: &Printer) -> serde_json::Value {
        let secs = |d: Duration| (d.as_secs_f64() * 1000.0).round() / 1000.0;
        let (saved, _) = self.savings();
        let compile = self.compile();
        serde_json::json!({
            "type": "summary",
            "time": printer.elapsed(),
            "seconds": secs(self.total),
            "saved_seconds": secs(saved),
            "output_dir": self.output_dir,
            "packages": self.report.packages().map(|p| serde_json::json!({
                "name": p.name, "version": p.version, "build": p.build,
                "subdir": p.subdir, "path": p.path, "size": p.size, "files": p.files,
                "reused": p.reused, "seconds": secs(p.duration),
                "saved_seconds": p.saved.map(secs),
            })).collect::<Vec<_>>(),
            "outputs": self.report.outputs.iter().map(|o| {
                let (result, why) = match &o.outcome {
                    Outcome::Built(p) => (if p.reused { "reused" } else { "built" }, None),
                    Outcome::Skipped { channel } => ("skipped", Some(channel)),
                    Outcome::Failed => ("failed", None),
                    Outcome::NotBuilt { because } => ("not_built", Some(because)),
                };
                serde_json::json!({
                    "name": o.name, "version": o.version, "build": o.build,
                    "result": result, "because": why,
                })
            }).collect::<Vec<_>>(),
            "failures": self.report.failures,
            "steps": self.steps.iter().map(|s| serde_json::json!({
                "kind": s.kind, "what": s.what,
                "result": result_name(s.result),
                "seconds": s.duration.map(secs),
                "saved_seconds": s.saved.map(secs),
                "fetched_from": s.fetched,
                "compile_hits": s.compile.hits,
                "compile_cacheable": s.compile.cacheable,
            })).collect::<Vec<_>>(),
            "compile": {
                "hits": compile.hits,
                "cacheable": compile.cacheable,
                "saved_seconds": secs(Duration::from_micros(compile.saved_us)),
            },
        })
    }

    fn markdown(&self) -> String {
        let mut md = String::new();
        let (saved, parts) = self.savings();
        let packages = self.report.packages().count();
        let _ = writeln!(
            md,
            "### cleave build: {packages} package{} in {}{}\n",
            if packages == 1 { "" } else { "s" },
            human_duration(self.total),
            match self.report.failures {
                0 => String::new(),
                n => format!(", {n} failed"),
            }
        );
        let _ = writeln!(
            md,
            "| output | result | time | size | build time saved | compile cache hits |"
        );
        let _ = writeln!(md, "|---|---|---:|---:|---:|---:|");
        let cell = |text: &str| text.replace('|', "\\|");
        for step in self.steps {
            let package = self
                .report
                .packages()
                .find(|p| step.what == format!("{}-{}-{}", p.name, p.version, p.build));
            let result = match &step.fetched {
                Some(remote) => format!("{} (from {remote})", result_name(step.result)),
                None => result_name(step.result).to_string(),
            };
            let compile = if step.compile.cacheable > 0 {
                format!("{} of {}", step.compile.hits, step.compile.cacheable)
            } else {
                String::new()
            };
            let _ = writeln!(
                md,
                "| {} {} | {} | {} | {} | {} | {} |",
                step.kind,
                cell(&step.what),
                cell(&result),
                step.duration.map(human_duration).unwrap_or_default(),
                package.map(|p| human_size(p.size)).unwrap_or_default(),
                step.saved.map(human_duration).unwrap_or_default(),
                compile,
            );
        }
        if !parts.is_empty() {
            let _ = writeln!(
                md,
                "\nThe caches saved about {}: {}.",
                human_duration(saved),
                cell(&parts.join(", "))
            );
        }
        md.push('\n');
        md
    }
}

fn result_name(result: StepResult) -> &'static str {
    match result {
        StepResult::Built => "built",
        StepResult::Cached => "cached",
        StepResult::Reused => "reused",
        StepResult::Failed => "failed",
        StepResult::Skipped => "skipped",
        StepResult::NotBuilt => "not built",
    }
}
