//! What a Rust compile's key is made of, without absolute paths: the
//! compiler (its `-vV` text and a digest of its sysroot's contents), the
//! arguments with the roots' paths replaced (the workspace, the target
//! dir, `CARGO_HOME`), the environment cargo sets for the crate, and, from
//! the dep-info of an earlier compile, the files and variables the crate
//! read.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cleave_cache::Digest;
use cleave_cache::fingerprint::Stamp;
use serde::{Deserialize, Serialize};

use crate::compiler;
use crate::error::CompileError;
use crate::files::Files;
use crate::roots::Roots;
use crate::rust::args::Crate;

/// A rustc, as a key sees it.
#[derive(Debug, Clone)]
pub struct Rustc {
    /// `rustc -vV`: release, commit and host.
    pub version: String,
    /// Digest of the contents of the compiler's own libraries and of the
    /// sysroot's target directories (std, linker, objects): a toolchain
    /// rebuilt in place with the same version and sizes is told apart.
    pub sysroot: String,
    /// Digest of the executable cargo named (through its links): what
    /// runs. A shim called `rustc` that adds flags answers `-vV` as the
    /// rustc behind it does.
    pub executable: String,
}

/// What rustc says about itself, asked once per binary and remembered.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Asked {
    /// `rustc -vV`.
    version: String,
    /// `rustc --print sysroot`.
    sysroot_dir: PathBuf,
}

/// The rustc at `path`. Its answers to `-vV` and `--print sysroot` are
/// asked once per path and file stamp and remembered in `state` (two runs
/// of rustc); the sysroot's contents are digested through the compile
/// cache's file index in `state/files`, so that after the first call
/// (hundreds of MB read) a call only looks at the files' stamps.
pub fn rustc(path: &Path, state: &Path) -> Result<Rustc, CompileError> {
    // Cargo passes rustc as it found it: a bare `rustc` when it took the
    // name from PATH (a conda environment's cargo does), a path when
    // rustup named the toolchain's.
    let path = compiler::find(path.as_os_str(), None)?;
    let asked = ask(&path, state)?;
    // Not the build's start: a toolchain a recipe script installs is
    // written once, not edited while the build runs, and hashing it again
    // on every call would cost more than the compile.
    let mut files = Files::new(state.join("files"), asked.sysroot_dir.clone(), None);
    let sysroot = sysroot_digest(&asked.sysroot_dir, &mut files);
    let io = CompileError::io(format!("reading {}", path.display()));
    let executable = std::fs::canonicalize(&path)
        .and_then(|real| files.info(&real))
        .map_err(io);
    files.save();
    Ok(Rustc {
        version: asked.version,
        sysroot: sysroot?.to_hex(),
        executable: executable?.digest.to_hex(),
    })
}

/// `rustc -vV` and `--print sysroot` of the rustc at `path`, from `state`
/// when this binary (path and stamp) was asked before.
fn ask(path: &Path, state: &Path) -> Result<Asked, CompileError> {
    let meta =
        std::fs::metadata(path).map_err(CompileError::io(format!("reading {}", path.display())))?;
    let Stamp {
        size,
        mtime_ns,
        ctime_ns,
        ino,
        dev,
    } = Stamp::of(&meta);
    let id = Digest::of(
        format!(
            "{}\0{size}\0{mtime_ns}\0{ctime_ns}\0{ino}\0{dev}",
            path.display()
        )
        .as_bytes(),
    );
    let cached = state
        .join("rustc")
        .join(format!("{}.json", &id.to_hex()[..32]));
    if let Some(known) = std::fs::read(&cached)
        .ok()
        .and_then(|b| serde_json::from_slice::<Asked>(&b).ok())
    {
        return Ok(known);
    }
    let run = |args: &[&str]| -> Result<String, CompileError> {
        let out = compiler::output(Command::new(path).args(args).stdin(Stdio::null()), path)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let known = Asked {
        version: run(&["-vV"])?,
        sysroot_dir: PathBuf::from(run(&["--print", "sysroot"])?.trim()),
    };
    // Kept only to save the runs next time.
    let _ = compiler::write_json(&cached, &known);
    Ok(known)
}

/// Prefixes of the files of the sysroot's `lib/` that are the compiler
/// itself (rustc is a small binary over `librustc_driver`, which loads
/// LLVM and, in older toolchains, `libstd`). Only these: in a conda
/// environment `lib/` also holds every other package's libraries.
const COMPILER_LIBS: &[&str] = &["librustc", "libLLVM", "libstd-"];

/// The contents of what a compile uses from the sysroot: the compiler's
/// libraries in `lib/` and each target's directory in `lib/rustlib/`
/// (one with a `lib/`: its std, its self-contained linker and objects,
/// codegen backends), leaving out sources and debugger scripts. Each
/// file's relative path and digest, symlinks by target, sorted.
fn sysroot_digest(sysroot: &Path, files: &mut Files) -> Result<Digest, CompileError> {
    let mut found: Vec<(PathBuf, std::fs::FileType)> = Vec::new();
    let lib = sysroot.join("lib");
    for (path, kind) in list(&lib)? {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let compiler = name.is_some_and(|n| COMPILER_LIBS.iter().any(|p| n.starts_with(p)));
        if compiler && (kind.is_file() || kind.is_symlink()) {
            found.push((path, kind));
        }
    }
    for (target, kind) in list(&lib.join("rustlib"))? {
        if kind.is_dir() && target.join("lib").is_dir() {
            walk(&target, &mut found)?;
        }
    }
    let mut lines: Vec<String> = Vec::with_capacity(found.len());
    for (path, kind) in found {
        let rel = path.strip_prefix(sysroot).unwrap_or(&path).display();
        let io = CompileError::io(format!("reading {}", path.display()));
        let what = if kind.is_symlink() {
            format!("-> {}", std::fs::read_link(&path).map_err(io)?.display())
        } else {
            files.info(&path).map_err(io)?.digest.to_hex()
        };
        lines.push(format!("{rel}\t{what}"));
    }
    lines.sort();
    Ok(Digest::of(lines.join("\n").as_bytes()))
}

/// The entries of `dir` with their types (not following symlinks); none
/// when it does not exist.
fn list(dir: &Path) -> Result<Vec<(PathBuf, std::fs::FileType)>, CompileError> {
    let io = || CompileError::io(format!("reading {}", dir.display()));
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io()(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io())?;
        out.push((entry.path(), entry.file_type().map_err(io())?));
    }
    Ok(out)
}

/// Every file and symlink below `dir` into `found`.
fn walk(dir: &Path, found: &mut Vec<(PathBuf, std::fs::FileType)>) -> Result<(), CompileError> {
    for (path, kind) in list(dir)? {
        if kind.is_dir() {
            walk(&path, found)?;
        } else if kind.is_file() || kind.is_symlink() {
            found.push((path, kind));
        }
    }
    Ok(())
}

/// The static archives (`*.a`) in a native search directory, by name,
/// sorted: what rustc may copy into an rlib. None when it does not exist.
pub fn archives(dir: &Path) -> Result<Vec<(String, PathBuf)>, CompileError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CompileError::io(format!("reading {}", dir.display()))(e)),
    };
    let mut found: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(name, _)| name.ends_with(".a"))
        .collect();
    found.sort();
    Ok(found)
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

    /// A sysroot of a few files: the compiler's library, one target's std
    /// and linker, and what the digest leaves out.
    fn sysroot(dir: &Path, std: &str) {
        let write = |rel: &str, text: &str| {
            let path = dir.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("lib/librustc_driver-1.so", "the compiler");
        write("lib/libz.so", "another package's library");
        write(
            "lib/rustlib/x86_64-unknown-linux-gnu/lib/libstd-1.rlib",
            std,
        );
        write(
            "lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld",
            "a linker",
        );
        write("lib/rustlib/src/rust/library/std/src/lib.rs", "sources");
    }

    fn digest(dir: &Path, index: &Path) -> (Digest, usize) {
        let mut files = Files::new(index.to_path_buf(), dir.to_path_buf(), None);
        let digest = sysroot_digest(dir, &mut files).unwrap();
        files.save();
        (digest, files.hashed)
    }

    #[test]
    fn sysroots_with_the_same_names_and_sizes_differ_by_contents() {
        let index = tempfile::tempdir().unwrap();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        sysroot(a.path(), "std of build one");
        sysroot(b.path(), "std of build two");
        let (first, _) = digest(a.path(), index.path());
        assert_ne!(first, digest(b.path(), index.path()).0);

        // Files a compile does not use leave it as it is.
        std::fs::write(a.path().join("lib/libz.so"), "another version").unwrap();
        std::fs::write(
            a.path().join("lib/rustlib/src/rust/library/std/src/lib.rs"),
            "edited",
        )
        .unwrap();
        assert_eq!(digest(a.path(), index.path()).0, first);
        // The linker a target brings is the toolchain's.
        std::fs::write(
            a.path()
                .join("lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld"),
            "a LINKER",
        )
        .unwrap();
        assert_ne!(digest(a.path(), index.path()).0, first);
    }

    #[test]
    fn a_sysroot_is_read_once_then_known_by_its_files_stamps() {
        let index = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        sysroot(root.path(), "std");
        // A file is trusted by its stamp once it is a second older than
        // its hashing.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let (first, hashed) = digest(root.path(), index.path());
        assert_eq!(hashed, 3);
        assert_eq!(digest(root.path(), index.path()), (first, 0));
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
