use serde::Serialize;

use super::post_process::PostProcess;
use super::python::PythonSettings;
use super::script::Script;
use crate::error::ProblemKind;
use crate::read::Reader;
use crate::yaml::{Node, NodeKind};

/// How a package output is built and what goes into it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Build {
    /// Build number.
    pub number: u64,
    /// The final build string (from `build.string`, or hash and number).
    pub string: String,
    /// Architecture-independent kind, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noarch: Option<NoArch>,
    /// The script; empty for an output that only repackages inherited files.
    pub script: Script,
    /// Which new files of `$PREFIX` the package takes: every one when
    /// absent; given, only those it matches, so `files: []` (or a list
    /// whose every selector misses) takes none, as rattler-build 0.76 reads
    /// it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<FileSelection>,
    /// Files packaged even if they were in the prefix before the build.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub always_include_files: Vec<String>,
    /// Files that installers copy rather than link (`no_link` in
    /// paths.json), for files an environment may change in place.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub always_copy_files: Vec<String>,
    /// Regex replacements in the packaged text files, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub post_process: Vec<PostProcess>,
    /// Install build and host dependencies into one prefix.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub merge_build_and_host_envs: bool,
    /// Shared-library handling.
    pub dynamic_linking: DynamicLinking,
    /// Prefix placeholder detection.
    #[serde(skip_serializing_if = "PrefixDetection::is_default")]
    pub prefix_detection: PrefixDetection,
    /// Python packaging settings.
    #[serde(skip_serializing_if = "PythonSettings::is_default")]
    pub python: PythonSettings,
    /// Variant keys forced into, or kept out of, the build hash.
    #[serde(skip_serializing_if = "VariantKeys::is_empty")]
    pub variant: VariantKeys,
}

/// The two kinds of `noarch` package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoArch {
    /// Any platform, files as they are.
    Generic,
    /// Pure Python, installed into the environment's site-packages.
    Python,
}

/// Whether a `noarch` text means "not noarch", as the peer reads it: empty
/// (a template whose condition is false), or a null spelling.
pub(crate) fn is_no_noarch(text: &str) -> bool {
    matches!(
        text.trim(),
        "" | "~" | "null" | "Null" | "NULL" | "none" | "None"
    )
}

/// Globs that pick files (new prefix files for `build.files`, a source's
/// files for `filter`); an empty `include` means every file.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FileSelection {
    /// Globs of files to take.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Globs of files to leave out, applied after `include`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

impl FileSelection {
    /// True when every file is taken.
    pub fn is_all(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    pub(crate) fn read(r: &mut Reader<'_>, node: &Node) -> FileSelection {
        FileSelection::read_section(r, node, "files")
    }

    /// A glob list, or `{include, exclude}`, under the key `section`.
    pub(crate) fn read_section(r: &mut Reader<'_>, node: &Node, section: &str) -> FileSelection {
        match &node.kind {
            NodeKind::Map(_) => {
                let Some(node) = r.map(node, section, &["include", "exclude"]) else {
                    return FileSelection::default();
                };
                FileSelection {
                    include: node.get("include").map(|n| r.globs(n)).unwrap_or_default(),
                    exclude: node.get("exclude").map(|n| r.globs(n)).unwrap_or_default(),
                }
            }
            _ => FileSelection {
                include: r.globs(node),
                exclude: Vec::new(),
            },
        }
    }
}

/// Settings for shared libraries and executables.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DynamicLinking {
    /// Directories (relative to the prefix) written into RPATH/RUNPATH.
    pub rpaths: Vec<String>,
    /// Whether to rewrite RPATHs; `false` leaves binaries alone.
    pub binary_relocation: bool,
    /// Globs of libraries that may be missing at link check.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_dso_allowlist: Vec<String>,
    /// Globs of RPATH entries outside the prefix that are allowed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rpath_allowlist: Vec<String>,
    /// What a binary linking a library that no run dependency provides does.
    #[serde(skip_serializing_if = "LinkingBehavior::is_ignore")]
    pub overlinking_behavior: LinkingBehavior,
    /// What a run dependency from a host run export that nothing links does.
    #[serde(skip_serializing_if = "LinkingBehavior::is_ignore")]
    pub overdepending_behavior: LinkingBehavior,
}

/// What a finding of the linking checks does to the build.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkingBehavior {
    /// Report it as a warning; the build goes on (rattler-build's default).
    #[default]
    Ignore,
    /// Fail the build.
    Error,
}

impl LinkingBehavior {
    fn is_ignore(&self) -> bool {
        *self == LinkingBehavior::Ignore
    }

    fn read(r: &mut Reader<'_>, node: &Node, key: &'static str) -> LinkingBehavior {
        let Some(value) = r.opt_string(node, key) else {
            return LinkingBehavior::Ignore;
        };
        match value.value.as_str() {
            "ignore" => LinkingBehavior::Ignore,
            "error" => LinkingBehavior::Error,
            _ => {
                r.report(
                    ProblemKind::InvalidValue {
                        what: key,
                        value: value.value,
                        reason: "expected `ignore` or `error`".into(),
                    },
                    value.span,
                );
                LinkingBehavior::Ignore
            }
        }
    }
}

impl Default for DynamicLinking {
    fn default() -> Self {
        DynamicLinking {
            rpaths: vec!["lib/".into()],
            binary_relocation: true,
            missing_dso_allowlist: Vec::new(),
            rpath_allowlist: Vec::new(),
            overlinking_behavior: LinkingBehavior::Ignore,
            overdepending_behavior: LinkingBehavior::Ignore,
        }
    }
}

/// How files containing the build prefix are found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PrefixDetection {
    /// Globs forced to be treated as text files.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub force_text: Vec<String>,
    /// Globs forced to be treated as binary files.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub force_binary: Vec<String>,
    /// Skip detection entirely.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ignore_all: bool,
    /// Globs of files to skip.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<String>,
    /// Skip binary files.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ignore_binary_files: bool,
}

impl PrefixDetection {
    fn is_default(&self) -> bool {
        *self == PrefixDetection::default()
    }
}

/// Variant keys named explicitly in `build.variant`, and the variant's
/// priority.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VariantKeys {
    /// Keys that count as used even if nothing refers to them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub use_keys: Vec<String>,
    /// Keys left out of the hash even though they are used.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignore_keys: Vec<String>,
    /// How much less solvers should prefer this variant: the package gets
    /// this many `track_features` (the sign is ignored, as the peer does).
    #[serde(skip_serializing_if = "is_zero")]
    pub down_prioritize_variant: i32,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// More track features than any solver's priorities need; a larger value
/// is a typo that would bloat every repodata.json the package is in.
const MAX_DOWN_PRIORITIZE: u32 = 1000;

impl VariantKeys {
    fn is_empty(&self) -> bool {
        self.use_keys.is_empty() && self.ignore_keys.is_empty() && self.down_prioritize_variant == 0
    }

    /// The `track_features` that down-prioritize the package `name`:
    /// `name-p-0`, `name-p-1`, ... (conda solvers count them).
    pub fn track_features(&self, name: &str) -> Vec<String> {
        (0..self.down_prioritize_variant.unsigned_abs())
            .map(|i| format!("{name}-p-{i}"))
            .collect()
    }

    pub(crate) fn read(r: &mut Reader<'_>, build: &Node) -> VariantKeys {
        let Some(node) = build.get("variant") else {
            return VariantKeys::default();
        };
        let keys = ["use_keys", "ignore_keys", "down_prioritize_variant"];
        let Some(node) = r.map(node, "build.variant", &keys) else {
            return VariantKeys::default();
        };
        let mut list = |key| -> Vec<String> {
            r.opt_strings(node, key)
                .into_iter()
                .map(|s| s.value)
                .collect()
        };
        VariantKeys {
            use_keys: list("use_keys"),
            ignore_keys: list("ignore_keys"),
            down_prioritize_variant: r
                .opt_string(node, "down_prioritize_variant")
                .and_then(|text| down_prioritize(r, text))
                .unwrap_or(0),
        }
    }
}

fn down_prioritize(r: &mut Reader<'_>, text: crate::read::Spanned) -> Option<i32> {
    let parsed = text
        .value
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|n| n.unsigned_abs() <= MAX_DOWN_PRIORITIZE);
    if parsed.is_none() {
        r.report(
            ProblemKind::InvalidValue {
                what: "down_prioritize_variant",
                value: text.value,
                reason: format!(
                    "expected an integer from -{MAX_DOWN_PRIORITIZE} to {MAX_DOWN_PRIORITIZE}"
                ),
            },
            text.span,
        );
    }
    parsed
}

pub(crate) const BUILD_KEYS: &[&str] = &[
    "number",
    "string",
    "skip",
    "noarch",
    "script",
    "files",
    "always_include_files",
    "always_copy_files",
    "post_process",
    "merge_build_and_host_envs",
    "dynamic_linking",
    "prefix_detection",
    "python",
    "variant",
];

/// Keys of the peer's `build` that cleave rejects, each with what to write
/// instead. They are not in [`BUILD_KEYS`], which also decides what a
/// staging build may not have.
const REJECTED_BUILD_KEYS: &[(&str, &str, &str)] = &[
    (
        "steps",
        "`build.steps` (rattler-build's experimental build steps)",
        "write the commands of the steps, in order, as `build.script`",
    ),
    (
        "flags",
        "`build.flags` (variant flags of rattler-build's --v3 repodata)",
        "remove `flags`; tell variants apart with a variant key, which goes into the build string",
    ),
];

/// Reports the build keys cleave does not implement that are present in
/// `node`, a `build:` mapping of a package or staging output.
pub(crate) fn reject_unsupported(r: &mut Reader<'_>, node: &Node) {
    for (key, feature, help) in REJECTED_BUILD_KEYS {
        r.unsupported(node, key, feature, help);
    }
}

impl Build {
    /// Reads `build:`; `string` and `script` are decided by the caller.
    pub(crate) fn read(r: &mut Reader<'_>, node: &Node, string: String, script: Script) -> Build {
        let mut known = BUILD_KEYS.to_vec();
        known.extend(REJECTED_BUILD_KEYS.iter().map(|(key, _, _)| *key));
        let node = r.map(node, "build", &known).unwrap_or(node);
        reject_unsupported(r, node);
        let noarch = r
            .opt_string(node, "noarch")
            .and_then(|n| match n.value.trim() {
                "generic" => Some(NoArch::Generic),
                "python" => Some(NoArch::Python),
                text if is_no_noarch(text) => None,
                _ => {
                    r.report(
                        ProblemKind::InvalidValue {
                            what: "noarch",
                            value: n.value,
                            reason: "expected `generic` or `python`".into(),
                        },
                        n.span,
                    );
                    None
                }
            });
        Build {
            number: node.get("number").and_then(|n| r.u64(n)).unwrap_or(0),
            string,
            noarch,
            script,
            files: node
                .get("files")
                .filter(|n| !n.is_null())
                .map(|n| FileSelection::read(r, n)),
            always_include_files: node
                .get("always_include_files")
                .map(|n| r.globs(n))
                .unwrap_or_default(),
            always_copy_files: node
                .get("always_copy_files")
                .map(|n| r.globs(n))
                .unwrap_or_default(),
            post_process: node
                .get("post_process")
                .map(|n| PostProcess::read_all(r, n))
                .unwrap_or_default(),
            merge_build_and_host_envs: r
                .opt_bool(node, "merge_build_and_host_envs")
                .unwrap_or(false),
            dynamic_linking: node
                .get("dynamic_linking")
                .map(|n| read_dynamic_linking(r, n))
                .unwrap_or_default(),
            prefix_detection: node
                .get("prefix_detection")
                .map(|n| read_prefix_detection(r, n))
                .unwrap_or_default(),
            python: node
                .get("python")
                .map(|p| PythonSettings::read(r, p))
                .unwrap_or_default(),
            variant: VariantKeys::read(r, node),
        }
    }
}

fn read_dynamic_linking(r: &mut Reader<'_>, node: &Node) -> DynamicLinking {
    let keys = [
        "rpaths",
        "binary_relocation",
        "missing_dso_allowlist",
        "rpath_allowlist",
        "overdepending_behavior",
        "overlinking_behavior",
    ];
    let Some(node) = r.map(node, "dynamic_linking", &keys) else {
        return DynamicLinking::default();
    };
    let defaults = DynamicLinking::default();
    DynamicLinking {
        rpaths: match node.get("rpaths") {
            Some(n) => r.strings(n).into_iter().map(|s| s.value).collect(),
            None => defaults.rpaths,
        },
        binary_relocation: r.opt_bool(node, "binary_relocation").unwrap_or(true),
        missing_dso_allowlist: node
            .get("missing_dso_allowlist")
            .map(|n| r.globs(n))
            .unwrap_or_default(),
        rpath_allowlist: node
            .get("rpath_allowlist")
            .map(|n| r.globs(n))
            .unwrap_or_default(),
        overlinking_behavior: LinkingBehavior::read(r, node, "overlinking_behavior"),
        overdepending_behavior: LinkingBehavior::read(r, node, "overdepending_behavior"),
    }
}

fn read_prefix_detection(r: &mut Reader<'_>, node: &Node) -> PrefixDetection {
    let Some(node) = r.map(
        node,
        "prefix_detection",
        &["force_file_type", "ignore", "ignore_binary_files"],
    ) else {
        return PrefixDetection::default();
    };
    let mut detection = PrefixDetection {
        ignore_binary_files: r.opt_bool(node, "ignore_binary_files").unwrap_or(false),
        ..PrefixDetection::default()
    };
    if let Some(force) = node.get("force_file_type")
        && let Some(force) = r.map(force, "force_file_type", &["text", "binary"])
    {
        detection.force_text = force.get("text").map(|n| r.globs(n)).unwrap_or_default();
        detection.force_binary = force.get("binary").map(|n| r.globs(n)).unwrap_or_default();
    }
    match node.get("ignore") {
        Some(n) if matches!(n.as_str(), Some("true" | "false")) => {
            detection.ignore_all = r.bool(n).unwrap_or(false)
        }
        Some(n) => detection.ignore = r.globs(n),
        None => {}
    }
    detection
}
