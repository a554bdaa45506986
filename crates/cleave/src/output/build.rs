//! The reporter of `cleave build`: a build's events as lines, bars, JSON
//! records or GitHub Actions commands, and what the summary needs (each
//! step's time, what the caches saved, the compile cache's hits).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cleave_build::engine::{Event, Reporter};
use cleave_cache::foreign::printable;
use cleave_compile::{rust, stats};

use super::progress::{Activities, spawn_ticker};
use super::summary::{CompileCounts, Step, StepResult};
use super::{Location, Printer, github, human_duration, json};
use crate::cli::LogStyle;
use crate::commands::build::{human_size, short};

/// Shows a build as it runs.
#[derive(Clone)]
pub(crate) struct BuildReporter {
    inner: Arc<Inner>,
}

struct Inner {
    printer: &'static Printer,
    activities: Activities,
    state: Mutex<State>,
    /// The compile cache's state directory, whose counters give each
    /// step's compile hits.
    compile: Option<PathBuf>,
    install: Option<Arc<dyn rattler::install::Reporter>>,
    repodata: Option<Arc<dyn rattler_repodata_gateway::Reporter>>,
}

#[derive(Default)]
struct State {
    group_open: bool,
    /// The activity of the solve, install, script or tests in progress.
    current: Option<usize>,
    steps: Vec<Step>,
    /// The compile counters when the current step started.
    mark: CompileCounts,
}

impl BuildReporter {
    /// A reporter for one build; `compile` is the compile cache's state
    /// directory when the compile cache is on.
    pub(crate) fn new(printer: &'static Printer, compile: Option<PathBuf>) -> BuildReporter {
        let (install, repodata) = if printer.bars {
            let install: Arc<dyn rattler::install::Reporter> = Arc::new(
                rattler::install::IndicatifReporter::builder()
                    .with_multi_progress(printer.multi().clone())
                    .clear_when_done(true)
                    .finish(),
            );
            let repodata: Arc<dyn rattler_repodata_gateway::Reporter> = Arc::new(
                rattler_repodata_gateway::IndicatifReporter::builder()
                    .with_multi_progress(printer.multi().clone())
                    .clear_when_done(true)
                    .finish(),
            );
            (Some(install), Some(repodata))
        } else {
            (None, None)
        };
        let inner = Arc::new(Inner {
            printer,
            activities: Activities::new(printer),
            state: Mutex::new(State::default()),
            compile,
            install,
            repodata,
        });
        if !printer.bars && !printer.quiet() {
            spawn_ticker(Arc::downgrade(&inner), |inner: &Inner| &inner.activities);
        }
        BuildReporter { inner }
    }

    /// A step failed; its error goes out on its own, as a report placed
    /// in its recipe (see `Printer::error`).
    pub(crate) fn failed(&self, what: &str) {
        let inner = &self.inner;
        {
            let mut state = inner.state();
            if let Some(id) = state.current.take() {
                inner.activities.finish(id);
            }
            mark_failed(&mut state, what);
        }
        let p = inner.printer;
        if p.quiet() {
            return;
        }
        match p.style {
            LogStyle::Json => p.line(
                &serde_json::json!({"type": "failed", "what": what, "time": p.elapsed()})
                    .to_string(),
            ),
            _ => p.line(&failed_line(what)),
        }
    }

    /// Closes the last step (and its group) and hands over the steps.
    pub(crate) fn finish(&self) -> Vec<Step> {
        let inner = &self.inner;
        let mut state = inner.state();
        if let Some(id) = state.current.take() {
            inner.activities.finish(id);
        }
        inner.close_step(&mut state);
        if state.group_open {
            state.group_open = false;
            github::end_group(inner.printer);
        }
        std::mem::take(&mut state.steps)
    }
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn compile_counts(&self) -> CompileCounts {
        let Some(dir) = &self.compile else {
            return CompileCounts::default();
        };
        [dir.clone(), rust::stats_dir(dir)]
            .iter()
            .filter_map(|d| stats::summary(d).ok())
            .fold(CompileCounts::default(), |sum, s| CompileCounts {
                hits: sum.hits + s.hits(),
                cacheable: sum.cacheable + s.hits() + s.misses(),
                saved_us: sum.saved_us + s.saved_us,
            })
    }

    /// Ends the current step: its time and compile hits.
    fn close_step(&self, state: &mut State) {
        let now = self.compile_counts();
        let mark = std::mem::replace(&mut state.mark, now);
        if let Some(step) = state.steps.last_mut().filter(|s| s.duration.is_none()) {
            step.duration = Some(step.started.elapsed());
            step.compile = now.since(&mark);
        }
    }

    /// Bookkeeping every style needs: steps, activities.
    fn track(&self, event: &Event<'_>) {
        let mut state = self.state();
        let begin = |state: &mut State, label: String| {
            if let Some(id) = state.current.take() {
                self.activities.finish(id);
            }
            state.current = Some(self.activities.start(label, false, None));
        };
        let end = |state: &mut State| {
            if let Some(id) = state.current.take() {
                self.activities.finish(id);
            }
        };
        match event {
            Event::Started { kind, what } => {
                end(&mut state);
                self.close_step(&mut state);
                state.steps.push(Step {
                    kind,
                    what: what.to_string(),
                    started: Instant::now(),
                    duration: None,
                    result: StepResult::Built,
                    saved: None,
                    fetched: None,
                    compile: CompileCounts::default(),
                });
            }
            Event::Solving { what, kind } => begin(
                &mut state,
                format!("solving the {} environment of {what}", kind.as_str()),
            ),
            Event::Installing {
                what,
                kind,
                packages,
            } => begin(
                &mut state,
                format!(
                    "installing the {} environment of {what} ({packages} packages)",
                    kind.as_str()
                ),
            ),
            Event::ScriptStarted { what, .. } => {
                begin(&mut state, format!("the build script of {what}"))
            }
            Event::Testing { what, count } => {
                begin(&mut state, format!("testing {what} ({count} tests)"))
            }
            Event::Line(line) => {
                if let Some(id) = state.current {
                    self.activities.line(id, line);
                }
            }
            Event::Solved { .. }
            | Event::Environment { .. }
            | Event::ScriptFinished { .. }
            | Event::Tested { .. } => end(&mut state),
            Event::StagingCached { saved, .. } => {
                if let Some(s) = open_step(&mut state) {
                    s.result = StepResult::Cached;
                    s.saved = *saved;
                }
            }
            Event::Reused { saved, .. } => {
                if let Some(s) = open_step(&mut state) {
                    s.result = StepResult::Reused;
                    s.saved = *saved;
                }
            }
            Event::Fetched { remote, .. } => {
                if let Some(s) = open_step(&mut state) {
                    s.fetched = Some(remote.to_string());
                }
            }
            Event::Failed { what, .. } => {
                end(&mut state);
                mark_failed(&mut state, what);
            }
            Event::Skipped { what, .. } | Event::NotBuilt { what, .. } => {
                end(&mut state);
                self.close_step(&mut state);
                state.steps.push(Step {
                    kind: "package",
                    what: what.to_string(),
                    started: Instant::now(),
                    duration: Some(Duration::ZERO),
                    result: if matches!(event, Event::Skipped { .. }) {
                        StepResult::Skipped
                    } else {
                        StepResult::NotBuilt
                    },
                    saved: None,
                    fetched: None,
                    compile: CompileCounts::default(),
                });
            }
            _ => {}
        }
    }

    /// The lines a person reads; a warning's annotation points `at` a
    /// place in the recipe when given.
    fn human(&self, event: &Event<'_>, at: Option<&Location>) {
        let p = self.printer;
        if p.quiet() {
            return;
        }
        let github = p.style == LogStyle::Github;
        let verbose = p.verbosity > 0;
        let dim = |text: String| console::style(text).dim().for_stderr().to_string();
        let warn = |text: &str| {
            if github {
                github::warning(p, at, "cleave build", text);
            } else {
                p.line(&format!(
                    "{} {text}",
                    console::style("warning:").yellow().bold().for_stderr()
                ));
            }
        };
        let took = |saved: &Option<Duration>| {
            saved.map_or(String::new(), |d| {
                format!("; its build took {}", human_duration(d))
            })
        };
        match event {
            Event::Started { kind, what } => {
                if github {
                    let mut state = self.state();
                    if state.group_open {
                        github::end_group(p);
                    }
                    state.group_open = true;
                    github::group(p, &format!("{kind} {what}"));
                }
                p.line(
                    &console::style(format!("── {kind} {what}"))
                        .cyan()
                        .bold()
                        .for_stderr()
                        .to_string(),
                );
            }
            Event::Solving { what, kind } if verbose => p.line(&dim(format!(
                "   solving the {} environment of {what}",
                kind.as_str()
            ))),
            Event::Solved {
                kind,
                packages,
                duration,
                ..
            } if verbose => p.line(&dim(format!(
                "   {} environment solved: {packages} packages in {}",
                kind.as_str(),
                human_duration(*duration)
            ))),
            Event::Environment { kind, packages } => {
                p.line(&format!("   {} environment: {packages} packages", kind.as_str()))
            }
            Event::Restored { from, bytes } => p.line(&format!(
                "   restored staging `{from}` ({})",
                human_size(*bytes)
            )),
            Event::StagingCached {
                staging,
                key,
                saved,
            } => p.line(&format!(
                "   cached: staging `{staging}` (key {}) is in the cache; its script does not run{}",
                short(key),
                took(saved)
            )),
            Event::StagingStored {
                staging,
                key,
                items,
                bytes,
                duration,
            } => p.line(&format!(
                "   stored staging `{staging}` (key {}): {items} entries, {}; built in {}",
                short(key),
                human_size(*bytes),
                human_duration(*duration)
            )),
            Event::Waiting { what, lock } => p.line(&format!(
                "   waiting: another build holds {what} ({})",
                lock.display()
            )),
            Event::Reused { what, key, saved } => p.line(&format!(
                "   reused: {what} (key {}) is in the cache; nothing runs{}",
                short(key),
                took(saved)
            )),
            Event::PackageStored { what, key } => {
                p.line(&format!("   stored {what} (key {})", short(key)))
            }
            Event::Fetched {
                what,
                remote,
                bytes,
            } => p.line(&format!(
                "   fetched: {what} from {} ({}) into the local cache",
                printable(remote),
                human_size(*bytes)
            )),
            // Warnings quote helpers, remotes and entries: foreign text.
            Event::Warning(text) => warn(&printable(text)),
            Event::Unclaimed { staging, files } => {
                let list: Vec<String> = files
                    .iter()
                    .take(20)
                    .map(|f| format!("   {}", printable(&f.to_string_lossy())))
                    .collect();
                warn(&format!(
                    "{} file(s) of staging `{staging}` are in no package:\n{}",
                    files.len(),
                    list.join("\n")
                ));
            }
            Event::Overlapping { staging, files } => {
                let list: Vec<String> = files
                    .iter()
                    .take(20)
                    .map(|(f, takers)| {
                        format!(
                            "   {} ({})",
                            printable(&f.to_string_lossy()),
                            takers.join(", ")
                        )
                    })
                    .collect();
                warn(&format!(
                    "{} file(s) of staging `{staging}` are in more than one package:\n{}",
                    files.len(),
                    list.join("\n")
                ));
            }
            Event::Evicted { entries, bytes } => p.line(&format!(
                "   cache: evicted {entries} least recently used entries ({})",
                human_size(*bytes)
            )),
            Event::ScriptStarted { dir, .. } if verbose => p.line(&dim(format!(
                "   script {} (its variables: build_env.sh)",
                dir.join("build.sh").display()
            ))),
            Event::ScriptFinished {
                duration, success, ..
            } => p.line(&dim(format!(
                "   build script {} after {}",
                if *success { "done" } else { "failed" },
                human_duration(*duration)
            ))),
            Event::Line(line) => p.line(&format!("   │ {line}")),
            Event::Packaged(pkg) => p.line(&format!("   wrote {}", pkg.path.display())),
            Event::TestPassed { test } => p.line(&dim(format!("   passed: {test}"))),
            Event::Tested { what, count } => p.line(&format!("   {what}: {count} tests passed")),
            Event::Failed { what, error } => {
                p.line(&failed_line(what));
                p.line(&format!("   {}", printable(&error.to_string())));
            }
            // Outside the group of the step before them.
            Event::Skipped { .. } | Event::NotBuilt { .. } if github && self.close_group() => {
                self.human(event, at)
            }
            Event::Skipped { what, channel } => p.line(&format!(
                "── skipped {what}: it is in {} already",
                printable(channel)
            )),
            Event::NotBuilt { what, because } => {
                p.line(&format!("── not built: {what}, because {because} failed"))
            }
            _ => {}
        }
    }
}

impl Inner {
    /// Ends the open GitHub group; whether one was open.
    fn close_group(&self) -> bool {
        let mut state = self.state();
        let open = std::mem::take(&mut state.group_open);
        if open {
            github::end_group(self.printer);
        }
        open
    }
}

/// The line that says a step failed (its report follows).
fn failed_line(what: &str) -> String {
    console::style(format!("   failed: {what}"))
        .red()
        .bold()
        .for_stderr()
        .to_string()
}

/// Marks the step `what` names as failed: a package step is named as its
/// failure is, a staging step by its bare name.
fn mark_failed(state: &mut State, what: &str) {
    if let Some(step) = state
        .steps
        .iter_mut()
        .rev()
        .find(|s| s.what == what || format!("staging `{}`", s.what) == what)
    {
        step.result = StepResult::Failed;
    }
}

/// The step still running, if any.
fn open_step(state: &mut State) -> Option<&mut Step> {
    state.steps.last_mut().filter(|s| s.duration.is_none())
}

impl BuildReporter {
    /// An event about a place in a recipe (files of a staging build no
    /// package took): a GitHub annotation points there, a JSON record
    /// names it.
    pub(crate) fn event_at(&self, event: Event<'_>, at: Option<&Location>) {
        let inner = &self.inner;
        inner.track(&event);
        let p = inner.printer;
        match p.style {
            LogStyle::Json => {
                if !p.quiet() {
                    let mut record = json::record(p, &event);
                    if let Some(l) = at {
                        json::place(&mut record, l);
                    }
                    p.line(&record.to_string());
                }
            }
            _ => inner.human(&event, at),
        }
    }
}

impl Reporter for BuildReporter {
    fn event(&self, event: Event<'_>) {
        self.event_at(event, None);
    }

    fn install(&self) -> Option<Arc<dyn rattler::install::Reporter>> {
        self.inner.install.clone()
    }

    fn repodata(&self) -> Option<Arc<dyn rattler_repodata_gateway::Reporter>> {
        self.inner.repodata.clone()
    }

    fn cache(&self) -> Option<Arc<dyn cleave_cache::progress::Reporter>> {
        Some(self.inner.clone())
    }
}

impl cleave_cache::progress::Reporter for Inner {
    fn on_start(
        &self,
        operation: &cleave_cache::progress::Operation<'_>,
        total: Option<u64>,
    ) -> usize {
        use cleave_cache::progress::Operation;
        let label = match operation {
            Operation::Restore { name } => format!("restoring `{name}`"),
            Operation::Download { remote, key } => {
                format!("downloading {} from {remote}", &key[..key.len().min(16)])
            }
            Operation::Upload { remote, name } => format!("uploading `{name}` to {remote}"),
        };
        self.activities.start(label, true, total)
    }

    fn on_total(&self, id: usize, total: u64) {
        self.activities.total(id, total);
    }

    fn on_progress(&self, id: usize, bytes: u64) {
        self.activities.advance(id, bytes);
    }

    fn on_finish(&self, id: usize) {
        self.activities.finish(id);
    }
}
