//! Fetches an output's sources into its work directory.
//!
//! - `path`: a directory is copied without what `.gitignore` files exclude
//!   (and never `.git/`); a file is verified against the recipe's `sha256`
//!   or `md5` when it names one, then copied, or extracted when it is an
//!   archive.
//! - `url`: downloaded once into the source cache, under the directory named
//!   by its sha256, verified, then extracted or copied. A cache seeded by hand
//!   (`<cache>/<sha256>/<file name>`) makes url sources work offline.
//! - `git`: cloned with the `git` command, the revision checked out, then
//!   submodules updated recursively (unless `submodules: false`) and the
//!   commit compared with `expected_commit`.
//!
//! A `filter` narrows what reaches the work dir: the copied tree, the
//! extracted archive's contents, or the checkout (without `.git/`); see
//! [`cleave_cache::filter::PathFilter`] for how its globs match.
//! Patches are applied with `patch -p1` in the source's target directory,
//! after filtering. Archives that hold a single top-level directory are
//! unpacked into the target directly, as conda recipes expect.

pub mod archive;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use cleave_cache::CacheError;
use cleave_cache::filter::PathFilter;
use cleave_cache::fingerprint::Walk;
use cleave_recipe::model::{FileSelection, GitReference, Source};
use rattler_digest::{Md5, Sha256};
use url::Url;

use crate::error::BuildError;
use crate::fs::confined::{Tree, WriteError, relative};
use crate::script::guard::Guarded;
use archive::{ArchiveKind, unpack};

/// Where downloads are kept, and the client that fetches them.
#[derive(Debug, Clone)]
pub struct SourceCache {
    dir: PathBuf,
    client: reqwest::Client,
}

impl SourceCache {
    /// A source cache in `dir` (created on first download).
    pub fn new(dir: impl Into<PathBuf>, client: reqwest::Client) -> Self {
        SourceCache {
            dir: dir.into(),
            client,
        }
    }
}

/// Fetches every source of an output into `work`.
pub async fn fetch_all(
    sources: &[Source],
    recipe_dir: &Path,
    work: &Path,
    cache: &SourceCache,
    guard: Guarded<'_>,
    what: &str,
) -> Result<(), BuildError> {
    for source in sources {
        fetch(source, recipe_dir, work, cache, guard, what).await?;
    }
    Ok(())
}

/// How a source's tree is walked: with its filter, if it has one, and
/// `.gitignore` rules when `gitignore` is set. The copy and the staging
/// key's fingerprint both walk with this.
pub(crate) fn walk_of(source: &Source, gitignore: bool) -> Result<Walk, BuildError> {
    Ok(Walk {
        gitignore,
        filter: path_filter(source.filter())?,
    })
}

fn path_filter(selection: &FileSelection) -> Result<Option<Arc<PathFilter>>, BuildError> {
    if selection.is_all() {
        return Ok(None);
    }
    match PathFilter::new(&selection.include, &selection.exclude) {
        Ok(filter) => Ok(Some(Arc::new(filter))),
        Err(CacheError::Glob { glob, source }) => Err(BuildError::Glob { glob, source }),
        Err(other) => Err(BuildError::Cache(other)),
    }
}

async fn fetch(
    source: &Source,
    recipe_dir: &Path,
    work: &Path,
    cache: &SourceCache,
    guard: Guarded<'_>,
    what: &str,
) -> Result<(), BuildError> {
    // Archives, single files and checkouts are walked without .gitignore
    // rules: those only apply to a local directory.
    let filtered = walk_of(source, false)?;
    let (target_directory, patches) = match source {
        Source::Path {
            target_directory,
            patches,
            ..
        }
        | Source::Url {
            target_directory,
            patches,
            ..
        }
        | Source::Git {
            target_directory,
            patches,
            ..
        } => (
            target_directory.as_deref().unwrap_or(""),
            patches.as_slice(),
        ),
    };
    let origin = match source {
        Source::Path { path, .. } => path.clone(),
        Source::Url { url, .. } => url.first().map(Url::to_string).unwrap_or_default(),
        Source::Git { git, .. } => git.clone(),
    };
    let placing = |source| placing(what, &origin)(source);
    // The work dir may hold links already (an earlier source's, a restored
    // staging tree's): the target is reached without following any.
    let target = Tree::new(work)
        .dir(Path::new(target_directory))
        .map_err(placing)?;
    match source {
        Source::Path {
            path,
            file_name,
            use_gitignore,
            sha256,
            md5,
            ..
        } => {
            let from = recipe_dir.join(path);
            let expected = Expected::named(sha256.as_deref(), md5.as_deref());
            if from.is_dir() {
                if expected.is_some() {
                    return Err(BuildError::DigestOfDirectory {
                        what: what.to_string(),
                        path: from,
                    });
                }
                copy_tree(&from, &target, &walk_of(source, *use_gitignore)?).map_err(placing)?;
            } else if from.is_file() {
                if let Some(expected) = &expected {
                    expected.verify(&from, &from.display().to_string())?;
                }
                place_file(
                    &from,
                    &target,
                    file_name.as_deref(),
                    &filtered,
                    (what, &origin),
                )?;
            } else {
                return Err(BuildError::MissingSource {
                    what: what.to_string(),
                    path: from,
                });
            }
        }
        Source::Url {
            url,
            sha256,
            md5,
            file_name,
            ..
        } => {
            let expected = Expected::new(sha256.as_deref(), md5.as_deref(), what)?;
            let name = file_name
                .clone()
                .or_else(|| url.first().and_then(url_file_name))
                .unwrap_or_else(|| "source".to_string());
            let file = cache.get(url, &expected, &name, what).await?;
            place_file(
                &file,
                &target,
                file_name.as_deref(),
                &filtered,
                (what, &origin),
            )?;
        }
        Source::Git {
            git,
            reference,
            depth,
            lfs,
            submodules,
            expected_commit,
            ..
        } => {
            let checkout = Checkout {
                repo: git,
                reference,
                depth: *depth,
                lfs: *lfs,
                submodules: *submodules,
                expected_commit: expected_commit.as_deref(),
                guard,
            };
            if filtered.filter.is_some() {
                // Cloned aside, then only the files the filter takes are
                // copied in.
                let scratch = tempfile::Builder::new()
                    .prefix(".cleave-git-")
                    .tempdir_in(&target)
                    .map_err(BuildError::io(format!("cloning {git}")))?;
                checkout.run(scratch.path(), what)?;
                copy_tree(scratch.path(), &target, &filtered).map_err(placing)?;
            } else {
                checkout.run(&target, what)?;
            }
        }
    }
    for patch in patches {
        apply_patch(&recipe_dir.join(patch), &target, guard, what)?;
    }
    Ok(())
}

/// The error of a source that cannot be put into the work dir.
fn placing(what: &str, origin: &str) -> impl FnOnce(WriteError) -> BuildError {
    let (what, from) = (what.to_string(), origin.to_string());
    move |source| BuildError::SourceWrite {
        what,
        from,
        source: Box::new(source),
    }
}

/// Copies a directory tree as `walk` sees it: never `.git/`, and with
/// `walk`'s `.gitignore` rules and filter. Nothing is written through a
/// link already in `to`, and a FIFO, socket or device in `from` is an
/// error (reading it would block).
fn copy_tree(from: &Path, to: &Path, walk: &Walk) -> Result<(), WriteError> {
    let mut tree = Tree::new(to);
    // The same walk as the staging key's fingerprint of this source.
    for entry in walk.builder(from).build() {
        let entry = entry.map_err(|e| WriteError::Io {
            action: "walk",
            path: from.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let Ok(rel) = entry.path().strip_prefix(from) else {
            continue;
        };
        let Some(kind) = entry.file_type() else {
            continue;
        };
        if rel.as_os_str().is_empty() || !walk.takes(rel, entry.path(), kind.is_dir()) {
            continue;
        }
        if kind.is_dir() {
            tree.dir(rel)?;
        } else if kind.is_symlink() {
            let link = std::fs::read_link(entry.path()).map_err(|source| WriteError::Io {
                action: "read the link",
                path: entry.path().to_path_buf(),
                source,
            })?;
            tree.symlink(&link, rel)?;
        } else {
            // With a filter, a file's directories are not entries of their
            // own: copy_file makes them.
            tree.copy_file(entry.path(), rel)?;
        }
    }
    Ok(())
}

/// Extracts an archive into `target`, or copies a plain file there; with
/// a filter, only what it takes (a plain file by its name in `target`).
fn place_file(
    file: &Path,
    target: &Path,
    file_name: Option<&str>,
    walk: &Walk,
    (what, origin): (&str, &str),
) -> Result<(), BuildError> {
    let placing = placing(what, origin);
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match ArchiveKind::of(&name) {
        Some(kind) if file_name.is_none() => extract(file, kind, target, walk, (what, origin)),
        _ => {
            let rel = match relative(Path::new(file_name.unwrap_or(&name))) {
                Ok(rel) => rel,
                Err(e) => return Err(placing(e)),
            };
            if !walk.takes(&rel, file, false) {
                return Ok(());
            }
            Tree::new(target).copy_file(file, &rel).map_err(placing)
        }
    }
}

/// Unpacks the archive into a scratch directory beside its contents'
/// destination, then moves them into `target` (merged with what is there,
/// never through a link); a single top-level directory is unwrapped.
fn extract(
    file: &Path,
    kind: ArchiveKind,
    target: &Path,
    walk: &Walk,
    (what, origin): (&str, &str),
) -> Result<(), BuildError> {
    let io = |ctx: &str| BuildError::io(format!("{ctx} {}", file.display()));
    let placing = |source| placing(what, origin)(source);
    let scratch = tempfile::Builder::new()
        .prefix(".extract-")
        .tempdir_in(target)
        .map_err(io("extracting"))?;
    let reader = std::io::BufReader::new(std::fs::File::open(file).map_err(io("opening"))?);
    unpack(reader, kind, scratch.path()).map_err(|source| BuildError::Archive {
        what: what.to_string(),
        file: file.to_path_buf(),
        source: Box::new(source),
    })?;

    // One top-level directory: its contents are the source.
    let top: Vec<_> = std::fs::read_dir(scratch.path())
        .map_err(io("extracting"))?
        .collect::<Result<_, _>>()
        .map_err(io("extracting"))?;
    let root = match top.as_slice() {
        [only] if only.file_type().is_ok_and(|t| t.is_dir()) => only.path(),
        _ => scratch.path().to_path_buf(),
    };
    if walk.filter.is_some() {
        return copy_tree(&root, target, walk).map_err(placing);
    }
    let mut tree = Tree::new(target);
    for entry in std::fs::read_dir(&root).map_err(io("extracting"))? {
        let entry = entry.map_err(io("extracting"))?;
        tree.merge_move(&entry.path(), Path::new(&entry.file_name()))
            .map_err(placing)?;
    }
    Ok(())
}

/// The digest a url source (or a vendored file) must have.
#[derive(Debug, Clone)]
enum Expected {
    Sha256(String),
    Md5(String),
}

impl Expected {
    fn new(sha256: Option<&str>, md5: Option<&str>, what: &str) -> Result<Expected, BuildError> {
        Expected::named(sha256, md5).ok_or_else(|| BuildError::UnverifiedSource {
            what: what.to_string(),
        })
    }

    /// The digest the recipe names, sha256 before md5; none when it names
    /// neither.
    fn named(sha256: Option<&str>, md5: Option<&str>) -> Option<Expected> {
        match (sha256, md5) {
            (Some(sha), _) => Some(Expected::Sha256(sha.to_ascii_lowercase())),
            (None, Some(md5)) => Some(Expected::Md5(md5.to_ascii_lowercase())),
            (None, None) => None,
        }
    }

    /// Checks `file`, which came from `origin`, against this digest.
    fn verify(&self, file: &Path, origin: &str) -> Result<(), BuildError> {
        let actual = self
            .actual(file)
            .map_err(BuildError::io(format!("hashing {origin}")))?;
        if actual == self.hex() {
            Ok(())
        } else {
            Err(BuildError::DigestMismatch {
                url: origin.to_string(),
                expected: self.hex().to_string(),
                actual,
            })
        }
    }

    /// The cache directory name: the digest itself.
    fn key(&self) -> String {
        match self {
            Expected::Sha256(hex) => hex.clone(),
            Expected::Md5(hex) => format!("md5-{hex}"),
        }
    }

    fn actual(&self, file: &Path) -> std::io::Result<String> {
        Ok(match self {
            Expected::Sha256(_) => hex(&rattler_digest::compute_file_digest::<Sha256>(file)?),
            Expected::Md5(_) => hex(&rattler_digest::compute_file_digest::<Md5>(file)?),
        })
    }

    fn hex(&self) -> &str {
        match self {
            Expected::Sha256(hex) | Expected::Md5(hex) => hex,
        }
    }
}

impl SourceCache {
    /// The cached file for `expected`, downloading it when missing.
    async fn get(
        &self,
        urls: &[Url],
        expected: &Expected,
        name: &str,
        what: &str,
    ) -> Result<PathBuf, BuildError> {
        let dir = self.dir.join(expected.key());
        if let Some(file) = cached_file(&dir) {
            let io = BuildError::io(format!("verifying {}", file.display()));
            if expected.actual(&file).map_err(io)? == expected.hex() {
                return Ok(file);
            }
            // A damaged cache entry is dropped and fetched again.
            std::fs::remove_dir_all(&dir)
                .map_err(BuildError::io(format!("removing {}", dir.display())))?;
        }
        std::fs::create_dir_all(&dir)
            .map_err(BuildError::io(format!("creating {}", dir.display())))?;
        let mut failures = Vec::new();
        for url in urls {
            match self.download(url, &dir, name).await {
                Ok(tmp) => {
                    expected.verify(tmp.path(), url.as_str())?;
                    let file = dir.join(name);
                    tmp.persist(&file).map_err(|e| {
                        BuildError::io(format!("storing {}", file.display()))(e.error)
                    })?;
                    return Ok(file);
                }
                Err(reason) => failures.push(format!("{url}: {reason}")),
            }
        }
        Err(BuildError::Download {
            what: what.to_string(),
            reasons: failures,
        })
    }

    async fn download(
        &self,
        url: &Url,
        dir: &Path,
        name: &str,
    ) -> Result<tempfile::NamedTempFile, String> {
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .tempfile_in(dir)
            .map_err(|e| e.to_string())?;
        if url.scheme() == "file" {
            let path = url
                .to_file_path()
                .map_err(|()| "not a local path".to_string())?;
            let mut file = std::fs::File::open(&path).map_err(|e| e.to_string())?;
            std::io::copy(&mut file, &mut tmp).map_err(|e| e.to_string())?;
            return Ok(tmp);
        }
        let mut response = self
            .client
            .get(url.clone())
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| e.to_string())?;
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            tmp.write_all(&chunk).map_err(|e| e.to_string())?;
        }
        Ok(tmp)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The one file in a cache entry directory, if there is one.
fn cached_file(dir: &Path) -> Option<PathBuf> {
    let mut files = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path());
    let first = files.next()?;
    files.next().is_none().then_some(first)
}

fn url_file_name(url: &Url) -> Option<String> {
    url.path_segments()?
        .next_back()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A git source to check out.
struct Checkout<'a> {
    repo: &'a str,
    reference: &'a GitReference,
    depth: Option<u64>,
    lfs: bool,
    submodules: bool,
    expected_commit: Option<&'a str>,
    guard: Guarded<'a>,
}

impl Checkout<'_> {
    /// Clones into `dest` and checks out the reference; then submodules,
    /// LFS objects and the expected commit.
    fn run(&self, dest: &Path, what: &str) -> Result<(), BuildError> {
        let mut cmd = self.guard.command("git");
        cmd.args(["clone", "--quiet"]);
        if let (Some(depth), false) = (self.depth, matches!(self.reference, GitReference::Rev(_))) {
            cmd.arg(format!("--depth={depth}"));
        }
        if let GitReference::Tag(name) | GitReference::Branch(name) = self.reference {
            cmd.args(["--branch", name]);
        }
        cmd.arg(self.repo).arg(dest);
        run_tool(&mut cmd, what, "git clone")?;
        let git = |args: &[&str], step: &str| {
            tool_output(
                self.guard.command("git").args(args).current_dir(dest),
                what,
                step,
            )
        };
        if let GitReference::Rev(rev) = self.reference {
            git(&["checkout", "--quiet", rev], "git checkout")?;
        }
        // After the checkout, so that submodules are at the commits the
        // checked-out revision records (cloning with --recurse-submodules
        // would take those of the default branch).
        if self.submodules {
            git(
                &["submodule", "update", "--init", "--recursive", "--quiet"],
                "git submodule update",
            )?;
        }
        if self.lfs {
            git(&["lfs", "pull"], "git lfs pull")?;
        }
        if let Some(expected) = self.expected_commit {
            let actual = git(&["rev-parse", "HEAD"], "git rev-parse HEAD")?;
            let actual = actual.trim().to_ascii_lowercase();
            if actual != expected {
                return Err(BuildError::UnexpectedCommit {
                    what: what.to_string(),
                    repo: self.repo.to_string(),
                    expected: expected.to_string(),
                    actual,
                });
            }
        }
        Ok(())
    }
}

/// Applies a patch with `patch -p1`, after checking that no file it names
/// is a symlink or lies below one in the target: GNU patch refuses those
/// itself since 2.7, but other implementations follow them.
fn apply_patch(
    patch: &Path,
    target: &Path,
    guard: Guarded<'_>,
    what: &str,
) -> Result<(), BuildError> {
    if !patch.is_file() {
        return Err(BuildError::MissingSource {
            what: what.to_string(),
            path: patch.to_path_buf(),
        });
    }
    let text = std::fs::read(patch)
        .map_err(BuildError::io(format!("reading patch {}", patch.display())))?;
    let tree = Tree::new(target);
    for name in patched_files(&String::from_utf8_lossy(&text)) {
        // An absolute or climbing name is refused by patch itself; what
        // only a link makes dangerous is refused here.
        if let Err(source @ WriteError::ThroughLink { .. }) = tree.check_no_link(&name) {
            return Err(BuildError::Patch {
                what: what.to_string(),
                patch: patch.to_path_buf(),
                source: Box::new(source),
            });
        }
    }
    run_tool(
        guard
            .command("patch")
            .args(["-p1", "--batch", "--forward", "-i"])
            .arg(patch)
            .current_dir(target),
        what,
        &format!("applying patch {}", patch.display()),
    )
}

/// The files a patch names in its headers (unified, context and git
/// forms), with the first component stripped as `-p1` does.
fn patched_files(text: &str) -> Vec<PathBuf> {
    let lines: Vec<&str> = text.lines().collect();
    let mut names = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let next = lines.get(i + 1).copied().unwrap_or_default();
        // A header is a pair of lines; a hunk's removed line that happens
        // to start with `--- ` is not followed by a `+++ ` line.
        let pair = (line.strip_prefix("--- ").zip(next.strip_prefix("+++ ")))
            .or_else(|| line.strip_prefix("*** ").zip(next.strip_prefix("--- ")));
        if let Some((old, new)) = pair {
            names.extend([old, new]);
        } else if let Some(rest) = line.strip_prefix("diff --git ") {
            names.extend(rest.split(' '));
        }
    }
    names
        .into_iter()
        .map(|name| name.split('\t').next().unwrap_or_default().trim())
        .filter(|name| *name != "/dev/null")
        .filter_map(|name| name.split_once('/').map(|(_, rest)| PathBuf::from(rest)))
        .collect()
}

fn run_tool(cmd: &mut Command, what: &str, step: &str) -> Result<(), BuildError> {
    tool_output(cmd, what, step).map(drop)
}

/// Runs a tool; its standard output when it succeeds.
fn tool_output(cmd: &mut Command, what: &str, step: &str) -> Result<String, BuildError> {
    let output = cmd
        .output()
        .map_err(BuildError::io(format!("{step} for {what}")))?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let mut detail = String::from_utf8_lossy(&output.stderr).into_owned();
    detail.push_str(&String::from_utf8_lossy(&output.stdout));
    Err(BuildError::SourceTool {
        what: what.to_string(),
        step: step.to_string(),
        detail: detail.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A work dir whose `link` points at `outside` (holding `victim`), as
    /// an earlier source or a restored staging tree can leave it.
    fn linked_work() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let (work, outside) = (tmp.path().join("work"), tmp.path().join("outside"));
        std::fs::create_dir_all(&work).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("victim"), "untouched").unwrap();
        std::os::unix::fs::symlink(&outside, work.join("link")).unwrap();
        (tmp, work, outside)
    }

    fn assert_untouched(outside: &Path) {
        let names: Vec<_> = std::fs::read_dir(outside).unwrap().collect();
        assert_eq!(names.len(), 1);
        assert_eq!(
            std::fs::read_to_string(outside.join("victim")).unwrap(),
            "untouched"
        );
    }

    #[test]
    fn a_copied_tree_is_not_written_through_a_link_in_the_work_dir() {
        let (tmp, work, outside) = linked_work();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("link")).unwrap();
        std::fs::write(src.join("link/victim"), "overwritten").unwrap();
        std::fs::write(src.join("link/new"), "new").unwrap();
        let err = copy_tree(&src, &work, &Walk::default()).unwrap_err();
        assert!(matches!(err, WriteError::ThroughLink { .. }), "{err}");
        assert_untouched(&outside);
    }

    #[test]
    fn a_file_name_through_a_link_is_refused_and_one_at_a_link_replaces_it() {
        let (tmp, work, outside) = linked_work();
        let file = tmp.path().join("data.txt");
        std::fs::write(&file, "data").unwrap();
        let place = |name: &str| {
            place_file(
                &file,
                &work,
                Some(name),
                &Walk::default(),
                ("o", "data.txt"),
            )
        };
        for name in ["link/victim", "link/new", "../outside/victim", "/tmp/x"] {
            assert!(place(name).is_err(), "{name}");
        }
        // The link itself is replaced by the file; its target is not
        // written.
        place("link").unwrap();
        assert_eq!(std::fs::read(work.join("link")).unwrap(), b"data");
        assert_untouched(&outside);
    }

    #[test]
    fn a_fifo_in_a_path_source_is_refused_by_name_without_blocking() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        let status = Command::new("mkfifo")
            .arg(src.join("pipe"))
            .status()
            .unwrap();
        assert!(status.success());
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let err = copy_tree(&src, &work, &Walk::default()).unwrap_err();
        assert!(
            matches!(&err, WriteError::Special { kind: "FIFO", path } if path.ends_with("pipe")),
            "{err}"
        );
    }

    #[test]
    fn patch_headers_name_the_files_patch_writes() {
        let text = "\
diff --git a/src/x.c b/src/x.c
--- a/src/x.c\t2024-01-01
+++ b/src/y.c
@@ -1,2 +1,2 @@
---- a removed SQL comment, no path
+++ an added line
*** a/ctx.c
--- b/ctx.c
--- /dev/null
+++ b/new/file.txt
";
        let names: Vec<String> = patched_files(text)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "src/x.c",
                "src/x.c",
                "src/x.c",
                "src/y.c",
                "ctx.c",
                "ctx.c",
                "new/file.txt"
            ]
        );
    }

    #[test]
    fn a_single_top_level_directory_is_unwrapped() {
        let tmp = tempfile::tempdir().unwrap();
        let tarball = tmp.path().join("pkg-1.0.tar.gz");
        {
            let gz = flate2::write::GzEncoder::new(
                std::fs::File::create(&tarball).unwrap(),
                flate2::Compression::fast(),
            );
            let mut builder = tar::Builder::new(gz);
            let mut header = tar::Header::new_gnu();
            header.set_size(5);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, "pkg-1.0/src/a.c", &b"int x"[..])
                .unwrap();
            builder.into_inner().unwrap().finish().unwrap();
        }
        let work = tmp.path().join("work");
        std::fs::create_dir(&work).unwrap();
        place_file(&tarball, &work, None, &Walk::default(), ("o", "t")).unwrap();
        assert_eq!(std::fs::read(work.join("src/a.c")).unwrap(), b"int x");
        let left: Vec<_> = std::fs::read_dir(&work).unwrap().collect();
        assert_eq!(left.len(), 1, "scratch dir removed, only src/ left");
    }

    #[test]
    fn a_second_archive_merges_into_the_first_ones_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let work = tmp.path().join("work");
        std::fs::create_dir(&work).unwrap();
        for (name, file) in [("one.tar", "src/a.c"), ("two.tar", "src/b.c")] {
            let path = tmp.path().join(name);
            let mut builder = tar::Builder::new(std::fs::File::create(&path).unwrap());
            // Two top-level entries: nothing is unwrapped.
            for entry in [file, "README"] {
                let mut header = tar::Header::new_gnu();
                header.set_size(1);
                header.set_mode(0o644);
                header.set_cksum();
                builder.append_data(&mut header, entry, &b"x"[..]).unwrap();
            }
            builder.into_inner().unwrap();
            place_file(&path, &work, None, &Walk::default(), ("o", name)).unwrap();
        }
        assert!(work.join("src/a.c").is_file() && work.join("src/b.c").is_file());
    }
}
