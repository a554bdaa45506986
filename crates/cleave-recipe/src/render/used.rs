//! The used variant of a rendered output and its hash.
//!
//! The used variant is what a different value of would give a different
//! package: the variant keys the output's templates read (its context,
//! `compiler()`/`stdlib()` and their keys, bare build/host requirements),
//! the keys of the staging build it inherits, `build.variant.use_keys`,
//! the target platform (`noarch` for noarch packages), `build_platform`
//! when read, the exact pins of siblings with their version and build, and
//! the virtual packages it runs on. This is the set conda-build and
//! rattler-build hash, so the build strings agree with theirs.

use rattler_conda_types::Subdir;

use super::{Assignment, Used};
use crate::jinja::Learned;
use crate::variant::{VariantHash, normalize_key};
use crate::yaml::Node;

/// Keys every output uses when a variant file sets them: the channels the
/// package is for, and the environment keys conda-build exports to build
/// scripts on the target's platform.
pub(super) fn always_used_keys(target: Subdir) -> Vec<&'static str> {
    let mut keys = vec![
        "channel_targets",
        "channel_sources",
        "BUILD",
        "CPU_COUNT",
        "HOME",
        "LANG",
        "LC_ALL",
        "SHLIB_EXT",
    ];
    if target.is_windows() {
        keys.extend([
            "Path",
            "SCRIPTS",
            "LIBRARY_PREFIX",
            "LIBRARY_BIN",
            "LIBRARY_INC",
            "LIBRARY_LIB",
            "LIB",
            "INCLUDE",
            "CYGWIN_PREFIX",
        ]);
    } else {
        keys.extend([
            "PATH",
            "PKG_CONFIG_PATH",
            "CMAKE_GENERATOR",
            "SSL_CERT_FILE",
        ]);
    }
    if target.is_linux() {
        keys.extend([
            "LD_RUN_PATH",
            "QEMU_LD_PREFIX",
            "QEMU_UNAME",
            "DEJAGNU",
            "DISPLAY",
        ]);
    }
    if target.is_osx() {
        keys.extend(["MACOSX_DEPLOYMENT_TARGET", "OSX_ARCH"]);
    }
    keys
}

/// The used variant of the output rendered as `node` under `assignment`,
/// of which `inherited` came from the staging build it inherits, and its
/// hash.
pub(super) fn used_variant(
    assignment: &Assignment,
    inherited: &Used,
    learned: &Learned,
    node: &Node,
    platforms: (Subdir, Subdir),
) -> (Used, VariantHash) {
    let (target, build) = platforms;
    let build_section = node.get("build");
    let noarch = build_section
        .and_then(|b| b.get("noarch"))
        .and_then(Node::as_str)
        .map(str::trim)
        .filter(|n| !crate::model::is_no_noarch(n));
    let ignore: Vec<String> = build_section
        .and_then(|b| b.get("variant"))
        .and_then(|v| v.get("ignore_keys"))
        .map(super::requirements::keys_of)
        .unwrap_or_default()
        .iter()
        .map(|k| normalize_key(k))
        .collect();
    let mut used: Used = inherited.clone();
    used.extend(
        assignment
            .iter()
            .filter(|(k, _)| learned.read_keys.contains(*k))
            .map(|(k, v)| (k.clone(), v.to_json())),
    );
    used.insert(
        "target_platform".into(),
        noarch.map_or(target.as_str(), |_| "noarch").into(),
    );
    if learned.build_platform_used {
        used.insert("build_platform".into(), build.as_str().into());
    }
    for spec in run_requirements(node) {
        if let Some(name) = spec
            .split_whitespace()
            .next()
            .filter(|n| n.starts_with("__"))
        {
            used.insert(name.to_string(), spec.clone().into());
        }
    }
    let noarch_python = noarch == Some("python");
    if noarch_python {
        used.remove("python");
    }
    used.retain(|k, _| !ignore.contains(k));
    for (name, pin) in &learned.exact_pins {
        used.insert(name.clone(), pin.as_str().into());
    }
    let hash = VariantHash::new(&used, noarch_python);
    (used, hash)
}

fn run_requirements(node: &Node) -> Vec<String> {
    node.get("requirements")
        .and_then(|r| r.get("run"))
        .and_then(|r| r.as_seq())
        .unwrap_or_default()
        .iter()
        .filter_map(|item| item.as_str().map(|s| s.trim().to_string()))
        .collect()
}
