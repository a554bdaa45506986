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

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use cleave_cache::CacheError;
use cleave_cache::filter::PathFilter;
use cleave_cache::fingerprint::Walk;
use cleave_recipe::model::{FileSelection, GitReference, Source};
use rattler_digest::{Md5, Sha256};
use url::Url;

use crate::error::BuildError;

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
    what: &str,
) -> Result<(), BuildError> {
    for source in sources {
        fetch(source, recipe_dir, work, cache, what).await?;
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
    what: &str,
) -> Result<(), BuildError> {
    // Archives, single files and checkouts are walked without .gitignore
    // rules: those only apply to a local directory.
    let filtered = walk_of(source, false)?;
    let (target, patches) = match source {
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
            inside(work, target_directory.as_deref(), what)?,
            patches.as_slice(),
        ),
    };
    std::fs::create_dir_all(&target)
        .map_err(BuildError::io(format!("creating {}", target.display())))?;
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
                copy_tree(&from, &target, &walk_of(source, *use_gitignore)?)?;
            } else if from.is_file() {
                if let Some(expected) = &expected {
                    expected.verify(&from, &from.display().to_string())?;
                }
                place_file(&from, &target, file_name.as_deref(), &filtered)?;
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
            place_file(&file, &target, file_name.as_deref(), &filtered)?;
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
            };
            if filtered.filter.is_some() {
                // Cloned aside, then only the files the filter takes are
                // copied in.
                let scratch = tempfile::Builder::new()
                    .prefix(".cleave-git-")
                    .tempdir_in(&target)
                    .map_err(BuildError::io(format!("cloning {git}")))?;
                checkout.run(scratch.path(), what)?;
                copy_tree(scratch.path(), &target, &filtered)?;
            } else {
                checkout.run(&target, what)?;
            }
        }
    }
    for patch in patches {
        apply_patch(&recipe_dir.join(patch), &target, what)?;
    }
    Ok(())
}

/// `work/<dir>`, refusing a target directory that leaves the work dir.
fn inside(work: &Path, dir: Option<&str>, what: &str) -> Result<PathBuf, BuildError> {
    let Some(dir) = dir else {
        return Ok(work.to_path_buf());
    };
    let rel = Path::new(dir);
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(BuildError::UnsafePath {
            what: what.to_string(),
            path: rel.to_path_buf(),
        });
    }
    Ok(work.join(rel))
}

/// Copies a directory tree as `walk` sees it: never `.git/`, and with
/// `walk`'s `.gitignore` rules and filter.
fn copy_tree(from: &Path, to: &Path, walk: &Walk) -> Result<(), BuildError> {
    // The same walk as the staging key's fingerprint of this source.
    for entry in walk.builder(from).build() {
        let entry = entry.map_err(|e| BuildError::Io {
            context: format!("walking {}", from.display()),
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
        let dest = to.join(rel);
        let io = BuildError::io(format!("copying {}", entry.path().display()));
        if kind.is_dir() {
            std::fs::create_dir_all(&dest).map_err(io)?;
            continue;
        }
        // With a filter, a file's directories are not entries of their own.
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .map_err(BuildError::io(format!("creating {}", parent.display())))?;
        }
        if kind.is_symlink() {
            let link = std::fs::read_link(entry.path()).map_err(io)?;
            std::os::unix::fs::symlink(link, &dest)
                .map_err(BuildError::io(format!("linking {}", dest.display())))?;
        } else {
            std::fs::copy(entry.path(), &dest).map_err(io)?;
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
) -> Result<(), BuildError> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match ArchiveKind::of(&name) {
        Some(kind) if file_name.is_none() => extract(file, kind, target, walk),
        _ => {
            let dest = target.join(file_name.unwrap_or(&name));
            if Path::new(file_name.unwrap_or(&name))
                .components()
                .any(|c| !matches!(c, Component::Normal(_)))
            {
                return Err(BuildError::UnsafePath {
                    what: file.display().to_string(),
                    path: dest,
                });
            }
            if !walk.takes(Path::new(file_name.unwrap_or(&name)), file, false) {
                return Ok(());
            }
            std::fs::copy(file, &dest)
                .map(drop)
                .map_err(BuildError::io(format!("copying {}", file.display())))
        }
    }
}

/// The archive formats sources come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArchiveKind {
    Tar,
    TarGz,
    TarBz2,
    TarXz,
    TarZst,
    Zip,
}

impl ArchiveKind {
    fn of(name: &str) -> Option<ArchiveKind> {
        let name = name.to_ascii_lowercase();
        let kinds = [
            (".tar.gz", ArchiveKind::TarGz),
            (".tgz", ArchiveKind::TarGz),
            (".tar.bz2", ArchiveKind::TarBz2),
            (".tbz2", ArchiveKind::TarBz2),
            (".tar.xz", ArchiveKind::TarXz),
            (".txz", ArchiveKind::TarXz),
            (".tar.zst", ArchiveKind::TarZst),
            (".tzst", ArchiveKind::TarZst),
            (".tar", ArchiveKind::Tar),
            (".zip", ArchiveKind::Zip),
        ];
        kinds
            .into_iter()
            .find(|(suffix, _)| name.ends_with(suffix))
            .map(|(_, kind)| kind)
    }
}

fn extract(file: &Path, kind: ArchiveKind, target: &Path, walk: &Walk) -> Result<(), BuildError> {
    let io = |ctx: &str| BuildError::io(format!("{ctx} {}", file.display()));
    let scratch = tempfile::Builder::new()
        .prefix(".extract-")
        .tempdir_in(target)
        .map_err(io("extracting"))?;
    let reader = std::io::BufReader::new(std::fs::File::open(file).map_err(io("opening"))?);
    let unpacked = match kind {
        ArchiveKind::Zip => zip::ZipArchive::new(reader)
            .and_then(|mut zip| zip.extract(scratch.path()))
            .map_err(|e| std::io::Error::other(e.to_string())),
        ArchiveKind::Tar => untar(reader, scratch.path()),
        ArchiveKind::TarGz => untar(flate2::read::MultiGzDecoder::new(reader), scratch.path()),
        ArchiveKind::TarBz2 => untar(bzip2::read::MultiBzDecoder::new(reader), scratch.path()),
        ArchiveKind::TarXz => untar(liblzma::read::XzDecoder::new(reader), scratch.path()),
        ArchiveKind::TarZst => {
            zstd::Decoder::new(reader).and_then(|decoder| untar(decoder, scratch.path()))
        }
    };
    unpacked.map_err(io("extracting"))?;

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
        return copy_tree(&root, target, walk);
    }
    for entry in std::fs::read_dir(&root).map_err(io("extracting"))? {
        let entry = entry.map_err(io("extracting"))?;
        let dest = target.join(entry.file_name());
        std::fs::rename(entry.path(), &dest)
            .map_err(BuildError::io(format!("moving {}", dest.display())))?;
    }
    Ok(())
}

/// Unpacks a tarball; the tar crate refuses entries that would land outside
/// `dest` (absolute paths, `..`, writes through symlinks).
fn untar(reader: impl Read, dest: &Path) -> std::io::Result<()> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    for entry in archive.entries()? {
        let mut entry = entry?;
        if !entry.unpack_in(dest)? {
            return Err(std::io::Error::other(format!(
                "archive entry {} points outside the target directory",
                entry.path()?.display()
            )));
        }
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
}

impl Checkout<'_> {
    /// Clones into `dest` and checks out the reference; then submodules,
    /// LFS objects and the expected commit.
    fn run(&self, dest: &Path, what: &str) -> Result<(), BuildError> {
        let mut cmd = Command::new("git");
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
            tool_output(Command::new("git").args(args).current_dir(dest), what, step)
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

fn apply_patch(patch: &Path, target: &Path, what: &str) -> Result<(), BuildError> {
    if !patch.is_file() {
        return Err(BuildError::MissingSource {
            what: what.to_string(),
            path: patch.to_path_buf(),
        });
    }
    run_tool(
        Command::new("patch")
            .args(["-p1", "--batch", "--forward", "-i"])
            .arg(patch)
            .current_dir(target),
        what,
        &format!("applying patch {}", patch.display()),
    )
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

    #[test]
    fn archive_kinds_follow_the_file_name() {
        assert_eq!(ArchiveKind::of("a-1.0.tar.gz"), Some(ArchiveKind::TarGz));
        assert_eq!(ArchiveKind::of("A.TAR.XZ"), Some(ArchiveKind::TarXz));
        assert_eq!(ArchiveKind::of("x.tar.zst"), Some(ArchiveKind::TarZst));
        assert_eq!(ArchiveKind::of("x.zip"), Some(ArchiveKind::Zip));
        assert_eq!(ArchiveKind::of("x.c"), None);
    }

    #[test]
    fn a_target_directory_may_not_leave_the_work_dir() {
        let work = Path::new("/w");
        assert!(inside(work, Some("../x"), "o").is_err());
        assert!(inside(work, Some("/etc"), "o").is_err());
        assert_eq!(inside(work, Some("a/b"), "o").unwrap(), work.join("a/b"));
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
        place_file(&tarball, &work, None, &Walk::default()).unwrap();
        assert_eq!(std::fs::read(work.join("src/a.c")).unwrap(), b"int x");
        let left: Vec<_> = std::fs::read_dir(&work).unwrap().collect();
        assert_eq!(left.len(), 1, "scratch dir removed, only src/ left");
    }
}
