//! The end of a build: the table of packages on stdout with each one's
//! time, the build's total and what the caches saved; the same as a JSON
//! record, and as Markdown in `$GITHUB_STEP_SUMMARY`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use cleave_build::engine::BuiltPackage;

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
    pub(crate) built: &'a [BuiltPackage],
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
        let mut out = std::io::stdout().lock();
        std::io::Write::write_all(&mut out, self.table().as_bytes())?;
        match printer.style {
            LogStyle::Json => printer.line(&self.json(printer).to_string()),
            LogStyle::Github => github::append_step_summary(printer, &self.markdown()),
            LogStyle::Fancy | LogStyle::Plain => {}
        }
        Ok(())
    }

    fn table(&self) -> String {
        let rows: Vec<[String; 8]> = self
            .built
            .iter()
            .map(|p| {
                [
                    p.name.clone(),
                    p.version.clone(),
                    p.build.clone(),
                    p.subdir.clone(),
                    if p.reused { "reused" } else { "built" }.to_string(),
                    human_size(p.size),
                    p.files.to_string(),
                    human_duration(p.duration),
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
        };
        let mut text = String::new();
        let _ = writeln!(text, "{}", line(&header.map(String::from)));
        for row in &rows {
            let _ = writeln!(text, "{}", line(row));
        }
        let reused = self.built.iter().filter(|p| p.reused).count();
        let _ = writeln!(
            text,
            "\n{} package{} in {} ({} built, {reused} reused from the cache) in {}",
            self.built.len(),
            if self.built.len() == 1 { "" } else { "s" },
            self.output_dir.display(),
            self.built.len() - reused,
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
            "packages": self.built.iter().map(|p| serde_json::json!({
                "name": p.name, "version": p.version, "build": p.build,
                "subdir": p.subdir, "path": p.path, "size": p.size, "files": p.files,
                "reused": p.reused, "seconds": secs(p.duration),
                "saved_seconds": p.saved.map(secs),
            })).collect::<Vec<_>>(),
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
        let _ = writeln!(
            md,
            "### cleave build: {} package{} in {}\n",
            self.built.len(),
            if self.built.len() == 1 { "" } else { "s" },
            human_duration(self.total)
        );
        let _ = writeln!(
            md,
            "| output | result | time | size | build time saved | compile cache hits |"
        );
        let _ = writeln!(md, "|---|---|---:|---:|---:|---:|");
        let cell = |text: &str| text.replace('|', "\\|");
        for step in self.steps {
            let package = self
                .built
                .iter()
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
    }
}
