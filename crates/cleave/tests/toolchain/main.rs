//! End-to-end tests of the path a conda-forge recipe takes: `compiler()`
//! and `stdlib()` solved from a channel, the compiler's activation scripts
//! run for the build script, run exports of the compiler and the C library
//! in the package, python packages built with pip (`noarch: python` and
//! extensions), and the seeds' `cache:` examples as written.
//!
//! No conda channel is reachable, so cleave first builds the toolchain
//! stand-ins of `tests/toolchain/` (conda-forge's package names, wrapping
//! this machine's gcc and python3) into a channel, once per set of inputs
//! ([`toolchain::channel`]). The recipes of `tests/forge/` and
//! `tests/seeds/` are then built with `-c` that channel and the
//! conda-forge-shaped variant file `tests/toolchain/ci_support_linux_64.yaml`;
//! py-rattler installs the results, and py-rattler-build 0.73 (the peer,
//! when installed) renders the same recipes for their build strings.

#[path = "../common/mod.rs"]
mod common;
mod compilers;
mod peer;
mod python;
mod seeds;
mod toolchain;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The conda-forge-shaped variant file every build here uses.
fn variants() -> PathBuf {
    common::repo().join("tests/toolchain/ci_support_linux_64.yaml")
}

/// `tests/forge/NAME` or `tests/seeds/NAME`.
fn recipe(dir: &str, name: &str) -> PathBuf {
    common::repo().join("tests").join(dir).join(name)
}

/// `cleave build` of `recipe` into `tmp/out`, with the toolchain channel,
/// the variant file and caches of its own in `tmp`.
fn build(recipe: &Path, tmp: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cleave"))
        .arg("build")
        .arg("--recipe")
        .arg(recipe)
        .arg("--variant-config")
        .arg(variants())
        .arg("-c")
        .arg(toolchain::channel())
        .arg("--output-dir")
        .arg(tmp.join("out"))
        .arg("--cache-dir")
        .arg(tmp.join("cache"))
        .arg("--staging-root")
        .arg(tmp.join("stg"))
        .args(extra)
        .env_remove("SOURCE_DATE_EPOCH")
        .env("NO_COLOR", "1")
        .output()
        .expect("run cleave")
}

/// The oracle on `tmp/out`, solving from the toolchain channel too.
fn install(tmp: &Path, env: &str, specs: &[&str], command: &[&str]) -> Value {
    common::oracle_with(
        &tmp.join("out"),
        &[toolchain::channel()],
        &tmp.join(env),
        specs,
        command,
    )
}

/// The sorted `depends` of package `name`.
fn depends(checked: &Value, name: &str) -> Vec<String> {
    let mut deps = common::strings(&common::index(checked, name)["depends"]);
    deps.sort();
    deps
}

/// The build string of package `name`.
fn build_string(checked: &Value, name: &str) -> String {
    common::index(checked, name)["build"]
        .as_str()
        .unwrap()
        .to_string()
}
