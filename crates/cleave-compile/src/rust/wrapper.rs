//! One rustc call, as cargo makes it through `RUSTC_WRAPPER`.
//!
//! ```text
//! args ── uncacheable ──────────────────────────────────▶ run rustc as asked
//!   │
//!   ├─ key: rustc, args and env without roots, externs by content,
//!   │       the root source ─▶ manifest: a candidate whose files and
//!   │                          variables all match ─▶ restore: hit
//!   └─ compile with the roots remapped ─▶ dep-info: the files read
//!        ─▶ store the outputs and a candidate: miss
//! ```
//!
//! Like the C wrapper, it never fails a build: what goes wrong before
//! rustc runs is counted and rustc runs as asked.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use cleave_cache::store::{Capture, Select, Target, TreeSource};
use cleave_cache::{CacheError, Digest, ErrorKind, Inputs, Store};
use serde::{Deserialize, Serialize};

use crate::compiler;
use crate::entries::{Printed, fits, link_or_copy};
use crate::error::CompileError;
use crate::files::Files;
use crate::remote::{Shared, Warnings};
use crate::roots::{CANONICAL_PARENT, Roots};
use crate::rust::args::{self, Crate, Uncacheable};
use crate::rust::key::{self, DepInfo};
use crate::rust::macros;
use crate::stats::{self, MissReason, Mode, Outcome};
use crate::wrapper::{Config, exec, exit_code, now_ns, replay};

/// Bumped when the meaning of a Rust entry changes.
const FORMAT: &str = "cleave-rust 1";
/// `extra.kind` of a Rust compile's outputs.
pub const KIND_RESULT: &str = "rust";
/// `extra.kind` of a Rust manifest (the files earlier compiles read).
pub const KIND_MANIFEST: &str = "rust-manifest";
/// How many sets of files read a manifest remembers.
const CANDIDATES: usize = 8;

/// Where the Rust counts live, below the compile cache's state.
pub fn stats_dir(state: &Path) -> PathBuf {
    state.join("rust")
}

/// Whether `program` (cargo's first argument to a wrapper) is a rustc.
pub fn is_rustc(program: &Path) -> bool {
    program
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == "rustc" || n.starts_with("rustc-"))
}

/// Runs a call that goes through another wrapper below cleave (cargo's
/// `RUSTC_WORKSPACE_WRAPPER`, as `cargo clippy` sets it): `wrapper` decides
/// what rustc does, so it runs as asked, counted as uncacheable.
pub fn run_other(wrapper: &Path, args: &[OsString], config: &Config) -> i32 {
    if config.enabled && !config.nested {
        stats::record(
            &stats_dir(&config.state),
            &Outcome::Uncacheable(Uncacheable::OtherWrapper.to_string()),
            0,
        );
    }
    exec(wrapper, args)
}

/// One earlier compile under a key: what it read, what it gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Candidate {
    /// Each file read (normalised path) with its digest.
    files: Vec<(String, Digest)>,
    /// Each variable read, with its normalised, escaped value.
    env: Vec<(String, Option<String>)>,
    /// The result's key.
    result: Digest,
}

/// Serves one call of `rustc`; returns the exit status to exit with.
pub fn run(rustc: &Path, args: &[OsString], config: &Config) -> i32 {
    let started = Instant::now();
    if config.nested || !config.enabled {
        return exec(rustc, args);
    }
    let state = stats_dir(&config.state);
    let record = |outcome: &Outcome| {
        stats::record(&state, outcome, started.elapsed().as_micros() as u64);
    };
    let text: Option<Vec<String>> = args
        .iter()
        .map(|a| a.to_str().map(str::to_string))
        .collect();
    let krate = match text.ok_or(Uncacheable::NotUtf8).and_then(|a| {
        let krate = args::analyze(&a)?;
        Ok((krate, a))
    }) {
        Ok(pair) => pair,
        Err(why) => {
            record(&Outcome::Uncacheable(why.to_string()));
            return exec(rustc, args);
        }
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    let roots = key::roots(&config.roots, &krate.0, &cwd);
    // Written before rustc runs, whatever comes of this call: cargo starts
    // the dependents once the outputs are there, and they read it.
    let impure = macros::impure(&krate.0, &cwd);
    let cargo_home = roots.path_of("cargo_home").map(Path::new);
    macros::write_record(&krate.0, &cwd, cargo_home, &impure);
    if let Some(name) = macros::untrusted(impure, &config.pure_proc_macros).first() {
        record(&Outcome::Uncacheable(
            Uncacheable::ProcMacro(name.clone()).to_string(),
        ));
        return exec(rustc, args);
    }
    let call = Call {
        config,
        rustc,
        roots,
        krate: krate.0,
        args: krate.1,
        cwd,
        started,
        started_ns: now_ns(),
    };
    match call.serve() {
        Ok((outcome, code)) => {
            record(&outcome);
            code
        }
        Err(e) => {
            record(&Outcome::Error(e.chain()));
            exec(rustc, args)
        }
    }
}

struct Call<'a> {
    config: &'a Config,
    rustc: &'a Path,
    krate: Crate,
    args: Vec<String>,
    roots: Roots,
    cwd: PathBuf,
    started: Instant,
    started_ns: i64,
}

impl Call<'_> {
    fn serve(&self) -> Result<(Outcome, i32), CompileError> {
        let store = Store::open(&self.config.store)?;
        let mut files = Files::new(
            self.config.state.join("files"),
            self.cwd.clone(),
            self.config.build_start_ns,
        );
        let inputs = self.inputs(&mut files)?;
        let key = inputs.key();
        let mut shared = Shared::new(
            self.config,
            &stats_dir(&self.config.state),
            Warnings::Stderr,
        );
        let local = candidates(&store, &key);
        let mut reason = if local.is_empty() {
            MissReason::New
        } else {
            MissReason::SourcesChanged
        };
        let mut found = self.first_match((&store, &inputs), &mut shared, &local, &mut files);
        // Then what helpers and remotes learnt from other machines'
        // compiles under this key; read even when a local candidate stopped
        // the search, so that the manifest pushed after the compile keeps
        // them.
        let mut remote = Vec::new();
        if found.is_err() && shared.active() {
            remote = shared
                .fetch_extra(&store, &key, (&self.label(), &inputs))
                .and_then(|extra| serde_json::from_value(extra["candidates"].clone()).ok())
                .unwrap_or_default();
            remote.retain(|c: &Candidate| !local.contains(c));
            if matches!(found, Err(None)) {
                if !remote.is_empty() {
                    reason = MissReason::SourcesChanged;
                }
                found = self.first_match((&store, &inputs), &mut shared, &remote, &mut files);
                if let Ok((i, _)) = found {
                    // Remembered here, so the next build finds it locally.
                    let candidate = remote[i].clone();
                    let _ = add_candidate(&store, &key, &inputs, &self.label(), candidate, &[]);
                }
            }
        }
        match found {
            Ok((_, compile_us)) => {
                files.save();
                // Marks the manifest used, for the LRU eviction.
                if let Ok(Some(manifest)) = store.get(&key) {
                    let _ = manifest.restore(&[], &[]);
                }
                let took = self.started.elapsed().as_micros() as u64;
                let saved_us = compile_us.saturating_sub(took);
                return Ok((
                    Outcome::Hit {
                        mode: Mode::Direct,
                        saved_us,
                    },
                    0,
                ));
            }
            Err(Some(why)) => reason = why,
            Err(None) => {}
        }
        files.save();

        let begun = Instant::now();
        let (ok, printed, code) = self.compile()?;
        let compile_us = begun.elapsed().as_micros() as u64;
        if !ok {
            replay(&printed);
            return Ok((Outcome::Failed, code));
        }
        let stored = self.store(
            &store,
            (&inputs, &key),
            &printed,
            compile_us,
            &remote,
            &mut files,
        );
        replay(&printed);
        files.save();
        Ok(match stored {
            Ok(Some(result)) => {
                shared.push(&store, &result);
                shared.replace(&store, &key);
                (Outcome::Miss { reason, compile_us }, 0)
            }
            Ok(None) => (
                Outcome::Uncacheable("source changed during the compile".into()),
                0,
            ),
            Err(e) => (Outcome::Error(e.chain()), 0),
        })
    }

    /// The key's inputs: what the crate reads besides its source files.
    fn inputs(&self, files: &mut Files) -> Result<Inputs, CompileError> {
        let roots = &self.roots;
        let rustc = key::rustc(self.rustc, &self.config.state)?;
        let mut inputs = Inputs::new();
        inputs.insert("format", FORMAT);
        inputs.insert("rustc", rustc.version);
        inputs.insert("rustc.executable", rustc.executable);
        inputs.insert("rustc.sysroot", rustc.sysroot);
        let normalized: Vec<String> = self
            .args
            .iter()
            .map(|a| roots.normalize(a).into_owned())
            .collect();
        inputs.insert(
            "args",
            serde_json::to_string(&normalized).unwrap_or_default(),
        );
        inputs.insert("cwd", roots.normalize(&self.cwd.to_string_lossy()));
        for (name, value) in key::environment(roots) {
            inputs.insert(format!("env.{name}"), value);
        }
        let digest = |files: &mut Files, path: &Path| {
            files
                .info(path)
                .map(|i| i.digest.to_hex())
                .map_err(CompileError::io(format!("reading {}", path.display())))
        };
        for (name, path) in &self.krate.externs {
            inputs.insert(
                format!("extern.{name}.{}", roots.normalize(path)),
                digest(files, Path::new(path))?,
            );
        }
        inputs.insert(
            "source.digest",
            digest(files, Path::new(&self.krate.source))?,
        );
        // rustc copies static libraries into an rlib; a build script that
        // rebuilt one changes the rlib without changing an argument.
        let search = self.krate.native_search();
        for (arg, file) in self.krate.static_libraries() {
            let found = search
                .iter()
                .map(|dir| self.cwd.join(dir).join(&file))
                .find(|path| path.is_file())
                .ok_or_else(|| {
                    CompileError::io(format!("finding {file} for -l {arg}"))(
                        std::io::ErrorKind::NotFound.into(),
                    )
                })?;
            inputs.insert(format!("native.{arg}"), digest(files, &found)?);
        }
        // A `#[link(kind = "static")]` in the source names an archive no
        // argument does: every archive in a search dir of this build (a
        // build script's `OUT_DIR`) is in the key. Dirs outside the roots
        // (the system's) are not read.
        for dir in &search {
            let path = self.cwd.join(dir);
            let path_text = path.to_string_lossy();
            let normalized = roots.normalize(&path_text);
            if matches!(normalized, std::borrow::Cow::Borrowed(_)) {
                continue;
            }
            let mut archives = Vec::new();
            for (name, file) in key::archives(&path)? {
                archives.push((name, digest(files, &file)?));
            }
            inputs.insert(
                format!("native-dir.{normalized}"),
                serde_json::to_string(&archives).unwrap_or_default(),
            );
        }
        if self.krate.links {
            let name = self.krate.linker.as_deref().unwrap_or("cc");
            let linker = compiler::find(name.as_ref(), self.config.masquerade.as_deref())?;
            let real = std::fs::canonicalize(&linker)
                .map_err(CompileError::io(format!("reading {}", linker.display())))?;
            inputs.insert("linker", digest(files, &real)?);
        }
        Ok(inputs)
    }

    /// The first of `list` whose files and variables are as they were,
    /// restored: its place in the list and the compile time it saves. A
    /// result this store lacks is asked of the helpers and remotes, with
    /// its inputs (those of the call's key, `inputs`, and the candidate's).
    /// `Err(None)`: none could serve; `Err(Some(why))`: stop looking,
    /// compile.
    fn first_match(
        &self,
        (store, inputs): (&Store, &Inputs),
        shared: &mut Shared,
        list: &[Candidate],
        files: &mut Files,
    ) -> Result<(usize, u64), Option<MissReason>> {
        for (i, candidate) in list.iter().enumerate() {
            if !self.matches(candidate, files) {
                continue;
            }
            let mut restored = self.restore(store, &candidate.result);
            let named = result_inputs(inputs, &candidate.files, &candidate.env);
            if matches!(restored, Err(None))
                && shared.fetch(store, &candidate.result, Some((&self.label(), &named)))
            {
                restored = self.restore(store, &candidate.result);
                if restored.is_ok() {
                    shared.served();
                }
            }
            match restored {
                Ok(compile_us) => return Ok((i, compile_us)),
                Err(Some(why)) => return Err(Some(why)),
                Err(None) => {}
            }
        }
        Err(None)
    }

    /// The name the crate's entries get.
    fn label(&self) -> String {
        format!("{}{}", self.krate.name, self.krate.extra_filename)
    }

    /// Whether every file and variable of a candidate is as it was.
    fn matches(&self, candidate: &Candidate, files: &mut Files) -> bool {
        let env_ok = candidate
            .env
            .iter()
            .all(|(name, value)| self.env_value(name) == *value);
        env_ok
            && candidate.files.iter().all(|(path, digest)| {
                self.roots
                    .resolve(path)
                    .and_then(|p| files.info(Path::new(&p)).ok())
                    .is_some_and(|info| info.digest == *digest)
            })
    }

    /// A variable's value as a candidate holds it.
    fn env_value(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .map(|v| self.roots.normalize(&key::escape_env(&v)).into_owned())
    }

    /// Runs rustc with the roots remapped; returns whether it succeeded,
    /// what it printed (with this checkout's paths) and its exit status.
    fn compile(&self) -> Result<(bool, Printed, i32), CompileError> {
        // The most specific root last: rustc applies the last match.
        let remaps = self
            .roots
            .pairs()
            .into_iter()
            .rev()
            .flat_map(|(name, path)| {
                [
                    "--remap-path-prefix".to_string(),
                    format!("{}={CANONICAL_PARENT}/{name}", path.display()),
                ]
            });
        let out = compiler::output(
            Command::new(self.rustc)
                .args(&self.args)
                .args(remaps)
                .stdin(Stdio::null()),
            self.rustc,
        )?;
        let code = exit_code(out.status);
        Ok((
            out.status.success(),
            Printed {
                stdout: self.unmap(&out.stdout),
                stderr: self.unmap(&out.stderr),
            },
            code,
        ))
    }

    /// Messages with the canonical paths of the roots put back to this
    /// checkout's (a warning in a registry crate names its file).
    fn unmap(&self, bytes: &[u8]) -> Vec<u8> {
        let mut pairs = self.roots.pairs();
        pairs.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
        let mut text = String::from_utf8_lossy(bytes).into_owned();
        for (name, path) in pairs {
            text = text.replace(
                &format!("{CANONICAL_PARENT}/{name}"),
                &path.to_string_lossy(),
            );
        }
        text.into_bytes()
    }

    /// Stores the outputs and a candidate first in the manifest of `key`,
    /// before the local ones and then `others` (a remote's); the result's
    /// key, or none when a file the crate read changed while it compiled
    /// (the entry could be wrong).
    fn store(
        &self,
        store: &Store,
        (inputs, key): (&Inputs, &Digest),
        printed: &Printed,
        compile_us: u64,
        others: &[Candidate],
        files: &mut Files,
    ) -> Result<Option<Digest>, CompileError> {
        let dep_info = self.cwd.join(self.krate.dep_info());
        let text = std::fs::read_to_string(&dep_info)
            .map_err(CompileError::io(format!("reading {}", dep_info.display())))?;
        let DepInfo { files: read, env } = key::parse_dep_info(&text);
        let mut digests = Vec::with_capacity(read.len());
        for path in &read {
            let path = self.cwd.join(path);
            let info = files
                .info(&path)
                .map_err(CompileError::io(format!("reading {}", path.display())))?;
            if info.changed_ns >= self.started_ns {
                return Ok(None);
            }
            let normalized = self.roots.normalize(&path.to_string_lossy()).into_owned();
            digests.push((normalized, info.digest));
        }
        let env: Vec<(String, Option<String>)> = env
            .into_iter()
            .map(|(name, value)| {
                let value = value.map(|v| self.roots.normalize(&v).into_owned());
                (name, value)
            })
            .collect();
        let result = result_inputs(inputs, &digests, &env);
        let result_key = result.key();

        let out_dir = self.cwd.join(&self.krate.out_dir);
        let staging = Staging::new(&out_dir)?;
        let since = SystemTime::now() - self.started.elapsed() - Duration::from_secs(1);
        let entries = std::fs::read_dir(&out_dir)
            .map_err(CompileError::io(format!("reading {}", out_dir.display())))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let fresh = entry
                .metadata()
                .is_ok_and(|m| m.is_file() && m.modified().is_ok_and(|t| t >= since));
            if fresh && self.krate.owns(&name.to_string_lossy()) {
                link_or_copy(&entry.path(), &staging.out().join(&name))?;
            }
        }
        for (name, bytes) in [("stdout", &printed.stdout), ("stderr", &printed.stderr)] {
            let path = staging.printed().join(name);
            std::fs::write(&path, bytes)
                .map_err(CompileError::io(format!("writing {}", path.display())))?;
        }
        let label = self.label();
        if !store.contains(&result_key) {
            store.put(&Capture {
                name: &label,
                inputs: &result,
                trees: vec![
                    TreeSource {
                        name: "out",
                        dir: &staging.out(),
                        select: Select::All,
                    },
                    TreeSource {
                        name: "printed",
                        dir: &staging.printed(),
                        select: Select::All,
                    },
                ],
                roots: self.roots.pairs(),
                extra: serde_json::json!({"kind": KIND_RESULT, "compile_us": compile_us}),
            })?;
        }
        add_candidate(
            store,
            key,
            inputs,
            &label,
            Candidate {
                files: digests,
                env,
                result: result_key,
            },
            others,
        )?;
        Ok(Some(result_key))
    }

    /// Puts the outputs stored under `result` in the out dir, with the
    /// time of now (cargo compares it with the sources'), and prints what
    /// rustc printed. `Err(None)`: no such entry; `Err(Some(why))`: it
    /// cannot serve, compile.
    fn restore(&self, store: &Store, result: &Digest) -> Result<u64, Option<MissReason>> {
        let entry = match store.get(result) {
            Ok(Some(entry)) => entry,
            Ok(None) => return Err(None),
            Err(e) => return Err(missed(store, result, &e)),
        };
        let listing = entry.manifest().map_err(|e| missed(store, result, &e))?;
        // A binary output holding a root's path (`env!("CARGO_MANIFEST_DIR")`)
        // can only take a path of the same length.
        if !fits(&listing, &self.roots) {
            return Err(Some(MissReason::Relocation));
        }
        let out_dir = self.cwd.join(&self.krate.out_dir);
        let staging = Staging::new(&out_dir).map_err(|_| None)?;
        let restored = entry.restore(
            &[
                Target {
                    tree: "out",
                    dir: &staging.out(),
                    select: Select::All,
                },
                Target {
                    tree: "printed",
                    dir: &staging.printed(),
                    select: Select::All,
                },
            ],
            &self.roots.pairs(),
        );
        if let Err(e) = restored {
            return Err(missed(store, result, &e));
        }
        // A compile's outputs are regular files: a link in an entry (one a
        // remote or helper made up) is not followed out of the target dir.
        let Ok(outputs) = std::fs::read_dir(staging.out())
            .and_then(|entries| entries.collect::<std::io::Result<Vec<_>>>())
        else {
            return Err(None);
        };
        let printed = Printed::read(&staging.printed());
        let (true, Some(printed)) = (
            outputs
                .iter()
                .all(|e| e.file_type().is_ok_and(|t| t.is_file())),
            printed,
        ) else {
            let _ = store.remove(result);
            return Err(Some(MissReason::Damaged));
        };
        let placed = outputs.iter().try_for_each(|entry| {
            let from = entry.path();
            std::fs::File::options()
                .write(true)
                .open(&from)?
                .set_modified(SystemTime::now())?;
            std::fs::rename(&from, out_dir.join(entry.file_name()))
        });
        if placed.is_err() {
            return Err(None);
        }
        replay(&printed);
        Ok(entry.meta().extra["compile_us"].as_u64().unwrap_or(0))
    }
}

/// The inputs of a result's key: those of the call's key, and what the
/// compile read.
fn result_inputs(
    inputs: &Inputs,
    files: &[(String, Digest)],
    env: &[(String, Option<String>)],
) -> Inputs {
    let mut result = inputs.clone();
    result.insert("files", serde_json::to_string(files).unwrap_or_default());
    result.insert("env", serde_json::to_string(env).unwrap_or_default());
    result
}

/// What a store error on the way to the result under `key` means: a
/// damaged entry is dropped and compiled again, one that cannot take this
/// checkout's paths is compiled again, anything else is no entry.
fn missed(store: &Store, key: &Digest, e: &CacheError) -> Option<MissReason> {
    match e.kind() {
        ErrorKind::Damaged => {
            let _ = store.remove(key);
            Some(MissReason::Damaged)
        }
        ErrorKind::Unusable => Some(MissReason::Relocation),
        _ => None,
    }
}

/// The candidates under `key`, newest first.
fn candidates(store: &Store, key: &Digest) -> Vec<Candidate> {
    store
        .get(key)
        .ok()
        .flatten()
        .and_then(|entry| serde_json::from_value(entry.meta().extra["candidates"].clone()).ok())
        .unwrap_or_default()
}

/// Puts `candidate` first in the manifest under `key`, then the ones it
/// holds, then `others` (entries are immutable: the manifest is replaced).
fn add_candidate(
    store: &Store,
    key: &Digest,
    inputs: &Inputs,
    name: &str,
    candidate: Candidate,
    others: &[Candidate],
) -> Result<(), CompileError> {
    let mut list = candidates(store, key);
    if list.first() == Some(&candidate) && others.iter().all(|c| list.contains(c)) {
        return Ok(());
    }
    list.insert(0, candidate);
    list.extend(others.iter().cloned());
    let mut seen = Vec::with_capacity(list.len());
    list.retain(|c| {
        let new = !seen.contains(c);
        if new {
            seen.push(c.clone());
        }
        new
    });
    list.truncate(CANDIDATES);
    store.remove(key)?;
    debug_assert_eq!(inputs.key(), *key);
    store.put(&Capture {
        name,
        inputs,
        trees: Vec::new(),
        roots: Vec::new(),
        extra: serde_json::json!({"kind": KIND_MANIFEST, "candidates": list}),
    })?;
    Ok(())
}

/// A scratch directory in the out dir (on its file system, so outputs
/// move in by renaming), with `out/` and `printed/`.
struct Staging(tempfile::TempDir);

impl Staging {
    fn new(out_dir: &Path) -> Result<Staging, CompileError> {
        let io = CompileError::io(format!("creating a directory in {}", out_dir.display()));
        let dir = tempfile::Builder::new()
            .prefix(".cleave-rust-")
            .tempdir_in(out_dir)
            .map_err(io)?;
        for sub in ["out", "printed"] {
            std::fs::create_dir(dir.path().join(sub)).map_err(CompileError::io(format!(
                "creating a directory in {}",
                dir.path().display()
            )))?;
        }
        Ok(Staging(dir))
    }

    fn out(&self) -> PathBuf {
        self.0.path().join("out")
    }

    fn printed(&self) -> PathBuf {
        self.0.path().join("printed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_s_first_argument_is_recognised_as_rustc() {
        for yes in [
            "rustc",
            "/home/u/.rustup/toolchains/stable/bin/rustc",
            "rustc-1.95",
        ] {
            assert!(is_rustc(Path::new(yes)), "{yes}");
        }
        for no in [
            "cc",
            "build",
            "/usr/bin/clippy-driver",
            "rustc_wrapper",
            "myrustc",
        ] {
            assert!(!is_rustc(Path::new(no)), "{no}");
        }
    }
}
