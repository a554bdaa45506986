//! Gives an ELF file a search path that its linker left no room for.
//!
//! Build systems often link without an RPATH (libtool, meson) or with one
//! shorter than what the package needs, so the string cannot be rewritten in
//! place. The file is then rewritten with the `arwen` crate, which moves the
//! dynamic string table into a new loadable segment (as patchelf does) and
//! adds `DT_RUNPATH` where the file had neither `DT_RPATH` nor `DT_RUNPATH`;
//! code and data keep their addresses. Should it fail on a file, `patchelf`
//! from the build environment is run instead when the recipe has it. Either
//! result is read back: the file must parse and carry exactly the search
//! path asked for, or the build fails naming the file.

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arwen::elf::ElfContainer;
use goblin::elf::dynamic::DT_RPATH;

use super::elf::{SearchPath, search_paths};

/// Longest a `patchelf` run on one file may take.
const PATCHELF_TIMEOUT: Duration = Duration::from_secs(60);

/// `bytes` rewritten so that every search path it has, or a new
/// `DT_RUNPATH` when it has none, is `value`; or why that cannot be done.
pub(super) fn grow(
    bytes: &[u8],
    old: &[SearchPath],
    value: &str,
    patchelf: Option<&Path>,
) -> Result<Vec<u8>, String> {
    let by_arwen = with_arwen(bytes, value).and_then(|out| checked(out, value));
    let arwen_failure = match by_arwen {
        Ok(out) => return Ok(out),
        Err(reason) => reason,
    };
    let Some(patchelf) = patchelf else {
        return Err(format!(
            "rewriting it failed ({arwen_failure}), and the build environment has no \
             patchelf to try instead (add `patchelf` to the build requirements)"
        ));
    };
    let keep_rpath = old.iter().any(|p| p.tag == DT_RPATH);
    with_patchelf(patchelf, bytes, value, keep_rpath)
        .and_then(|out| checked(out, value))
        .map_err(|reason| {
            format!("rewriting it failed ({arwen_failure}), and so did patchelf ({reason})")
        })
}

/// The file rewritten by `arwen`. A panic on a malformed file is a failure
/// like any other, not the end of the build.
fn with_arwen(bytes: &[u8], value: &str) -> Result<Vec<u8>, String> {
    let rewrite = || -> Result<Vec<u8>, arwen::elf::ElfError> {
        let mut elf = ElfContainer::parse(bytes)?;
        elf.set_runpath(value)?;
        let mut out = Vec::with_capacity(bytes.len() + 4096);
        elf.write(&mut out)?;
        Ok(out)
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(rewrite)) {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(err)) => Err(error_chain(&err)),
        Err(_) => Err("the ELF rewriter gave up on the file".into()),
    }
}

/// `patchelf --set-rpath` on a copy of the file in a temporary directory.
fn with_patchelf(
    patchelf: &Path,
    bytes: &[u8],
    value: &str,
    keep_rpath: bool,
) -> Result<Vec<u8>, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("no temporary directory: {e}"))?;
    let file = dir.path().join("elf");
    std::fs::write(&file, bytes).map_err(|e| format!("writing a copy: {e}"))?;
    let mut cmd = Command::new(patchelf);
    if keep_rpath {
        cmd.arg("--force-rpath");
    }
    let mut child = cmd
        .arg("--set-rpath")
        .arg(value)
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running {}: {e}", patchelf.display()))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < PATCHELF_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} did not finish in {} s",
                    patchelf.display(),
                    PATCHELF_TIMEOUT.as_secs()
                ));
            }
            Err(e) => return Err(format!("waiting for {}: {e}", patchelf.display())),
        }
    };
    if !status.success() {
        let mut stderr = String::new();
        if let Some(pipe) = child.stderr.take() {
            let _ = pipe.take(4096).read_to_string(&mut stderr);
        }
        return Err(format!("{status}: {}", stderr.trim()));
    }
    std::fs::read(&file).map_err(|e| format!("reading the result: {e}"))
}

/// `out` when it is an ELF file whose search paths are all `value`.
fn checked(out: Vec<u8>, value: &str) -> Result<Vec<u8>, String> {
    match search_paths(&out) {
        Some(paths) if !paths.is_empty() && paths.iter().all(|p| p.value == value) => Ok(out),
        Some(paths) => Err(format!(
            "the result's search path is `{}`",
            paths
                .iter()
                .map(|p| p.value.as_str())
                .collect::<Vec<_>>()
                .join("`, `")
        )),
        None => Err("the result is not a dynamically linked ELF file".into()),
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A program linked by the machine's gcc with `flags`, or `None`
    /// without gcc.
    fn linked(dir: &Path, flags: &[&str]) -> Option<Vec<u8>> {
        let source = dir.join("main.c");
        std::fs::write(&source, "int main(void) { return 0; }\n").unwrap();
        let out = dir.join("main");
        let status = Command::new("gcc")
            .arg(&source)
            .arg("-o")
            .arg(&out)
            .args(flags)
            .status()
            .ok()?;
        assert!(status.success());
        Some(std::fs::read(out).unwrap())
    }

    fn values(bytes: &[u8]) -> Vec<(u64, String)> {
        search_paths(bytes)
            .unwrap()
            .into_iter()
            .map(|p| (p.tag, p.value))
            .collect()
    }

    #[test]
    fn a_program_without_a_search_path_gets_a_runpath() {
        let dir = tempfile::tempdir().unwrap();
        let Some(bytes) = linked(dir.path(), &[]) else {
            return;
        };
        assert!(values(&bytes).is_empty());
        let out = grow(&bytes, &[], "$ORIGIN/../lib", None).unwrap();
        let runpath = goblin::elf::dynamic::DT_RUNPATH;
        assert_eq!(values(&out), [(runpath, "$ORIGIN/../lib".to_string())]);
    }

    #[test]
    fn patchelf_gives_the_same_search_path_and_keeps_an_rpath_an_rpath() {
        let dir = tempfile::tempdir().unwrap();
        let Some(bytes) = linked(dir.path(), &["-Wl,-rpath,/x", "-Wl,--disable-new-dtags"]) else {
            return;
        };
        let Some(patchelf) = std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("patchelf"))
                .find(|p| p.is_file())
        }) else {
            return;
        };
        let old = search_paths(&bytes).unwrap();
        assert_eq!(values(&bytes), [(DT_RPATH, "/x".to_string())]);
        let out = with_patchelf(&patchelf, &bytes, "$ORIGIN/../lib", true)
            .and_then(|out| checked(out, "$ORIGIN/../lib"))
            .unwrap();
        assert_eq!(values(&out), [(DT_RPATH, "$ORIGIN/../lib".to_string())]);
        // Through `grow`, arwen does it and keeps the tag too.
        let out = grow(&bytes, &old, "$ORIGIN/../lib", Some(&patchelf)).unwrap();
        assert_eq!(values(&out), [(DT_RPATH, "$ORIGIN/../lib".to_string())]);
    }

    #[test]
    fn a_file_neither_can_rewrite_is_an_error_saying_what_would_help() {
        let mut bytes = b"\x7fELF".to_vec();
        bytes.resize(64, 0);
        let err = grow(&bytes, &[], "$ORIGIN", None).unwrap_err();
        assert!(
            err.contains("add `patchelf` to the build requirements"),
            "{err}"
        );
    }
}
