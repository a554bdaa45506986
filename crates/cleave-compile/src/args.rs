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
    /// `__DATE__`, `__TIME__` or `__TIMESTAMP__` without a fixed clock.
    TimeMacros,
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
                f.write_str("__DATE__/__TIME__ without SOURCE_DATE_EPOCH, or __TIMESTAMP__")
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
/// cover, or depend on state outside the call.
const DENIED_F: &[&str] = &[
    "-fprofile-arcs",
    "-ftest-coverage",
    "-fprofile-generate",
    "-fprofile-use",
    "-fprofile-instr-",
    "-fprofile-sample-",
    "-fprofile-dir",
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
    "-fcompare-debug",
    "-fembed-bitcode",
    "-fxray-",
    "-fdump",
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
            "-Xclang" if matches!(value, Some("-load" | "-plugin" | "-add-plugin")) => note(
                Uncacheable::Unsupported(format!("-Xclang {}", value.unwrap_or(""))),
            ),
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
        if rest == "split-dwarf" || rest.starts_with("split-dwarf=") {
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
        // The preprocessor's own dependency options write a second output.
        if rest.split(',').any(|o| o.starts_with("-M")) {
            return refuse(arg);
        }
        return Class::Keep;
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
        assert_eq!(refused("-fsyntax-only a.c"), Uncacheable::SyntaxOnly);
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
