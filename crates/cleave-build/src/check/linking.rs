//! Linking checks of a package's ELF files: overlinking and overdepending.
//!
//! They are rattler-build's checks, so that a recipe gets the same verdict
//! from both tools:
//! - Each ELF file of the package (executables and shared libraries alike)
//!   is read as packaged, after relinking. Each `DT_NEEDED` entry is looked
//!   up in its RPATH and RUNPATH entries, with `$ORIGIN` standing for the
//!   file's directory in the host prefix; the first existing file wins. No
//!   system search path is used: a library found only there is not
//!   something the package can count on.
//! - A library found in the host prefix belongs to the host package whose
//!   `conda-meta` record lists it.
//! - A library is fine when it belongs to a run dependency, is a system
//!   library, is in the package itself, or matches
//!   `build.dynamic_linking.missing_dso_allowlist`. Anything else is
//!   **overlinking**: the package works here and breaks where that library
//!   is not installed.
//! - **Overdepending** is a run dependency that a run export of one of the
//!   output's own host dependencies added, whose package ships shared
//!   libraries, but that no file of the package links: a needless
//!   constraint on every environment the package goes into.
//!
//! With `overlinking_behavior` / `overdepending_behavior` at `ignore` (the
//! default, as in rattler-build) a finding is a warning; `error` fails the
//! build. Noarch packages and `binary_relocation: false` skip the checks, as
//! in rattler-build 0.73.
//!
//! System libraries are the `*.so*` file names of the `sysroot_<platform>`
//! package in the build environment, as rattler-build takes them. cleave
//! also builds with the machine's own compiler, where there is no sysroot
//! package; then glibc's libraries ([`GLIBC`]) are the system ones, which
//! is what a conda-forge sysroot provides too. Without that fallback every
//! binary would be reported for linking `libc.so.6`. libstdc++ and libgcc_s
//! are deliberately not on the list: conda packages take them from the
//! `libstdcxx` and `libgcc` packages, so linking the machine's copy is
//! overlinking.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use cleave_recipe::model::{LinkingBehavior, PackageOutput};
use globset::{Glob, GlobSet, GlobSetBuilder};
use goblin::elf::Elf;
use rattler_conda_types::package::{PathType, PathsEntry};
use rattler_conda_types::{PrefixRecord, Subdir};

use crate::environment::run_exports::exported_name;

/// glibc's libraries (by soname pattern): the system libraries when the
/// build environment has no sysroot package.
pub const GLIBC: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libmvec.so.1",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "libutil.so.1",
    "libresolv.so.2",
    "libnsl.so.1",
    "libcrypt.so.1",
    "libanl.so.1",
    "libBrokenLocale.so.1",
    "libthread_db.so.1",
    "libc_malloc_debug.so.0",
    "libnss_*.so.2",
    "ld-linux*.so.*",
    "ld64.so.*",
    "ld.so.1",
];

/// A finding that fails the build, or a check that could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkingError {
    /// Libraries linked that nothing the package depends on provides, with
    /// `overlinking_behavior: error`.
    #[error(
        "overlinking:\n  {}\nhelp: add their packages to the run requirements, or the libraries to build.dynamic_linking.missing_dso_allowlist",
        problems.join("\n  ")
    )]
    Overlinking {
        /// One line per file and library.
        problems: Vec<String>,
    },
    /// Run dependencies from host run exports that nothing links, with
    /// `overdepending_behavior: error`.
    #[error(
        "overdepending:\n  {}\nhelp: drop the run export with requirements.ignore_run_exports (from_package or by_name)",
        problems.join("\n  ")
    )]
    Overdepending {
        /// One line per dependency.
        problems: Vec<String>,
    },
    /// A `missing_dso_allowlist` glob does not compile.
    #[error("invalid missing_dso_allowlist glob `{glob}`")]
    Glob {
        /// The pattern.
        glob: String,
        /// The parser's error.
        #[source]
        source: globset::Error,
    },
    /// A file or package record could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// What was read.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LinkingError + '_ {
    move |source| LinkingError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What the checks of one package look at.
pub struct LinkCheck<'a> {
    /// The output: its name, `noarch` and `dynamic_linking` settings.
    pub output: &'a PackageOutput,
    /// The package's files as packaged (relinked), below this directory.
    pub tree: &'a Path,
    /// The package's paths.
    pub entries: &'a [PathsEntry],
    /// The host prefix the package was built in.
    pub host_prefix: &'a Path,
    /// The build prefix, where a sysroot package names the system libraries.
    pub build_prefix: &'a Path,
    /// The platform the package is for.
    pub target: Subdir,
    /// The final run requirements.
    pub depends: &'a [String],
    /// Names of the run requirements the output's own host run exports added.
    pub from_host: &'a [String],
    /// The shared libraries of the host environment of the staging build
    /// the output inherits, by file name, with the package that ships each
    /// ([`library_names`]): that environment is not installed when the
    /// output is packaged, yet its binaries link it.
    pub inherited: &'a BTreeMap<String, String>,
}

/// The shared libraries the packages installed in `prefix` ship, by file
/// name, with each one's package name: what a staging build's host
/// environment provides the binaries it builds, kept for the outputs that
/// inherit them (rattler-build's library name map).
pub fn library_names(prefix: &Path) -> Result<BTreeMap<String, String>, LinkingError> {
    let mut names = BTreeMap::new();
    for record in records(prefix, |_| true)? {
        let package = record.repodata_record.package_record.name.as_normalized();
        for file in record.files.iter().filter(|f| is_shared_library(f)) {
            if let Some(name) = file.file_name() {
                names
                    .entry(name.to_string_lossy().into_owned())
                    .or_insert_with(|| package.to_string());
            }
        }
    }
    Ok(names)
}

/// Runs the checks; returns the findings to report as warnings, or fails
/// on the findings whose behavior is `error`.
pub fn check(c: &LinkCheck<'_>) -> Result<Vec<String>, LinkingError> {
    let settings = &c.output.build.dynamic_linking;
    if c.output.build.noarch.is_some() || !settings.binary_relocation {
        return Ok(Vec::new());
    }
    let host = HostPackages::read(c.host_prefix)?;
    let system = system_libraries(c.build_prefix, c.target)?;
    let allowed = allowlist(&settings.missing_dso_allowlist)?;
    let run: HashSet<String> = c.depends.iter().filter_map(|d| exported_name(d)).collect();
    let packaged: HashSet<&Path> = c
        .entries
        .iter()
        .map(|e| e.relative_path.as_path())
        .collect();
    let packaged_names: HashSet<&std::ffi::OsStr> =
        packaged.iter().filter_map(|p| p.file_name()).collect();
    // Found libraries are canonical paths; so must the prefix be.
    let host_root = std::fs::canonicalize(c.host_prefix).map_err(io(c.host_prefix))?;

    let mut overlinking = Vec::new();
    let mut linked: HashSet<usize> = HashSet::new();
    for entry in c
        .entries
        .iter()
        .filter(|e| e.path_type == PathType::HardLink)
    {
        let path = c.tree.join(&entry.relative_path);
        if !is_elf(&path).map_err(io(&path))? {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        // An ELF file goblin cannot read is not one the loader would load.
        let Ok(elf) = Elf::parse(&bytes) else {
            continue;
        };
        let origin = host_root.join(entry.relative_path.parent().unwrap_or(Path::new("")));
        let dirs = search_dirs(&elf, &origin);
        for needed in &elf.libraries {
            let library = Library::find(needed, &dirs, &host_root);
            let owner = match &library {
                Library::InPrefix(rel) => host.owner(rel),
                _ => None,
            };
            if let Some(index) = owner {
                linked.insert(index);
                if run.contains(&host.packages[index].name) {
                    continue;
                }
            }
            // Not in the output's own host environment: the inherited
            // staging build's may ship it.
            let inherited = match (&library, owner) {
                (Library::InPrefix(rel), None) => rel.file_name(),
                (Library::NotFound(name), None) => Some(std::ffi::OsStr::new(name.as_str())),
                _ => None,
            }
            .and_then(|name| c.inherited.get(name.to_string_lossy().as_ref()));
            if inherited.is_some_and(|package| run.contains(package)) {
                continue;
            }
            let system_name = match &library {
                Library::NotFound(name) => Some(std::ffi::OsStr::new(name.as_str())),
                Library::Outside(path) => path.file_name(),
                Library::InPrefix(_) => None,
            };
            if system_name.is_some_and(|n| system.is_match(n)) {
                continue;
            }
            let itself = match &library {
                Library::InPrefix(rel) => packaged.contains(rel.as_path()),
                Library::NotFound(name) => packaged_names.contains(std::ffi::OsStr::new(name)),
                Library::Outside(_) => false,
            };
            if itself || allowed.is_match(library.to_string()) {
                continue;
            }
            let file = entry.relative_path.display();
            overlinking.push(match (&library, owner, inherited) {
                (_, Some(index), _) => format!(
                    "{file} links {library} of host package `{}`, which is not a run dependency",
                    host.packages[index].name
                ),
                (_, None, Some(package)) => format!(
                    "{file} links {library} of `{package}` of the inherited staging build's host environment, which is not a run dependency"
                ),
                (Library::InPrefix(_), None, None) => format!(
                    "{file} links {library}, a file of the host prefix that neither this package nor a host package ships"
                ),
                (Library::Outside(_), None, None) => {
                    format!("{file} links {library}, outside the host prefix")
                }
                (Library::NotFound(_), None, None) => format!(
                    "{file} links {library}, which is in none of its RPATH/RUNPATH directories in the host prefix and is no system library"
                ),
            });
        }
    }

    let overdepending: Vec<String> = c
        .from_host
        .iter()
        .filter(|name| {
            host.by_name(name).is_some_and(|index| {
                host.packages[index].shared_libraries && !linked.contains(&index)
            })
        })
        .map(|name| {
            format!(
                "run dependency `{name}` comes from a host run export, but no file of the package links a library of `{name}`"
            )
        })
        .collect();

    let mut warnings = Vec::new();
    for (findings, behavior, kind) in [
        (
            overlinking,
            settings.overlinking_behavior,
            Kind::Overlinking,
        ),
        (
            overdepending,
            settings.overdepending_behavior,
            Kind::Overdepending,
        ),
    ] {
        if findings.is_empty() {
            continue;
        }
        match (behavior, kind) {
            (LinkingBehavior::Error, Kind::Overlinking) => {
                return Err(LinkingError::Overlinking { problems: findings });
            }
            (LinkingBehavior::Error, Kind::Overdepending) => {
                return Err(LinkingError::Overdepending { problems: findings });
            }
            (LinkingBehavior::Ignore, _) => {
                warnings.extend(findings.into_iter().map(|f| format!("{kind}: {f}")));
            }
        }
    }
    Ok(warnings)
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Overlinking,
    Overdepending,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Overlinking => "overlinking",
            Kind::Overdepending => "overdepending",
        })
    }
}

/// Whether the file starts with the ELF magic; read without the rest, as
/// most files of a package are not binaries.
fn is_elf(path: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let mut magic = [0; 4];
    let mut file = std::fs::File::open(path)?;
    match file.read_exact(&mut magic) {
        Ok(()) => Ok(&magic == b"\x7fELF"),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// Where a `DT_NEEDED` entry was found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Library {
    /// In the host prefix, at this canonical relative path.
    InPrefix(PathBuf),
    /// Elsewhere on this machine, through an absolute RPATH entry.
    Outside(PathBuf),
    /// Nowhere: the bare name.
    NotFound(String),
}

impl Library {
    /// The first `dir/needed` that exists, as the loader would take it.
    fn find(needed: &str, dirs: &[PathBuf], host_root: &Path) -> Library {
        let candidates: Vec<PathBuf> = if Path::new(needed).is_absolute() {
            vec![PathBuf::from(needed)]
        } else {
            dirs.iter().map(|d| d.join(needed)).collect()
        };
        let found = candidates
            .iter()
            .find(|c| c.is_file())
            .and_then(|c| std::fs::canonicalize(c).ok());
        match found {
            Some(path) => match path.strip_prefix(host_root) {
                Ok(rel) => Library::InPrefix(rel.to_path_buf()),
                Err(_) => Library::Outside(path),
            },
            None => Library::NotFound(needed.to_string()),
        }
    }
}

impl fmt::Display for Library {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Library::InPrefix(path) | Library::Outside(path) => write!(f, "{}", path.display()),
            Library::NotFound(name) => f.write_str(name),
        }
    }
}

/// The RPATH and RUNPATH directories of `elf`, with `$ORIGIN` replaced by
/// `origin`. Both count alike, as in rattler-build: the order between them
/// matters only when two directories hold the same library.
fn search_dirs(elf: &Elf<'_>, origin: &Path) -> Vec<PathBuf> {
    let origin = origin.to_string_lossy();
    elf.rpaths
        .iter()
        .chain(&elf.runpaths)
        .flat_map(|entry| entry.split(':'))
        .filter(|dir| !dir.is_empty())
        .map(|dir| expand_origin(dir, &origin))
        .collect()
}

fn expand_origin(dir: &str, origin: &str) -> PathBuf {
    PathBuf::from(dir.replace("${ORIGIN}", origin).replace("$ORIGIN", origin))
}

/// The installed packages of the host prefix and the files they own.
struct HostPackages {
    packages: Vec<HostPackage>,
    owner: HashMap<PathBuf, usize>,
}

struct HostPackage {
    name: String,
    /// Ships a shared library outside Python's and R's package dirs, where
    /// the libraries are plugins that nothing links.
    shared_libraries: bool,
}

impl HostPackages {
    fn read(prefix: &Path) -> Result<Self, LinkingError> {
        let mut packages = Vec::new();
        let mut owner = HashMap::new();
        for record in records(prefix, |_| true)? {
            let index = packages.len();
            packages.push(HostPackage {
                name: record
                    .repodata_record
                    .package_record
                    .name
                    .as_normalized()
                    .to_string(),
                shared_libraries: record
                    .files
                    .iter()
                    .any(|f| is_shared_library(f) && !is_plugin(f)),
            });
            owner.extend(record.files.into_iter().map(|f| (f, index)));
        }
        Ok(HostPackages { packages, owner })
    }

    fn owner(&self, rel: &Path) -> Option<usize> {
        self.owner.get(rel).copied()
    }

    fn by_name(&self, name: &str) -> Option<usize> {
        self.packages.iter().position(|p| p.name == name)
    }
}

/// The package records in `prefix/conda-meta` whose file name passes `keep`.
fn records(prefix: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<PrefixRecord>, LinkingError> {
    let dir = prefix.join("conda-meta");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(io(&dir))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.ends_with(".json") && keep(&name) {
            out.push(PrefixRecord::from_path(&path).map_err(io(&path))?);
        }
    }
    Ok(out)
}

fn is_shared_library(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.ends_with(".so")
        || name.contains(".so.")
        || [".dylib", ".dll", ".pyd"].iter().any(|e| name.ends_with(e))
}

fn is_plugin(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str() == "site-packages") || path.starts_with("lib/R/library")
}

/// The sysroot package's library names, else glibc's.
fn system_libraries(build_prefix: &Path, target: Subdir) -> Result<GlobSet, LinkingError> {
    let sysroot = format!("sysroot_{}", target.as_str());
    let names: Vec<String> = records(build_prefix, |file| file.starts_with(&sysroot))?
        .iter()
        .flat_map(|r| &r.files)
        .filter_map(|f| f.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n.contains(".so"))
        .map(|n| globset::escape(&n))
        .collect();
    let patterns: Vec<String> = if names.is_empty() {
        GLIBC.iter().map(|g| g.to_string()).collect()
    } else {
        names
    };
    glob_set(&patterns)
}

/// `missing_dso_allowlist`, with rattler-build's reading: `P` matches `P`
/// and everything below it, `P/` everything below it.
fn allowlist(globs: &[String]) -> Result<GlobSet, LinkingError> {
    let patterns: Vec<String> = globs
        .iter()
        .flat_map(|g| match g.strip_suffix('/') {
            Some(dir) => vec![format!("{dir}/**")],
            None => vec![g.clone(), format!("{g}/**")],
        })
        .collect();
    glob_set(&patterns)
}

fn glob_set(patterns: &[String]) -> Result<GlobSet, LinkingError> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = Glob::new(pattern).map_err(|source| LinkingError::Glob {
            glob: pattern.clone(),
            source,
        })?;
        builder.add(glob);
    }
    builder.build().map_err(|source| LinkingError::Glob {
        glob: patterns.join(", "),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `conda-meta` record of `name` owning `files`.
    fn record(prefix: &Path, name: &str, files: &[&str]) {
        let meta = prefix.join("conda-meta");
        std::fs::create_dir_all(&meta).unwrap();
        let record = serde_json::json!({
            "name": name, "version": "1.0", "build": "0", "build_number": 0,
            "subdir": "linux-64", "depends": [], "files": files,
            "paths_data": {"paths": [], "paths_version": 1},
            "fn": format!("{name}-1.0-0.conda"),
            "url": format!("file:///c/{name}-1.0-0.conda"), "channel": "file:///c",
        });
        std::fs::write(meta.join(format!("{name}-1.0-0.json")), record.to_string()).unwrap();
    }

    #[test]
    fn without_a_sysroot_package_glibc_is_the_system() {
        let empty = tempfile::tempdir().unwrap();
        let system = system_libraries(empty.path(), Subdir::Linux64).unwrap();
        for name in [
            "libc.so.6",
            "libm.so.6",
            "ld-linux-x86-64.so.2",
            "libnss_files.so.2",
        ] {
            assert!(system.is_match(name), "{name}");
        }
        for name in ["libstdc++.so.6", "libgcc_s.so.1", "libz.so.1"] {
            assert!(!system.is_match(name), "{name}");
        }
    }

    #[test]
    fn a_sysroot_package_names_the_system_libraries() {
        let build = tempfile::tempdir().unwrap();
        record(
            build.path(),
            "sysroot_linux-64",
            &[
                "x86_64-conda-linux-gnu/sysroot/lib64/libc.so.6",
                "x86_64-conda-linux-gnu/sysroot/lib64/libfancy.so.3",
                "x86_64-conda-linux-gnu/sysroot/usr/include/stdio.h",
            ],
        );
        record(build.path(), "other", &["lib/libother.so.1"]);
        let system = system_libraries(build.path(), Subdir::Linux64).unwrap();
        assert!(system.is_match("libc.so.6"));
        assert!(system.is_match("libfancy.so.3"));
        assert!(!system.is_match("libm.so.6"), "only the sysroot's");
        assert!(!system.is_match("libother.so.1"));
        assert!(!system.is_match("stdio.h"));
    }

    #[test]
    fn a_library_is_found_through_origin_in_the_host_prefix() {
        let tmp = tempfile::tempdir().unwrap();
        let host = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(host.join("lib")).unwrap();
        std::fs::create_dir_all(host.join("bin")).unwrap();
        std::fs::write(host.join("lib/libdep.so.1.2"), "elf").unwrap();
        std::os::unix::fs::symlink("libdep.so.1.2", host.join("lib/libdep.so.1")).unwrap();
        let origin = host.join("bin").to_string_lossy().into_owned();
        let dirs = [
            expand_origin("$ORIGIN/../nothing", &origin),
            expand_origin("${ORIGIN}/../lib", &origin),
        ];
        assert_eq!(
            Library::find("libdep.so.1", &dirs, &host),
            Library::InPrefix(PathBuf::from("lib/libdep.so.1.2"))
        );
        assert_eq!(
            Library::find("libc.so.6", &dirs, &host),
            Library::NotFound("libc.so.6".into())
        );
    }

    #[test]
    fn host_packages_own_their_files_and_plugins_are_no_shared_libraries() {
        let host = tempfile::tempdir().unwrap();
        record(host.path(), "libdep", &["lib/libdep.so.1", "include/dep.h"]);
        record(
            host.path(),
            "py-ext",
            &["lib/python3.12/site-packages/ext.cpython-312.so"],
        );
        record(host.path(), "headers", &["include/only.h"]);
        let packages = HostPackages::read(host.path()).unwrap();
        let libdep = packages.by_name("libdep").unwrap();
        assert_eq!(packages.owner(Path::new("lib/libdep.so.1")), Some(libdep));
        assert!(packages.packages[libdep].shared_libraries);
        for plain in ["py-ext", "headers"] {
            let index = packages.by_name(plain).unwrap();
            assert!(!packages.packages[index].shared_libraries, "{plain}");
        }
    }

    #[test]
    fn the_allowlist_takes_a_path_and_what_is_below_it() {
        let allowed = allowlist(&["libcuda.so*".into(), "lib/stubs/".into()]).unwrap();
        assert!(allowed.is_match("libcuda.so.1"));
        assert!(allowed.is_match("lib/stubs/libx.so"));
        assert!(!allowed.is_match("lib/libcuda.so.1"));
        assert!(!allowed.is_match("libc.so.6"));
    }
}
