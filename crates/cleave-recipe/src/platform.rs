//! The platform variables every template and selector can read.
//!
//! Recipes test platforms by name: `linux`, `osx`, `win` (the family),
//! `x86_64`, `aarch64`, `riscv64` (the architecture), `linux64`,
//! `osxarm64` (the platform without its dash), `unix`, and the platform
//! strings `target_platform`, `build_platform` and `host_platform`. The
//! names are derived from rattler's list of platforms rather than written
//! out, so a platform rattler learns is a platform recipes can test.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use minijinja::Value;
use rattler_conda_types::Subdir;

/// The platform strings; every other platform name is a boolean.
const PLATFORM_STRINGS: [&str; 3] = ["target_platform", "host_platform", "build_platform"];

/// Every boolean platform name, with the platforms it is true on.
fn boolean_names() -> &'static BTreeMap<String, Vec<Subdir>> {
    static NAMES: OnceLock<BTreeMap<String, Vec<Subdir>>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names: BTreeMap<String, Vec<Subdir>> = BTreeMap::new();
        names.insert("unix".into(), Vec::new());
        for subdir in Subdir::all().filter(|s| *s != Subdir::NoArch) {
            if subdir.is_unix() {
                names.entry("unix".into()).or_default().push(subdir);
            }
            names
                .entry(subdir.as_str().replace('-', ""))
                .or_default()
                .push(subdir);
            if let Some(family) = subdir.only_platform() {
                names.entry(family.to_string()).or_default().push(subdir);
            }
            if let Some(arch) = subdir.arch() {
                names
                    .entry(arch.as_str().to_string())
                    .or_default()
                    .push(subdir);
            }
        }
        // iOS simulators are iOS platforms too: `ios` is true on them.
        let simulators = names.get("iossimulator").cloned().unwrap_or_default();
        names.entry("ios".into()).or_default().extend(simulators);
        names
    })
}

/// The value of platform variable `name` for a build on `build` for
/// `target`, or `None` if `name` is not a platform variable.
///
/// The booleans describe the target: a recipe asks "am I building for
/// Linux", not "am I running on Linux".
pub(crate) fn value(name: &str, target: Subdir, build: Subdir) -> Option<Value> {
    match name {
        "target_platform" | "host_platform" => Some(Value::from(target.as_str())),
        "build_platform" => Some(Value::from(build.as_str())),
        _ => boolean_names()
            .get(name)
            .map(|on| Value::from(on.contains(&target))),
    }
}

/// Every platform variable name, for "did you mean" hints.
pub(crate) fn names() -> impl Iterator<Item = &'static str> {
    PLATFORM_STRINGS
        .into_iter()
        .chain(boolean_names().keys().map(String::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth(name: &str, target: Subdir) -> bool {
        value(name, target, Subdir::Linux64).is_some_and(|v| v.is_true())
    }

    #[test]
    fn names_cover_families_arches_and_aliases() {
        assert!(truth("linux", Subdir::LinuxRiscv64));
        assert!(truth("riscv64", Subdir::LinuxRiscv64));
        assert!(truth("linuxriscv64", Subdir::LinuxRiscv64));
        assert!(truth("unix", Subdir::LinuxRiscv64));
        assert!(!truth("x86_64", Subdir::LinuxRiscv64));
        assert!(truth("arm64", Subdir::OsxArm64));
        assert!(!truth("aarch64", Subdir::OsxArm64));
        assert!(truth("aarch64", Subdir::LinuxAarch64));
        assert!(truth("win", Subdir::Win64));
        assert!(!truth("unix", Subdir::Win64));
        assert!(truth("emscripten", Subdir::EmscriptenWasm32));
        assert!(truth("wasm32", Subdir::WasiWasm32));
        assert!(truth("ios", Subdir::IosSimulatorArm64));
        assert!(value("windows", Subdir::Win64, Subdir::Win64).is_none());
        assert_eq!(
            value("build_platform", Subdir::LinuxAarch64, Subdir::Linux64)
                .unwrap()
                .as_str(),
            Some("linux-64")
        );
    }
}
