use serde::Serialize;
use url::Url;

use super::about::read_url;
use super::build::FileSelection;
use crate::error::ProblemKind;
use crate::read::{Reader, Spanned};
use crate::yaml::Node;

/// Where a piece of source code comes from. Fetching is the build engine's job.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// A file or directory, relative to the recipe directory.
    Path {
        /// The path as written.
        path: String,
        /// Where to put it in the work dir.
        #[serde(skip_serializing_if = "Option::is_none")]
        target_directory: Option<String>,
        /// Name to give a single file.
        #[serde(skip_serializing_if = "Option::is_none")]
        file_name: Option<String>,
        /// Expected SHA-256 of a file (a vendored tarball), lowercase hex.
        #[serde(skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
        /// Expected MD5 of a file, lowercase hex.
        #[serde(skip_serializing_if = "Option::is_none")]
        md5: Option<String>,
        /// Skip files that `.gitignore` rules ignore.
        use_gitignore: bool,
        /// Which files of the source reach the work dir.
        #[serde(skip_serializing_if = "FileSelection::is_all")]
        filter: FileSelection,
        /// Patch files applied after copying.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        patches: Vec<String>,
    },
    /// An archive or file downloaded from one of several mirrors.
    Url {
        /// Mirrors, tried in order.
        url: Vec<Url>,
        /// Expected SHA-256, lowercase hex.
        #[serde(skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
        /// Expected MD5, lowercase hex.
        #[serde(skip_serializing_if = "Option::is_none")]
        md5: Option<String>,
        /// Name to save the download under (archives are not extracted then).
        #[serde(skip_serializing_if = "Option::is_none")]
        file_name: Option<String>,
        /// Where to put it in the work dir.
        #[serde(skip_serializing_if = "Option::is_none")]
        target_directory: Option<String>,
        /// Which files of the archive reach the work dir.
        #[serde(skip_serializing_if = "FileSelection::is_all")]
        filter: FileSelection,
        /// Patch files applied after extraction.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        patches: Vec<String>,
    },
    /// A git repository at a revision, tag or branch.
    Git {
        /// Repository URL or path.
        git: String,
        /// What to check out.
        reference: GitReference,
        /// Clone depth; `None` for a full clone.
        #[serde(skip_serializing_if = "Option::is_none")]
        depth: Option<u64>,
        /// Fetch LFS objects too.
        lfs: bool,
        /// Initialise and update submodules, recursively, after checkout.
        submodules: bool,
        /// The commit the checkout must end up at (lowercase hex); a moved
        /// tag or branch then fails the build instead of changing the source.
        #[serde(skip_serializing_if = "Option::is_none")]
        expected_commit: Option<String>,
        /// Where to put it in the work dir.
        #[serde(skip_serializing_if = "Option::is_none")]
        target_directory: Option<String>,
        /// Which files of the checkout reach the work dir.
        #[serde(skip_serializing_if = "FileSelection::is_all")]
        filter: FileSelection,
        /// Patch files applied after checkout.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        patches: Vec<String>,
    },
}

/// Which commit of a git source to use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GitReference {
    /// A commit hash or any revision git understands.
    Rev(String),
    /// A tag.
    Tag(String),
    /// The tip of a branch.
    Branch(String),
    /// The default branch.
    Head,
}

const PATH_KEYS: &[&str] = &[
    "path",
    "sha256",
    "md5",
    "target_directory",
    "file_name",
    "use_gitignore",
    "filter",
    "patches",
];
// `attestation` is known so that it is reported as unsupported rather
// than as a typo.
const URL_KEYS: &[&str] = &[
    "url",
    "sha256",
    "md5",
    "file_name",
    "target_directory",
    "filter",
    "patches",
    "attestation",
];
const GIT_KEYS: &[&str] = &[
    "git",
    "rev",
    "tag",
    "branch",
    "depth",
    "lfs",
    "submodules",
    "expected_commit",
    "target_directory",
    "filter",
    "patches",
];

impl Source {
    /// Reads a `source:` value: one source or a list of them.
    pub(crate) fn read_all(r: &mut Reader<'_>, node: &Node) -> Vec<Source> {
        r.items(node)
            .into_iter()
            .filter_map(|item| Source::read(r, item))
            .collect()
    }

    fn read(r: &mut Reader<'_>, node: &Node) -> Option<Source> {
        if node.as_map().is_none() {
            r.map(node, "source", &[]);
            return None;
        }
        // Patches are files next to the recipe.
        let patches = |r: &mut Reader<'_>| -> Vec<String> {
            r.late_bound_paths(node, "patches", &["RECIPE_DIR"], "patches")
        };
        let filter = |r: &mut Reader<'_>| -> FileSelection {
            node.get("filter")
                .map(|f| FileSelection::read_section(r, f, "filter"))
                .unwrap_or_default()
        };
        if node.get("url").is_some() {
            let node = r.map(node, "url source", URL_KEYS)?;
            r.unsupported(
                node,
                "attestation",
                "source attestation verification",
                "remove `attestation`; the download is still verified against its `sha256`",
            );
            let urls: Vec<Url> = r
                .opt_strings(node, "url")
                .into_iter()
                .filter_map(|u| read_url(r, u))
                .collect();
            let sha256 = r
                .opt_string(node, "sha256")
                .and_then(|s| hex(r, s, 64, "sha256"));
            let md5 = r.opt_string(node, "md5").and_then(|s| hex(r, s, 32, "md5"));
            if node.get("sha256").is_none() && node.get("md5").is_none() {
                let span = node.key("url").map_or(node.span, |k| k.span);
                r.report_with_help(
                    ProblemKind::MissingKey {
                        key: "sha256".into(),
                        section: "url source".into(),
                    },
                    span,
                    "downloads are verified: add `sha256: <64 hex digits>` (or `md5`)".into(),
                );
            }
            Some(Source::Url {
                url: urls,
                sha256,
                md5,
                file_name: r.opt_string(node, "file_name").map(|s| s.value),
                target_directory: r.opt_string(node, "target_directory").map(|s| s.value),
                filter: filter(r),
                patches: patches(r),
            })
        } else if node.get("git").is_some() {
            let node = r.map(node, "git source", GIT_KEYS)?;
            let refs: Vec<_> = ["rev", "tag", "branch"]
                .into_iter()
                .filter(|k| node.get(k).is_some())
                .collect();
            if refs.len() > 1
                && let Some(key) = node.key(refs[1])
            {
                r.report(
                    ProblemKind::Conflict {
                        first: refs[1],
                        second: refs[0],
                    },
                    key.span,
                );
            }
            let reference = match refs.first() {
                Some(&kind) => {
                    let value = r
                        .opt_string(node, kind)
                        .map(|s| s.value)
                        .unwrap_or_default();
                    match kind {
                        "rev" => GitReference::Rev(value),
                        "tag" => GitReference::Tag(value),
                        _ => GitReference::Branch(value),
                    }
                }
                None => GitReference::Head,
            };
            Some(Source::Git {
                git: r
                    .opt_string(node, "git")
                    .map(|s| s.value)
                    .unwrap_or_default(),
                reference,
                depth: node.get("depth").and_then(|d| r.u64(d)),
                lfs: r.opt_bool(node, "lfs").unwrap_or(false),
                submodules: r.opt_bool(node, "submodules").unwrap_or(true),
                expected_commit: r
                    .opt_string(node, "expected_commit")
                    .and_then(|s| commit_hash(r, s)),
                target_directory: r.opt_string(node, "target_directory").map(|s| s.value),
                filter: filter(r),
                patches: patches(r),
            })
        } else if node.get("path").is_some() {
            let node = r.map(node, "path source", PATH_KEYS)?;
            Some(Source::Path {
                path: r
                    .opt_string(node, "path")
                    .map(|s| s.value)
                    .unwrap_or_default(),
                target_directory: r.opt_string(node, "target_directory").map(|s| s.value),
                file_name: r.opt_string(node, "file_name").map(|s| s.value),
                sha256: r
                    .opt_string(node, "sha256")
                    .and_then(|s| hex(r, s, 64, "sha256")),
                md5: r.opt_string(node, "md5").and_then(|s| hex(r, s, 32, "md5")),
                use_gitignore: r.opt_bool(node, "use_gitignore").unwrap_or(true),
                filter: filter(r),
                patches: patches(r),
            })
        } else {
            r.report_with_help(
                ProblemKind::MissingKey {
                    key: "url".into(),
                    section: "source".into(),
                },
                node.span,
                "a source needs one of `url`, `git` or `path`".into(),
            );
            None
        }
    }

    /// Patch files, relative to the recipe directory.
    pub fn patches(&self) -> &[String] {
        match self {
            Source::Path { patches, .. }
            | Source::Url { patches, .. }
            | Source::Git { patches, .. } => patches,
        }
    }

    /// Which of the source's files reach the work dir.
    pub fn filter(&self) -> &FileSelection {
        match self {
            Source::Path { filter, .. }
            | Source::Url { filter, .. }
            | Source::Git { filter, .. } => filter,
        }
    }
}

/// A full commit id: 40 hex digits (SHA-1) or 64 (SHA-256 repositories).
/// An abbreviation is refused, since comparing against one would let a
/// different commit with the same prefix through.
fn commit_hash(r: &mut Reader<'_>, text: Spanned) -> Option<String> {
    let value = text.value.trim().to_ascii_lowercase();
    if matches!(value.len(), 40 | 64) && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        Some(value)
    } else {
        r.report(
            ProblemKind::InvalidValue {
                what: "expected_commit",
                value: text.value,
                reason: "expected a full commit hash (40 or 64 hexadecimal digits)".into(),
            },
            text.span,
        );
        None
    }
}

fn hex(r: &mut Reader<'_>, text: Spanned, len: usize, what: &'static str) -> Option<String> {
    let value = text.value.trim().to_ascii_lowercase();
    if value.len() == len && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        Some(value)
    } else {
        r.report(
            ProblemKind::InvalidValue {
                what,
                value: text.value,
                reason: format!("expected {len} hexadecimal digits"),
            },
            text.span,
        );
        None
    }
}
