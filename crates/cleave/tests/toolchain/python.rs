//! Python packages as conda-forge writes them: `${{ PYTHON }} -m pip
//! install . --no-deps --no-build-isolation` with python in host, a
//! `noarch: python` package and one with a C extension, each with a
//! `build.python.entry_points` console script.

use crate::common::{assert_success, package, paths, stderr};
use crate::{build, build_string, depends, install, peer, recipe};

#[test]
fn a_noarch_python_package_installs_into_the_environments_python_with_its_entry_point() {
    let tmp = tempfile::tempdir().unwrap();
    let output = build(&recipe("forge", "hello-py"), tmp.path(), &[]);
    assert_success(&output);
    // cleave's own tests: imports, pip check, the entry point, no bytecode.
    assert!(
        stderr(&output).contains("hello-py: 3 tests passed"),
        "{}",
        stderr(&output)
    );

    let env = tmp.path().join("env");
    let checked = install(tmp.path(), "env", &["hello-py"], &["hello-py"]);
    assert_eq!(
        checked["command"]["stdout"], "hello from a noarch python package on python 3.11\n",
        "{}",
        checked["command"]
    );
    // No python's path in the package, no bytecode, no pip script: the
    // installer places site-packages and writes the entry point.
    let listed = paths(&checked, "hello-py");
    assert!(
        listed.iter().all(|p| p.starts_with("site-packages/")),
        "{listed:?}"
    );
    assert!(listed.contains(&"site-packages/hello_py/cli.py".to_string()));
    assert!(
        !listed
            .iter()
            .any(|p| p.contains("__pycache__") || p.ends_with(".pyc")),
        "{listed:?}"
    );
    assert_eq!(
        package(&checked, "hello-py")["link"],
        serde_json::json!({
            "noarch": {"type": "python", "entry_points": ["hello-py = hello_py.cli:main"]},
            "package_metadata_version": 1
        })
    );
    let index = crate::common::index(&checked, "hello-py");
    assert_eq!(index["noarch"], "python");
    assert_eq!(index["subdir"], "noarch");
    assert_eq!(depends(&checked, "hello-py"), ["python"]);
    peer::assert_build_string("hello-py", "hello-py", &build_string(&checked, "hello-py"));

    let site = env.join("lib/python3.11/site-packages");
    assert!(site.join("hello_py/__init__.py").is_file());
    let installer = site.join("hello_py-0.2.0.dist-info/INSTALLER");
    assert_eq!(std::fs::read_to_string(installer).unwrap(), "conda\n");
    let script = std::fs::read_to_string(env.join("bin/hello-py")).unwrap();
    assert!(
        script.starts_with(&format!("#!{}/bin/python", env.display())),
        "{script}"
    );
}

#[test]
fn a_python_extension_is_compiled_by_the_conda_compiler_and_gets_a_relocated_launcher() {
    let tmp = tempfile::tempdir().unwrap();
    // The recipe's script fails unless the conda compiler built the
    // extension.
    let output = build(&recipe("forge", "hello-ext"), tmp.path(), &[]);
    assert_success(&output);
    assert!(
        stderr(&output).contains("hello-ext: 2 tests passed"),
        "{}",
        stderr(&output)
    );

    let env = tmp.path().join("env");
    let checked = install(tmp.path(), "env", &["hello-ext"], &["hello-ext", "5"]);
    assert_eq!(
        checked["command"]["stdout"], "the C extension says 15\n",
        "{}",
        checked["command"]
    );
    let listed = paths(&checked, "hello-ext");
    let ext = "lib/python3.11/site-packages/hello_ext/_speedups.cpython-311-x86_64-linux-gnu.so";
    assert!(listed.iter().any(|p| p == ext), "{listed:?}");
    // The launcher holds the build prefix, recorded for replacement.
    let entries = package(&checked, "hello-ext")["paths"].as_array().unwrap();
    let launcher = entries
        .iter()
        .find(|e| e["_path"] == "bin/hello-ext")
        .unwrap();
    assert_eq!(launcher["file_mode"], "text", "{launcher}");
    let script = std::fs::read_to_string(env.join("bin/hello-ext")).unwrap();
    assert!(
        script.starts_with(&format!("#!{}/bin/python\n", env.display())),
        "{script}"
    );
    assert!(
        script.contains("from hello_ext.cli import main"),
        "{script}"
    );

    assert_eq!(
        depends(&checked, "hello-ext"),
        [
            "__glibc >=2.17,<3.0.a0",
            "libgcc >=12",
            "python",
            "python_abi 3.11.* *_cp311",
        ]
    );
    let build = build_string(&checked, "hello-ext");
    assert!(build.starts_with("py311h"), "{build}");
    peer::assert_build_string("hello-ext", "hello-ext", &build);
    assert!(env.join(ext).is_file());
}

#[test]
fn a_version_independent_package_keeps_its_platform_and_installs_like_noarch_python() {
    let tmp = tempfile::tempdir().unwrap();
    let output = build(&recipe("forge", "hello-abi3"), tmp.path(), &[]);
    assert_success(&output);
    let checked = install(tmp.path(), "env", &["hello-abi3"], &["hello-py"]);
    assert_eq!(
        checked["command"]["stdout"], "hello from a noarch python package on python 3.11\n",
        "{}",
        checked["command"]
    );
    let listed = paths(&checked, "hello-abi3");
    assert!(
        listed.iter().all(|p| p.starts_with("site-packages/")),
        "{listed:?}"
    );
    let index = crate::common::index(&checked, "hello-abi3");
    assert_eq!(index["noarch"], "python");
    assert_eq!(index["subdir"], "linux-64");
    assert_eq!(
        package(&checked, "hello-abi3")["link"]["noarch"]["entry_points"],
        serde_json::json!(["hello-py = hello_py.cli:main"])
    );
}
