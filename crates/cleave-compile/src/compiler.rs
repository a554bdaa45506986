//! The compiler behind the wrapper: where it is, and what it is.
//!
//! A masquerading wrapper (`gcc` in a directory first on `PATH`) finds the
//! real `gcc` further along `PATH`, skipping its own directory and any
//! file that is cleave itself. The compiler's identity in a key is the
//! digest of its driver and, for gcc, of the compiler proper (`cc1`,
//! `cc1plus`) the driver runs: a driver that is a script around the
//! machine's gcc (conda-forge's stand-ins are) still misses when that gcc
//! changes. What a driver is (family, version, whether it knows
//! `-ffile-prefix-map`, where its `cc1` is) is asked once per driver
//! digest and kept in `<cache>/compile/compilers/`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use cleave_cache::Digest;
use serde::{Deserialize, Serialize};

use crate::args::Language;
use crate::error::CompileError;
use crate::files::Files;
use crate::roots::PrefixMap;
use crate::vars;

/// Which command line a compiler speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// GNU gcc and g++.
    Gcc,
    /// LLVM clang.
    Clang,
    /// Something else: its calls are passed through.
    Other,
}

/// What a compiler driver is, asked once per driver digest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    /// Its family.
    pub family: Family,
    /// The first line of `--version`.
    pub version: String,
    /// How it renames paths in its output.
    pub prefix_map: PrefixMap,
    /// The compiler proper per language (`-x` name), for gcc.
    pub backends: BTreeMap<String, PathBuf>,
}

/// A compiler ready to run and to key by.
#[derive(Debug, Clone)]
pub struct Compiler {
    /// Digest of the driver's contents.
    pub digest: Digest,
    /// What it is.
    pub profile: Profile,
}

impl Compiler {
    /// The digest of the compiler proper for `language`, when there is one.
    pub fn backend_digest(&self, language: Language, files: &mut Files) -> Option<Digest> {
        let backend = self.profile.backends.get(language.as_x())?;
        files.info(backend).ok().map(|i| i.digest)
    }
}

/// The compiler `name` names: a path, or the first one on `PATH` that is
/// not cleave (in `masquerade` or elsewhere).
pub fn find(name: &OsStr, masquerade: Option<&Path>) -> Result<PathBuf, CompileError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    find_in(name, &path, masquerade)
}

/// [`find`] on a given `PATH`.
pub fn find_in(
    name: &OsStr,
    path: &OsStr,
    masquerade: Option<&Path>,
) -> Result<PathBuf, CompileError> {
    if name.as_bytes().contains(&b'/') {
        return Ok(PathBuf::from(name));
    }
    let this = std::env::current_exe()
        .ok()
        .and_then(|p| std::fs::canonicalize(p).ok());
    for dir in std::env::split_paths(path) {
        if dir.as_os_str().is_empty() || masquerade.is_some_and(|m| m == dir) {
            continue;
        }
        let candidate = dir.join(name);
        let Ok(meta) = std::fs::metadata(&candidate) else {
            continue;
        };
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            continue;
        }
        if this.is_some() && std::fs::canonicalize(&candidate).ok() == this {
            continue;
        }
        return Ok(candidate);
    }
    Err(CompileError::CompilerNotFound {
        name: name.to_string_lossy().into_owned(),
    })
}

/// The compiler at `path`, identified by contents; profiled on first use.
pub fn identify(path: &Path, files: &mut Files, state: &Path) -> Result<Compiler, CompileError> {
    let real = std::fs::canonicalize(path)
        .map_err(CompileError::io(format!("reading {}", path.display())))?;
    let digest = files
        .info(&real)
        .map_err(CompileError::io(format!("reading {}", real.display())))?
        .digest;
    let cached = state
        .join("compilers")
        .join(format!("{}.json", &digest.to_hex()[..32]));
    let profile = match std::fs::read(&cached)
        .ok()
        .and_then(|b| serde_json::from_slice::<Profile>(&b).ok())
    {
        Some(profile) => profile,
        None => {
            let profile = probe(path)?;
            // Kept only to save the probe next time.
            let _ = write_json(&cached, &profile);
            profile
        }
    };
    Ok(Compiler { digest, profile })
}

/// Asks a driver what it is: three or four short runs.
fn probe(path: &Path) -> Result<Profile, CompileError> {
    let run = |args: &[&str]| -> Result<(bool, String), CompileError> {
        let out = output(
            Command::new(path)
                .args(args)
                .env("LC_ALL", "C")
                .stdin(Stdio::null()),
            path,
        )?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ))
    };
    let (_, version_text) = run(&["--version"])?;
    let family = if version_text.contains("clang") {
        Family::Clang
    } else if version_text.contains("gcc")
        || version_text.contains("GCC")
        || version_text.contains("Free Software Foundation")
    {
        Family::Gcc
    } else {
        Family::Other
    };
    let version = version_text.lines().next().unwrap_or("").to_string();
    if family == Family::Other {
        return Ok(Profile {
            family,
            version,
            prefix_map: PrefixMap::None,
            backends: BTreeMap::new(),
        });
    }
    let accepts = |option: &str| -> Result<bool, CompileError> {
        let option = format!("{option}=/cleave-probe=/probe");
        Ok(run(&[&option, "-E", "-x", "c", "/dev/null", "-o", "/dev/null"])?.0)
    };
    let prefix_map = if accepts("-ffile-prefix-map")? {
        PrefixMap::File
    } else if accepts("-fdebug-prefix-map")? {
        PrefixMap::Debug
    } else {
        PrefixMap::None
    };
    let mut backends = BTreeMap::new();
    if family == Family::Gcc {
        let languages = [
            (Language::C, "cc1"),
            (Language::AsmCpp, "cc1"),
            (Language::Cxx, "cc1plus"),
            (Language::ObjC, "cc1obj"),
            (Language::ObjCxx, "cc1objplus"),
        ];
        for (language, prog) in languages {
            let (_, out) = run(&[&format!("-print-prog-name={prog}")])?;
            let found = PathBuf::from(out.trim());
            if found.is_absolute() && found.is_file() {
                backends.insert(language.as_x().to_string(), found);
            }
        }
    }
    Ok(Profile {
        family,
        version,
        prefix_map,
        backends,
    })
}

/// Runs `command` (the compiler `program`) to its end, with its output
/// captured; marked nested, so that a wrapper it starts (a compiler script
/// calling `gcc`) passes straight through.
pub(crate) fn output(command: &mut Command, program: &Path) -> Result<Output, CompileError> {
    command
        .env(vars::NESTED, "1")
        .output()
        .map_err(|source| CompileError::Spawn {
            program: program.to_path_buf(),
            source,
        })
}

/// Writes `value` as JSON to `path` through a temporary file and a rename,
/// so that a reader sees the old file or the new one, never half of one.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    serde_json::to_writer(&mut tmp, value)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masquerading_wrapper_finds_the_next_compiler_on_path() {
        // `sh` stands in for a compiler name: it is on every PATH.
        let found = find(OsStr::new("sh"), None).unwrap();
        assert!(found.ends_with("sh"), "{}", found.display());
        let dir = found.parent().unwrap();
        match find(OsStr::new("sh"), Some(dir)) {
            Ok(other) => assert_ne!(other.parent(), Some(dir)),
            Err(e) => assert!(matches!(e, CompileError::CompilerNotFound { .. })),
        }
        assert!(matches!(
            find(OsStr::new("no-such-compiler-anywhere"), None),
            Err(CompileError::CompilerNotFound { .. })
        ));
        assert_eq!(
            find(OsStr::new("./local/cc"), None).unwrap(),
            Path::new("./local/cc")
        );
    }
}
