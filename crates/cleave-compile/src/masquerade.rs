//! Masquerade directories: links named like compilers (`gcc`, `cc`,
//! `x86_64-conda-linux-gnu-cc`) that run cleave, first on `PATH`, so that
//! every compiler call of a build goes through the cache without the build
//! knowing. cleave started under such a name is the wrapper, and runs the
//! compiler of that name found further along `PATH`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::compiler::find_in;

/// The compiler names every masquerade directory offers, when the
/// compiler is on `PATH`.
pub const NAMES: &[&str] = &["cc", "c++", "gcc", "g++", "clang", "clang++"];

/// Whether cleave started as `name` is a compiler wrapper: one of
/// [`NAMES`], a cross name ending in one (`x86_64-conda-linux-gnu-cc`),
/// either with a version (`gcc-12`, `clang++-17`).
pub fn is_compiler_name(name: &str) -> bool {
    let base = match name.rsplit_once('-') {
        Some((base, version))
            if !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit() || b == b'.') =>
        {
            base
        }
        _ => name,
    };
    NAMES
        .iter()
        .any(|n| base == *n || base.strip_suffix(n).is_some_and(|p| p.ends_with('-')))
}

/// What the links of a masquerade directory lead to.
#[derive(Debug, Clone, Copy)]
pub enum LinkTo<'a> {
    /// cleave: every call goes through the cache.
    Wrapper(&'a Path),
    /// The compilers themselves (the cache is off, but build trees that
    /// recorded the directory's paths still find a compiler there).
    Compilers,
}

/// Fills `dir` with a link for each of `names` that names a compiler on
/// `path` (the `PATH` the build will see, without `dir`); returns the
/// names linked.
pub fn install(
    dir: &Path,
    link_to: LinkTo<'_>,
    names: &[String],
    path: &OsStr,
) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut linked = Vec::new();
    for name in names {
        if !is_compiler_name(name) || linked.contains(name) {
            continue;
        }
        let Ok(real) = find_in(OsStr::new(name), path, Some(dir)) else {
            continue;
        };
        let target = match link_to {
            LinkTo::Wrapper(cleave) => cleave.to_path_buf(),
            LinkTo::Compilers => real,
        };
        let link = dir.join(name);
        match std::fs::remove_file(&link) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        std::os::unix::fs::symlink(&target, &link)?;
        linked.push(name.clone());
    }
    Ok(linked)
}

/// The value a compiler variable (`CC`, `CXX`) takes so that its calls go
/// through `dir`: a bare name stays (it is found on `PATH`); a path whose
/// name `dir` holds becomes that link, when the compiler found for that
/// name on `path` is the same file. Anything else (a command with
/// arguments, a compiler `dir` does not offer) is left alone: `None`.
pub fn wrap(value: &str, dir: &Path, linked: &[String], path: &OsStr) -> Option<PathBuf> {
    let value = value.trim();
    if value.is_empty() || value.contains(char::is_whitespace) || !value.contains('/') {
        return None;
    }
    let name = Path::new(value).file_name()?.to_str()?;
    if !linked.iter().any(|l| l == name) {
        return None;
    }
    let found = find_in(OsStr::new(name), path, Some(dir)).ok()?;
    let same = std::fs::canonicalize(&found).ok()? == std::fs::canonicalize(value).ok()?;
    same.then(|| dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn compiler_names_with_cross_prefixes_and_versions() {
        for name in [
            "cc",
            "gcc",
            "g++",
            "c++",
            "clang++",
            "x86_64-conda-linux-gnu-cc",
            "x86_64-conda-linux-gnu-c++",
            "aarch64-linux-gnu-gcc-12",
            "clang-17",
        ] {
            assert!(is_compiler_name(name), "{name}");
        }
        for name in [
            "cleave",
            "ld",
            "x86_64-conda-linux-gnu-ar",
            "gcc-ar",
            "ccc",
            "icx",
        ] {
            assert!(!is_compiler_name(name), "{name}");
        }
    }

    #[test]
    fn links_cover_the_compilers_on_path_and_wrap_absolute_compiler_variables() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        for name in ["gcc", "x86_64-conda-linux-gnu-cc"] {
            let tool = bin.join(name);
            std::fs::write(&tool, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let masq = tmp.path().join("masq");
        let path = bin.as_os_str();
        let names: Vec<String> = NAMES
            .iter()
            .map(|n| n.to_string())
            .chain(["x86_64-conda-linux-gnu-cc".to_string(), "icx".to_string()])
            .collect();
        let cleave = Path::new("/usr/bin/cleave-itself");
        let linked = install(&masq, LinkTo::Wrapper(cleave), &names, path).unwrap();
        assert_eq!(linked, ["gcc", "x86_64-conda-linux-gnu-cc"]);
        assert_eq!(std::fs::read_link(masq.join("gcc")).unwrap(), cleave);
        // Installing again (a restored build dir) replaces the links.
        install(&masq, LinkTo::Compilers, &names, path).unwrap();
        assert_eq!(
            std::fs::read_link(masq.join("gcc")).unwrap(),
            bin.join("gcc")
        );

        let cc = bin.join("x86_64-conda-linux-gnu-cc");
        assert_eq!(
            wrap(cc.to_str().unwrap(), &masq, &linked, path),
            Some(masq.join("x86_64-conda-linux-gnu-cc"))
        );
        assert_eq!(wrap("gcc", &masq, &linked, path), None);
        assert_eq!(wrap("ccache gcc", &masq, &linked, path), None);
        let elsewhere = tmp.path().join("other/gcc");
        assert_eq!(
            wrap(elsewhere.to_str().unwrap(), &masq, &linked, path),
            None
        );
    }
}
