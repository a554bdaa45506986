//! End-to-end tests of the compile cache: recipe builds of
//! `tests/compile/parts` (cmake + ninja, 4 compiles in parallel), and
//! `cleave cc` outside recipes. Real compilations are counted by a `cc` on
//! PATH that logs each `-c` call before running the machine's compiler,
//! so the log only grows when the cache compiles; the cache's own counts
//! come from `cleave cache stats --json`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

mod common;
use common::{RecipeCopy, assert_success, oracle, repo, stderr, wait_all, walk};

#[path = "../../cleave-cache/tests/services/mod.rs"]
mod services;

/// The machine's C compiler, found on PATH.
fn machine_cc() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap();
    std::env::split_paths(&path)
        .map(|d| d.join("cc"))
        .find(|p| p.is_file())
        .expect("a cc on PATH")
}

/// A scratch directory with its own cache and a counting `cc` (and `gcc`)
/// first on PATH.
struct Scratch {
    tmp: tempfile::TempDir,
    /// Lines of the compile log already looked at.
    seen: std::cell::Cell<usize>,
}

impl Scratch {
    fn new() -> Scratch {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let log = tmp.path().join("compiles.log");
        let script = format!(
            "#!/bin/sh\n# Logs each real compilation (not cmake's probes), then compiles.\n\
             case \" $* \" in\n  *CMakeScratch*|*CMakeTmp*) ;;\n  *\" -c \"*) echo \"$*\" >> {} ;;\nesac\n\
             exec {} \"$@\"\n",
            log.display(),
            machine_cc().display()
        );
        for name in ["cc", "gcc"] {
            std::fs::write(bin.join(name), &script).unwrap();
            std::fs::set_permissions(bin.join(name), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        Scratch {
            tmp,
            seen: std::cell::Cell::new(0),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// `cleave ARGS` with this scratch dir's cache, PATH and directory.
    fn cleave(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cleave"));
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.path("bin")];
        dirs.extend(std::env::split_paths(&path));
        cmd.args(args)
            .env("CLEAVE_CACHE_DIR", self.path("cache"))
            .env("PATH", std::env::join_paths(dirs).unwrap())
            .env("NO_COLOR", "1")
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("CLEAVE_COMPILE_BASE_DIR")
            .current_dir(self.tmp.path());
        cmd
    }

    /// The source files compiled since the last call, sorted, leaving out
    /// cmake's compiler checks (its ABI probe passes `-v`, which the cache
    /// does not serve).
    fn compiled(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.path("compiles.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let new = &lines[self.seen.get().min(lines.len())..];
        self.seen.set(lines.len());
        let mut sources: Vec<String> = new
            .iter()
            .filter_map(|l| {
                l.split_whitespace()
                    .find(|w| w.ends_with(".c") && !w.starts_with('-'))
                    .map(|w| w.rsplit('/').next().unwrap().to_string())
            })
            .filter(|name| !name.starts_with("CMake"))
            .collect();
        sources.sort();
        sources
    }

    /// `cleave cache stats --json`, the compile counts.
    fn stats(&self) -> Value {
        let out = self.cleave(&["cache", "stats", "--json"]).output().unwrap();
        assert_success(&out);
        let value: Value = serde_json::from_slice(&out.stdout).unwrap();
        value["compile"].clone()
    }
}

/// The compile counts `stats` gives: (hits, misses, uncacheable).
fn counts(stats: &Value) -> (u64, u64, u64) {
    (
        stats["hits"].as_u64().unwrap(),
        stats["misses"].as_u64().unwrap(),
        stats["uncacheable"].as_u64().unwrap(),
    )
}

/// A copy of tests/compile/parts in a scratch dir.
struct Parts {
    scratch: Scratch,
    recipe: RecipeCopy,
}

impl Parts {
    fn new() -> Parts {
        Parts {
            scratch: Scratch::new(),
            recipe: RecipeCopy::new("compile", "parts"),
        }
    }

    /// `cleave build` into `out` under `staging_root` (relative to the
    /// scratch dir), tests skipped.
    fn build_in(&self, out: &str, staging_root: &str, extra: &[&str]) -> Output {
        let recipe = self.recipe.recipe.to_str().unwrap().to_string();
        let root = self.scratch.path(staging_root);
        let mut args = vec![
            "build",
            "-r",
            &recipe,
            "--output-dir",
            out,
            "--staging-root",
            root.to_str().unwrap(),
            "--test",
            "skip",
        ];
        args.extend_from_slice(extra);
        self.scratch.cleave(&args).output().unwrap()
    }

    fn build(&self, out: &str) -> Output {
        self.build_in(out, "stg", &[])
    }

    /// Makes the staging build run again without changing what it
    /// compiles (its script gets one more line).
    fn force_rerun(&self, tag: &str) {
        self.recipe.edit("recipe.yaml", |text| {
            text.replace(
                "        - cmake --build build --parallel 4\n",
                &format!("        - cmake --build build --parallel 4\n        - echo {tag}\n"),
            )
        });
    }

    /// What the built tool prints, installed from `out` by the oracle.
    fn tool_output(&self, out: &str) -> String {
        let checked = oracle(
            &self.scratch.path(out),
            &self.scratch.path(&format!("env-{out}")),
            &["parts"],
            &["parts-tool"],
        );
        checked["command"]["stdout"].as_str().unwrap().to_string()
    }
}

#[test]
fn a_header_edit_recompiles_exactly_the_objects_that_include_it_and_a_new_build_dir_hits_every_object()
 {
    let parts = Parts::new();
    let first = parts.build("out1");
    assert_success(&first);
    assert_eq!(
        parts.scratch.compiled(),
        ["a.c", "b.c", "c.c", "main.c"],
        "{}",
        stderr(&first)
    );
    assert_eq!(counts(&parts.scratch.stats()).1, 4);
    assert_eq!(parts.tool_output("out1"), "parts 20 12 9\n");

    // common.h is included by a.c and b.c: the staging build reruns (its
    // key holds the sources) in a new directory, and compiles those two.
    parts
        .recipe
        .edit("src/common.h", |_| "#define FACTOR 3\n".to_string());
    let edited = parts.build("out2");
    assert_success(&edited);
    assert_eq!(
        parts.scratch.compiled(),
        ["a.c", "b.c"],
        "{}",
        stderr(&edited)
    );
    assert_eq!(parts.tool_output("out2"), "parts 30 13 9\n");
    let (hits, misses, _) = counts(&parts.scratch.stats());
    assert_eq!((hits, misses), (2, 6));

    // Nothing a compile reads changes; the build reruns under another
    // staging root, at paths of another length: every object is a hit.
    parts.force_rerun("again");
    let moved = parts.build_in("out3", "a/much/longer/staging/root", &[]);
    assert_success(&moved);
    assert!(stderr(&moved).contains("stored staging `parts-build`"));
    assert_eq!(parts.scratch.compiled(), Vec::<String>::new());
    let stats = parts.scratch.stats();
    assert_eq!(counts(&stats).0, 6, "{stats:#}");
    assert_eq!(stats["counts"]["hits_direct"], 6, "{stats:#}");
    assert_eq!(parts.tool_output("out3"), "parts 30 13 9\n");
}

#[test]
fn a_recipe_build_on_another_machine_takes_the_objects_from_the_build_s_remote() {
    let parts = Parts::new();
    let shared = parts.scratch.path("shared");
    objects_from_the_remote(&parts, &format!("file://{}", shared.display()));
}

#[test]
fn a_recipe_build_on_another_machine_takes_the_objects_from_a_reapi_remote() {
    let grid = services::buildgrid(services::Grid::default(), "");
    objects_from_the_remote(&Parts::new(), &services::grpc_url(&grid, ""));
}

/// Machine A builds the recipe with `remote`; machine B, with an empty
/// cache and another script line, compiles nothing: every object comes
/// from the remote.
fn objects_from_the_remote(parts: &Parts, remote: &str) {
    let on = |machine: &str| {
        let cache = parts.scratch.path(machine);
        let cache = cache.to_str().unwrap().to_string();
        let out = parts.build_in(
            &format!("out-{machine}"),
            "stg",
            &["--cache-dir", &cache, "--remote", remote],
        );
        assert_success(&out);
        assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    };
    on("machine-a");
    assert_eq!(parts.scratch.compiled(), ["a.c", "b.c", "c.c", "main.c"]);
    // The file naming the remotes for the compile calls goes with the build.
    let left: Vec<_> = std::fs::read_dir(parts.scratch.path("machine-a"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("compile-levels"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // Machine B's recipe differs in one script line: the staging build
    // runs, and each compile is taken from the remote.
    parts.force_rerun("on b");
    on("machine-b");
    assert_eq!(parts.scratch.compiled(), Vec::<String>::new());
    let stats = parts
        .scratch
        .cleave(&["cache", "stats", "--json"])
        .env("CLEAVE_CACHE_DIR", parts.scratch.path("machine-b"))
        .output()
        .unwrap();
    let value: Value = serde_json::from_slice(&stats.stdout).unwrap();
    let compile = &value["compile"];
    assert_eq!(compile["counts"]["remote_hits"], 4, "{compile:#}");
    assert_eq!(parts.tool_output("out-machine-b"), "parts 20 12 9\n");
}

#[test]
fn two_builds_at_once_on_one_store_both_succeed_and_leave_sound_entries() {
    // Two recipes that differ only in their scripts' last line: two
    // staging builds, compiling the same sources at the same time into
    // one store, each with ninja running 4 compiles in parallel.
    let parts = Parts::new();
    let other = RecipeCopy::new("compile", "parts");
    parts.force_rerun("a");
    other.edit("recipe.yaml", |t| {
        t.replace("--parallel 4\n", "--parallel 4\n        - echo b\n")
    });
    let spawn = |recipe: &Path, out: &str, root: &str| {
        let root = parts.scratch.path(root);
        parts
            .scratch
            .cleave(&[
                "build",
                "-r",
                recipe.to_str().unwrap(),
                "--output-dir",
                out,
                "--staging-root",
                root.to_str().unwrap(),
                "--test",
                "skip",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let [a, b] = <[Output; 2]>::try_from(wait_all(vec![
        spawn(&parts.recipe.recipe, "out-a", "stg-a"),
        spawn(&other.recipe, "out-b", "stg-b"),
    ]))
    .unwrap();
    assert_success(&a);
    assert_success(&b);
    assert_eq!(parts.tool_output("out-a"), "parts 20 12 9\n");
    assert_eq!(parts.tool_output("out-b"), "parts 20 12 9\n");
    let stats = parts.scratch.stats();
    let (hits, misses, _) = counts(&stats);
    assert_eq!(hits + misses, 8, "{stats:#}");
    assert_eq!(stats["counts"]["errors"], 0, "{stats:#}");
    let verify = parts.scratch.cleave(&["cache", "verify"]).output().unwrap();
    assert_success(&verify);

    // Whatever raced, the entries serve a third build whole.
    parts.force_rerun("c");
    let third = parts.build("out-c");
    assert_success(&third);
    parts.scratch.compiled();
    let before = counts(&stats).0;
    assert_eq!(counts(&parts.scratch.stats()).0 - before, 4);
    assert_eq!(parts.tool_output("out-c"), "parts 20 12 9\n");
}

/// A C file in the scratch dir, and `cleave cc COMPILER -c` of it.
impl Scratch {
    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `cleave cc COMPILER ARGS` in `dir` (relative to the scratch dir).
    fn cc_in(&self, dir: &str, compiler: &str, args: &[&str]) -> Output {
        let mut cmd = self.cleave(&["cc", compiler]);
        cmd.args(args).current_dir(self.path(dir));
        cmd.output().unwrap()
    }

    fn cc(&self, args: &[&str]) -> Output {
        self.cc_in("", "gcc", args)
    }
}

#[test]
fn flags_the_compiler_and_its_version_are_in_the_key() {
    let s = Scratch::new();
    s.write("x.c", "int f(void) { return X; }\n");
    let compile = |args: &[&str]| {
        let mut all = vec!["-c", "x.c", "-o", "x.o"];
        all.extend_from_slice(args);
        assert_success(&s.cc(&all));
        s.compiled().len()
    };
    assert_eq!(compile(&["-DX=1"]), 1);
    assert_eq!(compile(&["-DX=1"]), 0);
    assert_eq!(compile(&["-DX=2"]), 1, "another -D");
    assert_eq!(compile(&["-DX=2", "-O2"]), 1, "another optimisation level");
    assert_eq!(compile(&["-DX=2", "-O2"]), 0);

    // A compiler that is a script around gcc, and that says where its
    // compiler proper (`cc1`) is: another script (another binary) misses,
    // and so does the same script once its cc1 changed (a new version
    // behind an unchanged driver).
    let cc1 = s.write("tc/cc1", "version 1\n");
    let driver = |extra: &str| {
        format!(
            "#!/bin/sh\n{extra}\nif [ \"$1\" = -print-prog-name=cc1 ]; then echo {}; exit 0; fi\nexec {} \"$@\"\n",
            cc1.display(),
            s.path("bin/gcc").display()
        )
    };
    let mycc = s.write("tc/mycc", &driver(""));
    std::fs::set_permissions(&mycc, std::fs::Permissions::from_mode(0o755)).unwrap();
    let with = |args: &[&str]| {
        let out = s.cc_in("", mycc.to_str().unwrap(), args);
        assert_success(&out);
        s.compiled().len()
    };
    let args = ["-c", "x.c", "-o", "x.o", "-DX=2"];
    assert_eq!(with(&args), 1, "another compiler binary");
    assert_eq!(with(&args), 0);
    std::fs::write(&cc1, "version 2\n").unwrap();
    assert_eq!(with(&args), 1, "another compiler version");
    assert_eq!(with(&args), 0);
    std::fs::write(&mycc, driver("# edited")).unwrap();
    assert_eq!(with(&args), 1, "the driver edited");
}

#[test]
fn an_object_compiled_on_one_machine_comes_from_a_remote_or_a_helper_on_another() {
    let s = Scratch::new();
    s.write("x.c", "int f(void) { return 42; }\n");
    let remote = format!("file://{}", s.path("shared").display());
    let helper = repo().join("examples/cache-helpers/dir-helper.py");
    let helper_dir = s.path("helper-dir");
    let through_remote = [("CLEAVE_REMOTE", remote.as_str())];
    let through_helper = [
        ("CLEAVE_CACHE_HELPER", helper.to_str().unwrap()),
        ("CLEAVE_HELPER_DIR", helper_dir.to_str().unwrap()),
    ];
    for (level, env) in [
        ("remote", &through_remote[..]),
        ("helper", &through_helper[..]),
    ] {
        let cc_on = |cache: &str| {
            let mut cmd = s.cleave(&["cc", "gcc", "-c", "x.c", "-o", "x.o"]);
            cmd.env("CLEAVE_CACHE_DIR", s.path(&format!("{level}-{cache}")))
                .envs(env.iter().copied());
            let out = cmd.output().unwrap();
            assert_success(&out);
            assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
        };
        cc_on("machine-a");
        assert_eq!(s.compiled().len(), 1, "{level}");
        let object = std::fs::read(s.path("x.o")).unwrap();
        std::fs::remove_file(s.path("x.o")).unwrap();

        cc_on("machine-b");
        assert_eq!(
            s.compiled().len(),
            0,
            "{level}: B compiled what A handed over"
        );
        assert_eq!(std::fs::read(s.path("x.o")).unwrap(), object);
        let stats = s
            .cleave(&["cache", "stats", "--json"])
            .env("CLEAVE_CACHE_DIR", s.path(&format!("{level}-machine-b")))
            .output()
            .unwrap();
        let value: Value = serde_json::from_slice(&stats.stdout).unwrap();
        let compile = &value["compile"];
        assert_eq!(compile["hits"], 1, "{level}: {compile:#}");
        assert_eq!(compile["counts"]["remote_hits"], 1, "{level}: {compile:#}");
    }
}

#[test]
fn a_remote_that_is_down_is_logged_not_printed_where_configure_checks_read() {
    let s = Scratch::new();
    s.write("x.c", "int f(void) { return 42; }\n");
    let down = format!(
        "s3://cache/c?endpoint=http://127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let out = s
        .cleave(&["cc", "gcc", "-c", "x.c", "-o", "x.o"])
        .env("CLEAVE_REMOTE", &down)
        .output()
        .unwrap();
    assert_success(&out);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert_eq!(s.compiled().len(), 1);
    let log = std::fs::read_to_string(s.path("cache/compile/warnings.log")).unwrap();
    assert!(log.contains("warning: remote s3://cache/c"), "{log}");
}

#[test]
fn a_remote_variable_that_does_not_parse_costs_the_remote_not_the_cache() {
    let s = Scratch::new();
    s.write("x.c", "int f(void) { return 42; }\n");
    for _ in 0..2 {
        let out = s
            .cleave(&["cc", "gcc", "-c", "x.c", "-o", "x.o"])
            .env("CLEAVE_REMOTE", "nope://somewhere")
            .output()
            .unwrap();
        assert_success(&out);
        assert!(stderr(&out).contains("are left out"), "{}", stderr(&out));
    }
    assert_eq!(s.compiled().len(), 1, "the second call hit");
}

#[test]
fn a_flipped_byte_in_a_cached_object_is_detected_and_the_object_recompiled() {
    let s = Scratch::new();
    s.write("x.c", "int answer(void) { return 42; }\n");
    assert_success(&s.cc(&["-c", "x.c", "-o", "x.o"]));
    let good = std::fs::read(s.path("x.o")).unwrap();
    let objects: Vec<PathBuf> = walk(&s.path("cache/staging/blobs"))
        .into_iter()
        .filter(|p| std::fs::read(p).unwrap().starts_with(b"\x7fELF"))
        .collect();
    assert_eq!(objects.len(), 1);
    let mut bytes = std::fs::read(&objects[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&objects[0], bytes).unwrap();
    s.compiled();

    std::fs::remove_file(s.path("x.o")).unwrap();
    assert_success(&s.cc(&["-c", "x.c", "-o", "x.o"]));
    assert_eq!(s.compiled(), ["x.c"], "recompiled");
    assert_eq!(std::fs::read(s.path("x.o")).unwrap(), good);
    let stats = s.stats();
    assert_eq!(
        stats["counts"]["misses"]["damaged entry recompiled"], 1,
        "{stats:#}"
    );
    // The damaged entry is gone, the new one is whole, and it serves.
    assert_success(&s.cleave(&["cache", "verify"]).output().unwrap());
    assert_success(&s.cc(&["-c", "x.c", "-o", "x.o"]));
    assert_eq!(s.compiled(), Vec::<String>::new());
    assert_eq!(std::fs::read(s.path("x.o")).unwrap(), good);
}

#[test]
fn uncacheable_calls_pass_through_and_are_counted_by_reason() {
    let s = Scratch::new();
    s.write("a.c", "int a(void) { return 1; }\n");
    s.write("b.c", "int b(void) { return 2; }\n");
    s.write("main.c", "int main(void) { return 0; }\n");
    s.write("when.c", "const char *when = __DATE__;\n");
    for args in [
        &["main.c", "-o", "prog"][..],
        &["-E", "a.c", "-o", "a.i"],
        &["-c", "a.c", "b.c"],
        &["-c", "a.c", "-o", "a.o", "--frobnicate"],
        &["-c", "a.c", "-o", "a.o", "-fprofile-arcs"],
    ] {
        let out = s.cc(args);
        // The unknown option fails in gcc as it would without the cache.
        if !args.contains(&"--frobnicate") {
            assert_success(&out);
        } else {
            assert!(!out.status.success());
            assert!(stderr(&out).contains("frobnicate"), "{}", stderr(&out));
        }
    }
    assert!(s.path("prog").is_file() && s.path("a.i").is_file());
    let stats = s.stats();
    let reasons = &stats["counts"]["uncacheable"];
    assert_eq!(reasons["linking"], 1, "{stats:#}");
    assert_eq!(reasons["preprocessing only (-E, -M)"], 1, "{stats:#}");
    assert_eq!(reasons["several source files"], 1, "{stats:#}");
    assert_eq!(reasons["unknown option --frobnicate"], 1, "{stats:#}");
    assert_eq!(reasons["unsupported option -fprofile-arcs"], 1, "{stats:#}");
    assert_eq!(counts(&stats), (0, 0, 5));

    // A fixed clock makes __DATE__ and __TIME__ cacheable.
    let with_epoch = |epoch: &str| {
        let mut cmd = s.cleave(&["cc", "gcc", "-c", "when.c", "-o", "when.o"]);
        cmd.env("SOURCE_DATE_EPOCH", epoch);
        assert_success(&cmd.output().unwrap());
        std::fs::read(s.path("when.o")).unwrap()
    };
    let first = with_epoch("1700000000");
    assert_eq!(with_epoch("1700000000"), first);
    let later = with_epoch("1800000000");
    assert_ne!(later, first);
    let stats = s.stats();
    assert_eq!(counts(&stats), (1, 2, 5), "{stats:#}");
    assert_eq!(stats["counts"]["hits_direct"], 1, "{stats:#}");
}

#[test]
fn a_time_macro_on_the_command_line_or_pasted_together_is_never_served_stale() {
    let s = Scratch::new();
    s.write("cmd.c", "const char *stamp = STAMP;\n");
    s.write(
        "paste.h",
        "#define CAT(a, b) a##b\n#define WHEN CAT(__TI, ME__)\n",
    );
    s.write(
        "paste.c",
        "#include \"paste.h\"\nconst char *when = WHEN;\n",
    );
    let compile = |source: &str, extra: &[&str], epoch: Option<&str>| {
        let mut cmd = s.cleave(&["cc", "gcc", "-c", source, "-o", "x.o"]);
        cmd.args(extra);
        if let Some(epoch) = epoch {
            cmd.env("SOURCE_DATE_EPOCH", epoch);
        }
        assert_success(&cmd.output().unwrap());
        std::fs::read(s.path("x.o")).unwrap()
    };
    for (source, extra) in [("cmd.c", &["-DSTAMP=__TIME__"][..]), ("paste.c", &[])] {
        let first = compile(source, extra, None);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let second = compile(source, extra, None);
        assert!(
            first != second,
            "{source}: the first compile's time was served"
        );
    }
    let stats = s.stats();
    assert_eq!(
        stats["counts"]["direct_off"]["time macros (__DATE__, __TIME__, __TIMESTAMP__)"], 4,
        "{stats:#}"
    );
    assert_eq!(stats["hits"], 0, "{stats:#}");

    // With SOURCE_DATE_EPOCH, gcc fixes __DATE__: served directly, for
    // that clock only.
    let date = ["-DSTAMP=__DATE__"];
    let at_first = compile("cmd.c", &date, Some("1700000000"));
    let later = compile("cmd.c", &date, Some("1800000000"));
    assert!(at_first != later, "the first clock's date was served");
    assert!(compile("cmd.c", &date, Some("1700000000")) == at_first);
    let stats = s.stats();
    assert_eq!(stats["counts"]["hits_direct"], 1, "{stats:#}");
}

#[test]
fn warnings_and_dependency_files_are_replayed_on_a_hit_with_this_build_s_paths() {
    let s = Scratch::new();
    for dir in ["one", "two-longer"] {
        s.write(
            &format!("{dir}/src/x.c"),
            "#include \"x.h\"\nint f(void) { int unused; return X; }\n",
        );
        s.write(&format!("{dir}/src/x.h"), "#define X 1\n");
    }
    let compile = |dir: &str| {
        let src = s.path(&format!("{dir}/src/x.c"));
        let mut cmd = s.cleave(&[
            "cc",
            "gcc",
            "-Wall",
            "-c",
            src.to_str().unwrap(),
            "-o",
            "x.o",
            "-MD",
            "-MF",
            "deps/x.d",
        ]);
        std::fs::create_dir_all(s.path(&format!("{dir}/deps"))).unwrap();
        // A base holding both checkouts, as a user sets it once.
        cmd.current_dir(s.path(dir))
            .env("CLEAVE_COMPILE_BASE_DIR", s.tmp.path());
        let out = cmd.output().unwrap();
        assert_success(&out);
        (
            stderr(&out),
            std::fs::read_to_string(s.path(&format!("{dir}/deps/x.d"))).unwrap(),
        )
    };
    let (warned, deps) = compile("one");
    assert!(warned.contains("unused variable"), "{warned}");
    assert!(
        deps.contains(&format!("{}", s.path("one/src/x.h").display())),
        "{deps}"
    );
    let (again, deps_two) = compile("two-longer");
    assert_eq!(s.compiled(), ["x.c"], "the second directory is a hit");
    assert!(again.contains("unused variable"), "{again}");
    assert!(again.contains("two-longer/src/x.c"), "{again}");
    assert!(!again.contains("/one/"), "{again}");
    assert!(
        deps_two.contains(&format!("{}", s.path("two-longer/src/x.h").display())),
        "{deps_two}"
    );
    assert!(!deps_two.contains("/one/"), "{deps_two}");
}

#[test]
fn a_masquerade_dir_and_cleave_cc_work_outside_recipes() {
    let s = Scratch::new();
    let masq = s.path("masq");
    std::fs::create_dir(&masq).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_cleave"), masq.join("gcc")).unwrap();
    s.write("m.c", "int m(void) { return 7; }\n");
    // `gcc` is the masquerade link, first on PATH; the counting gcc next.
    let run = || {
        let mut dirs = vec![masq.clone(), s.path("bin")];
        dirs.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap()));
        let out = Command::new("gcc")
            .args(["-c", "m.c", "-o", "m.o"])
            .current_dir(s.tmp.path())
            .env("CLEAVE_CACHE_DIR", s.path("cache"))
            .env("PATH", std::env::join_paths(dirs).unwrap())
            .output()
            .unwrap();
        assert_success(&out);
        s.compiled().len()
    };
    assert_eq!(run(), 1);
    assert_eq!(run(), 0);
    // `cleave cc gcc` is the same compile: a hit.
    assert_success(&s.cc(&["-c", "m.c", "-o", "m2.o"]));
    assert_eq!(s.compiled().len(), 0);
    assert_eq!(counts(&s.stats()), (2, 1, 0));
}

#[test]
fn a_checkout_one_level_deeper_below_the_base_dir_takes_the_same_objects() {
    let s = Scratch::new();
    for top in ["a/proj", "b/c/proj"] {
        s.write(
            &format!("{top}/src/x.c"),
            "#include \"x.h\"\nint f(void) { return X; }\n",
        );
        s.write(&format!("{top}/src/x.h"), "#define X 4\n");
        std::fs::create_dir_all(s.path(&format!("{top}/build"))).unwrap();
    }
    let compile = |top: &str, debug: &str| {
        let src = s.path(&format!("{top}/src/x.c"));
        let mut cmd = s.cleave(&["cc", "gcc", debug, "-I../src", "-c"]);
        cmd.args([src.to_str().unwrap(), "-o", "x.o"])
            .current_dir(s.path(&format!("{top}/build")))
            .env("CLEAVE_COMPILE_BASE_DIR", s.tmp.path());
        assert_success(&cmd.output().unwrap());
        std::fs::read(s.path(&format!("{top}/build/x.o"))).unwrap()
    };
    for debug in ["-O2", "-g"] {
        let a = compile("a/proj", debug);
        assert_eq!(s.compiled().len(), 1, "{debug}");
        let b = compile("b/c/proj", debug);
        assert_eq!(s.compiled(), Vec::<String>::new(), "{debug}: a hit");
        assert!(a == b, "{debug}: the same object");
    }
    assert_eq!(counts(&s.stats()), (2, 2, 0));
}

#[test]
fn a_stats_log_with_a_foreign_byte_is_read_and_the_bad_line_skipped() {
    let s = Scratch::new();
    s.write("x.c", "int f(void) { return 1; }\n");
    assert_success(&s.cc(&["-c", "x.c", "-o", "x.o"]));
    let log = s.path("cache/compile/stats.log");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(b"u\t1\t0\tlinking \xff\n");
    std::fs::write(&log, bytes).unwrap();
    assert_success(&s.cc(&["-c", "x.c", "-o", "x.o"]));
    let stats = s.stats();
    assert_eq!(counts(&stats), (1, 1, 0), "{stats:#}");
    assert_eq!(stats["counts"]["skipped"], 1, "{stats:#}");
    let text = s.cleave(&["cache", "stats"]).output().unwrap();
    assert_success(&text);
    assert!(
        stdout_of(&text).contains("unreadable records"),
        "{}",
        stdout_of(&text)
    );

    std::fs::write(&log, b"\xfe\xff\n").unwrap();
    let zero = s.cleave(&["cache", "stats", "--zero"]).output().unwrap();
    assert_success(&zero);
    assert_eq!(counts(&s.stats()), (0, 0, 0));
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_call_that_writes_a_second_file_writes_it_every_time() {
    let s = Scratch::new();
    s.write("x.c", "int x = 1;\nint f(int a) { return a + x; }\n");
    for (args, second) in [
        (&["-aux-info", "protos.txt"][..], "protos.txt"),
        (&["-Wa,-adhln=x.lst"], "x.lst"),
        (&["-Xpreprocessor", "-MD", "-Xpreprocessor", "x.dd"], "x.dd"),
    ] {
        for round in 0..2 {
            let _ = std::fs::remove_file(s.path(second));
            let mut all = vec!["-c", "x.c", "-o", "x.o"];
            all.extend_from_slice(args);
            assert_success(&s.cc(&all));
            assert!(
                s.path(second).is_file(),
                "{args:?}, call {round}: {second} was not written"
            );
        }
    }
    let stats = s.stats();
    assert_eq!(counts(&stats), (0, 0, 6), "{stats:#}");
    let reasons = &stats["counts"]["uncacheable"];
    assert_eq!(reasons["unsupported option -Wa,-adhln"], 2, "{stats:#}");
    assert_eq!(
        reasons["unsupported option -Xpreprocessor -MD"], 2,
        "{stats:#}"
    );
}

#[test]
fn a_compiler_proper_put_in_place_by_b_or_compiler_path_is_in_the_key() {
    let s = Scratch::new();
    s.write(
        "v.c",
        "#ifndef VALUE\n#define VALUE 1\n#endif\nint v = VALUE;\n",
    );
    let real = Command::new(machine_cc())
        .arg("-print-prog-name=cc1")
        .output()
        .unwrap();
    let real = String::from_utf8(real.stdout).unwrap().trim().to_string();
    // A cc1 in a directory of its own, which compiles with one more -D.
    let cc1 = s.path("tc/cc1");
    let set_value = |value: u32| {
        s.write(
            "tc/cc1",
            &format!("#!/bin/sh\nexec {real} -DVALUE={value} \"$@\"\n"),
        );
        std::fs::set_permissions(&cc1, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let tc = s.path("tc");
    let tc_dir = format!("{}/", tc.display());
    // What gcc itself gives, and what the cache gives, for the same call.
    let both = |args: &[&str], env: &[(&str, &Path)]| {
        let reference = Command::new(machine_cc())
            .args(args)
            .args(["-o", "ref.o"])
            .envs(env.iter().copied())
            .current_dir(s.tmp.path())
            .output()
            .unwrap();
        assert_success(&reference);
        let mut cmd = s.cleave(&["cc", "gcc"]);
        cmd.args(args).args(["-o", "v.o"]).envs(env.iter().copied());
        assert_success(&cmd.output().unwrap());
        let (want, got) = (
            std::fs::read(s.path("ref.o")).unwrap(),
            std::fs::read(s.path("v.o")).unwrap(),
        );
        assert!(want == got, "{args:?} {env:?}: not what gcc gives");
    };
    let with_b = ["-B", tc_dir.as_str(), "-c", "v.c"];
    set_value(2);
    both(&with_b, &[]);
    set_value(3);
    both(&with_b, &[]);
    both(&with_b, &[]);

    let with_path = [("COMPILER_PATH", tc.as_path())];
    set_value(4);
    both(&["-c", "v.c"], &with_path);
    set_value(5);
    both(&["-c", "v.c"], &with_path);
    let stats = s.stats();
    assert_eq!(counts(&stats).0, 1, "{stats:#}");
}
