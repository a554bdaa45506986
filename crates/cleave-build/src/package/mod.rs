//! Writes a conda package: the selected prefix files plus `info/`.
//!
//! Files are copied into a scratch tree first, where ELF files are
//! relinked ([`crate::package::relink`]), files are inspected for the build prefix
//! (see `prefix_detection`: text files get `file_mode: text`, binaries
//! `binary`, each with the prefix as placeholder) and absolute symlinks
//! into the prefix become relative. `build.post_process` edits text files
//! before that inspection, and `build.always_copy_files` marks files
//! `no_link`.
//! The linking checks ([`crate::check::linking`]) run on that tree, and the
//! license files go to `info/licenses/`. The archive is written to a
//! temporary file next to its final name and renamed into place (see
//! [`cleave_channel::partial`]), so an interrupted build never leaves a half-written
//! package in the channel, and a failed check leaves none.

pub mod capture;
pub(crate) mod claims;
mod file_rules;
pub mod licenses;
pub(crate) mod metadata;
mod prefix_detection;
pub mod python;
pub mod relink;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use cleave_recipe::model::PackageOutput;
use rattler_conda_types::Subdir;
use rattler_conda_types::compression_level::CompressionLevel;
use rattler_conda_types::package::{LinkJson, PathType, PathsEntry};

use crate::check::linking::{self, LinkCheck};
use crate::error::BuildError;
use crate::fs::confined::{Tree, WriteError, open_regular};
use capture::{EntryKind, NewEntry};
use file_rules::FileRules;
use licenses::LicenseFile;
use prefix_detection::PrefixRules;
use relink::RelinkRules;

/// The archive format of a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PackageFormat {
    /// `.conda`: zip of zstd tarballs, the current format.
    #[default]
    Conda,
    /// `.tar.bz2`: the legacy format.
    TarBz2,
}

impl PackageFormat {
    /// The archive's file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            PackageFormat::Conda => ".conda",
            PackageFormat::TarBz2 => ".tar.bz2",
        }
    }
}

/// Everything that goes into one package.
pub struct PackageContents<'a> {
    /// The rendered output.
    pub output: &'a PackageOutput,
    /// The platform built for (packages of noarch outputs go to `noarch/`).
    pub target: Subdir,
    /// Final run dependencies, run exports applied.
    pub depends: Vec<String>,
    /// Final run constraints.
    pub constrains: Vec<String>,
    /// The host prefix the files are in.
    pub prefix: &'a Path,
    /// The build prefix, for the linking checks' system libraries.
    pub build_prefix: &'a Path,
    /// Names of the run dependencies the output's own host run exports
    /// added, for the overdepending check.
    pub from_host: &'a [String],
    /// The libraries of the inherited staging build's host environment, by
    /// file name, with their packages (see [`linking::library_names`]).
    pub inherited_libraries: &'a BTreeMap<String, String>,
    /// The files to package, relative to the prefix.
    pub entries: &'a [NewEntry],
    /// The archive path of each entry that is not at its prefix path
    /// (`noarch: python`, see [`crate::package::python`]).
    pub moved: &'a BTreeMap<PathBuf, PathBuf>,
    /// `info/link.json`, for `noarch: python` packages.
    pub link: Option<&'a LinkJson>,
    /// The recipe file, copied into `info/recipe/`.
    pub recipe_file: &'a Path,
    /// The recipe directory, where the tests' script files and
    /// `files.recipe` are.
    pub recipe_dir: &'a Path,
    /// The work dir after the build, where the tests' `files.source` are.
    pub work_dir: &'a Path,
    /// The rendered output as YAML, for `info/recipe/rendered_recipe.yaml`.
    pub rendered: String,
    /// Build time; fixed by `SOURCE_DATE_EPOCH` for reproducible packages.
    pub timestamp: jiff::Timestamp,
    /// License files, copied into `info/licenses/`. Like the rest of
    /// `info/`, they are not listed in paths.json: they are metadata, not
    /// files to install.
    pub licenses: &'a [LicenseFile],
    /// The channels the build solved from, as `about.json` lists them.
    pub channels: &'a [String],
}

/// A written package.
#[derive(Debug, Clone)]
pub struct WrittenPackage {
    /// Where the archive is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// The paths it holds outside `info/`, relative to the prefix.
    pub paths: Vec<PathBuf>,
    /// Findings of the linking checks that do not fail the build.
    pub warnings: Vec<String>,
}

impl PackageContents<'_> {
    /// `name-version-build`, the archive's base name.
    pub fn identifier(&self) -> String {
        let o = self.output;
        format!(
            "{}-{}-{}",
            o.name.as_normalized(),
            o.version,
            o.build.string
        )
    }

    pub(crate) fn subdir(&self) -> &'static str {
        if self.output.build.noarch.is_some() {
            "noarch"
        } else {
            self.target.as_str()
        }
    }
}

/// Writes the package into `<channel>/<subdir>/`, using `scratch` for the
/// file tree.
pub fn write(
    contents: &PackageContents<'_>,
    channel: &Path,
    scratch: &Path,
    format: PackageFormat,
) -> Result<WrittenPackage, BuildError> {
    if scratch.exists() {
        std::fs::remove_dir_all(scratch)
            .map_err(BuildError::io(format!("clearing {}", scratch.display())))?;
    }
    std::fs::create_dir_all(scratch.join("info/recipe"))
        .map_err(BuildError::io(format!("creating {}", scratch.display())))?;
    let prefix_text = contents.prefix.to_string_lossy().into_owned();
    let build = &contents.output.build;
    let rules = Rules {
        files: FileRules::new(&build.always_copy_files, &build.post_process)?,
        prefix: PrefixRules::new(&build.prefix_detection)?,
        relink: RelinkRules::new(&build.dynamic_linking, contents.build_prefix)?,
    };
    // Entries may be links to anywhere, and `noarch: python` moves files
    // below other entries' paths: nothing is written through a link.
    let mut tree = Tree::new(scratch);
    let mut paths = Vec::new();
    let mut warnings = Vec::new();
    for entry in contents.entries {
        let (record, relinked) = copy_entry(contents, &prefix_text, &rules, entry, &mut tree)
            .map_err(|err| match err {
                EntryError::Write(source) => BuildError::PackageFiles {
                    what: contents.identifier(),
                    source: Box::new(source),
                },
                EntryError::Relink(source) => BuildError::Relink {
                    what: contents.identifier(),
                    source: Box::new(source),
                },
            })?;
        paths.push(record);
        warnings.extend(relinked);
    }
    // The tests travel with the package; the files they copy are package
    // files, installed with it, as rattler-build makes them.
    let test_files = crate::check::package_tests::stored::write(
        contents.output,
        contents.recipe_dir,
        contents.work_dir,
        &mut tree,
    )?;
    for rel in test_files {
        paths.push(describe_test_file(scratch, &rel, &rules, &prefix_text)?);
    }
    // After every entry is in place: a link may point at a file that comes
    // later in the list.
    for record in paths
        .iter_mut()
        .filter(|p| p.path_type == PathType::SoftLink)
    {
        describe_link(scratch, record)?;
    }
    // Before anything is archived: a failed check leaves no package.
    let linking = linking::check(&LinkCheck {
        output: contents.output,
        tree: scratch,
        entries: &paths,
        host_prefix: contents.prefix,
        build_prefix: contents.build_prefix,
        target: contents.target,
        depends: &contents.depends,
        from_host: contents.from_host,
        inherited: contents.inherited_libraries,
    })
    .map_err(|source| BuildError::Linking {
        what: contents.identifier(),
        source,
    })?;
    warnings.extend(linking);
    metadata::write_info(contents, &paths, scratch)?;
    crate::package::licenses::copy(contents.licenses, &scratch.join("info/licenses"))
        .map_err(BuildError::license(&contents.identifier()))?;

    // The writer takes absolute paths below the tree it archives.
    let mut archive_paths: Vec<PathBuf> = paths
        .iter()
        .map(|p| scratch.join(&p.relative_path))
        .collect();
    archive_paths.extend(
        list_files(scratch, Path::new("info"))?
            .into_iter()
            .map(|p| scratch.join(p)),
    );

    let dir = channel.join(contents.subdir());
    std::fs::create_dir_all(&dir).map_err(BuildError::io(format!("creating {}", dir.display())))?;
    let final_path = dir.join(format!("{}{}", contents.identifier(), format.extension()));
    let failed = |source| BuildError::WritePackage {
        path: final_path.clone(),
        source,
    };
    let mut file = cleave_channel::partial::partial_file(&dir).map_err(failed)?;
    match format {
        PackageFormat::Conda => rattler_package_streaming::write::write_conda_package(
            &mut file,
            scratch,
            &archive_paths,
            CompressionLevel::Default,
            None,
            &contents.identifier(),
            Some(&zip_time(contents.timestamp)),
            None,
        ),
        PackageFormat::TarBz2 => rattler_package_streaming::write::write_tar_bz2_package(
            &mut file,
            scratch,
            &archive_paths,
            CompressionLevel::Default,
            Some(&contents.timestamp),
            None,
        ),
    }
    .map_err(failed)?;
    file.as_file().sync_all().map_err(failed)?;
    file.persist(&final_path).map_err(|e| failed(e.error))?;
    let size = std::fs::metadata(&final_path).map_err(failed)?.len();
    Ok(WrittenPackage {
        path: final_path,
        size,
        paths: paths.into_iter().map(|p| p.relative_path).collect(),
        warnings,
    })
}

/// The time a `.conda` archive's members get: the package's timestamp,
/// clamped to what a zip can hold (DOS dates: 1980-01-01 to 2107-12-31, in
/// two-second steps), as zip tools do with `SOURCE_DATE_EPOCH`. The
/// package's `index.json` keeps the time as given.
fn zip_time(timestamp: jiff::Timestamp) -> jiff::Timestamp {
    let earliest = jiff::Timestamp::constant(315_532_800, 0);
    let latest = jiff::Timestamp::constant(4_354_819_198, 0);
    timestamp.clamp(earliest, latest)
}

/// The compiled per-file settings of `build` for one package.
struct Rules {
    files: FileRules,
    prefix: PrefixRules,
    relink: RelinkRules,
}

/// Why an entry could not be copied into the scratch tree.
enum EntryError {
    Write(WriteError),
    Relink(relink::RelinkError),
}

impl From<WriteError> for EntryError {
    fn from(err: WriteError) -> Self {
        EntryError::Write(err)
    }
}

/// Copies one entry into the scratch tree and describes it for paths.json;
/// also returns what relinking it found worth a warning.
fn copy_entry(
    contents: &PackageContents<'_>,
    prefix_text: &str,
    rules: &Rules,
    entry: &NewEntry,
    tree: &mut Tree,
) -> Result<(PathsEntry, Vec<String>), EntryError> {
    let prefix = contents.prefix;
    let source = prefix.join(&entry.path);
    let archive_path = contents.moved.get(&entry.path).unwrap_or(&entry.path);
    let io = |action: &'static str| {
        let path = source.clone();
        move |source| WriteError::Io {
            action,
            path,
            source,
        }
    };
    let mut record = PathsEntry {
        relative_path: archive_path.clone(),
        no_link: false,
        path_type: PathType::HardLink,
        prefix_placeholder: None,
        sha256: None,
        size_in_bytes: None,
    };
    let mut warnings = Vec::new();
    match entry.kind {
        EntryKind::EmptyDir => {
            tree.dir(archive_path)?;
            record.path_type = PathType::Directory;
        }
        EntryKind::Symlink => {
            let target = std::fs::read_link(&source).map_err(io("read the link"))?;
            let target = relative_link(prefix, &entry.path, &target).unwrap_or(target);
            tree.symlink(&target, archive_path)?;
            record.path_type = PathType::SoftLink;
        }
        EntryKind::File => {
            // Not followed, and never blocking on a FIFO put there since
            // the prefix was listed.
            let (mut file, meta) = open_regular(&source)?;
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut file, &mut bytes).map_err(io("read"))?;
            if contents.output.build.dynamic_linking.binary_relocation {
                let build_dir = prefix.parent().unwrap_or(prefix);
                let relinked =
                    relink::relink(&mut bytes, &entry.path, prefix, build_dir, &rules.relink)
                        .map_err(EntryError::Relink)?;
                warnings = relinked.warnings;
            }
            // Before prefix detection: a replacement may add or remove
            // the prefix.
            rules.files.post_process(&entry.path, &mut bytes);
            record.no_link = rules.files.no_link(&entry.path);
            record.prefix_placeholder = rules.prefix.placeholder(&entry.path, &bytes, prefix_text);
            let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
            tree.write(archive_path, mode, &bytes)?;
            record.sha256 =
                Some(rattler_digest::compute_bytes_digest::<rattler_digest::Sha256>(&bytes));
            record.size_in_bytes = Some(bytes.len() as u64);
        }
    }
    Ok((record, warnings))
}

/// The paths.json entry of a test file written into the scratch tree.
fn describe_test_file(
    scratch: &Path,
    rel: &Path,
    rules: &Rules,
    prefix_text: &str,
) -> Result<PathsEntry, BuildError> {
    let path = scratch.join(rel);
    let meta = std::fs::symlink_metadata(&path)
        .map_err(BuildError::io(format!("inspecting {}", path.display())))?;
    let mut record = PathsEntry {
        relative_path: rel.to_path_buf(),
        no_link: false,
        path_type: PathType::HardLink,
        prefix_placeholder: None,
        sha256: None,
        size_in_bytes: None,
    };
    if meta.file_type().is_symlink() {
        record.path_type = PathType::SoftLink;
        return Ok(record);
    }
    let bytes =
        std::fs::read(&path).map_err(BuildError::io(format!("reading {}", path.display())))?;
    record.prefix_placeholder = rules.prefix.placeholder(rel, &bytes, prefix_text);
    record.sha256 = Some(rattler_digest::compute_bytes_digest::<rattler_digest::Sha256>(&bytes));
    record.size_in_bytes = Some(bytes.len() as u64);
    Ok(record)
}

/// Fills in `sha256` and `size_in_bytes` of a softlink, as rattler-build
/// does: the digest of the file the link resolves to inside the package, or
/// of empty content when it resolves to nothing there (dangling, a
/// directory, or outside the package, whose files this package does not
/// ship); the size is the link's own, the length of its target. Installers
/// and `conda verify` compare these, and an absent digest fails some of them.
fn describe_link(scratch: &Path, record: &mut PathsEntry) -> Result<(), BuildError> {
    let link = scratch.join(&record.relative_path);
    let io = |what: &str| BuildError::io(format!("{what} {}", link.display()));
    let content = match resolve_inside(scratch, &record.relative_path) {
        Some(file) => std::fs::read(scratch.join(file)).map_err(io("reading the target of"))?,
        None => Vec::new(),
    };
    record.sha256 = Some(rattler_digest::compute_bytes_digest::<rattler_digest::Sha256>(&content));
    record.size_in_bytes = Some(
        std::fs::symlink_metadata(&link)
            .map_err(io("inspecting"))?
            .len(),
    );
    Ok(())
}

/// Longest chain of links followed, as the kernel's limit for a path.
const MAX_LINK_HOPS: usize = 40;

/// The regular file that `rel` (a path below `root`) leads to, following
/// links one component at a time without ever leaving `root`. `None` when
/// it dangles, leaves `root`, ends at a directory or loops. Unlike
/// `canonicalize`, a link can never make this read a file of the machine.
pub(crate) fn resolve_inside(root: &Path, rel: &Path) -> Option<PathBuf> {
    let mut pending: Vec<std::ffi::OsString> = rel
        .components()
        .rev()
        .map(|c| c.as_os_str().to_owned())
        .collect();
    let mut resolved = PathBuf::new();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        match Path::new(&part).components().next()? {
            Component::CurDir => {}
            Component::ParentDir => {
                if !resolved.pop() {
                    return None;
                }
            }
            Component::Normal(name) => {
                resolved.push(name);
                let meta = std::fs::symlink_metadata(root.join(&resolved)).ok()?;
                if meta.file_type().is_symlink() {
                    hops += 1;
                    let target = std::fs::read_link(root.join(&resolved)).ok()?;
                    if hops > MAX_LINK_HOPS || target.is_absolute() {
                        return None;
                    }
                    resolved.pop();
                    pending.extend(target.components().rev().map(|c| c.as_os_str().to_owned()));
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    std::fs::symlink_metadata(root.join(&resolved))
        .ok()
        .filter(std::fs::Metadata::is_file)
        .map(|_| resolved)
}

/// An absolute link into the prefix, as a path relative to the link's dir.
fn relative_link(prefix: &Path, link: &Path, target: &Path) -> Option<PathBuf> {
    let inside: Vec<Component<'_>> = target.strip_prefix(prefix).ok()?.components().collect();
    let from: Vec<Component<'_>> = link
        .parent()
        .map_or(Vec::new(), |p| p.components().collect());
    let common = from.iter().zip(&inside).take_while(|(a, b)| a == b).count();
    let mut relative: PathBuf =
        std::iter::repeat_n(Component::ParentDir.as_os_str(), from.len() - common).collect();
    relative.extend(&inside[common..]);
    if relative.as_os_str().is_empty() {
        relative.push(".");
    }
    Some(relative)
}

/// Every file below `root/rel`, relative to `root`.
fn list_files(root: &Path, rel: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let mut out = Vec::new();
    let dir = root.join(rel);
    for entry in
        std::fs::read_dir(&dir).map_err(BuildError::io(format!("listing {}", dir.display())))?
    {
        let entry = entry.map_err(BuildError::io(format!("listing {}", dir.display())))?;
        let path = rel.join(entry.file_name());
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.extend(list_files(root, &path)?);
        } else {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_only_to_files_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("pkg");
        std::fs::create_dir_all(root.join("lib/sub")).unwrap();
        std::fs::write(root.join("lib/libz.so.1.3"), "z").unwrap();
        let link =
            |target: &str, at: &str| std::os::unix::fs::symlink(target, root.join(at)).unwrap();
        link("libz.so.1.3", "lib/libz.so.1");
        link("libz.so.1", "lib/libz.so");
        link("../libz.so", "lib/sub/up");
        link("sub/../libz.so", "lib/through-dir");
        link("sub", "lib/dir-link");
        link("nowhere", "lib/dangling");
        link("../../outside", "lib/escape");
        link("/etc/hostname", "lib/absolute");
        link("loop-b", "lib/loop-a");
        link("loop-a", "lib/loop-b");
        std::fs::write(dir.path().join("outside"), "secret").unwrap();
        let resolve = |p: &str| resolve_inside(&root, Path::new(p));
        let file = Some(PathBuf::from("lib/libz.so.1.3"));
        assert_eq!(resolve("lib/libz.so"), file);
        assert_eq!(resolve("lib/sub/up"), file);
        assert_eq!(resolve("lib/through-dir"), file);
        for nothing in [
            "lib/dir-link",
            "lib/dangling",
            "lib/escape",
            "lib/absolute",
            "lib/loop-a",
        ] {
            assert_eq!(resolve(nothing), None, "{nothing}");
        }
    }

    #[test]
    fn archive_times_are_clamped_to_the_zip_range() {
        let at = |s: i64| jiff::Timestamp::from_second(s).unwrap();
        assert_eq!(zip_time(at(0)), at(315_532_800));
        assert_eq!(zip_time(at(1_700_000_000)), at(1_700_000_000));
        assert_eq!(zip_time(at(99_999_999_999)), at(4_354_819_198));
    }

    #[test]
    fn absolute_links_into_the_prefix_become_relative() {
        let prefix = Path::new("/p/host_env");
        let rel = relative_link(
            prefix,
            Path::new("lib/pkgconfig/foo.pc"),
            Path::new("/p/host_env/share/foo.pc"),
        );
        assert_eq!(rel.unwrap(), PathBuf::from("../../share/foo.pc"));
        assert_eq!(
            relative_link(prefix, Path::new("bin/x"), Path::new("/usr/bin/x")),
            None
        );
        let top = relative_link(prefix, Path::new("link"), Path::new("/p/host_env/lib/a"));
        assert_eq!(top.unwrap(), PathBuf::from("lib/a"));
        let sibling = relative_link(
            prefix,
            Path::new("lib/libz.so"),
            Path::new("/p/host_env/lib/libz.so.1"),
        );
        assert_eq!(sibling.unwrap(), PathBuf::from("libz.so.1"));
    }
}
