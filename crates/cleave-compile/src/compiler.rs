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
use std::io::Write;
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
    /// Whether it reports each expansion of `__DATE__`, `__TIME__` and
    /// `__TIMESTAMP__` (`-Wdate-time`), however the macro was written
    /// (on the command line, or pasted together from pieces).
    pub reports_time_macros: bool,
    /// Whether `SOURCE_DATE_EPOCH` fixes `__DATE__` and `__TIME__` (gcc 7,
    /// clang 19).
    pub honors_source_date_epoch: bool,
}

/// Bumped when a profile holds more: older ones are asked again.
const PROFILE_FORMAT: u32 = 2;

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

    /// The programs the driver at `path` runs for a call whose `-B`
    /// options (`prefixes`, as written) or whose `GCC_EXEC_PREFIX` and
    /// `COMPILER_PATH` can put other ones in place of those the profile
    /// names: the compiler proper (gcc) and the assembler, asked of the
    /// driver with the call's own prefixes (`-print-prog-name`), each
    /// `(what, digest)` of one that is a file. A program the driver finds
    /// on `PATH` (a bare name) is left out, as without `-B`.
    pub fn chosen_programs(
        &self,
        path: &Path,
        language: Language,
        prefixes: &[String],
        files: &mut Files,
    ) -> Result<Vec<(&'static str, Digest)>, CompileError> {
        let mut asked: Vec<(&'static str, &str)> = vec![("assembler", "as")];
        if self.profile.family == Family::Gcc {
            asked.push(("backend", backend_name(language)));
        }
        let mut found = Vec::new();
        for (what, program) in asked {
            let out = output(
                Command::new(path)
                    .args(prefixes)
                    .arg(format!("-print-prog-name={program}"))
                    .stdin(Stdio::null()),
                path,
            )?;
            let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !out.status.success() || !answer.contains('/') {
                continue;
            }
            if let Ok(info) = files.info(Path::new(&answer)) {
                found.push((what, info.digest));
            }
        }
        Ok(found)
    }
}

/// The compiler proper gcc runs for a language.
fn backend_name(language: Language) -> &'static str {
    match language {
        Language::C | Language::AsmCpp => "cc1",
        Language::Cxx => "cc1plus",
        Language::ObjC => "cc1obj",
        Language::ObjCxx => "cc1objplus",
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
        .join(format!("{}-{PROFILE_FORMAT}.json", &digest.to_hex()[..32]));
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
            reports_time_macros: false,
            honors_source_date_epoch: false,
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
    let reports_time_macros = run(&[
        "-Wdate-time",
        "-E",
        "-x",
        "c",
        "/dev/null",
        "-o",
        "/dev/null",
    ])?
    .0;
    let honors_source_date_epoch = date_at_epoch_zero(path)?.contains("Jan  1 1970");
    let mut backends = BTreeMap::new();
    if family == Family::Gcc {
        let languages = [
            Language::C,
            Language::AsmCpp,
            Language::Cxx,
            Language::ObjC,
            Language::ObjCxx,
        ];
        for language in languages {
            let prog = backend_name(language);
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
        reports_time_macros,
        honors_source_date_epoch,
    })
}

/// What `__DATE__` preprocesses to with `SOURCE_DATE_EPOCH=0`.
fn date_at_epoch_zero(path: &Path) -> Result<String, CompileError> {
    let spawn = |e| CompileError::Spawn {
        program: path.to_path_buf(),
        source: e,
    };
    let mut child = Command::new(path)
        .args(["-E", "-P", "-x", "c", "-"])
        .env("SOURCE_DATE_EPOCH", "0")
        .env("LC_ALL", "C")
        .env(vars::NESTED, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A driver that exits without reading says no more than that.
        let _ = stdin.write_all(b"__DATE__\n");
    }
    let out = child.wait_with_output().map_err(spawn)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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
