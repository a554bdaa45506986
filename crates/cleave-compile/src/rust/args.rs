//! Which rustc calls the cache serves, read from the arguments cargo
//! passes: one crate compiled into `--out-dir`, with dep-info (the list of
//! files the crate read, which keys the next call), and nothing the key
//! cannot see. Everything else passes straight through to rustc, with the
//! reason counted.

use std::fmt;

/// Why a call passes straight through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uncacheable {
    /// An argument is not UTF-8.
    NotUtf8,
    /// `-vV`, `--version`, `--help`, or no source at all.
    Query,
    /// `--print`: cargo asks for the target's settings.
    Print,
    /// The crate is read from standard input.
    Stdin,
    /// `-C incremental`: the session files are rustc's own state, which a
    /// cache cannot restore consistently.
    Incremental,
    /// A crate type the cache does not know (one a later rustc adds): its
    /// outputs could be named in ways [`Crate::owns`] misses.
    CrateType(String),
    /// No `--out-dir`, or an explicit output file (`-o`, `--emit KIND=PATH`).
    Output,
    /// `--emit` without dep-info: the files the crate reads stay unknown.
    NoDepInfo,
    /// `--emit` of something other than link, metadata and dep-info.
    Emit(String),
    /// No `-C extra-filename`, for a crate that is not a shared library:
    /// the outputs cannot be told apart from other files of the out dir.
    NoExtraFilename,
    /// Native libraries (`-l`) in a linked output, which the linker reads,
    /// or in a staticlib, whose archive takes static ones in: their
    /// contents are not in the key.
    NativeLibraries,
    /// An option the wrapper does not know: it could read a file the key
    /// does not cover.
    Unknown(String),
    /// Several source files.
    SeveralSources,
    /// Another wrapper between cleave and rustc (clippy-driver).
    OtherWrapper,
    /// The compile may run a proc-macro not known to be pure (one that
    /// could read files or variables the key does not cover).
    ProcMacro(String),
}

impl fmt::Display for Uncacheable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uncacheable::NotUtf8 => f.write_str("argument not UTF-8"),
            Uncacheable::Query => f.write_str("version, help or no source"),
            Uncacheable::Print => f.write_str("--print"),
            Uncacheable::Stdin => f.write_str("source from stdin"),
            Uncacheable::Incremental => f.write_str("incremental"),
            Uncacheable::CrateType(t) => write!(f, "crate type {t}"),
            Uncacheable::Output => f.write_str("no --out-dir or an explicit output"),
            Uncacheable::NoDepInfo => f.write_str("no dep-info emitted"),
            Uncacheable::Emit(e) => write!(f, "emit {e}"),
            Uncacheable::NoExtraFilename => f.write_str("no -C extra-filename"),
            Uncacheable::NativeLibraries => f.write_str("linked with native libraries"),
            Uncacheable::Unknown(o) => write!(f, "unknown option {o}"),
            Uncacheable::SeveralSources => f.write_str("several sources"),
            Uncacheable::OtherWrapper => f.write_str("another wrapper (RUSTC_WORKSPACE_WRAPPER)"),
            Uncacheable::ProcMacro(name) => write!(f, "proc-macro not known to be pure: {name}"),
        }
    }
}

/// One crate's compile, as the cache sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crate {
    /// `--crate-name`.
    pub name: String,
    /// The crate types (lib, rlib, proc-macro, bin, dylib, cdylib,
    /// staticlib; `--test` counts as bin).
    pub types: Vec<String>,
    /// The root source file, as given.
    pub source: String,
    /// `--out-dir`.
    pub out_dir: String,
    /// `-C extra-filename`; empty for the shared library of a path
    /// package, which cargo names plainly (`libNAME.so`) so that what
    /// loads it finds it.
    pub extra_filename: String,
    /// `--extern name=path` with a path, in order.
    pub externs: Vec<(String, String)>,
    /// `-C linker=`, when given.
    pub linker: Option<String>,
    /// Whether rustc runs the linker (an executable or a shared object):
    /// the linker is then in the key.
    pub links: bool,
    /// `-l [KIND[:MODIFIERS]=]NAME[:RENAME]`, as given.
    pub native: Vec<String>,
    /// `-L [KIND=]PATH`, as given.
    pub search: Vec<String>,
}

/// Options that take a value, in their long and short spellings.
const WITH_VALUE: &[&str] = &[
    "--crate-name",
    "--edition",
    "--error-format",
    "--json",
    "--diagnostic-width",
    "--crate-type",
    "--emit",
    "--codegen",
    "-C",
    "--out-dir",
    "-L",
    "--extern",
    "--cfg",
    "--check-cfg",
    "--cap-lints",
    "-A",
    "-W",
    "-D",
    "-F",
    "--allow",
    "--warn",
    "--deny",
    "--forbid",
    "--force-warn",
    "--target",
    "-l",
    "--color",
    "--print",
    "-o",
    "--remap-path-prefix",
    "-Z",
    "--sysroot",
    "--crate-attr",
];

/// Options without a value that change nothing the key misses.
const FLAGS: &[&str] = &["-g", "-O", "--test"];

/// Crate types whose outputs the cache stores. Each writes
/// `[lib]NAME-EXTRA.EXT` into the out dir (`.rlib`, `.rmeta`, `.so`, `.a`,
/// none for a bin), which [`Crate::owns`] recognises.
const CACHED_TYPES: &[&str] = &[
    "lib",
    "rlib",
    "proc-macro",
    "bin",
    "dylib",
    "cdylib",
    "staticlib",
];

/// Crate types whose output is linked by the system linker, like a bin.
/// A staticlib is not: rustc writes its archive itself.
const LINKED_TYPES: &[&str] = &["bin", "proc-macro", "dylib", "cdylib"];

/// The crate `args` compile, or why the call passes through.
pub fn analyze(args: &[String]) -> Result<Crate, Uncacheable> {
    let mut options: Vec<(&str, &str)> = Vec::new();
    let mut sources: Vec<&str> = Vec::new();
    let mut test = false;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        i += 1;
        if matches!(arg, "-vV" | "-V" | "--version" | "-h" | "--help") {
            return Err(Uncacheable::Query);
        }
        if arg == "-" {
            return Err(Uncacheable::Stdin);
        }
        if FLAGS.contains(&arg) {
            test |= arg == "--test";
            continue;
        }
        if !arg.starts_with('-') {
            sources.push(arg);
            continue;
        }
        if let Some((name, value)) = arg.split_once('=').filter(|(n, _)| n.starts_with("--")) {
            if !WITH_VALUE.contains(&name) {
                return Err(Uncacheable::Unknown(name.to_string()));
            }
            options.push((name, value));
            continue;
        }
        if WITH_VALUE.contains(&arg) {
            let Some(value) = args.get(i) else {
                return Err(Uncacheable::Unknown(arg.to_string()));
            };
            i += 1;
            options.push((arg, value));
            continue;
        }
        // `-Cname=value`, `-Lpath`, `-Awarnings`: a short option joined
        // to its value.
        let short = arg.get(..2).filter(|s| WITH_VALUE.contains(s));
        match short {
            Some(short) => options.push((short, &arg[2..])),
            None => return Err(Uncacheable::Unknown(arg.to_string())),
        }
    }
    let mut name = None;
    let mut types: Vec<String> = Vec::new();
    let mut emits: Vec<String> = Vec::new();
    let mut out_dir = None;
    let mut extra_filename = None;
    let mut externs = Vec::new();
    let mut linker = None;
    let mut native = Vec::new();
    let mut search = Vec::new();
    for (option, value) in options {
        match option {
            "--print" => return Err(Uncacheable::Print),
            "-o" => return Err(Uncacheable::Output),
            "--crate-name" => name = Some(value.to_string()),
            "--crate-type" => types.extend(value.split(',').map(str::to_string)),
            "--emit" => emits.extend(value.split(',').map(str::to_string)),
            "--out-dir" => out_dir = Some(value.to_string()),
            "-l" => native.push(value.to_string()),
            "-L" => search.push(value.to_string()),
            "--extern" => {
                if let Some((n, p)) = value.split_once('=') {
                    externs.push((n.to_string(), p.to_string()));
                }
            }
            "-C" | "--codegen" => {
                let (key, val) = value.split_once('=').unwrap_or((value, ""));
                match key {
                    "incremental" => return Err(Uncacheable::Incremental),
                    "extra-filename" => extra_filename = Some(val.to_string()),
                    "linker" => linker = Some(val.to_string()),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let source = match sources.as_slice() {
        [] => return Err(Uncacheable::Query),
        [one] => one.to_string(),
        _ => return Err(Uncacheable::SeveralSources),
    };
    if test {
        types.push("bin".into());
    }
    if types.is_empty() {
        types.push("bin".into());
    }
    if let Some(other) = types.iter().find(|t| !CACHED_TYPES.contains(&t.as_str())) {
        return Err(Uncacheable::CrateType(other.clone()));
    }
    if emits.iter().any(|e| e.contains('=')) {
        return Err(Uncacheable::Output);
    }
    if let Some(other) = emits
        .iter()
        .find(|e| !matches!(e.as_str(), "link" | "metadata" | "dep-info"))
    {
        return Err(Uncacheable::Emit(other.clone()));
    }
    if !emits.iter().any(|e| e == "dep-info") {
        return Err(Uncacheable::NoDepInfo);
    }
    let emits_link = emits.iter().any(|e| e == "link");
    let links = emits_link && types.iter().any(|t| LINKED_TYPES.contains(&t.as_str()));
    let archives = emits_link && types.iter().any(|t| t == "staticlib");
    if (links || archives) && !native.is_empty() {
        return Err(Uncacheable::NativeLibraries);
    }
    let name = name.ok_or(Uncacheable::Query)?;
    let out_dir = out_dir.ok_or(Uncacheable::Output)?;
    // Cargo leaves the hash out of a path package's dylib and cdylib
    // names; their outputs still carry the crate's name, which only one
    // unit of a build writes into the out dir. Other calls without it
    // are build scripts probing rustc.
    let extra_filename = extra_filename.unwrap_or_default();
    let shared = types.iter().any(|t| t == "dylib" || t == "cdylib");
    if extra_filename.is_empty() && !shared {
        return Err(Uncacheable::NoExtraFilename);
    }
    Ok(Crate {
        name,
        types,
        source,
        out_dir,
        extra_filename,
        externs,
        linker,
        links,
        native,
        search,
    })
}

impl Crate {
    /// Whether a file of the out dir is one of this crate's outputs:
    /// `[lib]NAME-EXTRA` alone or with an extension.
    pub fn owns(&self, file_name: &str) -> bool {
        let stem = format!("{}{}", self.name, self.extra_filename);
        let rest = file_name.strip_prefix("lib").unwrap_or(file_name);
        [file_name, rest].iter().any(|candidate| {
            candidate
                .strip_prefix(&stem)
                .is_some_and(|tail| tail.is_empty() || tail.starts_with('.'))
        })
    }

    /// The archives rustc copies into this crate's rlib: the file name of
    /// each `-l static=NAME` (`libNAME.a`, or NAME itself with the
    /// `verbatim` modifier), with the `-l` argument it comes from. Their
    /// contents are not in the dep-info, so the key digests them.
    pub fn static_libraries(&self) -> Vec<(&str, String)> {
        self.native
            .iter()
            .filter_map(|arg| {
                let (kind, name) = arg.split_once('=')?;
                let (kind, modifiers) = kind.split_once(':').unwrap_or((kind, ""));
                if kind != "static" {
                    return None;
                }
                let name = name.split_once(':').map_or(name, |(name, _)| name);
                let verbatim = modifiers.split(',').any(|m| m == "+verbatim");
                let file = if verbatim {
                    name.to_string()
                } else {
                    format!("lib{name}.a")
                };
                Some((arg.as_str(), file))
            })
            .collect()
    }

    /// Where rustc looks for native libraries: the `-L` directories of kind
    /// `native` or `all`, or without a kind, in order.
    pub fn native_search(&self) -> Vec<&str> {
        self.search
            .iter()
            .filter_map(|arg| match arg.split_once('=') {
                Some(("native" | "all", dir)) => Some(dir),
                Some(("dependency" | "crate" | "framework", _)) => None,
                _ => Some(arg.as_str()),
            })
            .collect()
    }

    /// The dep-info file rustc writes.
    pub fn dep_info(&self) -> String {
        format!("{}/{}{}.d", self.out_dir, self.name, self.extra_filename)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    const LIB: &str = "--crate-name alpha --edition=2021 crates/alpha/src/lib.rs \
        --error-format=json --json=diagnostic-rendered-ansi,artifacts,future-incompat \
        --crate-type lib --emit=dep-info,metadata,link -C embed-bitcode=no -C debuginfo=2 \
        -C metadata=0123 -C extra-filename=-0123 --out-dir /t/debug/deps \
        -L dependency=/t/debug/deps --extern beta=/t/debug/deps/libbeta-77.rmeta \
        --check-cfg cfg(docsrs,test) -Awarnings";

    #[test]
    fn static_libraries_are_found_by_kind_name_and_search_path() {
        let mut lib = LIB.to_string();
        lib.push_str(
            " -l static=z -l dylib=ssl -l static:+verbatim=foo.a -l static:-bundle=bar:baz \
             -l m -L native=/o/out -L all=/x -L /y -L crate=/z",
        );
        let c = analyze(&args(&lib)).unwrap();
        assert_eq!(
            c.static_libraries(),
            [
                ("static=z", "libz.a".to_string()),
                ("static:+verbatim=foo.a", "foo.a".to_string()),
                ("static:-bundle=bar:baz", "libbar.a".to_string()),
            ]
        );
        // `-L dependency=` holds crates, not native libraries.
        assert_eq!(c.native_search(), ["/o/out", "/x", "/y"]);
    }

    #[test]
    fn a_cargo_lib_call_is_served() {
        let c = analyze(&args(LIB)).unwrap();
        assert_eq!(c.name, "alpha");
        assert_eq!(c.types, ["lib"]);
        assert_eq!(c.source, "crates/alpha/src/lib.rs");
        assert_eq!(c.out_dir, "/t/debug/deps");
        assert_eq!(c.extra_filename, "-0123");
        assert_eq!(
            c.externs,
            [("beta".into(), "/t/debug/deps/libbeta-77.rmeta".into())]
        );
        assert!(!c.links);
        assert!(c.owns("libalpha-0123.rlib"));
        assert!(c.owns("alpha-0123.d"));
        assert!(c.owns("alpha-0123"));
        assert!(!c.owns("libalpha-01234.rlib"));
        assert!(!c.owns("alpha_x-0123"));
    }

    #[test]
    fn queries_and_state_pass_through_with_a_reason() {
        let cases = [
            ("-vV", Uncacheable::Query),
            (
                "- --crate-name ___ --print=file-names --crate-type bin",
                Uncacheable::Stdin,
            ),
            ("--print sysroot", Uncacheable::Print),
            (
                &format!("{LIB} -C incremental=/t/debug/incremental"),
                Uncacheable::Incremental,
            ),
            (
                &LIB.replace("--crate-type lib", "--crate-type sdylib"),
                Uncacheable::CrateType("sdylib".into()),
            ),
            (
                &LIB.replace("dep-info,metadata,link", "metadata,link"),
                Uncacheable::NoDepInfo,
            ),
            (
                &format!("{LIB} --frobnicate"),
                Uncacheable::Unknown("--frobnicate".into()),
            ),
        ];
        for (line, why) in cases {
            assert_eq!(analyze(&args(line)), Err(why), "{line}");
        }
    }

    #[test]
    fn a_bin_linking_native_libraries_passes_through() {
        let bin = LIB.replace("--crate-type lib", "--crate-type bin");
        assert!(analyze(&args(&bin)).unwrap().links);
        assert_eq!(
            analyze(&args(&format!("{bin} -l static=z"))),
            Err(Uncacheable::NativeLibraries)
        );
    }

    #[test]
    fn shared_and_static_libraries_are_served_and_shared_ones_link() {
        // As cargo passes `crate-type = ["cdylib", "rlib"]`, and joined.
        let cases = [
            ("--crate-type cdylib", true),
            ("--crate-type dylib", true),
            ("--crate-type staticlib", false),
            ("--crate-type cdylib --crate-type rlib", true),
            ("--crate-type staticlib,rlib", false),
        ];
        for (types, links) in cases {
            let line = LIB.replace("--crate-type lib", types);
            let c = analyze(&args(&line)).unwrap();
            assert_eq!(c.links, links, "{types}");
            for output in [
                "libalpha-0123.so",
                "libalpha-0123.a",
                "libalpha-0123.rlib",
                "libalpha-0123.rmeta",
            ] {
                assert!(c.owns(output), "{types}: {output}");
            }
            // The linker reads native libraries; a staticlib's archive
            // takes them in.
            assert_eq!(
                analyze(&args(&format!("{line} -l static=z"))),
                Err(Uncacheable::NativeLibraries),
                "{types}"
            );
        }
        // A path package's shared library, which cargo names without a
        // hash; other crates need one.
        let plain = |types: &str| {
            analyze(&args(
                &LIB.replace("--crate-type lib", types)
                    .replace("-C extra-filename=-0123", ""),
            ))
        };
        let c = plain("--crate-type cdylib --crate-type rlib").unwrap();
        assert!(c.owns("libalpha.so") && c.owns("libalpha.rlib") && c.owns("alpha.d"));
        assert!(!c.owns("libalpha_sys.so") && !c.owns("alpha-0123.d"));
        assert_eq!(c.dep_info(), "/t/debug/deps/alpha.d");
        assert!(plain("--crate-type dylib").is_ok());
        for types in ["--crate-type staticlib", "--crate-type lib"] {
            assert_eq!(plain(types), Err(Uncacheable::NoExtraFilename), "{types}");
        }
        // Only metadata (cargo's check builds): nothing is linked.
        let check = LIB
            .replace("--crate-type lib", "--crate-type cdylib")
            .replace("dep-info,metadata,link", "dep-info,metadata");
        assert!(!analyze(&args(&check)).unwrap().links);
    }
}
