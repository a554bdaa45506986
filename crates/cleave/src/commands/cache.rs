//! `cleave cache`: list, inspect, explain, verify and trim the store of
//! staging builds and packages.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use cleave_build::engine::Builder;
use cleave_cache::foreign::printable;
use cleave_cache::key::Change;
use cleave_cache::manifest::Item;
use cleave_cache::store::{EntryInfo, GcPolicy};
use cleave_cache::{CacheError, ErrorKind, Store};
use cleave_compile::{entries, files, rust, stats};
use miette::{IntoDiagnostic, WrapErr};

use super::build::{human_size, options, short};
use super::changes;
use crate::Status;
use crate::cli::{CacheCommand, SetupArgs, StoreArgs};
use crate::config::{Overrides, Settings, parse_age, parse_size};

pub(crate) fn run(command: CacheCommand) -> miette::Result<Status> {
    let cwd = std::env::current_dir().into_diagnostic()?;
    match command {
        CacheCommand::List { kind, store } => list(&open(&store, &cwd)?.1, kind.as_deref()),
        CacheCommand::Stats { json, zero, store } => {
            let (settings, store) = open(&store, &cwd)?;
            stats(&settings, &store, json, zero)
        }
        CacheCommand::Info { key, store } => info(&open(&store, &cwd)?.1, &key),
        CacheCommand::Explain(setup) => explain(&setup, &cwd),
        CacheCommand::Verify { remove, store } => verify(&open(&store, &cwd)?.1, remove),
        CacheCommand::Gc {
            max_size,
            older_than,
            store,
        } => {
            let (settings, store) = open(&store, &cwd)?;
            let policy = GcPolicy {
                max_size: Some(match max_size {
                    Some(text) => parse_size(&text)?,
                    None => settings.max_size,
                }),
                older_than: older_than.as_deref().map(parse_age).transpose()?,
            };
            let report = store.gc(policy).into_diagnostic()?;
            // File indexes of build dirs that are gone.
            let pruned = files::prune(&settings.compile_dir().join("files")).into_diagnostic()?;
            let mut out = std::io::stdout().lock();
            for e in &report.removed {
                writeln!(
                    out,
                    "removed {} {}",
                    short(&e.meta.key),
                    printable(&e.meta.name)
                )
                .into_diagnostic()?;
            }
            if report.unreadable > 0 {
                writeln!(out, "removed {} unreadable entries", report.unreadable)
                    .into_diagnostic()?;
            }
            writeln!(
                out,
                "freed {}; {} entries ({}) kept; {pruned} file indexes of removed directories dropped",
                human_size(report.freed),
                report.kept,
                human_size(report.kept_bytes)
            )
            .into_diagnostic()?;
            in_use(&mut out, report.in_use)?;
            Ok(Status::Success)
        }
        CacheCommand::Push {
            key,
            all: _,
            to,
            store,
        } => super::remote::push(&open(&store, &cwd)?.1, key.as_deref(), &to),
        CacheCommand::Pull { key, from, store } => {
            super::remote::pull(&open(&store, &cwd)?.1, &key, &from)
        }
        CacheCommand::Export { key, dest, store } => {
            super::remote::export(&open(&store, &cwd)?.1, &key, &cwd.join(dest))
        }
        CacheCommand::Import { path, store } => {
            super::remote::import(&open(&store, &cwd)?.1, &cwd.join(path))
        }
        CacheCommand::Clean(store) => {
            let (settings, store) = open(&store, &cwd)?;
            let report = store.clean().into_diagnostic()?;
            // What the compile cache knows of files and compilers goes
            // too; its counts stay (`cleave cache stats --zero`).
            for dir in ["files", "compilers"] {
                let dir = settings.compile_dir().join(dir);
                if dir.exists() {
                    std::fs::remove_dir_all(&dir)
                        .into_diagnostic()
                        .wrap_err_with(|| format!("removing {}", dir.display()))?;
                }
            }
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "removed {} entries from {}",
                report.removed.len() + report.unreadable,
                store.root().display()
            )
            .into_diagnostic()?;
            in_use(&mut out, report.in_use)?;
            Ok(Status::Success)
        }
    }
}

/// Says how many entries were kept because running builds use them.
fn in_use(out: &mut impl Write, count: usize) -> miette::Result<()> {
    if count > 0 {
        writeln!(out, "{count} entries in use by running builds were kept").into_diagnostic()?;
    }
    Ok(())
}

fn open(args: &StoreArgs, cwd: &Path) -> miette::Result<(Settings, Store)> {
    let settings = Settings::load(
        cwd,
        Overrides {
            cache_dir: args.cache_dir.as_deref(),
            ..Overrides::default()
        },
    )?;
    let store = Store::open(settings.store_dir()).into_diagnostic()?;
    Ok((settings, store))
}

fn list(store: &Store, only: Option<&str>) -> miette::Result<Status> {
    let entries: Vec<EntryInfo> = store
        .entries()
        .into_diagnostic()?
        .into_iter()
        .filter(|e| only.is_none_or(|k| kind(e) == k))
        .collect();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<16}  {:<8}  {:<24}  {:>8}  {:>10}  {:<20}  last used",
        "key", "kind", "name", "entries", "size", "created"
    )
    .into_diagnostic()?;
    for e in &entries {
        writeln!(
            out,
            "{:<16}  {:<8}  {:<24}  {:>8}  {:>10}  {:<20}  {}",
            short(&e.meta.key),
            kind(e),
            printable(&e.meta.name),
            e.meta.items,
            human_size(e.meta.size),
            time(e.meta.created),
            time(e.last_used)
        )
        .into_diagnostic()?;
    }
    writeln!(
        out,
        "{} entries in {}",
        entries.len(),
        store.root().display()
    )
    .into_diagnostic()?;
    Ok(Status::Success)
}

fn info(store: &Store, key: &str) -> miette::Result<Status> {
    let entry = store.find(key).into_diagnostic()?;
    let manifest = store
        .get(&entry.meta.key)
        .and_then(|found| found.ok_or_else(|| CacheError::NotFound(key.to_string())))
        .and_then(|found| found.manifest())
        .into_diagnostic()?;
    let mut out = std::io::stdout().lock();
    let m = &entry.meta;
    writeln!(out, "key:       {}", m.key).into_diagnostic()?;
    writeln!(out, "kind:      {}", kind(&entry)).into_diagnostic()?;
    writeln!(out, "name:      {}", printable(&m.name)).into_diagnostic()?;
    if let Some(file) = m.extra["file"].as_str() {
        writeln!(out, "package:   {}", printable(file)).into_diagnostic()?;
    }
    writeln!(out, "created:   {}", time(m.created)).into_diagnostic()?;
    if let Some((helper, to)) = cleave_cache::remote::relocation(store.root(), &m.key) {
        writeln!(
            out,
            "helper:    {} keeps it at {}",
            printable(&helper),
            printable(&to)
        )
        .into_diagnostic()?;
    }
    writeln!(out, "last used: {}", time(entry.last_used)).into_diagnostic()?;
    writeln!(
        out,
        "size:      {} in {} entries",
        human_size(m.size),
        m.items
    )
    .into_diagnostic()?;
    for (tree, items) in &manifest.trees {
        let count = |f: fn(&Item) -> bool| items.iter().filter(|i| f(i)).count();
        writeln!(
            out,
            "tree {}: {} files, {} links, {} directories",
            printable(tree),
            count(|i| matches!(i, Item::File { .. })),
            count(|i| matches!(i, Item::Symlink { .. })),
            count(|i| matches!(i, Item::Dir { .. })),
        )
        .into_diagnostic()?;
    }
    writeln!(out, "inputs:").into_diagnostic()?;
    for (name, value) in m.inputs.iter() {
        write_input(&mut out, name, value)?;
    }
    Ok(Status::Success)
}

/// What an entry holds: a staging build's trees, a package's archive, a
/// compile's object, a compile's include manifest, or their Rust kin.
fn kind(entry: &EntryInfo) -> &'static str {
    match entry.meta.extra["kind"].as_str() {
        Some("package") => "package",
        Some(entries::KIND_RESULT) => "compile",
        Some(entries::KIND_MANIFEST) => "manifest",
        Some(rust::KIND_RESULT) => "rust",
        Some(rust::KIND_MANIFEST) => "rust-manifest",
        _ => "staging",
    }
}

fn explain(setup: &SetupArgs, cwd: &Path) -> miette::Result<Status> {
    let Some(rendered) = super::recipe::render_all(&setup.recipe)? else {
        return Ok(Status::Failure);
    };
    let Some(first) = rendered.first() else {
        return Ok(Status::Success);
    };
    let options = options(setup, &first.config, cwd)?;
    let mut builder = Builder::new(options).into_diagnostic()?;
    let keys: Vec<_> = rendered
        .iter()
        .flat_map(|r| builder.keys(&r.recipe))
        .collect();
    let store = builder.store();
    let mut out = std::io::stdout().lock();
    for k in &keys {
        let (key, inputs) = match &k.key {
            Ok(found) => found,
            Err(reason) => {
                writeln!(out, "{} `{}`: no key yet: {reason}", k.kind, k.name).into_diagnostic()?;
                continue;
            }
        };
        let cached = store.contains(key);
        writeln!(
            out,
            "{} `{}`: key {} ({})",
            k.kind,
            k.name,
            short(key),
            if cached { "cached" } else { "not cached" }
        )
        .into_diagnostic()?;
        writeln!(out, "inputs:").into_diagnostic()?;
        for (name, value) in inputs.iter() {
            write_input(&mut out, name, value)?;
        }
        let previous = store.latest_named(&k.name, Some(key)).into_diagnostic()?;
        match previous {
            None => writeln!(out, "no other entry of `{}` to compare with", k.name),
            Some(prev) => {
                write_changes(&mut out, &prev, &inputs.changes_since(&prev.meta.inputs))?;
                Ok(())
            }
        }
        .into_diagnostic()?;
    }
    Ok(Status::Success)
}

fn write_changes(out: &mut impl Write, prev: &EntryInfo, changes: &[Change]) -> miette::Result<()> {
    // The older entry's inputs may be another machine's: escaped.
    let w =
        |out: &mut dyn Write, text: String| writeln!(out, "{}", printable(&text)).into_diagnostic();
    w(
        out,
        format!(
            "against the entry of {} (key {}), changed:",
            time(prev.meta.created),
            short(&prev.meta.key)
        ),
    )?;
    for change in changes {
        match change {
            Change::Added { name, value } => w(out, format!("  + {name}: {}", brief(value)))?,
            Change::Removed { name, value } => w(out, format!("  - {name}: {}", brief(value)))?,
            Change::Changed { name, old, new } if name.starts_with("env.") => {
                // Environments: one package per line; show the lines that differ.
                w(out, format!("  ~ {name}:"))?;
                let olds: Vec<&str> = old.lines().collect();
                let news: Vec<&str> = new.lines().collect();
                for line in olds.iter().filter(|l| !news.contains(l)) {
                    w(out, format!("      - {line}"))?;
                }
                for line in news.iter().filter(|l| !olds.contains(l)) {
                    w(out, format!("      + {line}"))?;
                }
            }
            Change::Changed { name, old, new } => {
                for (path, old, new) in value_changes(name, old, new) {
                    let side = |v: Option<String>| v.unwrap_or_else(|| "(none)".into());
                    w(out, format!("  ~ {path}: {} -> {}", side(old), side(new)))?;
                }
            }
        }
    }
    Ok(())
}

/// One input, as an entry (maybe another machine's) holds it: escaped,
/// a value of several lines one line each.
fn write_input(out: &mut impl Write, name: &str, value: &str) -> miette::Result<()> {
    let name = printable(name);
    if value.contains('\n') {
        writeln!(out, "  {name}:").into_diagnostic()?;
        for line in value.lines() {
            writeln!(out, "      {}", printable(line)).into_diagnostic()?;
        }
        Ok(())
    } else {
        writeln!(out, "  {name}: {}", printable(value)).into_diagnostic()
    }
}

fn verify(store: &Store, remove: bool) -> miette::Result<Status> {
    let problems = store.verify(remove).into_diagnostic()?;
    let mut out = std::io::stdout().lock();
    let keys = |kind: ErrorKind| -> BTreeSet<&str> {
        problems
            .iter()
            .filter(|p| p.kind == kind)
            .map(|p| p.key.as_str())
            .collect()
    };
    let (damaged, unreadable) = (keys(ErrorKind::Damaged), keys(ErrorKind::Io));
    for p in &problems {
        writeln!(
            out,
            "{} {}: {}",
            &p.key[..16.min(p.key.len())],
            printable(p.name.as_deref().unwrap_or("?")),
            printable(&p.reason)
        )
        .into_diagnostic()?;
    }
    let entries = store.entries().into_diagnostic()?.len();
    writeln!(
        out,
        "{} damaged entries{}; {entries} entries in the cache",
        damaged.len(),
        if remove && !damaged.is_empty() {
            " removed"
        } else {
            ""
        }
    )
    .into_diagnostic()?;
    if !unreadable.is_empty() {
        // Not damage: another user's files, or a disk error. Kept.
        writeln!(
            out,
            "{} entries could not be checked by this process",
            unreadable.len()
        )
        .into_diagnostic()?;
    }
    Ok(if (damaged.is_empty() || remove) && unreadable.is_empty() {
        Status::Success
    } else {
        Status::Failure
    })
}

/// Long values (JSON of a script) cut to one line.
/// How an input changed: field by field when both values are JSON
/// objects or lists (a whole output), else the two values, each cut where
/// it is long but from where they first differ, so the cut never hides
/// the difference.
fn value_changes(name: &str, old: &str, new: &str) -> Vec<changes::FieldChange> {
    let parse = |text: &str| {
        serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .filter(|v| v.is_object() || v.is_array())
    };
    if let (Some(a), Some(b)) = (parse(old), parse(new)) {
        let found = changes::field_changes(name, &a, &b);
        if !found.is_empty() {
            return found;
        }
    }
    let common = old
        .char_indices()
        .zip(new.chars())
        .find(|((_, a), b)| a != b)
        .map_or(old.len().min(new.len()), |((i, _), _)| i);
    // Start a little before the first difference, on a character.
    let start = old[..common]
        .char_indices()
        .rev()
        .nth(20)
        .map_or(0, |(i, _)| i);
    let cut = |text: &str| {
        if start == 0 {
            brief(text)
        } else {
            format!("…{}", brief(&text[start..]))
        }
    };
    vec![(name.to_string(), Some(cut(old)), Some(cut(new)))]
}

fn brief(value: &str) -> String {
    const MAX: usize = 100;
    if value.chars().count() <= MAX {
        value.to_string()
    } else {
        format!("{}…", value.chars().take(MAX).collect::<String>())
    }
}

fn time(seconds: u64) -> String {
    jiff::Timestamp::from_second(seconds as i64)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// `cleave cache stats`: the compile counts (C and C++, Rust), the store
/// by kind, and what each cache level (local, helpers, remotes) did.
fn stats(settings: &Settings, store: &Store, json: bool, zero: bool) -> miette::Result<Status> {
    let state = settings.compile_dir();
    let rust_state = rust::stats_dir(&state);
    // With `--zero`, reading and starting afresh is one step, so that a
    // build finishing in between is counted once, by the next reader.
    let read = |dir: &Path| {
        if zero {
            stats::take(dir)
        } else {
            stats::summary(dir)
        }
        .into_diagnostic()
        .wrap_err_with(|| format!("reading the stats in {}", dir.display()))
    };
    let sum = read(&state)?;
    let rust_sum = read(&rust_state)?;
    let mut by_kind: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for e in store.entries().into_diagnostic()? {
        let slot = by_kind.entry(kind(&e)).or_default();
        slot.0 += 1;
        slot.1 += e.meta.size;
    }
    let mut out = std::io::stdout().lock();
    if json {
        let kinds: serde_json::Map<String, serde_json::Value> = by_kind
            .iter()
            .map(|(k, (n, size))| {
                (
                    k.to_string(),
                    serde_json::json!({"entries": n, "bytes": size}),
                )
            })
            .collect();
        let value = serde_json::json!({
            "compile": {
                "calls": sum.calls(),
                "hits": sum.hits(),
                "misses": sum.misses(),
                "uncacheable": sum.uncacheable(),
                "counts": sum,
            },
            "rust": {
                "calls": rust_sum.calls(),
                "hits": rust_sum.hits(),
                "misses": rust_sum.misses(),
                "uncacheable": rust_sum.uncacheable(),
                "counts": rust_sum,
            },
            "store": { "dir": store.root(), "kinds": kinds },
            "levels": super::remote::levels_json(store),
        });
        writeln!(out, "{value:#}").into_diagnostic()?;
    } else {
        write_stats(&mut out, "compile cache (C, C++)", &sum, true).into_diagnostic()?;
        write_stats(&mut out, "compile cache (Rust)", &rust_sum, false).into_diagnostic()?;
        let total: u64 = by_kind.values().map(|(_, s)| s).sum();
        let parts: Vec<String> = by_kind
            .iter()
            .map(|(k, (n, size))| format!("{k} {n} ({})", human_size(*size)))
            .collect();
        writeln!(
            out,
            "store {}: {} ({})",
            store.root().display(),
            human_size(total),
            if parts.is_empty() {
                "empty".to_string()
            } else {
                parts.join(", ")
            }
        )
        .into_diagnostic()?;
        super::remote::write_levels(&mut out, store)?;
    }
    Ok(Status::Success)
}

/// One cache's counts under `title`; `modes`: hits by how they were found
/// (C and C++: direct or preprocessed; Rust hits are all direct).
fn write_stats(
    out: &mut impl Write,
    title: &str,
    sum: &stats::Summary,
    modes: bool,
) -> std::io::Result<()> {
    let since = sum.since.map(time).unwrap_or_else(|| "never used".into());
    writeln!(out, "{title}, counted since {since}")?;
    let cacheable = sum.hits() + sum.misses();
    let percent = |n: u64, of: u64| {
        if of == 0 {
            0.0
        } else {
            100.0 * n as f64 / of as f64
        }
    };
    writeln!(out, "  calls             {:>8}", sum.calls())?;
    write!(
        out,
        "  hits              {:>8}  {:.1}% of cacheable calls",
        sum.hits(),
        percent(sum.hits(), cacheable),
    )?;
    if modes {
        write!(
            out,
            " (direct {}, preprocessed {})",
            sum.hits_direct, sum.hits_preprocessed
        )?;
    }
    writeln!(out)?;
    if !sum.direct_off.is_empty() {
        let off: u64 = sum.direct_off.values().sum();
        writeln!(out, "  without direct mode {off:>6}")?;
        for (reason, n) in &sum.direct_off {
            writeln!(out, "    {reason:<40} {n:>8}")?;
        }
    }
    writeln!(out, "  misses            {:>8}", sum.misses())?;
    for (reason, n) in &sum.misses {
        writeln!(out, "    {reason:<40} {n:>8}")?;
    }
    writeln!(out, "  uncacheable       {:>8}", sum.uncacheable())?;
    for (reason, n) in &sum.uncacheable {
        writeln!(out, "    {reason:<40} {n:>8}")?;
    }
    writeln!(out, "  compile failed    {:>8}", sum.failed)?;
    write!(out, "  errors            {:>8}", sum.errors)?;
    match &sum.last_error {
        Some(e) => writeln!(out, "  (last: {})", printable(e))?,
        None => writeln!(out)?,
    }
    if sum.skipped > 0 {
        writeln!(out, "  unreadable records {:>7}  (skipped)", sum.skipped)?;
    }
    let secs = |us: u64| us as f64 / 1e6;
    writeln!(
        out,
        "  time saved        {:>7.1} s  (compile time of the hits, less the hits' own)",
        secs(sum.saved_us)
    )?;
    if sum.hits() > 0 {
        writeln!(
            out,
            "  time per hit      {:>7.2} ms",
            sum.hit_us as f64 / 1e3 / sum.hits() as f64
        )?;
    }
    if sum.misses() > 0 {
        writeln!(
            out,
            "  time per miss     {:>7.2} ms  (of which the compiler {:.2} ms)",
            sum.miss_us as f64 / 1e3 / sum.misses() as f64,
            sum.compile_us as f64 / 1e3 / sum.misses() as f64
        )?;
    }
    if !sum.remotes.is_empty() || sum.remote_hits > 0 {
        writeln!(out, "  hits from helpers or remotes {:>8}", sum.remote_hits)?;
        for (remote, t) in &sum.remotes {
            writeln!(
                out,
                "    {}: {} requests, {} uploads, {} down, {} up, {} errors, {:.1} s waiting",
                printable(remote),
                t.requests,
                t.uploads,
                human_size(t.bytes_down),
                human_size(t.bytes_up),
                t.errors,
                t.wait_ms as f64 / 1e3
            )?;
        }
    }
    Ok(())
}
