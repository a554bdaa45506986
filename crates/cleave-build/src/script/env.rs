//! The variables every build and test script sees, as rattler-build 0.73
//! sets them (its default, strict isolation): conda-forge's scripts are
//! written against them.
//!
//! Nothing of the caller's environment reaches a script but what the
//! caller passes on (see `PASSED_VARIABLES` of `cleave build`); these are
//! computed from the build itself. Locale, home and terminal are fixed, so
//! a build does not depend on who runs it.

use std::collections::BTreeMap;
use std::path::Path;

use rattler_conda_types::Subdir;

/// The user name scripts see.
const USER: &str = "cleave";

/// The variables of the operating system a script runs on: what
/// rattler-build's `os_vars` gives build and test scripts alike. `prefix`
/// is the environment being built into (or tested), `home` the directory
/// `HOME` points at (the work dir).
pub fn os_vars(
    prefix: &Path,
    home: &Path,
    target: Subdir,
    build: Subdir,
) -> BTreeMap<String, String> {
    let path = |p: &Path| p.display().to_string();
    let mut vars = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        vars.insert(k.to_string(), v);
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    set("CPU_COUNT", cpus.to_string());
    set("LANG", "C.UTF-8".into());
    set("LC_ALL", "C.UTF-8".into());
    set("SHLIB_EXT", shlib_ext(target).into());
    if target.is_unix() || target == Subdir::NoArch {
        set("PKG_CONFIG_PATH", path(&prefix.join("lib/pkgconfig")));
        set("CMAKE_GENERATOR", "Unix Makefiles".into());
    }
    if target.is_linux() {
        set("LD_RUN_PATH", path(&prefix.join("lib")));
    }
    if let Some(triplet) = build_triplet(build) {
        set("BUILD", triplet);
    }
    if !build.is_windows() {
        set("HOME", path(home));
        set("USER", USER.into());
        set("SHELL", "/bin/bash".into());
        set("EDITOR", "/bin/false".into());
        set("TERM", "xterm-256color".into());
    }
    vars
}

/// The variables of the platforms: for build scripts and tests.
pub fn platform_vars(target: Subdir, build: Subdir) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for (k, v) in [
        ("target_platform", target.as_str()),
        ("host_platform", target.as_str()),
        ("build_platform", build.as_str()),
        ("SUBDIR", target.as_str()),
    ] {
        vars.insert(k.to_string(), v.to_string());
    }
    vars.insert("ARCH".into(), arch_name(target));
    vars.insert(
        "CONDA_BUILD_CROSS_COMPILATION".into(),
        u8::from(target != build).to_string(),
    );
    vars
}

/// The variant as variables (`c_compiler_version=14`), except the
/// languages' keys, which scripts get as `PY_VER` and the like.
pub fn variant_vars(variant: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    const LANGUAGES: [&str; 7] = ["PERL", "LUA", "R", "NUMPY", "PYTHON", "RUBY", "NODEJS"];
    variant
        .iter()
        .filter(|(k, _)| k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .filter(|(k, _)| !LANGUAGES.contains(&k.to_uppercase().as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The shared library suffix of `target`.
pub fn shlib_ext(target: Subdir) -> &'static str {
    match target.as_str() {
        s if s.starts_with("osx") || s.starts_with("ios") => ".dylib",
        s if s.starts_with("win") => ".dll",
        _ => ".so",
    }
}

/// conda-build's `ARCH` of the platform's subdir: `64` for `linux-64`,
/// `aarch64` for `linux-aarch64` (what follows the dash).
pub fn arch_name(platform: Subdir) -> String {
    platform
        .as_str()
        .rsplit_once('-')
        .map(|(_, arch)| arch.to_string())
        .unwrap_or_default()
}

/// The GNU triplet conda-forge's CentOS-based toolchains call the build
/// machine (`x86_64-conda_cos6-linux-gnu`); none off Linux.
fn build_triplet(build: Subdir) -> Option<String> {
    if !build.is_linux() {
        return None;
    }
    let distro = match build {
        Subdir::Linux32 | Subdir::Linux64 => "cos6",
        _ => "cos7",
    };
    let arch = match build {
        Subdir::Linux32 => "i686".to_string(),
        Subdir::Linux64 => "x86_64".to_string(),
        Subdir::LinuxPpc64le => "powerpc64le".to_string(),
        other => other.arch()?.to_string(),
    };
    Some(format!("{arch}-conda_{distro}-linux-gnu"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_linux_build_gets_conda_forges_variables() {
        let vars = os_vars(
            Path::new("/p/host"),
            Path::new("/p/work"),
            Subdir::Linux64,
            Subdir::Linux64,
        );
        assert_eq!(vars["BUILD"], "x86_64-conda_cos6-linux-gnu");
        assert_eq!(vars["PKG_CONFIG_PATH"], "/p/host/lib/pkgconfig");
        assert_eq!(vars["LD_RUN_PATH"], "/p/host/lib");
        assert_eq!(vars["CMAKE_GENERATOR"], "Unix Makefiles");
        assert_eq!(vars["HOME"], "/p/work");
        assert_eq!(vars["LC_ALL"], "C.UTF-8");
        let arm = Subdir::LinuxAarch64;
        assert_eq!(
            build_triplet(arm).as_deref(),
            Some("aarch64-conda_cos7-linux-gnu")
        );
        assert_eq!(arch_name(arm), "aarch64");
        assert_eq!(arch_name(Subdir::Linux64), "64");
    }

    #[test]
    fn language_keys_are_not_variables() {
        let variant = BTreeMap::from([
            ("python".to_string(), "3.12".to_string()),
            ("c_compiler_version".to_string(), "14".to_string()),
            ("r-base".to_string(), "4".to_string()),
        ]);
        assert_eq!(
            variant_vars(&variant).into_keys().collect::<Vec<_>>(),
            ["c_compiler_version"]
        );
    }
}
