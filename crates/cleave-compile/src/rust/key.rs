//! What a Rust compile's key is made of, without absolute paths: the
//! compiler (its `-vV` text and a digest of its sysroot's libraries), the
//! arguments with the roots' paths replaced (the workspace, the target
//! dir, `CARGO_HOME`), the environment cargo sets for the crate, and, from
//! the dep-info of an earlier compile, the files and variables the crate
//! read.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cleave_cache::Digest;
use serde::{Deserialize, Serialize};

use crate::error::CompileError;
use crate::roots::Roots;
use crate::rust::args::Crate;

/// A rustc, as a key sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rustc {
    /// `rustc -vV`: release, commit and host.
    pub version: String,
    /// Digest of the names and sizes of the sysroot's libraries (std and
    /// the compiler's own), which change with every toolchain.
    pub sysroot: String,
}

/// The rustc at `path`, asked once per path and mtime and remembered in
/// `state` (two runs of rustc on the first use).
pub fn rustc(path: &Path, state: &Path) -> Result<Rustc, CompileError> {
    let meta =
        std::fs::metadata(path).map_err(CompileError::io(format!("reading {}", path.display())))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let id = blake3::hash(format!("{}\0{mtime}", path.display()).as_bytes());
    let cached = state
        .join("rustc")
        .join(format!("{}.json", &id.to_hex()[..32]));
    if let Some(known) = std::fs::read(&cached)
        .ok()
        .and_then(|b| serde_json::from_slice::<Rustc>(&b).ok())
    {
        return Ok(known);
    }
    let run = |args: &[&str]| -> Result<String, CompileError> {
        let out = Command::new(path)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| CompileError::Spawn {
                program: path.to_path_buf(),
                source,
            })?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let version = run(&["-vV"])?;
    let sysroot = PathBuf::from(run(&["--print", "sysroot"])?.trim());
    let known = Rustc {
        version,
        sysroot: sysroot_digest(&sysroot).to_hex(),
    };
    // Kept only to save the runs next time.
    let _ = write_json(&cached, &known);
    Ok(known)
}

/// The names and sizes of `lib/*` and `lib/rustlib/*/lib/*`, sorted.
fn sysroot_digest(sysroot: &Path) -> Digest {
    let mut dirs = vec![sysroot.join("lib")];
    if let Ok(targets) = std::fs::read_dir(sysroot.join("lib/rustlib")) {
        dirs.extend(targets.flatten().map(|t| t.path().join("lib")));
    }
    let mut lines: Vec<String> = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Some(meta) = entry.metadata().ok().filter(|m| m.is_file()) {
                let rel = entry.path();
                let rel = rel.strip_prefix(sysroot).unwrap_or(&rel);
                lines.push(format!("{}\t{}", rel.display(), meta.len()));
            }
        }
    }
    lines.sort();
    Digest::of(lines.join("\n").as_bytes())
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    serde_json::to_writer(&mut tmp, value)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The roots of a cargo compile, besides those of `base` (a recipe
/// build's): the target dir (the profile dir above `--out-dir`), the
/// workspace (cargo's working directory for a member, unless it lies in
/// `CARGO_HOME`) and `CARGO_HOME` (registry and git sources).
pub fn roots(base: &Roots, krate: &Crate, cwd: &Path) -> Roots {
    let mut pairs: Vec<(String, PathBuf)> = base
        .pairs()
        .into_iter()
        .map(|(n, p)| (n.to_string(), p.to_path_buf()))
        .collect();
    let out_dir = cwd.join(&krate.out_dir);
    let name_of = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let target = match name_of(&out_dir).as_deref() {
        Some("deps" | "examples") => out_dir.parent().map(Path::to_path_buf),
        _ if out_dir.parent().and_then(name_of).as_deref() == Some("build") => out_dir
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf),
        _ => Some(out_dir.clone()),
    };
    if let Some(target) = target {
        pairs.push(("target".into(), target));
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    if !cargo_home.as_ref().is_some_and(|h| cwd.starts_with(h)) {
        pairs.push(("workspace".into(), cwd.to_path_buf()));
    }
    if let Some(home) = cargo_home {
        pairs.push(("cargo_home".into(), home));
    }
    Roots::new(pairs)
}

/// Variables cargo sets for a crate that `env!` can read, and those that
/// change what rustc does: `(name, value with the roots replaced)`.
pub fn environment(roots: &Roots) -> Vec<(String, String)> {
    const NAMED: &[&str] = &[
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_MANIFEST_LINKS",
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "OUT_DIR",
        "RUSTC_BOOTSTRAP",
    ];
    let mut vars: Vec<(String, String)> = std::env::vars()
        .filter(|(name, _)| {
            NAMED.contains(&name.as_str())
                || name.starts_with("CARGO_PKG_")
                || name.starts_with("CARGO_CFG_")
        })
        .map(|(name, value)| {
            let value = roots.normalize(&value).into_owned();
            (name, value)
        })
        .collect();
    vars.sort();
    vars
}

/// What a dep-info file says the crate read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DepInfo {
    /// Every file, as rustc wrote it (relative to the working directory,
    /// or absolute).
    pub files: Vec<String>,
    /// Every variable read with `env!`/`option_env!`, and its value as
    /// rustc escapes it (`None`: unset).
    pub env: Vec<(String, Option<String>)>,
}

/// Reads a dep-info file's text (make rules, then `# env-dep:` lines).
pub fn parse_dep_info(text: &str) -> DepInfo {
    let mut info = DepInfo::default();
    for line in text.lines() {
        if let Some(var) = line.strip_prefix("# env-dep:") {
            let (name, value) = match var.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (var, None),
            };
            info.env.push((name.to_string(), value));
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let Some((_, deps)) = split_rule(line) else {
            continue;
        };
        for dep in words(deps) {
            if !info.files.contains(&dep) {
                info.files.push(dep);
            }
        }
    }
    info.env.sort();
    info.env.dedup();
    info
}

/// A rule's target and dependencies, split at the first `: ` that is not
/// escaped.
fn split_rule(line: &str) -> Option<(&str, &str)> {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b':' if bytes.get(i + 1).is_none_or(|b| *b == b' ') => {
                return Some((&line[..i], line.get(i + 1..).unwrap_or("")));
            }
            _ => i += 1,
        }
    }
    None
}

/// The space-separated words of a rule, `\ ` kept as a space.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(' ') => word.push(' '),
                Some(other) => {
                    word.push('\\');
                    word.push(other);
                }
                None => {}
            },
            ' ' | '\t' => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            }
            _ => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// A variable's value as rustc writes it in an `env-dep` line.
pub fn escape_env(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dep_info_lists_files_once_and_the_variables_read() {
        let text = "/t/deps/a-1.d: src/lib.rs src/my\\ mod.rs /t/build/a-2/out/gen.rs\n\n\
            /t/deps/liba-1.rmeta: src/lib.rs src/my\\ mod.rs /t/build/a-2/out/gen.rs\n\n\
            src/lib.rs:\nsrc/my\\ mod.rs:\n/t/build/a-2/out/gen.rs:\n\n\
            # env-dep:CARGO_PKG_NAME=a\n# env-dep:UNSET_ONE\n";
        let info = parse_dep_info(text);
        assert_eq!(
            info.files,
            ["src/lib.rs", "src/my mod.rs", "/t/build/a-2/out/gen.rs"]
        );
        assert_eq!(
            info.env,
            [
                ("CARGO_PKG_NAME".into(), Some("a".into())),
                ("UNSET_ONE".into(), None)
            ]
        );
        assert_eq!(escape_env("a\\b\nc"), "a\\\\b\\nc");
    }

    #[test]
    fn two_checkouts_normalise_alike() {
        let args = |top: &str| {
            crate::rust::args::analyze(
                &format!(
                    "--crate-name a src/lib.rs --crate-type lib --emit=dep-info,link \
                     -C extra-filename=-1 --out-dir {top}/target/debug/deps"
                )
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>(),
            )
            .unwrap()
        };
        let a = roots(&Roots::default(), &args("/x/a"), Path::new("/x/a"));
        let b = roots(&Roots::default(), &args("/y/b/c"), Path::new("/y/b/c"));
        let line = |top: &str| format!("-L dependency={top}/target/debug/deps {top}/src");
        assert_eq!(a.normalize(&line("/x/a")), b.normalize(&line("/y/b/c")));
        assert_eq!(a.path_of("target"), Some("/x/a/target/debug"));
    }
}
