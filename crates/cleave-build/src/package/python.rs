//! What packaging does differently for python packages.
//!
//! A `noarch: python` package is installed into whatever python the
//! environment has, so it must not name one: files below
//! `lib/pythonX.Y/site-packages/` go to `site-packages/`, other `bin/`
//! scripts to `python-scripts/` (the installer maps both back for the
//! environment's python), and bytecode is left out (it is specific to one
//! python; installers compile it). The scripts pip wrote for the recipe's
//! `build.python.entry_points` are dropped too: they name the build's
//! python in their shebang. `info/link.json` lists the entry points
//! instead, and the installer writes them for the environment's python.
//!
//! A package for one python gets a launcher `bin/<command>` per entry
//! point, run by the host environment's python. Its shebang holds the
//! build prefix, which the package records as a placeholder, so the
//! installer rewrites it to the install prefix.
//!
//! In every package, pip's `*.dist-info/INSTALLER` says `conda`, so that pip
//! does not take the files for its own and uninstall or upgrade them.
//!
//! This module does not run python: it only moves, drops and writes files.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use cleave_recipe::model::{NoArch, PackageOutput};
use rattler_conda_types::package::{
    EntryPoint, LinkJson, NoArchLinks, ParseEntryPointError, PythonEntryPoints,
};

use crate::package::capture::{EntryKind, NewEntry};

/// Why a python package's files could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PythonError {
    /// An entry of `build.python.entry_points` is not `command = module:function`.
    #[error("entry point `{text}` is not `command = module:function`")]
    EntryPoint {
        /// The entry as the recipe wrote it.
        text: String,
        /// What is wrong with it.
        #[source]
        source: ParseEntryPointError,
    },
    /// Entry points of a package for one python need that python.
    #[error(
        "entry points are launched by the host environment's python, and {} does not exist: add `python` to the host requirements",
        python.display()
    )]
    NoHostPython {
        /// Where the python was looked for.
        python: PathBuf,
    },
    /// A file could not be written or read.
    #[error("cannot write {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The files of a package after the python rules.
#[derive(Debug, Default)]
pub struct PythonFiles {
    /// The prefix entries that go into the package.
    pub entries: Vec<NewEntry>,
    /// The archive path of each entry that is not at its prefix path.
    pub moved: BTreeMap<PathBuf, PathBuf>,
    /// `info/link.json` of a `noarch: python` package.
    pub link: Option<LinkJson>,
}

/// The recipe's `build.python.entry_points`, parsed. The only place that
/// reads them from the output, so that a change of the recipe model
/// touches one line.
pub fn entry_points(output: &PackageOutput) -> Result<Vec<EntryPoint>, PythonError> {
    output
        .build
        .python
        .entry_points
        .iter()
        .map(|text| {
            EntryPoint::from_str(text).map_err(|source| PythonError::EntryPoint {
                text: text.clone(),
                source,
            })
        })
        .collect()
}

/// Applies the python rules to the `entries` an output selected from
/// `prefix`. Writes launchers and `INSTALLER` files into the prefix, which
/// belongs to this output's build.
pub fn prepare(
    output: &PackageOutput,
    prefix: &Path,
    entries: Vec<NewEntry>,
) -> Result<PythonFiles, PythonError> {
    let entry_points = entry_points(output)?;
    for entry in entries.iter().filter(|e| is_installer_file(&e.path)) {
        let path = prefix.join(&entry.path);
        std::fs::write(&path, "conda\n").map_err(|source| PythonError::Io { path, source })?;
    }
    if uses_noarch_layout(output) {
        Ok(noarch(entries, &entry_points))
    } else {
        with_launchers(prefix, entries, &entry_points)
    }
}

/// Whether the package takes the `noarch: python` layout: a noarch python
/// package, or one marked `build.python.version_independent` (an abi3
/// extension, built per platform but installed into any python 3).
pub fn uses_noarch_layout(output: &PackageOutput) -> bool {
    output.build.noarch == Some(NoArch::Python) || output.build.python.version_independent
}

/// Variables a build script gets so that pip installs what the recipe
/// built, and only that: no index, no dependencies, no build isolation
/// (the host environment is the build environment), packages of the same
/// name already importable are installed over, and `~/.local` stays out.
/// conda-build sets the same.
pub fn build_env(build_dir: &Path) -> Vec<(String, String)> {
    [
        ("PIP_NO_BUILD_ISOLATION", "False".to_string()),
        ("PIP_NO_DEPENDENCIES", "True".to_string()),
        ("PIP_IGNORE_INSTALLED", "True".to_string()),
        ("PIP_NO_INDEX", "True".to_string()),
        (
            "PIP_CACHE_DIR",
            build_dir.join("pip_cache").display().to_string(),
        ),
        ("PYTHONNOUSERSITE", "1".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn is_installer_file(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "INSTALLER")
        && path
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|d| d.to_string_lossy().ends_with(".dist-info"))
}

/// The `noarch: python` layout: see the module doc.
fn noarch(entries: Vec<NewEntry>, entry_points: &[EntryPoint]) -> PythonFiles {
    let mut files = PythonFiles::default();
    for entry in entries {
        if is_bytecode(&entry.path) || is_entry_point_script(&entry.path, entry_points) {
            continue;
        }
        if let Some(moved) = noarch_path(&entry.path) {
            files.moved.insert(entry.path.clone(), moved);
        }
        files.entries.push(entry);
    }
    files.link = Some(LinkJson {
        noarch: NoArchLinks::Python(PythonEntryPoints {
            entry_points: entry_points.to_vec(),
        }),
        package_metadata_version: 1,
    });
    files
}

/// `__pycache__/` contents and `.pyc` files (`.pyo` are from pythons
/// before 3.5 and go too).
fn is_bytecode(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str() == "__pycache__")
        || path.extension().is_some_and(|e| e == "pyc" || e == "pyo")
}

fn is_entry_point_script(path: &Path, entry_points: &[EntryPoint]) -> bool {
    let mut parts = path.components();
    parts.next() == Some(Component::Normal("bin".as_ref()))
        && parts.next().is_some_and(|name| {
            entry_points
                .iter()
                .any(|ep| name.as_os_str() == ep.command.as_str())
        })
        && parts.next().is_none()
}

/// Where a file of a `noarch: python` package goes in the archive, when
/// not at its prefix path: `lib/python3.X/site-packages/a` is
/// `site-packages/a`, `bin/a` is `python-scripts/a`.
fn noarch_path(path: &Path) -> Option<PathBuf> {
    let parts: Vec<&std::ffi::OsStr> = path.components().map(|c| c.as_os_str()).collect();
    match parts.as_slice() {
        [lib, python, site, rest @ ..]
            if *lib == "lib"
                && python.to_string_lossy().starts_with("python")
                && *site == "site-packages"
                && !rest.is_empty() =>
        {
            Some(Path::new("site-packages").join(rest.iter().collect::<PathBuf>()))
        }
        [bin, rest @ ..] if *bin == "bin" && !rest.is_empty() => {
            Some(Path::new("python-scripts").join(rest.iter().collect::<PathBuf>()))
        }
        _ => None,
    }
}

/// A package for one python: a launcher per entry point, replacing what
/// pip may have written there.
fn with_launchers(
    prefix: &Path,
    mut entries: Vec<NewEntry>,
    entry_points: &[EntryPoint],
) -> Result<PythonFiles, PythonError> {
    if entry_points.is_empty() {
        return Ok(PythonFiles {
            entries,
            ..PythonFiles::default()
        });
    }
    let python = prefix.join("bin/python");
    if !python.exists() {
        return Err(PythonError::NoHostPython { python });
    }
    for ep in entry_points {
        let rel = Path::new("bin").join(&ep.command);
        let path = prefix.join(&rel);
        let io = |source| PythonError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(prefix.join("bin")).map_err(io)?;
        // A link (pip's script may be one) would be written through.
        if path.is_symlink() {
            std::fs::remove_file(&path).map_err(io)?;
        }
        std::fs::write(&path, launcher(&python, ep)).map_err(io)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
        entries.retain(|e| e.path != rel);
        entries.push(NewEntry {
            path: rel,
            kind: EntryKind::File,
        });
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(PythonFiles {
        entries,
        ..PythonFiles::default()
    })
}

/// The script that runs `ep` with `python`: what conda and pip write for
/// a console script. `sys.argv[0]` loses a `-script.py` or `.exe` suffix,
/// so the program sees its command name.
fn launcher(python: &Path, ep: &EntryPoint) -> String {
    let import = ep.function.split('.').next().unwrap_or(&ep.function);
    let lines = [
        format!("#!{}", python.display()),
        "# -*- coding: utf-8 -*-".into(),
        "import re".into(),
        "import sys".into(),
        String::new(),
        format!("from {} import {import}", ep.module),
        String::new(),
        "if __name__ == '__main__':".into(),
        r"    sys.argv[0] = re.sub(r'(-script\.pyw?|\.exe)?$', '', sys.argv[0])".into(),
        format!("    sys.exit({}())", ep.function),
    ];
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> NewEntry {
        NewEntry {
            path: PathBuf::from(path),
            kind: EntryKind::File,
        }
    }

    fn ep(text: &str) -> EntryPoint {
        EntryPoint::from_str(text).unwrap()
    }

    #[test]
    fn noarch_python_moves_site_packages_and_scripts_and_drops_bytecode_and_entry_points() {
        let entries = [
            "lib/python3.11/site-packages/hello/__init__.py",
            "lib/python3.11/site-packages/hello/__pycache__/__init__.cpython-311.pyc",
            "lib/python3.11/site-packages/hello/old.pyc",
            "lib/python3.11/site-packages/hello-1.0.dist-info/METADATA",
            "bin/hello",
            "bin/helper.sh",
            "share/doc/hello.txt",
        ]
        .map(file)
        .to_vec();
        let files = noarch(entries, &[ep("hello = hello.cli:main")]);
        let kept: Vec<&Path> = files.entries.iter().map(|e| e.path.as_path()).collect();
        assert_eq!(
            kept,
            [
                "lib/python3.11/site-packages/hello/__init__.py",
                "lib/python3.11/site-packages/hello-1.0.dist-info/METADATA",
                "bin/helper.sh",
                "share/doc/hello.txt",
            ]
            .map(Path::new)
        );
        let moved: Vec<(&str, &str)> = files
            .moved
            .iter()
            .map(|(a, b)| (a.to_str().unwrap(), b.to_str().unwrap()))
            .collect();
        assert_eq!(
            moved,
            [
                ("bin/helper.sh", "python-scripts/helper.sh"),
                (
                    "lib/python3.11/site-packages/hello/__init__.py",
                    "site-packages/hello/__init__.py"
                ),
                (
                    "lib/python3.11/site-packages/hello-1.0.dist-info/METADATA",
                    "site-packages/hello-1.0.dist-info/METADATA"
                ),
            ]
        );
        let link = serde_json::to_value(files.link.unwrap()).unwrap();
        assert_eq!(
            link,
            serde_json::json!({
                "noarch": {"type": "python", "entry_points": ["hello = hello.cli:main"]},
                "package_metadata_version": 1
            })
        );
    }

    #[test]
    fn a_launcher_runs_the_function_with_the_prefix_python() {
        let text = launcher(
            Path::new("/p/host_env/bin/python"),
            &ep("hello-tool = hello.cli:main"),
        );
        assert!(text.starts_with("#!/p/host_env/bin/python\n"), "{text}");
        assert!(text.contains("from hello.cli import main\n"), "{text}");
        assert!(text.contains("    sys.exit(main())\n"), "{text}");
        let nested = launcher(Path::new("/p/bin/python"), &ep("x = pkg.mod:App.run"));
        assert!(nested.contains("from pkg.mod import App\n"), "{nested}");
        assert!(nested.contains("sys.exit(App.run())"), "{nested}");
    }

    #[test]
    fn launchers_replace_what_pip_wrote_and_need_a_host_python() {
        let prefix = tempfile::tempdir().unwrap();
        let p = prefix.path();
        std::fs::create_dir_all(p.join("bin")).unwrap();
        std::fs::write(p.join("bin/hello"), "#!/pip/wrote/this\n").unwrap();
        let eps = [ep("hello = hello.cli:main"), ep("hi = hello.cli:hi")];
        let missing = with_launchers(p, vec![file("bin/hello")], &eps).unwrap_err();
        assert!(
            matches!(missing, PythonError::NoHostPython { .. }),
            "{missing}"
        );

        std::fs::write(p.join("bin/python"), "").unwrap();
        let files = with_launchers(p, vec![file("bin/hello")], &eps).unwrap();
        let paths: Vec<&Path> = files.entries.iter().map(|e| e.path.as_path()).collect();
        assert_eq!(paths, [Path::new("bin/hello"), Path::new("bin/hi")]);
        let hello = std::fs::read_to_string(p.join("bin/hello")).unwrap();
        assert!(hello.starts_with(&format!("#!{}/bin/python\n", p.display())));
        let mode = std::fs::metadata(p.join("bin/hi"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert!(files.moved.is_empty() && files.link.is_none());
    }

    #[test]
    fn only_dist_info_installer_files_say_conda() {
        assert!(is_installer_file(Path::new(
            "lib/python3.11/site-packages/x-1.0.dist-info/INSTALLER"
        )));
        assert!(!is_installer_file(Path::new("share/x/INSTALLER")));
    }
}
