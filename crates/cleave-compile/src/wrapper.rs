//! One compiler call, from its arguments to the compiler's exit status.
//!
//! ```text
//! args ── uncacheable ───────────────────────────────▶ run the compiler as asked
//!   │
//!   ├─ direct key: compiler, flags, source digest ─▶ manifest: a candidate whose
//!   │                                                 files all match ─▶ restore: hit
//!   ├─ preprocessor: normalised text ─▶ result key ─▶ restore: hit (+ candidate)
//!   └─ compile with the roots mapped ─▶ store the result and a candidate: miss
//! ```
//!
//! The cache never fails a build: whatever goes wrong before the compiler
//! runs is counted and the compiler runs as asked; whatever goes wrong
//! after only loses the entry.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use cleave_cache::{Inputs, Store};

use crate::args::{self, Compile, Uncacheable};
use crate::compiler::{self, Compiler, Family};
use crate::entries::{Candidate, Entries, NewResult, NotRestored, Outputs, Printed};
use crate::error::CompileError;
use crate::files::{Files, TimeMacros};
use crate::preprocess;
use crate::remote::{Levels, Shared, Warnings, read_levels};
use crate::roots::{self, Roots};
use crate::rust::macros::Trusted;
use crate::stats::{self, MissReason, Mode, Outcome};
use crate::vars;

/// Bumped when the meaning of a compile entry changes.
/// 2: direct-mode candidates made before time macros were read from the
/// compiler's reports must not serve.
const FORMAT: &str = "cleave-compile 2";

/// How the wrapper was called: the compiler (a name looked up on `PATH`,
/// or a path) and its arguments.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The compiler.
    pub compiler: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
}

/// Where the cache is, and what the environment says.
#[derive(Debug, Clone)]
pub struct Config {
    /// The store compile entries go to.
    pub store: PathBuf,
    /// The compile cache's own files: file indexes, compiler profiles,
    /// stats.
    pub state: PathBuf,
    /// Directories whose paths keys do not hold.
    pub roots: Roots,
    /// When the build started (ns since the epoch).
    pub build_start_ns: Option<i64>,
    /// The masquerade directory to skip on `PATH`.
    pub masquerade: Option<PathBuf>,
    /// False: every call passes through uncounted.
    pub enabled: bool,
    /// A wrapper below a wrapper: passes through uncounted.
    pub nested: bool,
    /// `SOURCE_DATE_EPOCH`.
    pub source_date_epoch: Option<String>,
    /// Cache helpers and remote stores asked after the local store
    /// misses, in order; what is compiled is handed to them.
    pub levels: Levels,
    /// Proc-macros the user declares pure (Rust).
    pub pure_proc_macros: Trusted,
}

impl Config {
    /// The settings of the wrapper's environment (see [`crate::vars`]),
    /// with the store and state directories the caller resolved.
    pub fn from_env(store: PathBuf, state: PathBuf) -> Config {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut roots = Roots::parse(&var(vars::ROOTS).unwrap_or_default());
        if let (Some(bases), Ok(cwd)) = (var(vars::BASE_DIR), std::env::current_dir()) {
            roots = roots.with_bases(&bases, &cwd);
        }
        Config {
            store,
            state,
            roots,
            build_start_ns: var(vars::BUILD_START).and_then(|v| v.parse().ok()),
            masquerade: var(vars::MASQUERADE).map(PathBuf::from),
            enabled: !var(vars::SWITCH).is_some_and(|v| {
                matches!(
                    v.to_ascii_lowercase().as_str(),
                    "off" | "0" | "false" | "no"
                )
            }),
            nested: var(vars::NESTED).is_some(),
            source_date_epoch: var(vars::SOURCE_DATE_EPOCH),
            pure_proc_macros: Trusted::parse(&var(vars::PURE_PROC_MACROS).unwrap_or_default()),
            levels: var(vars::LEVELS)
                .map(|path| {
                    read_levels(Path::new(&path)).unwrap_or_else(|e| {
                        let _ = writeln!(
                            std::io::stderr(),
                            "cleave: warning: reading the cache levels in {path}: {e}; compile entries stay local"
                        );
                        Levels::default()
                    })
                })
                .unwrap_or_default(),
        }
    }
}

/// Serves one call; returns the exit status to exit with.
pub fn run(invocation: &Invocation, config: &Config) -> i32 {
    let started = Instant::now();
    let compiler = match compiler::find(&invocation.compiler, config.masquerade.as_deref()) {
        Ok(path) => path,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "cleave: {e}");
            return 127;
        }
    };
    if config.nested || !config.enabled {
        return exec(&compiler, &invocation.args);
    }
    let record = |outcome: &Outcome| {
        stats::record(&config.state, outcome, started.elapsed().as_micros() as u64);
    };
    let args: Option<Vec<String>> = invocation
        .args
        .iter()
        .map(|a| a.to_str().map(str::to_string))
        .collect();
    let plan = args
        .ok_or(Uncacheable::NotUtf8)
        .and_then(|args| args::analyze(&args))
        .and_then(check_environment);
    let plan = match plan {
        Ok(plan) => plan,
        Err(why) => {
            record(&Outcome::Uncacheable(why.to_string()));
            return exec(&compiler, &invocation.args);
        }
    };
    let mut call = Call {
        config,
        compiler: &compiler,
        args: &invocation.args,
        plan: &plan,
        started,
        started_ns: now_ns(),
        cwd: std::env::current_dir().unwrap_or_default(),
    };
    match call.serve() {
        Ok(Served::Done(outcome, code)) => {
            record(&outcome);
            code
        }
        Ok(Served::PassThrough(why)) => {
            record(&Outcome::Uncacheable(why.to_string()));
            exec(&compiler, &invocation.args)
        }
        Err(e) => {
            record(&Outcome::Error(e.chain()));
            exec(&compiler, &invocation.args)
        }
    }
}

/// Refuses what the environment makes uncacheable.
fn check_environment(plan: Compile) -> Result<Compile, Uncacheable> {
    if let Some(var) = vars::SECOND_OUTPUT_ENV
        .iter()
        .find(|v| std::env::var_os(v).is_some())
    {
        return Err(Uncacheable::Environment(var.to_string()));
    }
    if std::fs::symlink_metadata(&plan.output).is_ok_and(|m| !m.is_file()) {
        return Err(Uncacheable::OutputNotFile);
    }
    Ok(plan)
}

/// Replaces this process with the compiler, as asked.
pub(crate) fn exec(compiler: &Path, args: &[OsString]) -> i32 {
    let err = Command::new(compiler).args(args).exec();
    let _ = writeln!(
        std::io::stderr(),
        "cleave: running {}: {err}",
        compiler.display()
    );
    127
}

/// How a call ended.
enum Served {
    /// Hit or compiled: record this, exit with that.
    Done(Outcome, i32),
    /// Run the compiler as asked.
    PassThrough(Uncacheable),
}

/// One call being served.
struct Call<'a> {
    config: &'a Config,
    compiler: &'a Path,
    args: &'a [OsString],
    plan: &'a Compile,
    started: Instant,
    started_ns: i64,
    cwd: PathBuf,
}

/// The reason `cleave cache stats` counts a call served without direct
/// mode because of its time macros.
const DIRECT_OFF_TIME: &str = "time macros (__DATE__, __TIME__, __TIMESTAMP__)";

/// Whether a call expands time macros, and whether their values are fixed.
#[derive(Debug, Clone, Copy)]
struct Time {
    /// It does, or may (a file or the command line names one).
    used: bool,
    /// `SOURCE_DATE_EPOCH` fixes every one it expands.
    fixed: bool,
}

/// What the wrapper adds to a call's arguments.
struct Extra {
    /// Given to the compiler.
    run: Vec<String>,
    /// As the key holds them (see [`Roots::key_prefix_maps`]).
    key: Vec<String>,
}

/// A call's keys and what goes into them.
struct Keys {
    /// Inputs both keys share.
    common: Inputs,
    /// The name entries get.
    name: String,
}

impl Call<'_> {
    fn serve(&mut self) -> Result<Served, CompileError> {
        let config = self.config;
        let roots = &config.roots;
        let plan = self.plan;
        let store = Store::open(&config.store)?;
        let entries = Entries::new(store);
        // Results only: helpers and remotes serve calls whose preprocessed
        // text (or, remotes only, a local manifest) names a result this
        // store lacks.
        let log = Warnings::Log(config.state.join("warnings.log"));
        let mut shared = Shared::new(config, &config.state, log);
        let mut files = Files::new(
            config.state.join("files"),
            self.cwd.clone(),
            config.build_start_ns,
        );
        let compiler = compiler::identify(self.compiler, &mut files, &config.state)?;
        if compiler.profile.family == Family::Other {
            return Ok(Served::PassThrough(Uncacheable::UnknownCompiler));
        }
        if !compiler.profile.reports_time_macros {
            // Without `-Wdate-time`, a time macro pasted together or named
            // on the command line could not be seen.
            return Ok(Served::PassThrough(Uncacheable::TimeMacrosUnseen));
        }
        let clock_fixed =
            compiler.profile.honors_source_date_epoch && config.source_date_epoch.is_some();
        let extra = self.extra_flags(&compiler);
        let keys = self.keys(&compiler, &extra, &mut files)?;
        let outputs = Outputs {
            object: Path::new(&plan.output),
            deps: plan.deps.as_ref().map(|d| Path::new(d.file.as_str())),
        };

        // Direct mode.
        let source = files
            .info(Path::new(&plan.source))
            .map_err(CompileError::io(format!("reading {}", plan.source)))?;
        let written = source.macros.or(TimeMacros::in_text(&plan.flags.join(" ")));
        // Where the source or the command line names a time macro that
        // cannot be fixed, no candidate is ever made (see below): the
        // manifest is not read.
        let direct_possible =
            !written.timestamp && !written.warning && (!written.date_time || clock_fixed);
        let mut direct = keys.common.clone();
        direct.insert("mode", "direct");
        direct.insert("source.digest", source.digest.to_hex());
        let direct_key = direct.key();
        let candidates = if direct_possible {
            entries.candidates(&direct_key)
        } else {
            Vec::new()
        };
        let mut reason = if candidates.is_empty() {
            MissReason::New
        } else {
            MissReason::HeadersChanged
        };
        for candidate in &candidates {
            if !self.matches(candidate, &mut files) {
                continue;
            }
            let mut restored = entries.restore(&candidate.result, outputs, roots);
            if matches!(restored, Err(NotRestored::Absent))
                && shared.fetch(entries.as_store(), &candidate.result, None)
            {
                restored = entries.restore(&candidate.result, outputs, roots);
                if restored.is_ok() {
                    shared.served();
                }
            }
            match restored {
                Ok(restored) => {
                    entries.touch(&direct_key);
                    files.save();
                    return Ok(self.hit(Mode::Direct, restored));
                }
                Err(NotRestored::Absent) => {}
                Err(NotRestored::Miss(why)) => {
                    reason = why;
                    break;
                }
                Err(NotRestored::Error(e)) => return Err(e),
            }
        }

        // The preprocessor.
        let clock_before = unix_seconds();
        let Some(pre) = preprocess::run(self.compiler, &extra.run, plan, roots)? else {
            files.save();
            return self.compile_only(&extra.run, Uncacheable::Preprocessor);
        };
        if pre.pch {
            return Ok(Served::PassThrough(Uncacheable::PrecompiledHeader));
        }
        let mut read = Vec::with_capacity(pre.includes.len());
        let mut macros = written;
        let mut too_new = source.changed_ns >= self.started_ns;
        let mut complete = true;
        for include in &pre.includes {
            match files.info(Path::new(include)) {
                Ok(info) => {
                    macros = macros.or(info.macros);
                    too_new |= info.changed_ns >= self.started_ns;
                    read.push((roots.normalize(include).into_owned(), info.digest));
                }
                Err(_) => complete = false,
            }
        }
        files.save();
        // A call that expands a time macro (as the compiler reports it, or
        // as any file or the command line names it) has no direct-mode
        // candidate, unless the clock is fixed and the macros are those it
        // fixes (then the candidate holds the clock): the preprocessed
        // text, which holds the expansion, keys its result.
        let time = Time {
            used: pre.expanded.any || macros.any(),
            fixed: clock_fixed && !pre.expanded.timestamp && !macros.timestamp && !macros.warning,
        };
        if time.used && !time.fixed {
            stats::record_direct_off(&config.state, DIRECT_OFF_TIME);
        }
        let mut preprocessed = keys.common.clone();
        preprocessed.insert("mode", "preprocessed");
        preprocessed.insert("preprocessed", pre.digest.to_hex());
        let result_key = preprocessed.key();
        let candidate = (complete && !too_new && (!time.used || time.fixed)).then(|| Candidate {
            files: read,
            epoch: time
                .used
                .then(|| config.source_date_epoch.clone())
                .flatten(),
            result: result_key,
        });
        let remember = |candidate: Option<Candidate>| {
            if let Some(candidate) = candidate {
                let _ = entries.add_candidate(&direct_key, &direct, &keys.name, candidate);
            }
        };
        let fetched = !entries.contains(&result_key)
            && shared.fetch(
                entries.as_store(),
                &result_key,
                Some((&keys.name, &preprocessed)),
            );
        if entries.contains(&result_key) {
            match entries.restore(&result_key, outputs, roots) {
                Ok(restored) => {
                    if fetched {
                        shared.served();
                    }
                    remember(candidate);
                    return Ok(self.hit(Mode::Preprocessed, restored));
                }
                Err(NotRestored::Absent) => {}
                Err(NotRestored::Miss(why)) => reason = why,
                Err(NotRestored::Error(e)) => return Err(e),
            }
        }

        // Compile.
        let begun = Instant::now();
        let output = self.compile(&extra.run)?;
        let compile_us = begun.elapsed().as_micros() as u64;
        if !output.0 {
            replay(&output.1);
            return Ok(Served::Done(Outcome::Failed, output.2));
        }
        if time.used && !clock_fixed && unix_seconds() != clock_before {
            // The text holds the time the preprocessor saw, the object
            // perhaps a later one: stored, it could serve a later call
            // whose text shows the earlier time.
            replay(&output.1);
            return Ok(Served::Done(
                Outcome::Uncacheable(Uncacheable::TimeMacros.to_string()),
                0,
            ));
        }
        let stored = entries.store(
            &NewResult {
                inputs: &preprocessed,
                name: &keys.name,
                outputs,
                printed: &output.1,
                compile_us,
            },
            roots,
        );
        replay(&output.1);
        let outcome = match stored {
            Ok(()) => {
                remember(candidate);
                shared.push(entries.as_store(), &result_key);
                Outcome::Miss { reason, compile_us }
            }
            Err(e) => Outcome::Error(e.chain()),
        };
        Ok(Served::Done(outcome, 0))
    }

    /// The inputs every key of this call holds.
    fn keys(
        &self,
        compiler: &Compiler,
        extra: &Extra,
        files: &mut Files,
    ) -> Result<Keys, CompileError> {
        let roots = &self.config.roots;
        let plan = self.plan;
        let normalize_all = |items: &[String]| -> String {
            let list: Vec<String> = items
                .iter()
                .map(|a| roots.normalize(a).into_owned())
                .collect();
            serde_json::to_string(&list).unwrap_or_default()
        };
        let mut inputs = Inputs::new();
        inputs.insert("format", FORMAT);
        inputs.insert("compiler", compiler.digest.to_hex());
        let prefixes = plan.program_prefixes();
        let chosen = !prefixes.is_empty()
            || vars::PROGRAM_ENV
                .iter()
                .any(|v| std::env::var_os(v).is_some());
        if chosen {
            // `-B dir/` or `COMPILER_PATH` can put another cc1 or as in
            // place of the profile's: the ones this call runs are asked.
            for (what, digest) in
                compiler.chosen_programs(self.compiler, plan.language, &prefixes, files)?
            {
                inputs.insert(format!("compiler.{what}"), digest.to_hex());
            }
        } else if let Some(backend) = compiler.backend_digest(plan.language, files) {
            inputs.insert("compiler.backend", backend.to_hex());
        }
        inputs.insert("language", plan.language.as_x());
        inputs.insert("flags", normalize_all(&plan.flags));
        inputs.insert("extra", normalize_all(&extra.key));
        let source = roots.normalize(&plan.source).into_owned();
        inputs.insert("source", source.clone());
        if let Some(deps) = &plan.deps {
            let mut shape = deps.options.clone();
            shape.extend(deps.default_target.iter().cloned());
            inputs.insert("deps", normalize_all(&shape));
        }
        if plan.debug {
            // Debug information names the directory (mapped when it is
            // below a root).
            inputs.insert(
                "cwd",
                roots.normalize(&self.cwd.to_string_lossy()).into_owned(),
            );
        }
        for var in vars::COMPILER_ENV {
            if let Ok(value) = std::env::var(var) {
                inputs.insert(format!("env.{var}"), roots.normalize(&value).into_owned());
            }
        }
        Ok(Keys {
            common: inputs,
            name: roots::display(&source),
        })
    }

    /// What the wrapper adds to the compiler's arguments: the roots mapped
    /// to canonical paths, and colours when they would be on a terminal.
    fn extra_flags(&self, compiler: &Compiler) -> Extra {
        let roots = &self.config.roots;
        let style = compiler.profile.prefix_map;
        let mut extra = Extra {
            run: roots.prefix_maps(style),
            key: roots.key_prefix_maps(style),
        };
        if !self.plan.color_chosen && std::io::stderr().is_terminal() {
            for flags in [&mut extra.run, &mut extra.key] {
                flags.push("-fdiagnostics-color=always".into());
            }
        }
        extra
    }

    /// Whether every file of a candidate is as it was.
    fn matches(&self, candidate: &Candidate, files: &mut Files) -> bool {
        if candidate.epoch.is_some() && candidate.epoch != self.config.source_date_epoch {
            return false;
        }
        candidate.files.iter().all(|(path, digest)| {
            self.config
                .roots
                .resolve(path)
                .and_then(|p| files.info(Path::new(&p)).ok())
                .is_some_and(|info| info.digest == *digest)
        })
    }

    fn hit(&self, mode: Mode, restored: crate::entries::Restored) -> Served {
        replay(&restored.printed);
        let took = self.started.elapsed().as_micros() as u64;
        Served::Done(
            Outcome::Hit {
                mode,
                saved_us: restored.compile_us.saturating_sub(took),
            },
            0,
        )
    }

    /// Runs the compiler with `extra` and its own arguments; returns
    /// whether it succeeded, what it printed and its exit status.
    fn compile(&self, extra: &[String]) -> Result<(bool, Printed, i32), CompileError> {
        let out = compiler::output(
            Command::new(self.compiler)
                .args(extra)
                .args(self.args)
                .stdin(Stdio::inherit()),
            self.compiler,
        )?;
        let code = exit_code(out.status);
        Ok((
            out.status.success(),
            Printed {
                stdout: out.stdout,
                stderr: out.stderr,
            },
            code,
        ))
    }

    /// Compiles without storing: the call turned out uncacheable after
    /// its output was mapped, or its preprocessing failed.
    fn compile_only(&self, extra: &[String], why: Uncacheable) -> Result<Served, CompileError> {
        let (ok, printed, code) = self.compile(extra)?;
        replay(&printed);
        Ok(Served::Done(
            if ok {
                Outcome::Uncacheable(why.to_string())
            } else {
                Outcome::Failed
            },
            code,
        ))
    }
}

/// Prints what a compile printed.
pub(crate) fn replay(printed: &Printed) {
    let _ = std::io::stdout().write_all(&printed.stdout);
    let _ = std::io::stderr().write_all(&printed.stderr);
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// A child's exit status as a shell reports it (128 + the signal of one
/// killed by a signal), for the wrapper to exit with.
pub(crate) fn exit_code(status: std::process::ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}
