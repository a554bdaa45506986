//! C recipes as conda-forge writes them: `compiler('c')` and
//! `stdlib('c')`, the build script using what the compiler's activation
//! exports, and the run exports of both in the packages.

use crate::common::{assert_success, paths, stderr};
use crate::{build, build_string, depends, install, peer, recipe};

/// What the stand-ins' run exports add to a package built with them, as
/// conda-forge's compiler and sysroot do.
const TOOLCHAIN_DEPENDS: [&str; 2] = ["__glibc >=2.17,<3.0.a0", "libgcc >=12"];

#[test]
fn a_c_package_is_compiled_by_the_activated_conda_compiler_and_depends_on_glibc() {
    let tmp = tempfile::tempdir().unwrap();
    // The recipe's script fails unless $CC is the activated conda wrapper.
    let output = build(&recipe("forge", "hello-c"), tmp.path(), &[]);
    assert_success(&output);
    assert!(stderr(&output).contains("hello-c: 1 tests passed"));

    let checked = install(tmp.path(), "env", &["hello-c"], &["hello-c"]);
    assert_eq!(
        checked["command"]["stdout"],
        "hello from a conda compiler\n"
    );
    assert_eq!(depends(&checked, "hello-c"), TOOLCHAIN_DEPENDS);
    peer::assert_build_string("hello-c", "hello-c", &build_string(&checked, "hello-c"));

    // The wrapper logged both compilations, with conda-forge's flags.
    let calls =
        std::fs::read_to_string(tmp.path().join("env/share/hello-c/compiler-calls.log")).unwrap();
    let compiles: Vec<&str> = calls
        .lines()
        .filter(|l| l.starts_with("x86_64-conda-linux-gnu-cc "))
        .collect();
    assert_eq!(compiles.len(), 2, "{calls}");
    assert!(compiles[0].contains("-shared") && compiles[0].contains("hello.c"));
    assert!(compiles[1].contains("main.c") && compiles[1].contains("-fstack-protector-strong"));
    assert!(
        compiles.iter().all(|c| c.contains("-Wl,-rpath,")),
        "{calls}"
    );
}

#[test]
fn a_staging_build_with_compiler_and_stdlib_gives_each_output_their_run_exports() {
    let tmp = tempfile::tempdir().unwrap();
    let output = build(
        &recipe("forge", "hello-split"),
        tmp.path(),
        &["--error-unclaimed-files", "--error-overlapping-files"],
    );
    assert_success(&output);
    // The dev package's test compiled against it with the test
    // environment's activated compiler.
    assert!(
        stderr(&output).contains("libhello-dev: 1 tests passed"),
        "{}",
        stderr(&output)
    );

    let checked = install(tmp.path(), "env", &["libhello-dev"], &[]);
    assert_eq!(paths(&checked, "libhello"), ["lib/libhello.so.1"]);
    // The file its test compiles travels with the package, as rattler-build
    // stores it.
    assert_eq!(
        paths(&checked, "libhello-dev"),
        [
            "etc/conda/test-files/libhello-dev/0/main.c",
            "include/hello.h",
            "lib/libhello.so"
        ]
    );
    let lib_build = build_string(&checked, "libhello");
    assert_eq!(depends(&checked, "libhello"), TOOLCHAIN_DEPENDS);
    let mut dev = vec![format!("libhello ==1.0.0 {lib_build}")];
    dev.extend(TOOLCHAIN_DEPENDS.map(String::from));
    dev.sort();
    assert_eq!(depends(&checked, "libhello-dev"), dev);
    for name in ["libhello", "libhello-dev"] {
        peer::assert_build_string("hello-split", name, &build_string(&checked, name));
    }
}
