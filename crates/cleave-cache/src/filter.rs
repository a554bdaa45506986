//! Include and exclude globs over the paths of a tree.
//!
//! A tree walked with a filter (see [`crate::fingerprint::Walk`]) yields
//! the files the filter takes, and the empty directories it takes when it
//! has no include globs; other directories appear only as the parents of
//! taken files. Whoever copies such a tree and whoever fingerprints it
//! apply the same filter, so a key covers exactly the files copied.

use std::path::Path;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::CacheError;

/// Which paths of a tree to take.
///
/// Paths are relative to the tree's root. A pattern `P` matches the path
/// `P` and everything below it (so `src` and `src/*` both take the whole
/// `src/` tree); `P/` matches only what is below `P`. `*` also matches
/// `/`, as in the conda recipe format.
#[derive(Debug, Clone)]
pub struct PathFilter {
    include: Option<GlobSet>,
    exclude: GlobSet,
}

impl PathFilter {
    /// A filter taking what `include` matches (everything when it is
    /// empty) and then leaving out what `exclude` matches.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, CacheError> {
        let include = if include.is_empty() {
            None
        } else {
            Some(glob_set(include)?)
        };
        Ok(PathFilter {
            include,
            exclude: glob_set(exclude)?,
        })
    }

    /// True if the file (or symlink) at `rel` is taken.
    pub fn takes_file(&self, rel: &Path) -> bool {
        self.include.as_ref().is_none_or(|set| set.is_match(rel)) && !self.exclude.is_match(rel)
    }

    /// True if the directory at `rel`, whose emptiness is `empty`, is taken
    /// as an entry of its own. Only empty directories are, and only when
    /// no include glob narrows the tree: a directory with files in it
    /// comes with its files.
    pub fn takes_dir(&self, rel: &Path, empty: bool) -> bool {
        empty && self.include.is_none() && !self.exclude.is_match(rel)
    }
}

fn glob_set(globs: &[String]) -> Result<GlobSet, CacheError> {
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        let patterns = match glob.strip_suffix('/') {
            Some(dir) => vec![format!("{dir}/**")],
            None => vec![glob.clone(), format!("{glob}/**")],
        };
        for pattern in patterns {
            let compiled = Glob::new(&pattern).map_err(|source| CacheError::Glob {
                glob: glob.clone(),
                source,
            })?;
            builder.add(compiled);
        }
    }
    builder.build().map_err(|source| CacheError::Glob {
        glob: globs.join(", "),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &[&str], exclude: &[&str]) -> PathFilter {
        let list = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        PathFilter::new(&list(include), &list(exclude)).unwrap()
    }

    #[test]
    fn a_pattern_takes_what_it_names_and_everything_below() {
        let f = filter(&["cmake/*", "clang", "docs/", "*.txt"], &["clang/test/"]);
        assert!(f.takes_file(Path::new("cmake/a/b/c.cmake")));
        assert!(f.takes_file(Path::new("clang/lib/x.cpp")));
        assert!(f.takes_file(Path::new("docs/index.md")));
        assert!(f.takes_file(Path::new("README.txt")));
        assert!(f.takes_file(Path::new("deep/notes.txt")));
        assert!(!f.takes_file(Path::new("clang/test/t.cpp")));
        assert!(!f.takes_file(Path::new("llvm/lib/y.cpp")));
        assert!(!f.takes_file(Path::new("docs")));
    }

    #[test]
    fn only_empty_directories_are_entries_and_only_without_includes() {
        let narrowing = filter(&["src/"], &[]);
        assert!(!narrowing.takes_dir(Path::new("src/empty"), true));
        let excluding = filter(&[], &["third_party/fmt/*"]);
        assert!(excluding.takes_dir(Path::new("empty"), true));
        assert!(!excluding.takes_dir(Path::new("full"), false));
        assert!(!excluding.takes_dir(Path::new("third_party/fmt/empty"), true));
    }
}
