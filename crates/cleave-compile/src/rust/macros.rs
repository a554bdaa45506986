//! Which proc-macros a crate's compile may run, and whether the cache may
//! serve it.
//!
//! A proc-macro is code that runs inside rustc. One that reads a data file
//! or an environment variable while expanding (`include_dir!`, a template
//! engine, a SQL checker) makes output the key does not cover: rustc's
//! dep-info lists only what a macro declares through the unstable
//! `tracked_path`/`tracked_env`, and cargo's `rerun-if-*` are the build
//! script's. A hit would give a second checkout the first one's code. So
//! a compile that may run a proc-macro not known to be pure passes
//! through.
//!
//! Which macros a compile may run: those of its `--extern` proc-macro
//! libraries, and, since a library can re-export them (`serde` re-exports
//! `serde_derive`'s derives), those its `--extern` libraries may run,
//! transitively. Each compile the wrapper sees writes that set for its own
//! outputs, before rustc starts (cargo starts the dependents once the
//! outputs are there), in a record beside them:
//! `<out-dir>/.cleave-macros/<name><extra>`, a JSON list of the macros not
//! known to be pure. A library without a record (built without the
//! wrapper) may run anything. Cargo's `-C extra-filename` hash changes
//! with the library's dependencies, so a record never outlives the set it
//! describes.
//!
//! Known to be pure: a proc-macro on [`PURE`] (derives and attributes that
//! only transform their tokens) built from a registry or vendored source
//! (a crate of that name in a path dependency is not trusted), or one a
//! user names in `CLEAVE_PURE_PROC_MACROS` (which says "trust me").

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::rust::args::Crate;

/// Where the records are, in an out dir.
const RECORDS: &str = ".cleave-macros";

/// A record is a short list of names; a longer one is no record.
const RECORD_MAX: u64 = 64 * 1024;

/// Proc-macro crates (by library name) whose expansion depends on their
/// input tokens only, and on no file, no clock, and no variable but those
/// cargo sets for the crate (clap_derive reads `CARGO_PKG_VERSION`), which
/// are in the key. Each was read for `std::env`, `std::fs`, the clock and
/// processes; `strum_macros` (prints its output when `STRUM_DEBUG` is set)
/// and `rustversion` (reads the clock for a nightly without a date) are
/// not on it.
pub const PURE: &[&str] = &[
    "async_trait",
    "clap_derive",
    "displaydoc",
    "futures_macro",
    "pin_project_internal",
    "serde_derive",
    "thiserror_impl",
    "tokio_macros",
    "tracing_attributes",
    "yoke_derive",
    "zerocopy_derive",
    "zerofrom_derive",
    "zerovec_derive",
];

/// The proc-macros a user declares pure (`CLEAVE_PURE_PROC_MACROS`:
/// library names separated by commas or spaces, `*` for all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trusted {
    names: Vec<String>,
    all: bool,
}

impl Trusted {
    /// Reads the variable's value.
    pub fn parse(text: &str) -> Trusted {
        let names: Vec<String> = text
            .split([',', ' '])
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| n.replace('-', "_"))
            .collect();
        Trusted {
            all: names.iter().any(|n| n == "*"),
            names,
        }
    }

    fn trusts(&self, name: &str) -> bool {
        self.all || self.names.iter().any(|n| n == name)
    }
}

/// The macros a compile of `krate` (in `cwd`) may run that are not known
/// to be pure: those its externs' records list (a macro crate's own name
/// when it is not pure), and, for an extern without a record, the
/// extern's name marked as such. Sorted, each once.
pub fn impure(krate: &Crate, cwd: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for (name, path) in &krate.externs {
        let path = cwd.join(path);
        match read_record(&path) {
            Some(names) => found.extend(names),
            None => found.push(format!("{name} (built without the cache)")),
        }
    }
    found.sort();
    found.dedup();
    found
}

/// What of `impure` the user does not vouch for.
pub fn untrusted(impure: Vec<String>, trusted: &Trusted) -> Vec<String> {
    impure.into_iter().filter(|n| !trusted.trusts(n)).collect()
}

/// Writes the record of `krate`'s outputs: for a proc-macro, its own name
/// unless it is known to be pure (on [`PURE`] and from a registry or
/// vendored source; `cargo_home` holds the registry), else what its
/// compile may run (`impure`). Best effort: without a record, the
/// dependents pass through.
pub fn write_record(krate: &Crate, cwd: &Path, cargo_home: Option<&Path>, impure: &[String]) {
    let names: Vec<String> = if krate.types.iter().any(|t| t == "proc-macro") {
        let pure = PURE.contains(&krate.name.as_str())
            && from_a_registry(&cwd.join(&krate.source), &krate.name, cargo_home);
        if pure {
            Vec::new()
        } else {
            vec![krate.name.clone()]
        }
    } else {
        impure.to_vec()
    };
    let dir = cwd.join(&krate.out_dir).join(RECORDS);
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(&dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
        serde_json::to_writer(&mut tmp, &names)?;
        tmp.flush()?;
        tmp.persist(dir.join(format!("{}{}", krate.name, krate.extra_filename)))
            .map_err(|e| e.error)?;
        Ok(())
    };
    let _ = write();
}

/// The record of a library at `path` (`lib<name><extra>.rlib`, `.rmeta`,
/// `.so`, ...): the list of names, or none when there is no readable one.
fn read_record(path: &Path) -> Option<Vec<String>> {
    let dir = path.parent()?;
    let file = path.file_name()?.to_str()?;
    let file = file.strip_prefix("lib").unwrap_or(file);
    let stem = file.split_once('.').map_or(file, |(stem, _)| stem);
    let record = dir.join(RECORDS).join(stem);
    let meta = std::fs::symlink_metadata(&record).ok()?;
    if !meta.is_file() || meta.len() > RECORD_MAX {
        return None;
    }
    let mut text = Vec::new();
    std::fs::File::open(&record)
        .ok()?
        .take(RECORD_MAX)
        .read_to_end(&mut text)
        .ok()?;
    serde_json::from_slice(&text).ok()
}

/// Whether `source` (a crate's root file) is in a package extracted from a
/// registry into `cargo_home` (`registry/src/<index>/<name>-<version>/`)
/// or vendored (`cargo vendor` writes `.cargo-checksum.json`, which cargo
/// checks), for the package of library `name`.
fn from_a_registry(source: &Path, name: &str, cargo_home: Option<&Path>) -> bool {
    let Some(package) = source
        .ancestors()
        .skip(1)
        .find(|dir| dir.join("Cargo.toml").is_file())
    else {
        return false;
    };
    let dir_name = package
        .file_name()
        .map(|n| n.to_string_lossy().replace('-', "_"))
        .unwrap_or_default();
    let named = dir_name == name
        || dir_name
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('_'))
            .is_some_and(|version| version.starts_with(|c: char| c.is_ascii_digit()));
    if !named {
        return false;
    }
    let registry: Option<PathBuf> = cargo_home.map(|home| home.join("registry").join("src"));
    let extracted = registry
        .as_deref()
        .is_some_and(|src| package.parent().and_then(Path::parent) == Some(src));
    extracted || package.join(".cargo-checksum.json").is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn krate(line: &str) -> Crate {
        let args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        crate::rust::args::analyze(&args).unwrap()
    }

    fn proc_macro(name: &str, source: &str, out: &Path) -> Crate {
        krate(&format!(
            "--crate-name {name} {source} --crate-type proc-macro --emit=dep-info,link \
             -C extra-filename=-1 --out-dir {}",
            out.display()
        ))
    }

    #[test]
    fn a_pure_macro_from_the_registry_is_trusted_and_a_local_one_of_that_name_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let out = tmp.path().join("target/debug/deps");
        let package = |dir: &Path| {
            std::fs::create_dir_all(dir.join("src")).unwrap();
            std::fs::write(dir.join("Cargo.toml"), "").unwrap();
            std::fs::write(dir.join("src/lib.rs"), "").unwrap();
            dir.join("src/lib.rs").display().to_string()
        };
        let registry = package(&home.join("registry/src/index-1/serde_derive-1.0.219"));
        let local = package(&tmp.path().join("ws/serde_derive"));
        let mine = package(&tmp.path().join("ws/reads_files"));
        let user = |macro_file: &str| {
            krate(&format!(
                "--crate-name app src/main.rs --crate-type bin --emit=dep-info,link \
                 -C extra-filename=-2 --out-dir {} --extern m={}/{macro_file}",
                out.display(),
                out.display()
            ))
        };
        let cwd = tmp.path();
        write_record(
            &proc_macro("serde_derive", &registry, &out),
            cwd,
            Some(&home),
            &[],
        );
        assert!(impure(&user("libserde_derive-1.so"), cwd).is_empty());
        write_record(
            &proc_macro("serde_derive", &local, &out),
            cwd,
            Some(&home),
            &[],
        );
        assert_eq!(impure(&user("libserde_derive-1.so"), cwd), ["serde_derive"]);
        write_record(
            &proc_macro("reads_files", &mine, &out),
            cwd,
            Some(&home),
            &[],
        );
        let found = impure(&user("libreads_files-1.so"), cwd);
        assert_eq!(found, ["reads_files"]);
        assert!(untrusted(found.clone(), &Trusted::parse("reads-files, x")).is_empty());
        assert_eq!(untrusted(found, &Trusted::parse("other")), ["reads_files"]);
        assert_eq!(
            impure(&user("libunknown-9.rlib"), cwd),
            ["m (built without the cache)"]
        );
    }

    #[test]
    fn a_library_passes_on_the_macros_its_dependencies_may_run() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("deps");
        let lib = |name: &str, extern_: &str| {
            krate(&format!(
                "--crate-name {name} src/lib.rs --crate-type lib --emit=dep-info,metadata,link \
                 -C extra-filename=-3 --out-dir {} --extern d={}/{extern_}",
                out.display(),
                out.display()
            ))
        };
        let cwd = tmp.path();
        let macro_crate = proc_macro("reads_env", "m/src/lib.rs", &out);
        write_record(&macro_crate, cwd, None, &[]);
        // `reexports` uses the macro, `top` uses `reexports` only.
        let reexports = lib("reexports", "libreads_env-1.so");
        let found = impure(&reexports, cwd);
        write_record(&reexports, cwd, None, &found);
        let top = lib("top", "libreexports-3.rmeta");
        assert_eq!(impure(&top, cwd), ["reads_env"]);
    }
}
