//! The environment variables the wrapper reads. The build engine sets
//! those down to [`LEVELS`] in a recipe's script environment; a user sets
//! the others.

/// Named roots, `name=path` pairs separated by `:` (see
/// [`crate::roots::Roots::parse`]).
pub const ROOTS: &str = "CLEAVE_COMPILE_ROOTS";
/// When the build started, in nanoseconds since the epoch: files changed
/// since are hashed on every use.
pub const BUILD_START: &str = "CLEAVE_COMPILE_START";
/// The masquerade directory, skipped when looking for the real compiler.
pub const MASQUERADE: &str = "CLEAVE_COMPILE_MASQUERADE";
/// Set for the compiler the wrapper runs: a wrapper below it (a compiler
/// script calling `gcc`) passes straight through.
pub const NESTED: &str = "CLEAVE_COMPILE_NESTED";
/// A file listing the cache helpers and remote stores compile entries are
/// looked up in and handed to (see [`crate::remote::write_levels`]); the
/// build engine sets it when the build has any.
pub const LEVELS: &str = "CLEAVE_COMPILE_LEVELS";
/// `off` (or `0`, `false`, `no`) passes every call straight through.
pub const SWITCH: &str = "CLEAVE_COMPILE_CACHE";
/// Base directories for use outside recipes (like ccache's `base_dir`):
/// a path below one counts by its place relative to the working
/// directory, so checkouts laid out alike share entries. Separated by `:`.
pub const BASE_DIR: &str = "CLEAVE_COMPILE_BASE_DIR";
/// Proc-macro crates a user declares pure (library names, separated by
/// commas or spaces; `*` for all): Rust compiles that may run them are
/// cached (see [`crate::rust::macros`]).
pub const PURE_PROC_MACROS: &str = "CLEAVE_PURE_PROC_MACROS";
/// `SOURCE_DATE_EPOCH`, which fixes `__DATE__` and `__TIME__`.
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";

/// Variables that change what a compiler reads or prints; each one set is
/// an input of every key.
pub const COMPILER_ENV: &[&str] = &[
    "CPATH",
    "C_INCLUDE_PATH",
    "CPLUS_INCLUDE_PATH",
    "OBJC_INCLUDE_PATH",
    "OBJCPLUS_INCLUDE_PATH",
    "GCC_EXEC_PREFIX",
    "COMPILER_PATH",
    "SDKROOT",
    "MACOSX_DEPLOYMENT_TARGET",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
];

/// Variables that change which compiler proper and assembler the driver
/// runs: with one set, those programs are asked of the driver on every
/// call and their contents are in the key.
pub const PROGRAM_ENV: &[&str] = &["GCC_EXEC_PREFIX", "COMPILER_PATH"];

/// Variables that make the compiler write a file besides the object (gcc's
/// dependency files and `-fcompare-debug` dumps, clang's header, option,
/// diagnostic and process logs) or add options the wrapper cannot see
/// (`CCC_OVERRIDE_OPTIONS`): a hit would write the object only.
pub const SECOND_OUTPUT_ENV: &[&str] = &[
    "DEPENDENCIES_OUTPUT",
    "SUNPRO_DEPENDENCIES",
    "GCC_COMPARE_DEBUG",
    "CC_PRINT_HEADERS",
    "CC_PRINT_OPTIONS",
    "CC_LOG_DIAGNOSTICS",
    "CC_PRINT_PROC_STAT",
    "CCC_OVERRIDE_OPTIONS",
];
