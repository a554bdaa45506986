//! The functions and filters recipes call: `compiler()`, `stdlib()`,
//! `cdt()`, `pin_subpackage()`, `pin_compatible()`, `match()`,
//! `load_from_file()`, the platform tests and `version_to_buildstring`.
//!
//! `compiler()` and `stdlib()` follow conda-forge's conventions: the
//! package name and version come from the variant keys
//! `{lang}_compiler`/`{lang}_compiler_version` and
//! `{lang}_stdlib`/`{lang}_stdlib_version`, and reading them makes those
//! keys (and `CONDA_BUILD_SYSROOT`) part of the output's variant, so a
//! package built with another compiler gets another build string.

use std::path::Path;

use minijinja::value::{Kwargs, Value};
use minijinja::{Error, ErrorKind, State};
use rattler_conda_types::{Arch, ParseStrictness, Subdir, Version, VersionSpec};

use super::{Need, Scope};
use crate::model::{PIN_COMPATIBLE_MARK, PIN_SUBPACKAGE_MARK, PinArgs};
use crate::variant::VariantValue;

/// The names registered here, which are never variant keys.
pub(crate) const FUNCTIONS: &[&str] = &[
    "compiler",
    "stdlib",
    "cdt",
    "pin_subpackage",
    "pin_compatible",
    "match",
    "is_unix",
    "is_linux",
    "is_osx",
    "is_win",
    "is_windows",
    "load_from_file",
    "cmp",
    "env",
    "git",
];

/// Registers every function and filter on `env`.
pub(crate) fn register(env: &mut minijinja::Environment<'static>) {
    env.add_function("compiler", compiler);
    env.add_function("stdlib", stdlib);
    env.add_function("cdt", cdt);
    env.add_function("pin_subpackage", pin_subpackage);
    env.add_function("pin_compatible", pin_compatible);
    env.add_function("match", match_version);
    env.add_function("is_unix", |p: String| platform_test(&p, Subdir::is_unix));
    env.add_function("is_linux", |p: String| platform_test(&p, Subdir::is_linux));
    env.add_function("is_osx", |p: String| platform_test(&p, Subdir::is_osx));
    env.add_function("is_win", |p: String| platform_test(&p, Subdir::is_windows));
    env.add_function("is_windows", |p: String| {
        platform_test(&p, Subdir::is_windows)
    });
    env.add_function("load_from_file", load_from_file);
    env.add_function("cmp", |_: Value, _: Value| -> Result<bool, Error> {
        Err(Error::new(
            ErrorKind::InvalidOperation,
            "`cmp` is not supported; use `match(value, spec)`",
        ))
    });
    env.add_filter("version_to_buildstring", version_to_buildstring);
}

/// conda-forge's default compiler package names per platform.
fn default_compiler(lang: &str, target: Subdir) -> String {
    let apple_or_android = target.is_osx() || target.is_ios() || target.is_android();
    let emscripten = target.only_platform() == Some("emscripten");
    match lang {
        "c" | "cxx" if target.is_windows() => "vs2022",
        "c" if apple_or_android => "clang",
        "cxx" if apple_or_android => "clangxx",
        "c" | "cxx" if emscripten => "emscripten",
        "c" => "gcc",
        "cxx" => "gxx",
        "fortran" if target.is_windows() => "flang",
        "fortran" => "gfortran",
        other => other,
    }
    .to_string()
}

/// `{name}_{platform}` with the version from the variant: a plain version
/// (`14`) pins its series (`=14`), anything else is used as written.
fn package_with_version(name: &str, target: Subdir, version: Option<VariantValue>) -> String {
    let package = format!("{name}_{}", target.as_str());
    match version.map(|v| v.to_string()) {
        Some(v) if v.chars().all(|c| c.is_alphanumeric() || c == '.') => format!("{package} ={v}"),
        Some(v) => format!("{package} {v}"),
        None => package,
    }
}

fn compiler(state: &State, lang: String) -> Result<String, Error> {
    let scope = Scope::from_state(state)?;
    scope.variant_value("CONDA_BUILD_SYSROOT")?;
    let name = scope.variant_value(&format!("{lang}_compiler"))?;
    let version = scope.variant_value(&format!("{lang}_compiler_version"))?;
    let name = name.map_or_else(
        || default_compiler(&lang, scope.target()),
        |n| n.to_string(),
    );
    Ok(package_with_version(&name, scope.target(), version))
}

fn stdlib(state: &State, lang: String) -> Result<String, Error> {
    let scope = Scope::from_state(state)?;
    scope.variant_value("CONDA_BUILD_SYSROOT")?;
    let name = scope.variant_value(&format!("{lang}_stdlib"))?;
    let version = scope.variant_value(&format!("{lang}_stdlib_version"))?;
    let Some(name) = name else {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            format!("no stdlib for language `{lang}`: the variant config has no `{lang}_stdlib`"),
        ));
    };
    Ok(package_with_version(
        &name.to_string(),
        scope.target(),
        version,
    ))
}

fn cdt(state: &State, package: String) -> Result<String, Error> {
    let scope = Scope::from_state(state)?;
    let arch = scope.target().arch();
    let default_name = match arch {
        Some(Arch::Aarch64 | Arch::Ppc64le | Arch::Ppc64 | Arch::S390X) => "cos7",
        _ => "cos6",
    };
    let default_arch = match arch {
        Some(Arch::X86) => "i686".to_string(),
        Some(arch) => arch.as_str().to_string(),
        None => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "cdt() needs a platform with an architecture",
            ));
        }
    };
    let name = scope
        .variant_value("cdt_name")?
        .map_or_else(|| default_name.to_string(), |v| v.to_string());
    let arch = scope
        .variant_value("cdt_arch")?
        .map_or(default_arch, |v| v.to_string());
    Ok(match package.split_once(' ') {
        Some((base, rest)) => format!("{base}-{name}-{arch} {rest}"),
        None => format!("{package}-{name}-{arch}"),
    })
}

fn pin_args(name: String, kwargs: &Kwargs) -> Result<PinArgs, Error> {
    let bound = |key: &str, default: &str| -> Result<Option<String>, Error> {
        if kwargs.has(key) {
            let value: Option<Value> = kwargs.get(key)?;
            Ok(value.filter(|v| !v.is_none()).map(|v| v.to_string()))
        } else {
            Ok(Some(default.to_string()))
        }
    };
    let exact = kwargs.get::<Option<bool>>("exact")?.unwrap_or(false);
    let build: Option<String> = kwargs.get("build")?;
    if exact
        && let Some(key) = ["lower_bound", "upper_bound", "build"]
            .into_iter()
            .find(|k| kwargs.has(k))
    {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("`exact=True` pins one build; `{key}` cannot be combined with it"),
        ));
    }
    let args = PinArgs {
        lower_bound: bound("lower_bound", "x.x.x.x.x.x")?,
        upper_bound: bound("upper_bound", "x")?,
        exact,
        build,
        name,
    };
    kwargs.assert_all_used()?;
    Ok(args)
}

fn marker(mark: &str, args: &PinArgs) -> Result<String, Error> {
    let json = serde_json::to_string(args)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    Ok(format!("{mark}{json}"))
}

fn pin_subpackage(state: &State, name: String, kwargs: Kwargs) -> Result<String, Error> {
    let scope = Scope::from_state(state)?;
    let args = pin_args(name, &kwargs)?;
    if scope.self_name() == Some(args.name.as_str()) {
        return marker(PIN_SUBPACKAGE_MARK, &args);
    }
    let names = scope.package_names();
    if !names.contains(&args.name) {
        let known = names.iter().map(String::as_str);
        let hint = crate::error::suggest(&args.name, known)
            .map(|close| format!(" (did you mean `{close}`?)"))
            .unwrap_or_default();
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "pin_subpackage names `{}`, which is not an output of this recipe{hint}",
                args.name
            ),
        ));
    }
    let Some(targets) = scope.rendered(&args.name) else {
        return Err(scope.set_need(Need::Output(args.name)));
    };
    // Pick the instance that agrees with this render on every shared key;
    // an exact pin also takes over the keys the pinned output uses.
    let compatible = targets.iter().find(|t| {
        t.variant
            .iter()
            .all(|(k, v)| scope.assigned(k).is_none_or(|mine| mine == v))
    });
    let Some(target) = compatible else {
        if let Some(echo) = scope.sibling_failed(&args.name) {
            return Err(echo);
        }
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "no variant of `{}` matches this output's variant",
                args.name
            ),
        ));
    };
    if args.exact {
        if let Some(key) = target.variant.keys().find(|k| scope.assigned(k).is_none()) {
            return Err(scope.set_need(Need::Key(key.clone())));
        }
        scope.record_exact_pin(&args.name, &target.version, &target.build_string);
    }
    Ok(crate::model::pin_spec_for(
        &args,
        &target.version,
        &target.build_string,
    ))
}

fn pin_compatible(name: String, kwargs: Kwargs) -> Result<String, Error> {
    let args = pin_args(name, &kwargs)?;
    marker(PIN_COMPATIBLE_MARK, &args)
}

/// Whether a variant value matches a version spec. A value that is not
/// text (an undefined key, a number) matches anything, as in conda-build:
/// the test then selects nothing away. `3.12.* *_cpython` is read as 3.12.
fn match_version(value: Value, spec: String) -> Result<bool, Error> {
    let Some(text) = value.as_str() else {
        return Ok(true);
    };
    let token = text.split_whitespace().next().unwrap_or_default();
    let token = token
        .strip_suffix(".*")
        .unwrap_or(token)
        .trim_end_matches('*');
    let invalid =
        |what: &str, e: String| Error::new(ErrorKind::InvalidOperation, format!("{what}: {e}"));
    let version: Version = token
        .parse()
        .map_err(|e: rattler_conda_types::ParseVersionError| {
            invalid(&format!("invalid version `{token}`"), e.to_string())
        })?;
    let spec = VersionSpec::from_str(&spec, ParseStrictness::Strict)
        .or_else(|_| VersionSpec::from_str(&spec, ParseStrictness::Lenient))
        .map_err(|e| invalid(&format!("invalid version spec `{spec}`"), e.to_string()))?;
    Ok(spec.matches(&version))
}

fn platform_test(platform: &str, test: fn(Subdir) -> bool) -> Result<bool, Error> {
    platform
        .parse::<Subdir>()
        .map(test)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))
}

/// `3.11`, `3.11.*` or `3.11.* *_cpython` becomes `311`, as in `py311`
/// build strings: the first two dotted parts of the first word.
fn version_to_buildstring(value: Value) -> String {
    let text = value.to_string();
    let word = text.split_whitespace().next().unwrap_or_default();
    word.split('.').take(2).collect()
}

/// A data file, parsed by its extension (YAML, JSON, TOML) or as text:
/// recipes read versions from `pyproject.toml`. The path is looked up next
/// to the recipe, then from the working directory (a recipe kept in a
/// subdirectory of its project names files from the project's root).
fn load_from_file(state: &State, path: String) -> Result<Value, Error> {
    let scope = Scope::from_state(state)?;
    let beside = scope.recipe_dir().join(&path);
    let full = if beside.exists() {
        beside
    } else {
        std::path::PathBuf::from(&path)
    };
    let failed = |reason: String| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("load_from_file(`{path}`): {reason}"),
        )
    };
    let text = crate::input::read_file(&full).map_err(|e| {
        failed(match std::error::Error::source(&e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        })
    })?;
    let extension = Path::new(&path)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    let value: serde_json::Value = match extension {
        "yaml" | "yml" => serde_yaml_ng::from_str(&text).map_err(|e| failed(e.to_string()))?,
        "json" => serde_json::from_str(&text).map_err(|e| failed(e.to_string()))?,
        "toml" => toml::from_str(&text).map_err(|e| failed(e.to_string()))?,
        _ => return Ok(Value::from(text)),
    };
    Ok(Value::from_serialize(&value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compilers_follow_conda_forge_defaults() {
        assert_eq!(default_compiler("c", Subdir::Linux64), "gcc");
        assert_eq!(default_compiler("cxx", Subdir::OsxArm64), "clangxx");
        assert_eq!(default_compiler("c", Subdir::Win64), "vs2022");
        assert_eq!(default_compiler("fortran", Subdir::Win64), "flang");
        assert_eq!(default_compiler("rust", Subdir::Linux64), "rust");
        assert_eq!(
            package_with_version("gcc", Subdir::Linux64, Some(VariantValue::Int(14))),
            "gcc_linux-64 =14"
        );
        assert_eq!(
            package_with_version("gcc", Subdir::Linux64, Some("14.*".into())),
            "gcc_linux-64 14.*"
        );
    }

    #[test]
    fn match_reads_conda_forge_python_values() {
        let m = |v: &str, s: &str| match_version(Value::from(v), s.into()).unwrap();
        assert!(!m("3.12.* *_cpython", "<3.12"));
        assert!(m("3.12.* *_cpython", ">=3.12"));
        assert!(m("3.9", "<3.12"));
        assert!(match_version(Value::UNDEFINED, "<3".into()).unwrap());
    }

    #[test]
    fn buildstring_versions() {
        let v = |s: &str| version_to_buildstring(Value::from(s));
        assert_eq!(v("3.12.* *_cpython"), "312");
        assert_eq!(v("3.12.1"), "312");
        assert_eq!(v("3"), "3");
    }
}
