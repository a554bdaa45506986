//! `--log-style json`: each event of a build as one JSON object on one
//! line of stderr. Every object has `type` (the event, snake case) and
//! `time` (seconds since cleave started); docs/output.md lists the fields.

use cleave_build::engine::Event;
use serde_json::{Value, json};

use super::{Location, Printer};

fn secs(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// Adds where in a recipe a record is about: `file`, `line`, `col`.
pub(super) fn place(record: &mut Value, at: &Location) {
    record["file"] = at.file.clone().into();
    record["line"] = at.line.into();
    record["col"] = at.col.into();
}

/// The record of `event`.
pub(super) fn record(printer: &Printer, event: &Event<'_>) -> Value {
    let mut value = match event {
        Event::Started { kind, what } => json!({"type": "started", "kind": kind, "what": what}),
        Event::Solving { what, kind } => {
            json!({"type": "solving", "what": what, "env": kind.as_str()})
        }
        Event::Solved {
            what,
            kind,
            packages,
            duration,
        } => json!({
            "type": "solved", "what": what, "env": kind.as_str(),
            "packages": packages, "seconds": secs(*duration),
        }),
        Event::Installing {
            what,
            kind,
            packages,
        } => {
            json!({"type": "installing", "what": what, "env": kind.as_str(), "packages": packages})
        }
        Event::Environment { kind, packages } => {
            json!({"type": "environment", "env": kind.as_str(), "packages": packages})
        }
        Event::Restored { from, bytes } => {
            json!({"type": "restored", "staging": from, "bytes": bytes})
        }
        Event::StagingCached {
            staging,
            key,
            saved,
        } => json!({
            "type": "staging_cached", "staging": staging, "key": key.to_hex(),
            "saved_seconds": saved.map(secs),
        }),
        Event::StagingStored {
            staging,
            key,
            items,
            bytes,
            duration,
        } => json!({
            "type": "staging_stored", "staging": staging, "key": key.to_hex(),
            "items": items, "bytes": bytes, "seconds": secs(*duration),
        }),
        Event::Waiting { what, lock } => json!({"type": "waiting", "what": what, "lock": lock}),
        Event::Reused { what, key, saved } => json!({
            "type": "reused", "what": what, "key": key.to_hex(),
            "saved_seconds": saved.map(secs),
        }),
        Event::PackageStored { what, key } => {
            json!({"type": "package_stored", "what": what, "key": key.to_hex()})
        }
        Event::Fetched {
            what,
            remote,
            bytes,
        } => json!({"type": "fetched", "what": what, "remote": remote, "bytes": bytes}),
        Event::Warning(text) => json!({"type": "warning", "message": text}),
        Event::Unclaimed { staging, files } => json!({
            "type": "unclaimed", "staging": staging,
            "files": files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
        }),
        Event::Overlapping { staging, files } => json!({
            "type": "overlapping", "staging": staging,
            "files": files.iter().map(|(f, takers)| json!({
                "path": f.display().to_string(), "packages": takers,
            })).collect::<Vec<_>>(),
        }),
        Event::Evicted { entries, bytes } => {
            json!({"type": "evicted", "entries": entries, "bytes": bytes})
        }
        Event::ScriptStarted { what, dir } => {
            json!({"type": "script_started", "what": what, "dir": dir})
        }
        Event::ScriptFinished {
            what,
            duration,
            success,
        } => json!({
            "type": "script_finished", "what": what,
            "seconds": secs(*duration), "success": success,
        }),
        Event::Line(text) => json!({"type": "line", "text": text}),
        Event::Packaged(p) => json!({
            "type": "packaged", "name": p.name, "version": p.version, "build": p.build,
            "subdir": p.subdir, "path": p.path, "size": p.size, "files": p.files,
        }),
        Event::Testing { what, count } => json!({"type": "testing", "what": what, "count": count}),
        Event::TestPassed { test } => json!({"type": "test_passed", "test": test}),
        Event::Tested { what, count } => json!({"type": "tested", "what": what, "count": count}),
        Event::Failed { what, error } => {
            json!({"type": "failed", "what": what, "message": error.to_string()})
        }
        Event::Skipped { what, channel } => {
            json!({"type": "skipped", "what": what, "channel": channel})
        }
        Event::NotBuilt { what, because } => {
            json!({"type": "not_built", "what": what, "because": because})
        }
    };
    value["time"] = printer.elapsed().into();
    value
}
