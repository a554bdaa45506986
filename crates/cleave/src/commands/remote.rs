//! `cleave cache push`, `pull`, `export` and `import`: remote stores and
//! portable entries by hand; and what each level of the cache did, for
//! `cleave cache stats`.

use std::io::Write;

use cleave_cache::foreign::printable;
use cleave_cache::remote::{RemoteConfig, RemoteUrl, Remotes, TierStats, saved_stats};
use cleave_cache::{Digest, Store};
use miette::{IntoDiagnostic, miette};

use super::build::{human_size, short};
use crate::Status;

/// One remote, whatever mode cleave.toml gives it: the user named it.
fn remote(url: &str, store: &Store) -> miette::Result<Remotes> {
    let url = RemoteUrl::parse(url).into_diagnostic()?;
    Ok(Remotes::new(vec![RemoteConfig::new(url)], store))
}

/// Uploads the entry `key` names, or every entry, to the remote `to`.
pub(crate) fn push(store: &Store, key: Option<&str>, to: &str) -> miette::Result<Status> {
    let mut remotes = remote(to, store)?;
    let keys: Vec<Digest> = match key {
        Some(prefix) => vec![store.find(prefix).into_diagnostic()?.meta.key],
        None => store
            .entries()
            .into_diagnostic()?
            .into_iter()
            .map(|e| e.meta.key)
            .collect(),
    };
    let mut out = std::io::stdout().lock();
    let (mut sent, mut there) = (0, 0);
    for key in keys {
        // Evicted since it was listed: nothing to send.
        let Some(entry) = store.get(&key).into_diagnostic()? else {
            continue;
        };
        if remotes.push_first(&entry).into_diagnostic()? {
            sent += 1;
            writeln!(
                out,
                "pushed {} {}",
                short(&key),
                printable(&entry.meta().name)
            )
            .into_diagnostic()?;
        } else {
            there += 1;
        }
    }
    let stats = &remotes.stats()[0];
    writeln!(
        out,
        "{sent} entries uploaded ({}), {there} already there; {} requests",
        human_size(stats.bytes_up),
        stats.requests
    )
    .into_diagnostic()?;
    Ok(Status::Success)
}

/// Downloads the entry `key` from the remote `from` into the local store.
pub(crate) fn pull(store: &Store, key: &str, from: &str) -> miette::Result<Status> {
    let key: Digest = key
        .parse()
        .map_err(|_| miette!("`{key}` is not a full key (64 hex digits)"))?;
    if store.get(&key).into_diagnostic()?.is_some() {
        writeln!(
            std::io::stdout(),
            "{} is in the local cache already",
            short(&key)
        )
        .into_diagnostic()?;
        return Ok(Status::Success);
    }
    let mut remotes = remote(from, store)?;
    let Some(entry) = remotes.fetch_first(store, &key).into_diagnostic()? else {
        return Err(miette!("{} has no entry {key}", from_shown(from)));
    };
    let stats = &remotes.stats()[0];
    writeln!(
        std::io::stdout(),
        "pulled {} {}: {} entries, {} downloaded in {} requests",
        short(&key),
        printable(&entry.meta().name),
        entry.meta().items,
        human_size(stats.bytes_down),
        stats.requests
    )
    .into_diagnostic()?;
    Ok(Status::Success)
}

fn from_shown(url: &str) -> String {
    RemoteUrl::parse(url).map_or_else(|_| "the remote".into(), |u| u.to_string())
}

/// Writes the entry `key` names to `dest` in the portable format.
pub(crate) fn export(store: &Store, key: &str, dest: &std::path::Path) -> miette::Result<Status> {
    let key = store.find(key).into_diagnostic()?.meta.key;
    let entry = store
        .get(&key)
        .into_diagnostic()?
        .ok_or_else(|| miette!("entry {key} went away"))?;
    let files = cleave_cache::portable::export(&entry, dest).into_diagnostic()?;
    writeln!(
        std::io::stdout(),
        "exported {} {} to {}: {} files",
        short(&key),
        printable(&entry.meta().name),
        dest.display(),
        files.len()
    )
    .into_diagnostic()?;
    Ok(Status::Success)
}

/// Reads a portable entry into the local store.
pub(crate) fn import(store: &Store, path: &std::path::Path) -> miette::Result<Status> {
    let entry = cleave_cache::portable::import(store, path, None).into_diagnostic()?;
    writeln!(
        std::io::stdout(),
        "imported {} {}: {} entries, {}",
        short(&entry.meta().key),
        printable(&entry.meta().name),
        entry.meta().items,
        human_size(entry.meta().size)
    )
    .into_diagnostic()?;
    Ok(Status::Success)
}

/// What each cache level (local, helpers, remotes) did, for `cleave cache
/// stats --json`: the last build's rows and the totals.
pub(crate) fn levels_json(store: &Store) -> serde_json::Value {
    let saved = saved_stats(store.root());
    serde_json::json!({ "last": saved.last, "total": saved.total.values().collect::<Vec<_>>() })
}

/// What each cache level did, as `cleave cache stats` prints it.
pub(crate) fn write_levels(out: &mut impl Write, store: &Store) -> miette::Result<()> {
    let saved = saved_stats(store.root());
    if saved.total.is_empty() {
        return writeln!(
            out,
            "no remote store has been used with {}",
            store.root().display()
        )
        .into_diagnostic();
    }
    for (title, rows) in [
        ("last build", saved.last.iter().collect::<Vec<_>>()),
        ("in total", saved.total.values().collect()),
    ] {
        writeln!(out, "cache levels, {title}:").into_diagnostic()?;
        for row in rows {
            table_row(out, row)?;
        }
    }
    Ok(())
}

fn table_row(out: &mut impl Write, s: &TierStats) -> miette::Result<()> {
    writeln!(
        out,
        "  {}: {} hits, {} misses, {} errors, {} uploads; {} down, {} up in {} requests; {:.1} s waiting",
        printable(&s.remote),
        s.hits,
        s.misses,
        s.errors,
        s.uploads,
        human_size(s.bytes_down),
        human_size(s.bytes_up),
        s.requests,
        s.wait_ms as f64 / 1000.0
    )
    .into_diagnostic()
}
