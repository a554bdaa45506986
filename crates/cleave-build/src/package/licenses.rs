//! License files: `about.license_file` found in the work and recipe
//! directories, for `info/licenses/` of the package.
//!
//! Each entry is a glob, with rattler-build's meaning, so that recipes
//! written for it package the same files:
//! - `P` takes the file `P` and everything below a directory `P`; `P/` only
//!   what is below it; a leading `./` is dropped and `.` takes everything;
//! - `*` also crosses `/`;
//! - a file keeps its path relative to the directory it was found in
//!   (`info/licenses/licenses/zlib.txt`);
//! - the work dir (`$SRC_DIR`) is searched first, then the recipe dir, whose
//!   file wins when both have one at the same path.
//!
//! Nothing outside those two directories is read: absolute entries and
//! entries with `..` are refused, and a link (anywhere on the path) that
//! resolves outside the directory it was found in is an error. Links are
//! packaged as the file they lead to, never as links, so the package holds
//! no link into the builder's machine. An entry that matches nothing fails
//! the build rather than shipping a package without its license.

use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};

/// Why license files could not be collected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LicenseError {
    /// An absolute entry: license files are looked up only in the work and
    /// recipe directories.
    #[error(
        "license_file `{pattern}` is absolute; give a path relative to the work dir ($SRC_DIR) or the recipe dir"
    )]
    Absolute {
        /// The entry.
        pattern: String,
    },
    /// An entry with `..`, which could reach outside both directories.
    #[error(
        "license_file `{pattern}` contains `..`; license files must be inside the work dir ($SRC_DIR) or the recipe dir"
    )]
    ParentDir {
        /// The entry.
        pattern: String,
    },
    /// An entry that is not a valid glob.
    #[error("license_file `{pattern}` is not a valid glob")]
    Glob {
        /// The entry.
        pattern: String,
        /// The parser's error.
        #[source]
        source: globset::Error,
    },
    /// Entries that matched no file in either directory.
    #[error(
        "license_file {} matched no file in\n  the work dir:   {}\n  the recipe dir: {}",
        patterns.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", "),
        work_dir.display(),
        recipe_dir.display()
    )]
    NotFound {
        /// The entries.
        patterns: Vec<String>,
        /// The work dir searched.
        work_dir: PathBuf,
        /// The recipe dir searched.
        recipe_dir: PathBuf,
    },
    /// A matched path whose links lead outside its directory.
    #[error("license file {} resolves to {}, outside {}", path.display(), target.display(), root.display())]
    Escapes {
        /// The matched path.
        path: PathBuf,
        /// Where it leads.
        target: PathBuf,
        /// The directory it must stay in.
        root: PathBuf,
    },
    /// A matched link that leads nowhere.
    #[error("license file {} is a broken link", path.display())]
    BrokenLink {
        /// The link.
        path: PathBuf,
    },
    /// A directory could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// What was read.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LicenseError + '_ {
    move |source| LicenseError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The compiled `about.license_file` entries of one output.
#[derive(Debug)]
pub struct LicensePatterns {
    patterns: Vec<Pattern>,
}

#[derive(Debug)]
struct Pattern {
    /// As the recipe wrote it, for messages.
    text: String,
    /// The leading components without glob characters: only below this
    /// can a match be, so only this is walked.
    base: PathBuf,
    matcher: GlobSet,
}

/// One license file to package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenseFile {
    /// The file to read, links resolved, inside the work or recipe dir.
    pub source: PathBuf,
    /// Its path below `info/licenses/`.
    pub dest: PathBuf,
}

/// The license files of an output.
#[derive(Debug, Default)]
pub struct Found {
    /// The files, by destination.
    pub files: Vec<LicenseFile>,
    /// Destinations found in both directories; the recipe dir's file is
    /// packaged.
    pub overridden: Vec<PathBuf>,
}

impl LicensePatterns {
    /// Compiles the entries; refuses absolute ones and ones with `..`.
    pub fn new(entries: &[String]) -> Result<Self, LicenseError> {
        let patterns = entries
            .iter()
            .map(|text| Pattern::new(text))
            .collect::<Result<_, _>>()?;
        Ok(LicensePatterns { patterns })
    }

    /// True when the recipe names no license file.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The paths among a directory's listing (`(path, is a link)`, relative
    /// to it) that [`LicensePatterns::find`] would read there, when they
    /// can be told from the listing alone. `None` means all of the
    /// directory is needed: when a match is a link, or when an entry
    /// matches nothing while the directory has links, through which the
    /// lookup might still reach a match. An entry matching nothing in a
    /// directory without links simply has no match there (it may be in
    /// the recipe dir).
    pub fn needed<'a>(
        &self,
        listing: impl Iterator<Item = (&'a Path, bool)>,
    ) -> Option<Vec<PathBuf>> {
        let mut hit = vec![false; self.patterns.len()];
        let mut paths = Vec::new();
        let mut has_links = false;
        for (path, link) in listing {
            has_links |= link;
            let mut taken = false;
            for (pattern, hit) in self.patterns.iter().zip(hit.iter_mut()) {
                if pattern.matcher.is_match(path) {
                    *hit = true;
                    taken = true;
                }
            }
            if taken {
                if link {
                    return None;
                }
                paths.push(path.to_path_buf());
            }
        }
        (!has_links || hit.iter().all(|h| *h)).then_some(paths)
    }

    /// The files to package: every match in `work_dir`, then every match in
    /// `recipe_dir`, which replaces a work-dir file at the same path.
    pub fn find(&self, work_dir: &Path, recipe_dir: &Path) -> Result<Found, LicenseError> {
        let mut by_dest: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
        let mut found = Found::default();
        let mut unmatched: Vec<&str> = Vec::new();
        let from_work = self.find_in(work_dir)?;
        let from_recipe = self.find_in(recipe_dir)?;
        for (index, pattern) in self.patterns.iter().enumerate() {
            if from_work[index].is_empty() && from_recipe[index].is_empty() {
                unmatched.push(&pattern.text);
            }
        }
        if !unmatched.is_empty() {
            return Err(LicenseError::NotFound {
                patterns: unmatched.into_iter().map(String::from).collect(),
                work_dir: work_dir.to_path_buf(),
                recipe_dir: recipe_dir.to_path_buf(),
            });
        }
        for file in from_work.into_iter().flatten() {
            by_dest.insert(file.dest, file.source);
        }
        let mut from_recipe: Vec<LicenseFile> = from_recipe.into_iter().flatten().collect();
        from_recipe.sort_by(|a, b| a.dest.cmp(&b.dest));
        from_recipe.dedup_by(|a, b| a.dest == b.dest);
        for file in from_recipe {
            if by_dest.insert(file.dest.clone(), file.source).is_some() {
                found.overridden.push(file.dest);
            }
        }
        found.files = by_dest
            .into_iter()
            .map(|(dest, source)| LicenseFile { source, dest })
            .collect();
        Ok(found)
    }

    /// The files the patterns take from the recipe dir (a package output's
    /// cache key covers them; the work dir's come from its sources).
    pub fn recipe_files(&self, recipe_dir: &Path) -> Result<Vec<LicenseFile>, LicenseError> {
        let mut files: Vec<LicenseFile> = self.find_in(recipe_dir)?.into_iter().flatten().collect();
        files.sort_by(|a, b| a.dest.cmp(&b.dest));
        files.dedup_by(|a, b| a.dest == b.dest);
        Ok(files)
    }

    /// Per entry, the files it takes from `root`.
    fn find_in(&self, root: &Path) -> Result<Vec<Vec<LicenseFile>>, LicenseError> {
        let Ok(canonical) = std::fs::canonicalize(root) else {
            return Ok(self.patterns.iter().map(|_| Vec::new()).collect());
        };
        self.patterns
            .iter()
            .map(|pattern| {
                let mut files = Vec::new();
                for rel in candidates(root, &pattern.base)? {
                    if pattern.matcher.is_match(&rel) {
                        expand(&canonical, root, &rel, &mut files)?;
                    }
                }
                Ok(files)
            })
            .collect()
    }
}

impl Pattern {
    fn new(text: &str) -> Result<Self, LicenseError> {
        let mut rest = text;
        while let Some(stripped) = rest.strip_prefix("./") {
            rest = stripped.trim_start_matches('/');
        }
        let path = Path::new(rest);
        if path.is_absolute() {
            return Err(LicenseError::Absolute {
                pattern: text.to_string(),
            });
        }
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(LicenseError::ParentDir {
                pattern: text.to_string(),
            });
        }
        let globs: Vec<String> = match rest {
            "" | "." => vec!["**".into()],
            dir if dir.ends_with('/') => vec![format!("{dir}**")],
            file => vec![file.to_string(), format!("{file}/**")],
        };
        let mut builder = GlobSetBuilder::new();
        for glob in &globs {
            builder.add(Glob::new(glob).map_err(|source| LicenseError::Glob {
                pattern: text.to_string(),
                source,
            })?);
        }
        let matcher = builder.build().map_err(|source| LicenseError::Glob {
            pattern: text.to_string(),
            source,
        })?;
        let base = path
            .components()
            .take_while(|c| {
                !c.as_os_str()
                    .to_string_lossy()
                    .contains(['*', '?', '[', ']', '{', '}', '\\'])
            })
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        Ok(Pattern {
            text: text.to_string(),
            base,
            matcher,
        })
    }
}

/// The files and links at or below `root/base`, relative to `root`. Links
/// are listed, not entered, so a walk never loops or leaves `root`.
fn candidates(root: &Path, base: &Path) -> Result<Vec<PathBuf>, LicenseError> {
    let start = root.join(base);
    let mut out = Vec::new();
    // The base is named by the recipe, so a link there is followed (and its
    // target checked by `expand`); below it, links are only listed.
    match std::fs::metadata(&start) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Ok(vec![base.to_path_buf()]),
        Err(_) if std::fs::symlink_metadata(&start).is_ok() => {
            return Ok(vec![base.to_path_buf()]);
        }
        Err(_) => return Ok(out),
    }
    let mut stack = vec![base.to_path_buf()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let path = rel.join(entry.file_name());
            if entry.file_type().map_err(io(&dir))?.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Adds the file at `root/rel`, or every file below it when it leads to a
/// directory, with links resolved and checked to stay in `canonical_root`.
fn expand(
    canonical_root: &Path,
    root: &Path,
    rel: &Path,
    out: &mut Vec<LicenseFile>,
) -> Result<(), LicenseError> {
    let mut seen = HashSet::new();
    let mut stack = vec![(root.join(rel), rel.to_path_buf())];
    while let Some((path, dest)) = stack.pop() {
        let target = std::fs::canonicalize(&path).map_err(|source| {
            if std::fs::symlink_metadata(&path).is_ok() {
                LicenseError::BrokenLink { path: path.clone() }
            } else {
                LicenseError::Io {
                    path: path.clone(),
                    source,
                }
            }
        })?;
        if !target.starts_with(canonical_root) {
            return Err(LicenseError::Escapes {
                path,
                target,
                root: root.to_path_buf(),
            });
        }
        let meta = std::fs::metadata(&target).map_err(io(&target))?;
        if meta.is_file() {
            out.push(LicenseFile {
                source: target,
                dest,
            });
        } else if meta.is_dir() && seen.insert(target.clone()) {
            for entry in std::fs::read_dir(&target).map_err(io(&target))? {
                let entry = entry.map_err(io(&target))?;
                stack.push((entry.path(), dest.join(entry.file_name())));
            }
        }
    }
    Ok(())
}

/// Copies `files` below `dir` (normally `info/licenses` of the package).
pub fn copy(files: &[LicenseFile], dir: &Path) -> Result<(), LicenseError> {
    for file in files {
        let dest = dir.join(&file.dest);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::copy(&file.source, &dest).map_err(io(&file.source))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(entries: &[&str]) -> LicensePatterns {
        let entries: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
        LicensePatterns::new(&entries).unwrap()
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// A work dir and a recipe dir side by side, and a file outside both.
    fn dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let (work, recipe) = (tmp.path().join("work"), tmp.path().join("recipe"));
        write(&work, "LICENSE", "work license");
        write(&work, "COPYING", "work copying");
        write(&work, "third_party/licenses/zlib.txt", "zlib");
        write(&work, "third_party/licenses/sub/bzip2.txt", "bzip2");
        write(&work, "build/LICENSE.o", "object");
        write(&recipe, "COPYING", "recipe copying");
        write(&recipe, "recipe-only.txt", "recipe");
        write(tmp.path(), "secret", "not a license");
        (tmp, work, recipe)
    }

    fn dests(found: &Found) -> Vec<String> {
        found
            .files
            .iter()
            .map(|f| f.dest.display().to_string())
            .collect()
    }

    #[test]
    fn files_and_directories_keep_their_layout_and_the_recipe_dir_wins() {
        let (_tmp, work, recipe) = dirs();
        let found = patterns(&["LICENSE", "./COPYING", "third_party/licenses/", "recipe-*"])
            .find(&work, &recipe)
            .unwrap();
        assert_eq!(
            dests(&found),
            [
                "COPYING",
                "LICENSE",
                "recipe-only.txt",
                "third_party/licenses/sub/bzip2.txt",
                "third_party/licenses/zlib.txt",
            ]
        );
        let copying = found.files.iter().find(|f| f.dest == Path::new("COPYING"));
        assert_eq!(
            std::fs::read_to_string(&copying.unwrap().source).unwrap(),
            "recipe copying"
        );
        assert_eq!(found.overridden, [PathBuf::from("COPYING")]);
    }

    #[test]
    fn a_star_crosses_directories_and_a_plain_name_takes_a_directory() {
        let (_tmp, work, recipe) = dirs();
        let star = patterns(&["**/*.txt"]).find(&work, &recipe).unwrap();
        assert_eq!(
            dests(&star),
            [
                "recipe-only.txt",
                "third_party/licenses/sub/bzip2.txt",
                "third_party/licenses/zlib.txt",
            ]
        );
        let dir = patterns(&["third_party"]).find(&work, &recipe).unwrap();
        assert_eq!(dir.files.len(), 2);
    }

    #[test]
    fn an_entry_matching_nothing_names_itself_and_both_dirs() {
        let (_tmp, work, recipe) = dirs();
        let err = patterns(&["LICENSE", "NOTICE*", "docs/"])
            .find(&work, &recipe)
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("`NOTICE*`, `docs/`"), "{text}");
        assert!(!text.contains("`LICENSE`"), "{text}");
        assert!(text.contains(&work.display().to_string()), "{text}");
        assert!(text.contains(&recipe.display().to_string()), "{text}");
    }

    #[test]
    fn absolute_entries_and_parent_dirs_are_refused() {
        let absolute = LicensePatterns::new(&["/etc/passwd".into()]).unwrap_err();
        assert!(
            matches!(absolute, LicenseError::Absolute { .. }),
            "{absolute}"
        );
        for entry in ["../secret", "a/../../secret", "./../secret"] {
            let err = LicensePatterns::new(&[entry.into()]).unwrap_err();
            assert!(
                matches!(err, LicenseError::ParentDir { .. }),
                "{entry}: {err}"
            );
        }
    }

    #[test]
    fn links_are_followed_inside_their_dir_and_refused_outside() {
        let (tmp, work, recipe) = dirs();
        std::os::unix::fs::symlink("third_party/licenses/zlib.txt", work.join("ZLIB")).unwrap();
        let found = patterns(&["ZLIB"]).find(&work, &recipe).unwrap();
        assert_eq!(dests(&found), ["ZLIB"]);
        assert_eq!(
            std::fs::read_to_string(&found.files[0].source).unwrap(),
            "zlib"
        );

        std::os::unix::fs::symlink(tmp.path().join("secret"), work.join("EVIL")).unwrap();
        let err = patterns(&["EVIL"]).find(&work, &recipe).unwrap_err();
        assert!(matches!(err, LicenseError::Escapes { .. }), "{err}");
        // Through a linked directory on the way, and found by a glob.
        std::os::unix::fs::symlink(tmp.path(), work.join("up")).unwrap();
        let err = patterns(&["up/secret"]).find(&work, &recipe).unwrap_err();
        assert!(matches!(err, LicenseError::Escapes { .. }), "{err}");
        let err = patterns(&["EV*"]).find(&work, &recipe).unwrap_err();
        assert!(matches!(err, LicenseError::Escapes { .. }), "{err}");
        std::os::unix::fs::symlink("nowhere", work.join("BROKEN")).unwrap();
        let err = patterns(&["BROKEN"]).find(&work, &recipe).unwrap_err();
        assert!(matches!(err, LicenseError::BrokenLink { .. }), "{err}");
    }

    #[test]
    fn the_needed_paths_come_from_a_listing_unless_a_link_is_involved() {
        let p = patterns(&["LICENSE", "licenses/"]);
        let listing = |items: &[(&'static str, bool)]| -> Vec<(&'static Path, bool)> {
            items.iter().map(|(p, l)| (Path::new(*p), *l)).collect()
        };
        let plain = listing(&[
            ("LICENSE", false),
            ("build/a.o", false),
            ("licenses", false),
            ("licenses/a.txt", false),
        ]);
        assert_eq!(
            p.needed(plain.into_iter()),
            Some(vec![
                PathBuf::from("LICENSE"),
                PathBuf::from("licenses/a.txt")
            ])
        );
        let linked = listing(&[("LICENSE", true), ("licenses/a.txt", false)]);
        assert_eq!(p.needed(linked.into_iter()), None);
        // `licenses/` may be in the recipe dir only.
        let missing = listing(&[("LICENSE", false)]);
        assert_eq!(
            p.needed(missing.into_iter()),
            Some(vec![PathBuf::from("LICENSE")])
        );
        // Or reached through a link.
        let missing = listing(&[("LICENSE", false), ("docs", true)]);
        assert_eq!(p.needed(missing.into_iter()), None);
    }
}
