//! What a compiler call asks for: one C or C++ source compiled to one
//! object (the calls the cache serves), or something it passes straight
//! through, with the reason.
//!
//! The options are those of gcc and clang. An option this module does not
//! know makes the call uncacheable: a flag that writes a second output or
//! reads a file the key does not cover would otherwise give a wrong hit,
//! and a flag that takes a separate value would be misparsed. Both are
//! worse than compiling.

use std::fmt;

/// The language a source is compiled as, with the name `-x` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// C.
    C,
    /// C++.
    Cxx,
    /// Objective-C.
    ObjC,
    /// Objective-C++.
    ObjCxx,
    /// Assembler run through the C preprocessor (`.S`).
    AsmCpp,
}

impl Language {
    /// The name `-x` takes.
    pub fn as_x(self) -> &'static str {
        match self {
            Language::C => "c",
            Language::Cxx => "c++",
            Language::ObjC => "objective-c",
            Language::ObjCxx => "objective-c++",
            Language::AsmCpp => "assembler-with-cpp",
        }
    }

    /// The language of `-x NAME`; `None` for `-x none`.
    fn from_x(name: &str) -> Option<Result<Language, Uncacheable>> {
        Some(Ok(match name {
            "none" => return None,
            "c" => Language::C,
            "c++" => Language::Cxx,
            "objective-c" => Language::ObjC,
            "objective-c++" => Language::ObjCxx,
            "assembler-with-cpp" => Language::AsmCpp,
            header if header.ends_with("-header") => {
                return Some(Err(Uncacheable::PrecompiledHeader));
            }
            other => return Some(Err(Uncacheable::Language(other.to_string()))),
        }))
    }

    /// The language gcc infers from a file name; `None` for what it would
    /// hand to the linker.
    fn from_path(path: &str) -> Option<Result<Language, Uncacheable>> {
        let name = path.rsplit('/').next().unwrap_or(path);
        let (_, ext) = name.rsplit_once('.')?;
        Some(Ok(match ext {
            "c" => Language::C,
            "cc" | "cp" | "cxx" | "cpp" | "CPP" | "c++" | "C" => Language::Cxx,
            "m" => Language::ObjC,
            "mm" | "M" => Language::ObjCxx,
            "S" | "sx" => Language::AsmCpp,
            "h" | "hh" | "hpp" | "hxx" | "H" | "h++" | "tcc" => {
                return Some(Err(Uncacheable::PrecompiledHeader));
            }
            "i" | "ii" | "mi" | "mii" => {
                return Some(Err(Uncacheable::Language("preprocessed input".into())));
            }
            "s" => return Some(Err(Uncacheable::Language("assembler".into()))),
            "o" | "a" | "so" | "lo" | "la" | "dylib" => return None,
            other => return Some(Err(Uncacheable::Language(format!(".{other}")))),
        }))
    }
}

/// Why a call is passed straight to the compiler; counted by reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uncacheable {
    /// No `-c`: the call links (or only asks for the version).
    Link,
    /// `-E`, `-M` or `-MM`: preprocessing only.
    Preprocess,
    /// `-S`: assembly output.
    Assembly,
    /// `-fsyntax-only`: nothing to cache.
    SyntaxOnly,
    /// No source file.
    NoSource,
    /// More than one source file.
    SeveralSources,
    /// A file the compiler would hand to the linker, next to `-c`.
    LinkerInput,
    /// The source is standard input.
    Stdin,
    /// `@file`: the arguments are in a file.
    ResponseFile,
    /// `-o -`.
    OutputToStdout,
    /// The output exists and is not a regular file (`-o /dev/null`).
    OutputNotFile,
    /// A source language other than C, C++, Objective-C and `.S`.
    Language(String),
    /// A precompiled header is made or used.
    PrecompiledHeader,
    /// An option the cache knows and cannot serve (a second output, a file
    /// the key does not cover).
    Unsupported(String),
    /// An option the cache does not know.
    Unknown(String),
    /// An argument that is not UTF-8.
    NotUtf8,
    /// An environment variable asks for a second output.
    Environment(String),
    /// `__DATE__` or `__TIME__` expanded without a fixed clock, and the
    /// second changed between the preprocessing and the end of the
    /// compile: the object may hold a time its key does not.
    TimeMacros,
    /// The compiler cannot report the time macros it expands
    /// (`-Wdate-time`).
    TimeMacrosUnseen,
    /// A compiler that is neither gcc nor clang.
    UnknownCompiler,
    /// The preprocessor failed but the compiler did not.
    Preprocessor,
}

impl fmt::Display for Uncacheable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uncacheable::Link => f.write_str("linking"),
            Uncacheable::Preprocess => f.write_str("preprocessing only (-E, -M)"),
            Uncacheable::Assembly => f.write_str("assembly output (-S)"),
            Uncacheable::SyntaxOnly => f.write_str("-fsyntax-only"),
            Uncacheable::NoSource => f.write_str("no source file"),
            Uncacheable::SeveralSources => f.write_str("several source files"),
            Uncacheable::LinkerInput => f.write_str("linker input with -c"),
            Uncacheable::Stdin => f.write_str("source from stdin"),
            Uncacheable::ResponseFile => f.write_str("response file (@file)"),
            Uncacheable::OutputToStdout => f.write_str("output to stdout"),
            Uncacheable::OutputNotFile => f.write_str("output is not a regular file"),
            Uncacheable::Language(lang) => write!(f, "language: {lang}"),
            Uncacheable::PrecompiledHeader => f.write_str("precompiled header"),
            Uncacheable::Unsupported(opt) => write!(f, "unsupported option {opt}"),
            Uncacheable::Unknown(opt) => write!(f, "unknown option {opt}"),
            Uncacheable::NotUtf8 => f.write_str("argument not UTF-8"),
            Uncacheable::Environment(var) => write!(f, "environment: {var}"),
            Uncacheable::TimeMacros => {
                f.write_str("time macros, the clock moved during the compile")
            }
            Uncacheable::TimeMacrosUnseen => {
                f.write_str("compiler cannot report time macros (-Wdate-time)")
            }
            Uncacheable::UnknownCompiler => f.write_str("not gcc or clang"),
            Uncacheable::Preprocessor => f.write_str("preprocessor failed"),
        }
    }
}

/// A call the cache serves: one source compiled to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compile {
    /// The source, as written.
    pub source: String,
    /// Its language.
    pub language: Language,
    /// Whether `-x` named the language (rather than the file name).
    pub explicit_language: bool,
    /// The object, as written or as gcc derives it (`dir/a.c` -> `a.o`).
    pub output: String,
    /// The dependency file, if one is asked for.
    pub deps: Option<Deps>,
    /// Every other argument, in order, each option with its value: what
    /// the preprocessor and compiler see besides the source and outputs.
    pub flags: Vec<String>,
    /// Whether debug information is asked for (it names the directory).
    pub debug: bool,
    /// Whether the call chooses diagnostic colours itself.
    pub color_chosen: bool,
}

impl Compile {
    /// The `-B` options, as written (`-B dir` as two arguments, or
    /// `-Bdir`): where the driver looks for the programs it runs.
    pub fn program_prefixes(&self) -> Vec<String> {
        let mut prefixes = Vec::new();
        let mut flags = self.flags.iter();
        while let Some(flag) = flags.next() {
            if flag == "-B" {
                prefixes.push(flag.clone());
                prefixes.extend(flags.next().cloned());
            } else if flag.starts_with("-B") {
                prefixes.push(flag.clone());
            }
        }
        prefixes
    }
}

/// A dependency file (`-MD`, `-MMD`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deps {
    /// Where it is written.
    pub file: String,
    /// The options that shape its contents (`-MMD`, `-MP`, `-MT x`), in
    /// order; with no `-MT`/`-MQ`, the target is the object path, which
    /// then shapes them too.
    pub options: Vec<String>,
    /// The targets it names when no `-MT`/`-MQ` is given.
    pub default_target: Option<String>,
}

/// Options that take their value as the next argument when written alone.
const SEPARATE_VALUE: &[&str] = &[
    "-o",
    "-x",
    "-I",
    "-D",
    "-U",
    "-include",
    "-imacros",
    "-isystem",
    "-idirafter",
    "-iquote",
    "-isysroot",
    "-iprefix",
    "-iwithprefix",
    "-iwithprefixbefore",
    "-imultilib",
    "-isystem-after",
    "-cxx-isystem",
    "-MF",
    "-MT",
    "-MQ",
    "-Xpreprocessor",
    "-Xassembler",
    "-Xlinker",
    "-Xclang",
    "-L",
    "-l",
    "-u",
    "-T",
    "-z",
    "-A",
    "--param",
    "-arch",
    "-target",
    "-B",
    "--sysroot",
    "-mllvm",
    "-gcc-toolchain",
    "-resource-dir",
    "-dumpbase",
    "-dumpdir",
    "-aux-info",
    "-ivfsoverlay",
];

/// Options that take a value written right after them (`-I/usr/include`),
/// longest first so that `-isystem` is not read as `-i` + `system`.
const ATTACHED_VALUE: &[&str] = &[
    "-iwithprefixbefore",
    "-iwithprefix",
    "-isystem-after",
    "-cxx-isystem",
    "-idirafter",
    "-isysroot",
    "-isystem",
    "-iprefix",
    "-iquote",
    "-imacros",
    "-include",
    "-I",
    "-D",
    "-U",
    "-L",
    "-l",
    "-B",
];

/// `-f` options that write a second output, read a file the key does not
/// cover, depend on state outside the call, or print what differs from
/// run to run (timings, memory use), which a hit would print stale.
const DENIED_F: &[&str] = &[
    "-fprofile",
    "-ftest-coverage",
    "-fbranch-probabilities",
    "-fauto-profile",
    "-fcreate-profile",
    "-fcs-profile-generate",
    "-fcoverage-",
    "-fdump-",
    "-fstack-usage",
    "-fcallgraph-info",
    "-fsave-optimization-record",
    "-fopt-info",
    "-fplugin",
    "-fpass-plugin",
    "-fsanitize-blacklist",
    "-fsanitize-ignorelist",
    "-fsanitize-coverage-allowlist",
    "-fsanitize-coverage-ignorelist",
    "-fpch-preprocess",
    "-fmodules",
    "-fmodule-",
    "-fimplicit-modules",
    "-fcxx-modules",
    "-fprebuilt-module-path",
    "-fdiagnostics-format=sarif",
    "-fdiagnostics-format=json-file",
    "-fdiagnostics-add-output",
    "-fdiagnostics-set-output",
    "-fcompare-debug",
    "-fembed-bitcode",
    "-fxray-",
    "-fdump",
    "-fdeps-",
    "-fvtv-",
    "-fsanitize-system-",
    "-fthinlto-index",
    "-flto-incremental",
    "-ftime-report",
    "-ftime-trace",
    "-fmem-report",
    "-fpre-ipa-mem-report",
    "-fpost-ipa-mem-report",
    "-fstats",
    "-fproc-stat-report",
];

/// Assembler options (`-Wa,X`, `-Xassembler X`) that change only how the
/// object is assembled. Any other one passes the call through: the
/// assembler also writes listings (`-a...=FILE`), dependency files
/// (`--MD`) and reads include directories (`-I`) the key does not cover.
const ASSEMBLER_OPTIONS: &[&str] = &[
    "--noexecstack",
    "--execstack",
    "--64",
    "--32",
    "--x32",
    "-g",
    "--gen-debug",
    "--gdwarf-",
    "-gdwarf-",
    "--compress-debug-sections",
    "--compress-debug-sections=",
    "--nocompress-debug-sections",
    "--fatal-warnings",
    "--warn",
    "--no-warn",
    "-W",
    "-mrelax-relocations=",
    "-mx86-used-note=",
    "-march=",
    "-mcpu=",
    "-mtune=",
    "-mfpu=",
    "-mfloat-abi=",
    "-mabi=",
    "-mthumb",
    "-marm",
    "-mimplicit-it=",
    "-mno-shared",
    "-mbig-obj",
];

/// Preprocessor options (`-Wp,X`, `-Xpreprocessor X`) that only define
/// macros, add include directories (the files read are in the manifest)
/// or choose warnings. Any other one passes the call through: the
/// preprocessor also writes dependency files (`-MD`), and more.
const PREPROCESSOR_OPTIONS: &[&str] = &["-D", "-U", "-I", "-W", "-std=", "-fopenmp", "-fopenmp="];

/// Words in an `-mllvm` option that name a file or a report LLVM writes
/// (`-info-output-file=`, `-pass-remarks-output=`, `-dot-cfg`,
/// `-stats-json`, ...): such a call passes through.
const LLVM_OUTPUT_WORDS: &[&str] = &[
    "file", "output", "dump", "dot-", "-dot", "view", "remarks", "stats", "trace", "save",
    "profile",
];

/// Options without a value that any call may carry: they go into the key.
const PLAIN: &[&str] = &[
    "-w",
    "-ansi",
    "-pthread",
    "-pthreads",
    "-pipe",
    "-p",
    "-pg",
    "-shared",
    "-static",
    "-static-libgcc",
    "-static-libstdc++",
    "-static-pie",
    "-rdynamic",
    "-s",
    "-nostdlib",
    "-nostdlib++",
    "-nodefaultlibs",
    "-nostartfiles",
    "-nostdinc",
    "-nostdinc++",
    "-undef",
    "-trigraphs",
    "-pie",
    "-no-pie",
    "-no-canonical-prefixes",
    "-integrated-as",
    "-no-integrated-as",
    "-Qunused-arguments",
    "-Qn",
    "-Qy",
    "-H",
];

/// Reads a compiler's arguments.
pub fn analyze(args: &[String]) -> Result<Compile, Uncacheable> {
    let mut compile = false;
    let mut preprocess = false;
    let mut assembly = false;
    let mut syntax_only = false;
    let mut problem: Option<Uncacheable> = None;
    let mut note = |p: Uncacheable| {
        problem.get_or_insert(p);
    };
    let mut output: Option<String> = None;
    let mut language: Option<Language> = None;
    let mut sources: Vec<(String, Language, bool)> = Vec::new();
    let mut linker_inputs = 0;
    let mut flags = Vec::new();
    let mut dep_kind = false;
    let mut dep_file: Option<String> = None;
    let mut dep_options = Vec::new();
    let mut dep_target = false;
    let mut debug = false;
    let mut color_chosen = false;
    // The last `-Xclang` named an option whose value the next `-Xclang`
    // carries (`-Xclang -target-feature -Xclang +avx2`).
    let mut clang_value = false;

    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        i += 1;
        if arg == "-" {
            note(Uncacheable::Stdin);
            continue;
        }
        if arg.starts_with('@') {
            note(Uncacheable::ResponseFile);
            continue;
        }
        if !arg.starts_with('-') {
            let lang = match language {
                Some(lang) => Some(Ok(lang)),
                None => Language::from_path(arg),
            };
            match lang {
                Some(Ok(lang)) => sources.push((arg.to_string(), lang, language.is_some())),
                Some(Err(why)) => note(why),
                None => linker_inputs += 1,
            }
            continue;
        }
        // An option with its value: `-o x` as two arguments, or `-ox`.
        let (name, value) = if SEPARATE_VALUE.contains(&arg) {
            let Some(value) = args.get(i) else {
                note(Uncacheable::Unknown(format!("{arg} without a value")));
                continue;
            };
            i += 1;
            (arg, Some(value.as_str()))
        } else {
            (arg, None)
        };
        let keep = |flags: &mut Vec<String>| {
            flags.push(name.to_string());
            if let Some(v) = value {
                flags.push(v.to_string());
            }
        };
        match name {
            "-c" => compile = true,
            "-E" | "-M" | "-MM" => preprocess = true,
            "-S" => assembly = true,
            "-fsyntax-only" => syntax_only = true,
            "-o" => {
                let out = value.unwrap_or_default();
                if out == "-" {
                    note(Uncacheable::OutputToStdout);
                }
                output = Some(out.to_string());
            }
            "-x" => {
                language = match Language::from_x(value.unwrap_or_default()) {
                    None => None,
                    Some(Ok(lang)) => Some(lang),
                    Some(Err(why)) => {
                        note(why);
                        None
                    }
                }
            }
            "-MD" | "-MMD" => {
                dep_kind = true;
                dep_options.push(name.to_string());
            }
            "-MF" => dep_file = value.map(str::to_string),
            "-MT" | "-MQ" => {
                dep_target = true;
                dep_options.push(name.to_string());
                dep_options.push(value.unwrap_or_default().to_string());
            }
            "-MP" | "-MG" => dep_options.push(name.to_string()),
            "-MJ" => note(Uncacheable::Unsupported(name.to_string())),
            "-v" | "-###" | "--verbose" => note(Uncacheable::Unsupported(name.to_string())),
            // A second output, and a file naming the files read.
            "-aux-info" | "-ivfsoverlay" => note(Uncacheable::Unsupported(name.to_string())),
            "-Xclang" | "-Xpreprocessor" | "-Xassembler" | "-mllvm" => {
                let value = value.unwrap_or_default();
                let pending = std::mem::take(&mut clang_value);
                let allowed = match name {
                    "-Xclang" if pending => true,
                    "-Xclang" => {
                        if matches!(value, "-target-feature" | "-mllvm") {
                            clang_value = true;
                        }
                        clang_option_is_harmless(value)
                    }
                    "-Xpreprocessor" => is_listed(value, PREPROCESSOR_OPTIONS),
                    "-Xassembler" => is_listed(value, ASSEMBLER_OPTIONS),
                    _ => llvm_option_is_harmless(value),
                };
                if allowed {
                    keep(&mut flags);
                } else {
                    note(Uncacheable::Unsupported(format!(
                        "{name} {}",
                        option_name(value)
                    )));
                }
            }
            _ if value.is_some() => keep(&mut flags),
            _ if PLAIN.contains(&name) => keep(&mut flags),
            _ => match classify(name) {
                Class::Keep => keep(&mut flags),
                Class::Debug(on) => {
                    debug = on.unwrap_or(debug);
                    keep(&mut flags);
                }
                Class::Color => {
                    color_chosen = true;
                    keep(&mut flags);
                }
                Class::Refuse(why) => note(why),
            },
        }
    }

    if preprocess {
        return Err(Uncacheable::Preprocess);
    }
    if assembly {
        return Err(Uncacheable::Assembly);
    }
    if syntax_only {
        return Err(Uncacheable::SyntaxOnly);
    }
    if !compile {
        return Err(Uncacheable::Link);
    }
    if let Some(problem) = problem {
        return Err(problem);
    }
    let (source, language, explicit_language) = match sources.len() {
        0 => return Err(Uncacheable::NoSource),
        1 => sources.remove(0),
        _ => return Err(Uncacheable::SeveralSources),
    };
    if linker_inputs > 0 {
        return Err(Uncacheable::LinkerInput);
    }
    let output = output.unwrap_or_else(|| {
        let name = source.rsplit('/').next().unwrap_or(&source);
        format!("{}.o", strip_extension(name))
    });
    let deps = dep_kind.then(|| Deps {
        file: dep_file.unwrap_or_else(|| format!("{}.d", strip_extension(&output))),
        options: dep_options,
        default_target: (!dep_target).then(|| output.clone()),
    });
    Ok(Compile {
        source,
        language,
        explicit_language,
        output,
        deps,
        flags,
        debug,
        color_chosen,
    })
}

/// `dir/a.c.o` -> `dir/a.c`; a name without a dot stays as it is.
fn strip_extension(path: &str) -> &str {
    let name_start = path.rfind('/').map_or(0, |i| i + 1);
    match path[name_start..].rfind('.') {
        Some(dot) if dot > 0 => &path[..name_start + dot],
        _ => path,
    }
}

/// What to do with an option that takes no separate value.
enum Class {
    Keep,
    /// `-g...`: whether it turns debug information on or off (`None`:
    /// neither, as `-gz` and `-gno-column-info`).
    Debug(Option<bool>),
    /// A diagnostics colour option.
    Color,
    Refuse(Uncacheable),
}

fn classify(arg: &str) -> Class {
    let refuse = |a: &str| Class::Refuse(Uncacheable::Unsupported(option_name(a)));
    if ATTACHED_VALUE
        .iter()
        .any(|p| arg.len() > p.len() && arg.starts_with(p))
    {
        return Class::Keep;
    }
    if arg.starts_with("-save-temps") || arg == "--save-temps" || arg == "--coverage" {
        return refuse(arg);
    }
    if arg.starts_with("-specs") || arg.starts_with("--specs") {
        return refuse(arg);
    }
    if let Some(rest) = arg.strip_prefix("-g") {
        // A `.dwo` beside the object; debug information naming module files.
        if rest == "split-dwarf" || rest.starts_with("split-dwarf=") || rest == "modules" {
            return refuse(arg);
        }
        return Class::Debug(match rest {
            "0" => Some(false),
            r if r.starts_with("no-") || r.starts_with('z') => None,
            _ => Some(true),
        });
    }
    if arg.starts_with("-f") {
        if DENIED_F.iter().any(|p| arg.starts_with(p)) {
            return refuse(arg);
        }
        let color = [
            "-fdiagnostics-color",
            "-fno-diagnostics-color",
            "-fcolor-diagnostics",
            "-fno-color-diagnostics",
        ];
        if color.iter().any(|c| arg.starts_with(c)) {
            return Class::Color;
        }
        return Class::Keep;
    }
    if let Some(rest) = arg.strip_prefix("-Wp,") {
        // `-Wp,-MD,file` writes a second output; what is not known to be
        // harmless passes through.
        if rest.split(',').all(|o| is_listed(o, PREPROCESSOR_OPTIONS)) {
            return Class::Keep;
        }
        return refuse(arg);
    }
    if let Some(rest) = arg.strip_prefix("-Wa,") {
        // `-Wa,-adhln=list.txt` writes an assembler listing.
        if rest.split(',').all(|o| is_listed(o, ASSEMBLER_OPTIONS)) {
            return Class::Keep;
        }
        return refuse(arg);
    }
    if arg.starts_with("-print-") || arg.starts_with("--print-") || arg.starts_with("-dump") {
        return refuse(arg);
    }
    if arg.starts_with("-d") && arg.len() > 2 {
        // -dM, -dD, ...: dumps meant for -E.
        return refuse(arg);
    }
    let prefixes = [
        "-W",
        "-O",
        "-m",
        "-std=",
        "--std=",
        "-pedantic",
        "--param=",
        "--sysroot=",
        "--target=",
        "--gcc-toolchain=",
        "--rtlib=",
        "--unwindlib=",
        "-stdlib=",
        "-rtlib=",
    ];
    if prefixes.iter().any(|p| arg.starts_with(p)) {
        return Class::Keep;
    }
    Class::Refuse(Uncacheable::Unknown(option_name(arg)))
}

/// Whether `option` is one of `allowed`, or starts with one that ends in
/// `=` or `-`, or with `-D`, `-U`, `-I` (a value attached), or with `-W`
/// (a warning, not `-Wp,`/`-Wa,`/`-Wl,`, which pass options on).
fn is_listed(option: &str, allowed: &[&str]) -> bool {
    allowed.iter().any(|a| {
        let prefix = a.ends_with('=') || a.ends_with('-') || matches!(*a, "-D" | "-U" | "-I");
        option == *a
            || (prefix && option.starts_with(a))
            || (*a == "-W" && option.starts_with("-W") && !option.contains(','))
    })
}

/// Whether an `-Xclang` option only changes code generation or warnings:
/// `-f` options the cache allows anyway, `-W`, `-D`, `-U`, `-O`, and the
/// two that carry a value in the next `-Xclang`. Others (`-load`,
/// `-dependency-file`, `-header-include-file`, `-stats-file=`, `-emit-*`,
/// ...) pass through.
fn clang_option_is_harmless(option: &str) -> bool {
    if option.starts_with("-f") {
        return !DENIED_F.iter().any(|p| option.starts_with(p));
    }
    matches!(option, "-target-feature" | "-mllvm")
        || option.starts_with("-O")
        || is_listed(option, &["-W", "-D", "-U"])
}

/// Whether an `-mllvm` option names no file or report.
fn llvm_option_is_harmless(option: &str) -> bool {
    let lower = option.to_ascii_lowercase();
    !LLVM_OUTPUT_WORDS.iter().any(|w| lower.contains(w))
}

/// An option without its value (`-fplugin=x.so` -> `-fplugin`), so that
/// stats count one reason per option.
fn option_name(arg: &str) -> String {
    arg.split_once('=').map_or(arg, |(n, _)| n).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    fn ok(line: &str) -> Compile {
        analyze(&args(line)).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    fn refused(line: &str) -> Uncacheable {
        analyze(&args(line)).expect_err(line)
    }

    #[test]
    fn a_cmake_compile_line_is_one_source_one_object_and_a_dependency_file() {
        let c = ok(
            "-DZSTD_MULTITHREAD -I/s/lib -O3 -DNDEBUG -fPIC -MD -MT lib/x.c.o -MF lib/x.c.o.d -o lib/x.c.o -c /s/lib/x.c",
        );
        assert_eq!(c.source, "/s/lib/x.c");
        assert_eq!(c.language, Language::C);
        assert_eq!(c.output, "lib/x.c.o");
        let deps = c.deps.unwrap();
        assert_eq!(deps.file, "lib/x.c.o.d");
        assert_eq!(deps.options, ["-MD", "-MT", "lib/x.c.o"]);
        assert_eq!(deps.default_target, None);
        assert_eq!(
            c.flags,
            ["-DZSTD_MULTITHREAD", "-I/s/lib", "-O3", "-DNDEBUG", "-fPIC"]
        );
        assert!(!c.debug);
    }

    #[test]
    fn outputs_default_as_gcc_derives_them() {
        let c = ok("-c src/a.cpp -MMD");
        assert_eq!(c.output, "a.o");
        assert_eq!(c.language, Language::Cxx);
        let deps = c.deps.unwrap();
        assert_eq!(deps.file, "a.d");
        assert_eq!(deps.default_target.as_deref(), Some("a.o"));
        assert_eq!(ok("-c a.S -o out/a.S.o").language, Language::AsmCpp);
        assert_eq!(ok("-c -x c++ weird.txt").language, Language::Cxx);
    }

    #[test]
    fn separate_values_are_not_taken_for_sources() {
        let c = ok("-c -I inc -isystem /p/include -include cfg.h -D X=1 main.c -o main.o");
        assert_eq!(c.source, "main.c");
        assert_eq!(
            c.flags,
            [
                "-I",
                "inc",
                "-isystem",
                "/p/include",
                "-include",
                "cfg.h",
                "-D",
                "X=1"
            ]
        );
    }

    #[test]
    fn program_prefixes_are_the_b_options_in_both_spellings() {
        let c = ok("-c a.c -B /opt/tc/ -O2 -Btc2/ -I inc");
        assert_eq!(c.program_prefixes(), ["-B", "/opt/tc/", "-Btc2/"]);
        assert!(ok("-c a.c -I inc").program_prefixes().is_empty());
    }

    #[test]
    fn debug_follows_the_last_g_option() {
        assert!(ok("-c a.c -g").debug);
        assert!(!ok("-c a.c -g -g0").debug);
        assert!(ok("-c a.c -ggdb3").debug);
        assert!(ok("-c a.c -g -gz").debug);
    }

    #[test]
    fn uncacheable_calls_say_why() {
        assert_eq!(refused("a.o b.o -o prog"), Uncacheable::Link);
        assert_eq!(refused("main.c -o prog"), Uncacheable::Link);
        assert_eq!(refused("-E a.c"), Uncacheable::Preprocess);
        assert_eq!(refused("-c -M a.c"), Uncacheable::Preprocess);
        assert_eq!(refused("-S a.c"), Uncacheable::Assembly);
        assert_eq!(refused("-c a.c b.c"), Uncacheable::SeveralSources);
        assert_eq!(refused("-c"), Uncacheable::NoSource);
        assert_eq!(refused("-c -x c -"), Uncacheable::Stdin);
        assert_eq!(refused("-c @args.rsp"), Uncacheable::ResponseFile);
        assert_eq!(refused("-c a.c -o -"), Uncacheable::OutputToStdout);
        assert_eq!(refused("-c a.f90"), Uncacheable::Language(".f90".into()));
        assert_eq!(refused("-c a.s"), Uncacheable::Language("assembler".into()));
        assert_eq!(refused("-c a.h"), Uncacheable::PrecompiledHeader);
        assert_eq!(refused("-c -x c-header a"), Uncacheable::PrecompiledHeader);
        assert_eq!(
            refused("-c a.c --coverage"),
            Uncacheable::Unsupported("--coverage".into())
        );
        assert_eq!(
            refused("-c a.c -fprofile-use=x.gcda"),
            Uncacheable::Unsupported("-fprofile-use".into())
        );
        assert_eq!(
            refused("-c a.c -gsplit-dwarf"),
            Uncacheable::Unsupported("-gsplit-dwarf".into())
        );
        assert_eq!(
            refused("-c a.c -Wp,-MD,a.d"),
            Uncacheable::Unsupported("-Wp,-MD,a.d".into())
        );
        assert_eq!(
            refused("-c a.c --frobnicate"),
            Uncacheable::Unknown("--frobnicate".into())
        );
        assert_eq!(refused("-c a.c b.o"), Uncacheable::LinkerInput);
        assert_eq!(
            refused("-c a.c -aux-info protos.txt"),
            Uncacheable::Unsupported("-aux-info".into())
        );
        assert_eq!(refused("-fsyntax-only a.c"), Uncacheable::SyntaxOnly);
    }

    #[test]
    fn options_that_write_another_file_pass_through() {
        for (line, why) in [
            ("-c a.c -Wa,-adhln=a.lst", "-Wa,-adhln"),
            (
                "-c a.c -Wa,--noexecstack,--MD,a.d",
                "-Wa,--noexecstack,--MD,a.d",
            ),
            ("-c a.c -Wa,-I,inc", "-Wa,-I,inc"),
            ("-c a.c -Xassembler -als=a.lst", "-Xassembler -als"),
            ("-c a.c -Xpreprocessor -MD", "-Xpreprocessor -MD"),
            ("-c a.c -Wp,-MMD,a.d", "-Wp,-MMD,a.d"),
            ("-c a.c -Wp,-o,a.i", "-Wp,-o,a.i"),
            (
                "-c a.c -Xclang -dependency-file",
                "-Xclang -dependency-file",
            ),
            ("-c a.c -Xclang -load", "-Xclang -load"),
            (
                "-c a.c -mllvm -info-output-file=t",
                "-mllvm -info-output-file",
            ),
            ("-c a.c -ftime-report", "-ftime-report"),
            ("-c a.c -ftime-trace", "-ftime-trace"),
            ("-c a.c -fstack-usage", "-fstack-usage"),
            ("-c a.c -fcallgraph-info=su", "-fcallgraph-info"),
            ("-c a.c -fdump-tree-all", "-fdump-tree-all"),
            ("-c a.c -fdeps-file=a.ddi", "-fdeps-file"),
            ("-c a.c -fprofile-update=atomic", "-fprofile-update"),
            (
                "-c a.c -fdiagnostics-format=json-file",
                "-fdiagnostics-format",
            ),
            ("-c a.c -save-temps=obj", "-save-temps"),
            ("-c a.c -gsplit-dwarf", "-gsplit-dwarf"),
            ("-c a.c -ivfsoverlay o.yaml", "-ivfsoverlay"),
        ] {
            assert_eq!(
                refused(line),
                Uncacheable::Unsupported(why.into()),
                "{line}"
            );
        }
    }

    #[test]
    fn harmless_assembler_and_preprocessor_options_are_kept() {
        let c = ok(
            "-c a.c -Wa,--noexecstack,-mrelax-relocations=no,--compress-debug-sections=zlib -Xassembler --64 \
             -Wp,-D_FORTIFY_SOURCE=2 -Xpreprocessor -fopenmp \
             -Xclang -target-feature -Xclang +avx2 -mllvm -inline-threshold=500 \
             -frecord-gcc-switches",
        );
        assert_eq!(
            c.flags,
            [
                "-Wa,--noexecstack,-mrelax-relocations=no,--compress-debug-sections=zlib",
                "-Xassembler",
                "--64",
                "-Wp,-D_FORTIFY_SOURCE=2",
                "-Xpreprocessor",
                "-fopenmp",
                "-Xclang",
                "-target-feature",
                "-Xclang",
                "+avx2",
                "-mllvm",
                "-inline-threshold=500",
                "-frecord-gcc-switches",
            ]
        );
    }

    #[test]
    fn code_generation_switches_are_kept_in_the_key() {
        // Every `-f` option off the deny list is a switch the key covers.
        let c = ok("-c a.c -fnew-codegen-flag=3 -march=native -Wall -std=c11");
        assert_eq!(
            c.flags,
            ["-fnew-codegen-flag=3", "-march=native", "-Wall", "-std=c11"]
        );
    }
}
