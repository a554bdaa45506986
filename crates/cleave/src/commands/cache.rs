//! `cleave cache`: list, inspect, explain, verify and trim the store of
//! staging builds and packages.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use cleave_build::engine::Builder;
use cleave_cache::key::Change;
use cleave_cache::manifest::Item;
use cleave_cache::store::{EntryInfo, GcPolicy};
use cleave_cache::{CacheError, ErrorKind, Store};
use miette::IntoDiagnostic;

use super::build::{human_size, options, short};
use crate::Status;
use crate::cli::{CacheCommand, SetupArgs, StoreArgs};
use crate::config::{Overrides, Settings, parse_age, parse_size};

pub(crate) fn run(command: CacheCommand) -> miette::Result<Status> {
    let cwd = std::env::current_dir().into_diagnostic()?;
    match command {
        CacheCommand::List(store) => list(&open(&store, &cwd)?.1),
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
            let mut out = std::io::stdout().lock();
            for e in &report.removed {
                writeln!(out, "removed {} {}", short(&e.meta.key), e.meta.name)
                    .into_diagnostic()?;
            }
            if report.unreadable > 0 {
                writeln!(out, "removed {} unreadable entries", report.unreadable)
                    .into_diagnostic()?;
            }
            writeln!(
                out,
                "freed {}; {} entries ({}) kept",
                human_size(report.freed),
                report.kept,
                human_size(report.kept_bytes)
            )
            .into_diagnostic()?;
            in_use(&mut out, report.in_use)?;
            Ok(Status::Success)
        }
        CacheCommand::Clean(store) => {
            let (_, store) = open(&store, &cwd)?;
            let report = store.clean().into_diagnostic()?;
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
            staging_root: None,
        },
    )?;
    let store = Store::open(settings.store_dir()).into_diagnostic()?;
    Ok((settings, store))
}

fn list(store: &Store) -> miette::Result<Status> {
    let entries = store.entries().into_diagnostic()?;
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
            e.meta.name,
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
    writeln!(out, "name:      {}", m.name).into_diagnostic()?;
    if let Some(file) = m.extra["file"].as_str() {
        writeln!(out, "package:   {file}").into_diagnostic()?;
    }
    writeln!(out, "created:   {}", time(m.created)).into_diagnostic()?;
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
            "tree {tree}: {} files, {} links, {} directories",
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

/// What an entry holds: a staging build's trees, or a package's archive.
fn kind(entry: &EntryInfo) -> &'static str {
    match entry.meta.extra["kind"].as_str() {
        Some("package") => "package",
        _ => "staging",
    }
}

fn explain(setup: &SetupArgs, cwd: &Path) -> miette::Result<Status> {
    let Some(rendered) = super::recipe::render(&setup.recipe)? else {
        return Ok(Status::Failure);
    };
    let options = options(setup, &rendered, cwd)?;
    let mut builder = Builder::new(options).into_diagnostic()?;
    let keys = builder.keys(&rendered.recipe);
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
    let w = |out: &mut dyn Write, text: String| writeln!(out, "{text}").into_diagnostic();
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
                w(out, format!("  ~ {name}: {} -> {}", brief(old), brief(new)))?
            }
        }
    }
    Ok(())
}

fn write_input(out: &mut impl Write, name: &str, value: &str) -> miette::Result<()> {
    if value.contains('\n') {
        writeln!(out, "  {name}:").into_diagnostic()?;
        for line in value.lines() {
            writeln!(out, "      {line}").into_diagnostic()?;
        }
        Ok(())
    } else {
        writeln!(out, "  {name}: {value}").into_diagnostic()
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
            p.name.as_deref().unwrap_or("?"),
            p.reason
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
