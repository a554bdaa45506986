//! Directories whose absolute paths must not reach a key: in a recipe
//! build the work dir, `$PREFIX` and `$BUILD_PREFIX`, which are new,
//! key-named directories every time a staging build reruns; outside
//! recipes the working directory and its parents up to a base directory
//! the user names, so that a path below the base counts by where it is
//! from the working directory, as with ccache's `base_dir`.
//!
//! Each root has a name. In a key, its path is replaced by a marker that
//! starts with a NUL byte (`"\0{work}"`), which no argument, path or
//! preprocessed line can contain, so two different calls never normalise
//! to the same text. In the output, the compiler maps the root to
//! `/cleave/NAME` (`-ffile-prefix-map`), so debug information and
//! `__FILE__` name the same paths wherever the build ran.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use aho_corasick::{AhoCorasick, MatchKind};

/// Where roots are mapped to in objects: `/cleave/NAME`.
pub const CANONICAL_PARENT: &str = "/cleave";

/// How a compiler is told to rename paths in its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrefixMap {
    /// `-ffile-prefix-map` (gcc 8, clang 10): debug information and
    /// `__FILE__`.
    File,
    /// `-fdebug-prefix-map` only (older compilers): debug information.
    Debug,
    /// The compiler knows neither.
    None,
}

/// Named directories, longest path first.
#[derive(Debug, Clone, Default)]
pub struct Roots {
    roots: Vec<Root>,
    matcher: Option<AhoCorasick>,
}

#[derive(Debug, Clone)]
struct Root {
    name: String,
    path: String,
}

impl Roots {
    /// Roots from `(name, absolute path)` pairs. Relative paths, `/`, names
    /// that are not `[a-z0-9_-]+`, and a second root of the same name or
    /// path are left out.
    pub fn new<N: Into<String>>(pairs: impl IntoIterator<Item = (N, PathBuf)>) -> Roots {
        let mut roots: Vec<Root> = Vec::new();
        for (name, path) in pairs {
            let name = name.into();
            let valid_name = !name.is_empty()
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            let Some(path) = path.to_str() else { continue };
            let path = path.trim_end_matches('/');
            if !valid_name || !path.starts_with('/') || path.contains('\0') {
                continue;
            }
            if roots.iter().any(|r| r.name == name || r.path == path) {
                continue;
            }
            roots.push(Root {
                name,
                path: path.to_string(),
            });
        }
        roots.sort_by(|a, b| b.path.len().cmp(&a.path.len()).then(a.name.cmp(&b.name)));
        let matcher = (!roots.is_empty())
            .then(|| {
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(roots.iter().map(|r| r.path.as_bytes()))
                    .ok()
            })
            .flatten();
        Roots { roots, matcher }
    }

    /// Roots written as `name=path` pairs separated by `:` (how the build
    /// engine hands them to the wrapper).
    pub fn parse(text: &str) -> Roots {
        Roots::new(
            text.split(':')
                .filter_map(|pair| pair.split_once('='))
                .map(|(name, path)| (name.to_string(), PathBuf::from(path))),
        )
    }

    /// `name=path:name=path`, what [`Roots::parse`] reads.
    pub fn encode(pairs: &[(&str, &Path)]) -> String {
        pairs
            .iter()
            .map(|(name, path)| format!("{name}={}", path.display()))
            .collect::<Vec<_>>()
            .join(":")
    }

    /// Adds the roots of a base directory (a user's
    /// `CLEAVE_COMPILE_BASE_DIR`, `:`-separated) for a compile in `cwd`:
    /// `cwd` is `up0`, its parent `up1`, and so on up to the first base
    /// that holds `cwd`. A path below the base then normalises to its
    /// place relative to `cwd` (`/home/me/a/src/x.c` from
    /// `/home/me/a/build` is `{up1}/src/x.c`), the same in every checkout
    /// laid out alike; paths outside the base stay as they are.
    pub fn with_bases(self, bases: &str, cwd: &Path) -> Roots {
        let mut pairs: Vec<(String, PathBuf)> = self
            .roots
            .into_iter()
            .map(|r| (r.name, PathBuf::from(r.path)))
            .collect();
        let base = bases
            .split(':')
            .filter(|b| b.starts_with('/'))
            .map(|b| match b.trim_end_matches('/') {
                "" => Path::new("/"),
                trimmed => Path::new(trimmed),
            })
            .find(|b| cwd.starts_with(b));
        if let Some(base) = base {
            for (i, dir) in cwd.ancestors().enumerate() {
                pairs.push((format!("up{i}"), dir.to_path_buf()));
                if dir == base {
                    break;
                }
            }
        }
        Roots::new(pairs)
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// `text` with every root path replaced by its marker.
    pub fn normalize<'t>(&self, text: &'t str) -> Cow<'t, str> {
        match self.normalize_bytes(text.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            // Markers and the text around them are UTF-8.
            Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
        }
    }

    /// [`Roots::normalize`] for bytes (preprocessed output).
    pub fn normalize_bytes<'t>(&self, bytes: &'t [u8]) -> Cow<'t, [u8]> {
        let Some(matcher) = &self.matcher else {
            return Cow::Borrowed(bytes);
        };
        if matcher.find(bytes).is_none() {
            return Cow::Borrowed(bytes);
        }
        let markers: Vec<Vec<u8>> = self.roots.iter().map(|r| marker(&r.name)).collect();
        Cow::Owned(matcher.replace_all_bytes(bytes, &markers))
    }

    /// A normalised path back at this build's roots; `None` when it names
    /// a root this build does not have.
    pub fn resolve(&self, normalized: &str) -> Option<String> {
        if !normalized.contains('\0') {
            return Some(normalized.to_string());
        }
        let mut out = normalized.to_string();
        for root in &self.roots {
            out = out.replace(
                &String::from_utf8_lossy(&marker(&root.name)).into_owned(),
                &root.path,
            );
        }
        (!out.contains('\0')).then_some(out)
    }

    /// The options that map each root to `/cleave/NAME` in the output,
    /// most specific last (gcc lets the last matching map win, and so does
    /// the user's own map, which comes after these).
    pub fn prefix_maps(&self, style: PrefixMap) -> Vec<String> {
        let option = match style {
            PrefixMap::File => "-ffile-prefix-map",
            PrefixMap::Debug => "-fdebug-prefix-map",
            PrefixMap::None => return Vec::new(),
        };
        self.roots
            .iter()
            .rev()
            .map(|r| format!("{option}={}={CANONICAL_PARENT}/{}", r.path, r.name))
            .collect()
    }

    /// [`Roots::prefix_maps`] as a key holds them: without the maps of a
    /// base directory's roots (`up0`, `up1`, ...). How many of those there
    /// are depends on how deep the working directory is below the base,
    /// which says nothing about the output: a path the output names is in
    /// the key itself (normalised, `{up1}/lib/x.c`), and maps to the same
    /// `/cleave/up1/lib/x.c` at any depth.
    pub fn key_prefix_maps(&self, style: PrefixMap) -> Vec<String> {
        let mut maps = self.prefix_maps(style);
        let mut kept = self.roots.iter().rev().map(|r| !is_base_root(&r.name));
        maps.retain(|_| kept.next().unwrap_or(true));
        maps
    }

    /// `(name, path)` of each root, for capture and restore in the store.
    pub fn pairs(&self) -> Vec<(&str, &Path)> {
        self.roots
            .iter()
            .map(|r| (r.name.as_str(), Path::new(&r.path)))
            .collect()
    }

    /// The path of the root called `name`.
    pub fn path_of(&self, name: &str) -> Option<&str> {
        self.roots
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.path.as_str())
    }
}

/// Whether a root is one [`Roots::with_bases`] adds: `up` and a number.
fn is_base_root(name: &str) -> bool {
    name.strip_prefix("up")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The marker a root's path becomes: a NUL, then `{name}`.
fn marker(name: &str) -> Vec<u8> {
    format!("\0{{{name}}}").into_bytes()
}

/// A normalised text for people: markers shown as `{name}`.
pub fn display(normalized: &str) -> String {
    normalized.replace('\0', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe_roots(base: &str) -> Roots {
        Roots::new([
            ("build_dir", PathBuf::from(base)),
            ("work", PathBuf::from(format!("{base}/work"))),
            (
                "host_env",
                PathBuf::from(format!("{base}/host_env_placehold")),
            ),
        ])
    }

    #[test]
    fn two_build_dirs_normalise_to_the_same_text_and_resolve_back() {
        let a = recipe_roots("/stg/x-1111");
        let b = recipe_roots("/other/place/x-2222");
        let line = |base: &str| {
            format!("-I{base}/work/lib -DP=\"{base}/host_env_placehold/share\" {base}/build.log")
        };
        let na = a.normalize(&line("/stg/x-1111")).into_owned();
        let nb = b.normalize(&line("/other/place/x-2222")).into_owned();
        assert_eq!(na, nb);
        assert_eq!(
            display(&na),
            "-I{work}/lib -DP=\"{host_env}/share\" {build_dir}/build.log"
        );
        assert_eq!(b.resolve(&na).unwrap(), line("/other/place/x-2222"));
        assert_eq!(Roots::default().resolve(&na), None);
    }

    #[test]
    fn text_outside_the_roots_is_left_alone() {
        let roots = recipe_roots("/stg/x");
        assert!(matches!(
            roots.normalize("/usr/include/stdio.h"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn prefix_maps_put_the_most_specific_root_last() {
        let roots = recipe_roots("/stg/x");
        assert_eq!(
            roots.prefix_maps(PrefixMap::File),
            [
                "-ffile-prefix-map=/stg/x=/cleave/build_dir",
                "-ffile-prefix-map=/stg/x/work=/cleave/work",
                "-ffile-prefix-map=/stg/x/host_env_placehold=/cleave/host_env",
            ]
        );
        assert!(roots.prefix_maps(PrefixMap::None).is_empty());
    }

    #[test]
    fn encoded_roots_parse_back_and_bad_ones_are_dropped() {
        let text = Roots::encode(&[
            ("work", Path::new("/a/work")),
            ("BAD", Path::new("/b")),
            ("rel", Path::new("relative")),
            ("top", Path::new("/")),
        ]);
        let roots = Roots::parse(&text);
        assert_eq!(roots.pairs(), [("work", Path::new("/a/work"))]);
    }

    #[test]
    fn below_a_base_paths_count_from_the_working_directory() {
        let a =
            Roots::default().with_bases("/nowhere:/home/me/", Path::new("/home/me/a/zstd/build"));
        let b = Roots::default().with_bases("/home/me", Path::new("/home/me/other/zstd/build"));
        assert_eq!(a.path_of("up0"), Some("/home/me/a/zstd/build"));
        assert_eq!(a.path_of("up3"), Some("/home/me"));
        assert_eq!(a.path_of("up4"), None);
        let line = |top: &str| format!("-I{top}/zstd/lib {top}/zstd/lib/x.c /usr/include/stdio.h");
        assert_eq!(
            a.normalize(&line("/home/me/a")),
            b.normalize(&line("/home/me/other"))
        );
        assert_eq!(
            display(&a.normalize(&line("/home/me/a"))),
            "-I{up1}/lib {up1}/lib/x.c /usr/include/stdio.h"
        );
        // A base that does not hold the working directory adds nothing,
        // and `/` adds every parent but itself.
        assert!(
            Roots::default()
                .with_bases("/opt", Path::new("/home/me"))
                .is_empty()
        );
        let top = Roots::default().with_bases("/", Path::new("/home/me"));
        assert_eq!(top.pairs().len(), 2);
    }

    #[test]
    fn a_key_holds_the_maps_of_named_roots_not_of_the_base_s_depth() {
        let shallow = recipe_roots("/stg/x").with_bases("/home", Path::new("/home/me/a/build"));
        let deep = recipe_roots("/stg/x").with_bases("/home", Path::new("/home/me/b/c/build"));
        assert_ne!(
            shallow.prefix_maps(PrefixMap::File).len(),
            deep.prefix_maps(PrefixMap::File).len()
        );
        assert_eq!(
            shallow.key_prefix_maps(PrefixMap::File),
            recipe_roots("/stg/x").prefix_maps(PrefixMap::File)
        );
        assert_eq!(
            deep.key_prefix_maps(PrefixMap::File),
            shallow.key_prefix_maps(PrefixMap::File)
        );
    }
}
