//! Steps that take time: a spinner or a byte bar in a terminal; elsewhere a
//! line every [`Printer::interval`] saying the step still runs, how far it
//! got and, for a script, its last line.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};

use super::{Printer, human_duration};
use crate::cli::LogStyle;

/// One step in progress.
struct Activity {
    label: String,
    started: Instant,
    /// When it last said it still runs (no bars).
    said: Instant,
    last_line: Option<String>,
    done: u64,
    total: Option<u64>,
    bytes: bool,
    bar: Option<ProgressBar>,
}

/// The steps in progress, by id.
pub(super) struct Activities {
    printer: &'static Printer,
    map: Mutex<BTreeMap<usize, Activity>>,
    next: AtomicUsize,
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner:.green} {prefix} [{elapsed}] {wide_msg:.dim}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bytes_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner:.green} {prefix} [{elapsed}] [{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("━━╾─")
}

impl Activities {
    pub(super) fn new(printer: &'static Printer) -> Activities {
        Activities {
            printer,
            map: Mutex::new(BTreeMap::new()),
            next: AtomicUsize::new(0),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<usize, Activity>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a step; `bytes` for one that moves a known number of bytes.
    pub(super) fn start(&self, label: String, bytes: bool, total: Option<u64>) -> usize {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let bar = self.printer.bars.then(|| {
            let bar = match (bytes, total) {
                (true, Some(total)) => ProgressBar::new(total).with_style(bytes_style()),
                _ => ProgressBar::new_spinner().with_style(spinner_style()),
            };
            let bar = self.printer.multi().add(bar.with_prefix(label.clone()));
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        let now = Instant::now();
        self.map().insert(
            id,
            Activity {
                label,
                started: now,
                said: now,
                last_line: None,
                done: 0,
                total,
                bytes,
                bar,
            },
        );
        id
    }

    /// The last line a script printed.
    pub(super) fn line(&self, id: usize, text: &str) {
        if let Some(a) = self.map().get_mut(&id) {
            if let Some(bar) = &a.bar {
                bar.set_message(text.to_string());
            }
            a.last_line = Some(text.to_string());
        }
    }

    /// The size became known.
    pub(super) fn total(&self, id: usize, total: u64) {
        if let Some(a) = self.map().get_mut(&id) {
            a.total = Some(total);
            if let Some(bar) = &a.bar {
                bar.set_length(total);
                bar.set_style(bytes_style());
            }
        }
    }

    /// `n` more bytes are done.
    pub(super) fn advance(&self, id: usize, n: u64) {
        if let Some(a) = self.map().get_mut(&id) {
            a.done = a.done.saturating_add(n);
            if let Some(bar) = &a.bar {
                bar.inc(n);
            }
        }
    }

    /// Ends a step; how long it ran.
    pub(super) fn finish(&self, id: usize) -> Option<Duration> {
        let a = self.map().remove(&id)?;
        if let Some(bar) = a.bar {
            bar.finish_and_clear();
        }
        Some(a.started.elapsed())
    }

    /// Says which steps still run, each once per interval (no bars).
    pub(super) fn tick(&self) {
        let p = self.printer;
        let interval = p.interval;
        let mut lines = Vec::new();
        for a in self.map().values_mut() {
            if a.said.elapsed() < interval {
                continue;
            }
            a.said = Instant::now();
            let elapsed = a.started.elapsed();
            if p.style == LogStyle::Json {
                let mut record = serde_json::json!({
                    "type": "progress",
                    "time": p.elapsed(),
                    "what": a.label,
                    "seconds": (elapsed.as_secs_f64() * 10.0).round() / 10.0,
                });
                if a.bytes {
                    record["bytes"] = a.done.into();
                    record["total"] = a.total.into();
                }
                if let Some(line) = &a.last_line {
                    record["last_line"] = line.clone().into();
                }
                lines.push(record.to_string());
            } else {
                let mut text = format!("   … {}: {}", a.label, human_duration(elapsed));
                if a.bytes {
                    text.push_str(&format!(", {}", HumanBytes(a.done)));
                    if let Some(total) = a.total {
                        text.push_str(&format!(" of {}", HumanBytes(total)));
                    }
                }
                if let Some(line) = &a.last_line {
                    text.push_str(&format!("; last line: {line}"));
                }
                lines.push(text);
            }
        }
        for line in lines {
            p.line(&line);
        }
    }
}

/// Ticks `activities` while they live, when no bars draw them.
pub(super) fn spawn_ticker<T: Send + Sync + 'static>(
    owner: Weak<T>,
    activities: impl Fn(&T) -> &Activities + Send + 'static,
) {
    let _ = std::thread::Builder::new()
        .name("cleave-progress".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(250));
                let Some(owner) = owner.upgrade() else {
                    return;
                };
                activities(&owner).tick();
            }
        });
}
