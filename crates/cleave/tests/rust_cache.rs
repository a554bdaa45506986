//! End-to-end tests of the Rust compile cache: `tests/rust/ws` (a lib, a
//! lib with a build script using it and a proc-macro, a binary, a cdylib
//! that is also an rlib, and a staticlib, all path dependencies, so
//! everything builds offline) built by cargo with
//! cleave as `RUSTC_WRAPPER`, in checkouts at different paths that share
//! one cache, and by `tests/rust/recipe` in recipe builds, where the
//! engine sets the wrapper. The counts come from
//! `cleave cache stats --json --zero`, read after each build.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::{assert_success, copy_dir, oracle, repo, stderr, walk};

#[path = "../../cleave-cache/tests/services/mod.rs"]
mod services;

/// The units cargo compiles through rustc for the workspace: alpha,
/// macros, beta's build script, beta, app, ffi and clib.
const UNITS: u64 = 7;

/// A scratch directory holding checkouts and their shared cache.
struct Scratch {
    tmp: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// A fresh copy of the test workspace at `rel`.
    fn checkout(&self, rel: &str) -> PathBuf {
        let dir = self.path(rel);
        copy_dir(&repo().join("tests/rust/ws"), &dir);
        dir
    }

    fn cleave(&self) -> Command {
        self.cleave_on("cache")
    }

    /// cleave with the cache dir `cache` (a machine of its own).
    fn cleave_on(&self, cache: &str) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cleave"));
        command.env("CLEAVE_CACHE_DIR", self.path(cache));
        command
    }

    /// `cargo build` in `dir` through the wrapper; returns the Rust counts
    /// of that build.
    fn build(&self, dir: &Path) -> Value {
        self.build_on(dir, "cache", &[]).0
    }

    /// `cargo build` in `dir` through the wrapper with the cache dir
    /// `cache` and the variables `env`; returns the Rust counts of that
    /// build and what cargo printed.
    fn build_on(&self, dir: &Path, cache: &str, env: &[(&str, &str)]) -> (Value, String) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = Command::new(cargo)
            .args(["build", "--offline"])
            .current_dir(dir)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET_DIR")
            .env_remove("CARGO_BUILD_RUSTC_WRAPPER")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env("CARGO_INCREMENTAL", "0")
            .env("RUSTC_WRAPPER", env!("CARGO_BIN_EXE_cleave"))
            .env("CLEAVE_CACHE_DIR", self.path(cache))
            .env_remove("CLEAVE_REMOTE")
            // The workspace's proc-macro only counts its tokens.
            .env("CLEAVE_PURE_PROC_MACROS", "macros")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (self.counts(cache, &output), stderr(&output))
    }

    /// The Rust counts of the cache dir `cache` since the last call, after
    /// a build that printed `output`, which must have succeeded.
    fn counts(&self, cache: &str, output: &Output) -> Value {
        assert_success(output);
        let stats = self
            .cleave_on(cache)
            .args(["cache", "stats", "--json", "--zero"])
            .output()
            .unwrap();
        assert_success(&stats);
        let value: Value = serde_json::from_slice(&stats.stdout).unwrap();
        let rust = value["rust"].clone();
        assert_eq!(rust["counts"]["errors"], 0, "{rust:#}\n{}", stderr(output));
        rust
    }

    /// A copy of `tests/rust` (the recipe and the workspace it builds);
    /// returns the recipe's directory.
    fn recipe(&self) -> PathBuf {
        copy_dir(&repo().join("tests/rust/recipe"), &self.path("rust/recipe"));
        copy_dir(&repo().join("tests/rust/ws"), &self.path("rust/ws"));
        self.path("rust/recipe")
    }

    /// `cleave build` of `recipe` into `out`, with the toolchain running
    /// these tests first on `PATH` (its cargo and rustc, not a rustup
    /// proxy that needs variables a recipe build does not pass); returns
    /// the Rust counts of that build.
    fn recipe_build(&self, recipe: &Path, out: &str) -> Value {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let toolchain = std::env::var_os("CARGO")
            .and_then(|cargo| Path::new(&cargo).parent().map(Path::to_path_buf));
        let dirs = toolchain.into_iter().chain(std::env::split_paths(&path));
        let output = self
            .cleave()
            .args(["build", "-r"])
            .arg(recipe)
            .args(["--output-dir", out, "--staging-root"])
            .arg(self.path("stg"))
            .args(["--test", "skip"])
            .env("PATH", std::env::join_paths(dirs).unwrap())
            .env("NO_COLOR", "1")
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("CLEAVE_REMOTE")
            .current_dir(self.tmp.path())
            .output()
            .unwrap();
        self.counts("cache", &output)
    }
}

/// One count of the remotes, summed over them.
fn remote_total(rust: &Value, field: &str) -> u64 {
    rust["counts"]["remotes"]
        .as_object()
        .unwrap()
        .values()
        .map(|t| t[field].as_u64().unwrap())
        .sum()
}

/// The binary's output.
fn run_app(dir: &Path) -> String {
    let out = Command::new(dir.join("target/debug/app")).output().unwrap();
    assert_success(&out);
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_second_checkout_at_another_path_hits_every_unit_and_links_the_same_binary() {
    let s = Scratch::new();
    let a = s.checkout("a");
    let first = s.build(&a);
    assert_eq!(first["misses"], UNITS, "{first:#}");
    assert_eq!(first["hits"], 0);
    // Cargo's probes (`-vV`, `--print` from stdin) pass through.
    assert!(first["uncacheable"].as_u64().unwrap() >= 1, "{first:#}");
    let expected = "hello from alpha, sum 6, count 4, plain\n";
    assert_eq!(run_app(&a), expected);

    let b = s.checkout("b/deeper");
    let second = s.build(&b);
    assert_eq!(second["hits"], UNITS, "{second:#}");
    assert_eq!(second["misses"], 0, "{second:#}");
    assert_eq!(run_app(&b), expected);
    for output in ["app", "libffi.so", "libclib.a"] {
        assert_eq!(
            std::fs::read(a.join("target/debug").join(output)).unwrap(),
            std::fs::read(b.join("target/debug").join(output)).unwrap(),
            "{output}: the same bytes"
        );
    }
    let so = std::fs::read(b.join("target/debug/libffi.so")).unwrap();
    assert!(so.starts_with(b"\x7fELF"), "a shared object");
    // The restored dep-info names this checkout's files, so cargo finds
    // the build fresh and compiles nothing more.
    let dep_info = walk(&b.join("target/debug/deps"))
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "d") && p.to_string_lossy().contains("alpha"))
        .unwrap();
    let text = std::fs::read_to_string(dep_info).unwrap();
    assert!(text.contains(&*b.to_string_lossy()), "{text}");
    assert!(!text.contains(&format!("{}/", a.display())), "{text}");
    let again = s.build(&b);
    assert_eq!(again["calls"], 0, "{again:#}");
}

#[test]
fn an_edit_recompiles_that_crate_and_its_dependents_only() {
    let s = Scratch::new();
    let a = s.checkout("a");
    s.build(&a);
    let b = s.checkout("b");
    let words = b.join("alpha/src/words.rs");
    std::fs::write(&words, "pub const HELLO: &str = \"howdy\";\n").unwrap();
    let edited = s.build(&b);
    // alpha and what uses it (beta, app, ffi) are compiled; macros, the
    // build script and clib hit.
    assert_eq!(edited["misses"], 4, "{edited:#}");
    assert_eq!(
        edited["counts"]["misses"]["source file or variable changed"], 1,
        "alpha has entries, for other files: {edited:#}"
    );
    assert_eq!(edited["hits"], UNITS - 4, "{edited:#}");
    assert_eq!(run_app(&b), "howdy from alpha, sum 6, count 4, plain\n");

    // Back as it was: cargo recompiles alpha, beta, app and ffi, and each
    // is checkout A's entry.
    std::fs::write(&words, "pub const HELLO: &str = \"hello\";\n").unwrap();
    let reverted = s.build(&b);
    assert_eq!(reverted["hits"], 4, "{reverted:#}");
    assert_eq!(reverted["misses"], 0, "{reverted:#}");
    assert_eq!(run_app(&b), "hello from alpha, sum 6, count 4, plain\n");
}

#[test]
fn a_flipped_byte_in_a_stored_output_is_detected_and_the_unit_recompiled() {
    let s = Scratch::new();
    let a = s.checkout("a");
    s.build(&a);
    // The largest blob: clib's archive, which holds the standard library.
    let victim = walk(&s.path("cache/staging/blobs"))
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    let mut perms = std::fs::metadata(&victim).unwrap().permissions();
    #[allow(
        clippy::permissions_set_readonly_false,
        reason = "a test damages a blob"
    )]
    perms.set_readonly(false);
    std::fs::set_permissions(&victim, perms).unwrap();
    std::fs::write(&victim, bytes).unwrap();

    let b = s.checkout("b");
    let second = s.build(&b);
    assert_eq!(
        second["counts"]["misses"]["damaged entry recompiled"], 1,
        "{second:#}"
    );
    assert_eq!(second["hits"], UNITS - 1, "{second:#}");
    for output in ["app", "libclib.a"] {
        assert_eq!(
            std::fs::read(a.join("target/debug").join(output)).unwrap(),
            std::fs::read(b.join("target/debug").join(output)).unwrap(),
            "{output}"
        );
    }
    // The entry stored again serves a third checkout.
    let c = s.checkout("c");
    let third = s.build(&c);
    assert_eq!(third["hits"], UNITS, "{third:#}");
}

#[test]
fn a_shared_library_holding_a_path_is_served_only_where_that_path_has_its_length() {
    let s = Scratch::new();
    // ffi keeps the path it was built at in its bytes, as a bin can.
    let checkout = |rel: &str| {
        let dir = s.checkout(rel);
        let lib = dir.join("ffi/src/lib.rs");
        let mut text = std::fs::read_to_string(&lib).unwrap();
        text.push_str(
            "\n/// Where the crate was built.\n#[no_mangle]\n\
             pub static FFI_HOME: &str = env!(\"CARGO_MANIFEST_DIR\");\n",
        );
        std::fs::write(&lib, text).unwrap();
        dir
    };
    let holds = |bytes: &[u8], dir: &Path| {
        let path = dir.join("ffi");
        let path = path.to_string_lossy();
        bytes.windows(path.len()).any(|w| w == path.as_bytes())
    };
    let a = checkout("a");
    s.build(&a);
    let so_a = std::fs::read(a.join("target/debug/libffi.so")).unwrap();
    assert!(holds(&so_a, &a));

    // Another path of the same length: the stored library, with this
    // checkout's path written in.
    let b = checkout("b");
    let same = s.build(&b);
    assert_eq!(same["hits"], UNITS, "{same:#}");
    let so_b = std::fs::read(b.join("target/debug/libffi.so")).unwrap();
    assert!(holds(&so_b, &b) && !holds(&so_b, &a));
    assert_eq!(so_a.len(), so_b.len());

    // Another length: ffi compiles; the rest, holding no path, hits.
    let c = checkout("c/deeper");
    let other = s.build(&c);
    assert_eq!(
        other["counts"]["misses"]["build path of another length"], 1,
        "{other:#}"
    );
    assert_eq!(other["hits"], UNITS - 1, "{other:#}");
    let so_c = std::fs::read(c.join("target/debug/libffi.so")).unwrap();
    assert!(holds(&so_c, &c));
}

#[test]
fn a_recipe_build_runs_cargo_through_the_cache_and_a_rebuild_elsewhere_hits_every_unit() {
    let s = Scratch::new();
    let recipe = s.recipe();
    // No wrapper in the recipe, and a dev build, incremental by default:
    // the engine sets both.
    let first = s.recipe_build(&recipe, "out1");
    assert_eq!(first["misses"], UNITS, "{first:#}");
    assert_eq!(first["hits"], 0, "{first:#}");

    // One more script line: the package builds again, in another
    // key-named directory with another work dir and build prefix.
    let yaml = recipe.join("recipe.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    let edited = text.replace(
        "    - cargo build --offline\n",
        "    - echo again\n    - cargo build --offline\n",
    );
    assert_ne!(text, edited);
    std::fs::write(&yaml, edited).unwrap();
    let second = s.recipe_build(&recipe, "out2");
    assert_eq!(second["hits"], UNITS, "{second:#}");
    assert_eq!(second["misses"], 0, "{second:#}");

    // The package holds the binary, and it runs where it is installed.
    let checked = oracle(&s.path("out2"), &s.path("env"), &["ws-app"], &["app"]);
    assert_eq!(
        checked["command"]["stdout"],
        "hello from alpha, sum 6, count 4, plain\n"
    );
}

#[test]
fn two_builds_at_once_share_one_store_safely() {
    let s = Scratch::new();
    let a = s.checkout("a");
    let b = s.checkout("b");
    let (first, second) = std::thread::scope(|scope| {
        let one = scope.spawn(|| s.build(&a));
        let two = scope.spawn(|| s.build(&b));
        (one.join().unwrap(), two.join().unwrap())
    });
    // Each build zeroes the counts after it, so one of them may hold both
    // builds' calls: together they served every unit twice.
    let served = |v: &Value| v["hits"].as_u64().unwrap() + v["misses"].as_u64().unwrap();
    assert_eq!(served(&first) + served(&second), 2 * UNITS);
    assert_eq!(run_app(&a), run_app(&b));
    let verify = s.cleave().args(["cache", "verify"]).output().unwrap();
    assert_success(&verify);
    let c = s.checkout("c");
    let third = s.build(&c);
    assert_eq!(third["hits"], UNITS, "{third:#}");
}

#[test]
fn a_second_machine_takes_every_unit_from_an_s3_remote() {
    let s3 = services::s3();
    let url = services::s3_url(&s3, "rust");
    second_machine_takes_every_unit(&[
        ("CLEAVE_REMOTE", url.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing-key"),
        ("AWS_SECRET_ACCESS_KEY", "testing-secret-0123456789"),
    ]);
}

#[test]
fn a_second_machine_takes_every_unit_from_a_reapi_remote() {
    let grid = services::buildgrid(services::Grid::default(), "rust");
    let url = services::grpc_url(&grid, "rust");
    second_machine_takes_every_unit(&[("CLEAVE_REMOTE", url.as_str())]);
}

/// Machine A fills the remote named in `remote`; machine B, with an empty
/// cache at another path, takes every unit from it, and an edit made on B
/// reaches A.
fn second_machine_takes_every_unit(remote: &[(&str, &str)]) {
    let s = Scratch::new();
    let a = s.checkout("a");
    let (first, printed) = s.build_on(&a, "machine-a", remote);
    assert_eq!(first["misses"], UNITS, "{first:#}");
    assert!(!printed.contains("warning"), "{printed}");
    let uploads = remote_total(&first, "uploads");
    // Each unit's result and its manifest.
    assert_eq!(uploads, 2 * UNITS, "{first:#}");

    // Machine B: its own, empty cache dir, a checkout at another path.
    let b = s.checkout("elsewhere/b");
    let (second, printed) = s.build_on(&b, "machine-b", remote);
    assert_eq!(second["hits"], UNITS, "{second:#}\n{printed}");
    assert_eq!(second["misses"], 0, "{second:#}");
    assert_eq!(second["counts"]["remote_hits"], UNITS, "{second:#}");
    assert_eq!(
        std::fs::read(a.join("target/debug/app")).unwrap(),
        std::fs::read(b.join("target/debug/app")).unwrap(),
    );
    assert_eq!(run_app(&b), "hello from alpha, sum 6, count 4, plain\n");

    // An edit on B reaches A through the remote: A's local manifest lacks
    // it, the remote's has it.
    let words = "alpha/src/words.rs";
    std::fs::write(b.join(words), "pub const HELLO: &str = \"howdy\";\n").unwrap();
    let (edited, _) = s.build_on(&b, "machine-b", remote);
    // alpha, beta, app and ffi.
    assert_eq!(edited["misses"], 4, "{edited:#}");
    std::fs::write(a.join(words), "pub const HELLO: &str = \"howdy\";\n").unwrap();
    let (taken, printed) = s.build_on(&a, "machine-a", remote);
    assert_eq!(taken["hits"], 4, "{taken:#}\n{printed}");
    assert_eq!(taken["counts"]["remote_hits"], 4, "{taken:#}");
    assert_eq!(run_app(&a), "howdy from alpha, sum 6, count 4, plain\n");
}

#[test]
fn a_remote_that_is_down_costs_a_warning_not_a_build() {
    let url = format!(
        "s3://cache/rust?endpoint=http://127.0.0.1:{}",
        services::free_port()
    );
    let s = Scratch::new();
    let a = s.checkout("a");
    let (first, printed) = s.build_on(&a, "cache", &[("CLEAVE_REMOTE", url.as_str())]);
    assert_eq!(first["misses"], UNITS, "{first:#}");
    assert!(printed.contains("warning"), "{printed}");
    // The first call that failed marks the remote down: the calls after it
    // skip it instead of each waiting.
    let asked = remote_total(&first, "errors");
    assert!((1..UNITS).contains(&asked), "{first:#}");
    assert_eq!(run_app(&a), "hello from alpha, sum 6, count 4, plain\n");
    // The local cache works as ever.
    let b = s.checkout("b");
    let (second, _) = s.build_on(&b, "cache", &[("CLEAVE_REMOTE", url.as_str())]);
    assert_eq!(second["hits"], UNITS, "{second:#}");
}

/// A crate whose build script compiles a C file into a static library
/// (as the `cc` crate does) that rustc copies into the crate's rlib: named
/// by the build script (`-l static=native`), or `in_source` by a
/// `#[link]` attribute (no argument names it).
fn native_crate(dir: &Path, value: u32, in_source: bool) {
    let (link_arg, attribute) = if in_source {
        ("", "#[link(name = \"native\", kind = \"static\")]\n")
    } else {
        (
            "    println!(\"cargo:rustc-link-lib=static=native\");\n",
            "",
        )
    };
    let files = [
        (
            "Cargo.toml",
            "[package]\nname = \"nat\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n"
                .to_string(),
        ),
        (
            "build.rs",
            format!(
                r#"use std::process::Command;
fn main() {{
    let out = std::env::var("OUT_DIR").unwrap();
    let obj = format!("{{out}}/native.o");
    let ok = Command::new("cc").args(["-c", "-O2", "native.c", "-o", &obj]).status().unwrap();
    assert!(ok.success());
    let lib = format!("{{out}}/libnative.a");
    let _ = std::fs::remove_file(&lib);
    assert!(Command::new("ar").args(["crsD", &lib, &obj]).status().unwrap().success());
    println!("cargo:rustc-link-search=native={{out}}");
{link_arg}    println!("cargo:rerun-if-changed=native.c");
}}
"#
            ),
        ),
        (
            "native.c",
            format!("int native_value(void) {{ return {value}; }}\n"),
        ),
        (
            "src/lib.rs",
            format!(
                "{attribute}extern \"C\" {{\n    fn native_value() -> i32;\n}}\n\npub fn value() -> i32 {{\n    unsafe {{ native_value() }}\n}}\n"
            ),
        ),
        (
            "src/main.rs",
            "fn main() {\n    println!(\"{}\", nat::value());\n}\n".to_string(),
        ),
    ];
    for (rel, text) in files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

#[test]
fn a_static_library_a_build_script_rebuilt_is_in_the_rlib_s_key() {
    for in_source in [false, true] {
        let s = Scratch::new();
        let run = |dir: &Path| {
            let out = Command::new(dir.join("target/debug/nat")).output().unwrap();
            assert_success(&out);
            String::from_utf8(out.stdout).unwrap()
        };
        let a = s.path("a/nat");
        native_crate(&a, 1, in_source);
        let first = s.build(&a);
        // The build script, the lib and the bin.
        assert_eq!(first["misses"], 3, "{first:#}");
        assert_eq!(run(&a), "1\n");

        // Elsewhere, the same C: the same archive, every unit hits.
        let b = s.path("elsewhere/b/nat");
        native_crate(&b, 1, in_source);
        assert_eq!(s.build(&b)["hits"], 3, "named in source: {in_source}");
        assert_eq!(run(&b), "1\n");

        // Another C file: the build script hits and makes another
        // archive; the rlib that holds it and the bin linking it are
        // compiled.
        let c = s.path("c/nat");
        native_crate(&c, 2, in_source);
        let edited = s.build(&c);
        let counts = (edited["hits"].as_u64(), edited["misses"].as_u64());
        assert_eq!(
            counts,
            (Some(1), Some(2)),
            "in source: {in_source}: {edited:#}"
        );
        assert_eq!(run(&c), "2\n");
    }
}

#[test]
fn a_second_machine_takes_every_unit_through_a_cache_helper() {
    let s = Scratch::new();
    let helper = repo().join("examples/cache-helpers/dir-helper.py");
    let shared = s.path("shared");
    let env = [
        ("CLEAVE_CACHE_HELPER", helper.to_str().unwrap()),
        ("CLEAVE_HELPER_DIR", shared.to_str().unwrap()),
    ];
    let a = s.checkout("a");
    let (first, printed) = s.build_on(&a, "machine-a", &env);
    assert_eq!(first["misses"], UNITS, "{first:#}");
    assert!(!printed.contains("warning"), "{printed}");
    // Each unit's result and its manifest, one entry each.
    assert_eq!(
        std::fs::read_dir(&shared).unwrap().count() as u64,
        2 * UNITS
    );

    let b = s.checkout("elsewhere/b");
    let (second, printed) = s.build_on(&b, "machine-b", &env);
    assert_eq!(second["hits"], UNITS, "{second:#}\n{printed}");
    assert_eq!(second["counts"]["remote_hits"], UNITS, "{second:#}");
    // Each unit: its manifest, then its result.
    assert_eq!(remote_total(&second, "requests"), 2 * UNITS, "{second:#}");
    assert_eq!(
        std::fs::read(a.join("target/debug/app")).unwrap(),
        std::fs::read(b.join("target/debug/app")).unwrap(),
    );

    // An edit on B reaches A: the helper is told the grown manifest
    // replaces the one it holds.
    let words = "alpha/src/words.rs";
    std::fs::write(b.join(words), "pub const HELLO: &str = \"howdy\";\n").unwrap();
    let (edited, _) = s.build_on(&b, "machine-b", &env);
    let rebuilt = edited["misses"].as_u64().unwrap();
    std::fs::write(a.join(words), "pub const HELLO: &str = \"howdy\";\n").unwrap();
    let (taken, printed) = s.build_on(&a, "machine-a", &env);
    assert_eq!(
        taken["hits"].as_u64(),
        Some(rebuilt),
        "{taken:#}\n{printed}"
    );
    assert_eq!(taken["counts"]["remote_hits"].as_u64(), Some(rebuilt));
    assert_eq!(run_app(&a), "howdy from alpha, sum 6, count 4, plain\n");
}

#[test]
fn a_failing_helper_costs_a_warning_and_is_not_run_by_every_compile() {
    let s = Scratch::new();
    let log = s.path("helper-runs");
    let helper = s.path("broken-helper");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\necho run >> {}\necho broken >&2\nexit 3\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let a = s.checkout("a");
    let env = [("CLEAVE_CACHE_HELPER", helper.to_str().unwrap())];
    let (first, printed) = s.build_on(&a, "cache", &env);
    assert_eq!(first["misses"], UNITS, "{first:#}");
    assert!(printed.contains("broken"), "{printed}");
    assert_eq!(run_app(&a), "hello from alpha, sum 6, count 4, plain\n");
    // The compiles running when it first failed ran it; the rest did not.
    let runs = std::fs::read_to_string(&log).unwrap().lines().count() as u64;
    assert!((1..UNITS).contains(&runs), "{runs} runs");
    assert_eq!(remote_total(&first, "errors"), runs, "{first:#}");
}

/// A workspace of its own at `dir` from `(path, text)` pairs.
fn workspace(dir: &Path, files: &[(&str, &str)]) {
    for (rel, text) in files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// What the workspace's binary `name` prints.
fn run_bin(dir: &Path, name: &str) -> String {
    let out = Command::new(dir.join("target/debug").join(name))
        .output()
        .unwrap();
    assert_success(&out);
    String::from_utf8(out.stdout).unwrap()
}

/// A proc-macro that expands to the text of the user crate's `data.txt`
/// and the value of `READER_EXTRA`, which neither rustc's dep-info nor
/// cargo knows it reads, and a binary that prints it.
fn reading_macro(dir: &Path, data: &str) {
    workspace(
        dir,
        &[
            (
                "Cargo.toml",
                "[workspace]\nmembers = [\"reader\", \"user\"]\nresolver = \"2\"\n",
            ),
            (
                "reader/Cargo.toml",
                "[package]\nname = \"reader\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\nproc-macro = true\n",
            ),
            (
                "reader/src/lib.rs",
                r#"use proc_macro::TokenStream;

#[proc_macro]
pub fn data(_: TokenStream) -> TokenStream {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let text = std::fs::read_to_string(format!("{dir}/data.txt")).unwrap();
    let extra = std::env::var("READER_EXTRA").unwrap_or_default();
    format!("{:?}", format!("{}{}", text.trim(), extra)).parse().unwrap()
}
"#,
            ),
            (
                "user/Cargo.toml",
                "[package]\nname = \"user\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nreader = { path = \"../reader\" }\n",
            ),
            (
                "user/src/main.rs",
                "fn main() {\n    println!(\"{}\", reader::data!());\n}\n",
            ),
            ("user/data.txt", data),
        ],
    );
}

#[test]
fn a_proc_macro_that_reads_a_file_or_a_variable_is_not_trusted_unless_the_user_says_so() {
    let s = Scratch::new();
    let untrusted = [("CLEAVE_PURE_PROC_MACROS", "")];
    let a = s.path("a");
    reading_macro(&a, "one");
    let (first, _) = s.build_on(&a, "cache", &untrusted);
    assert_eq!(run_bin(&a, "user"), "one\n");

    // Another checkout with other data, and the variable set.
    let b = s.path("b/deeper");
    reading_macro(&b, "two");
    let (second, _) = s.build_on(
        &b,
        "cache",
        &[("CLEAVE_PURE_PROC_MACROS", ""), ("READER_EXTRA", "!")],
    );
    assert_eq!(run_bin(&b, "user"), "two!\n", "A's expansion was served");
    let reason = "proc-macro not known to be pure: reader";
    assert_eq!(first["counts"]["uncacheable"][reason], 1, "{first:#}");
    assert_eq!(second["counts"]["uncacheable"][reason], 1, "{second:#}");
    // The proc-macro itself is compiled through the cache.
    assert_eq!(second["hits"], 1, "{second:#}");

    // Declared pure, the user crate is cached like any other.
    let trusted = [("CLEAVE_PURE_PROC_MACROS", "reader")];
    let c = s.path("c");
    reading_macro(&c, "three");
    s.build_on(&c, "cache", &trusted);
    let d = s.path("d");
    reading_macro(&d, "three");
    let (fourth, _) = s.build_on(&d, "cache", &trusted);
    assert_eq!(fourth["hits"], 2, "{fourth:#}");
    assert_eq!(run_bin(&d, "user"), "three\n");
}

#[test]
fn the_rustc_that_runs_is_in_the_key_not_only_what_it_says_it_is() {
    let s = Scratch::new();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let real = Path::new(&cargo).with_file_name("rustc");
    // A shim named rustc, as RUSTC names it; its second version adds a
    // flag, and still answers -vV as the rustc behind it does.
    let shim = s.path("shim/rustc");
    let set_shim = |extra: &str| {
        workspace(
            &s.path("shim"),
            &[(
                "rustc",
                &format!("#!/bin/sh\nexec {} \"$@\" {extra}\n", real.display()),
            )],
        );
        std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    };
    let crate_files = [
        (
            "Cargo.toml",
            "[package]\nname = \"shimmed\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lints.rust]\nunexpected_cfgs = \"allow\"\n",
        ),
        (
            "src/main.rs",
            "#[cfg(shim_on)]\nconst V: &str = \"shim\";\n#[cfg(not(shim_on))]\nconst V: &str = \"plain\";\n\nfn main() {\n    println!(\"{V}\");\n}\n",
        ),
    ];
    let shim_env = [("RUSTC", shim.to_str().unwrap())];
    set_shim("");
    let a = s.path("a");
    workspace(&a, &crate_files);
    s.build_on(&a, "cache", &shim_env);
    assert_eq!(run_bin(&a, "shimmed"), "plain\n");

    set_shim("--cfg shim_on");
    let b = s.path("b");
    workspace(&b, &crate_files);
    let (second, _) = s.build_on(&b, "cache", &shim_env);
    assert_eq!(run_bin(&b, "shimmed"), "shim\n", "the first shim's output");
    assert_eq!(second["hits"], 0, "{second:#}");
}
