//! `pin_subpackage` and `pin_compatible`: version ranges derived from a
//! package's actual version.
//!
//! Jinja functions cannot return structured values into YAML text, so a pin
//! that cannot be resolved while rendering travels through the rendered text
//! as a marker followed by its JSON arguments, and is turned back into a
//! [`Pin`] or a match spec afterwards.

use serde::{Deserialize, Serialize};

/// Marks a `pin_subpackage` of the output being rendered itself.
pub(crate) const PIN_SUBPACKAGE_MARK: &str = "\u{1}pin_subpackage:";
/// Marks a `pin_compatible`, resolved only once the host env is solved.
pub(crate) const PIN_COMPATIBLE_MARK: &str = "\u{1}pin_compatible:";

/// The arguments of a pin function, as written in the recipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PinArgs {
    pub(crate) name: String,
    pub(crate) lower_bound: Option<String>,
    pub(crate) upper_bound: Option<String>,
    pub(crate) exact: bool,
    /// A build string pattern the pin adds (`build="h*"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) build: Option<String>,
}

/// A `pin_compatible(...)` dependency, resolved against the solved host
/// environment by the build engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pin {
    /// The host package whose version is pinned.
    pub name: String,
    /// Lower bound: an `x.x` pattern or a literal version; `None` for no bound.
    pub lower_bound: Option<String>,
    /// Upper bound: an `x.x` pattern or a literal version; `None` for no bound.
    pub upper_bound: Option<String>,
    /// Pin to the exact version and build string.
    pub exact: bool,
    /// A build string pattern to add.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
}

impl Pin {
    /// The match spec this pin gives for a package at `version`/`build`.
    pub fn spec_for(&self, version: &str, build: &str) -> String {
        pin_spec(
            &self.name,
            version,
            build,
            self.lower_bound.as_deref(),
            self.upper_bound.as_deref(),
            self.exact,
            self.build.as_deref(),
        )
    }
}

impl From<PinArgs> for Pin {
    fn from(args: PinArgs) -> Self {
        Pin {
            name: args.name,
            lower_bound: args.lower_bound,
            upper_bound: args.upper_bound,
            exact: args.exact,
            build: args.build,
        }
    }
}

/// The match spec `args` gives for a package at `version`/`build`.
pub(crate) fn pin_spec_for(args: &PinArgs, version: &str, build: &str) -> String {
    pin_spec(
        &args.name,
        version,
        build,
        args.lower_bound.as_deref(),
        args.upper_bound.as_deref(),
        args.exact,
        args.build.as_deref(),
    )
}

/// Builds a match spec such as `libfoo >=1.2.3,<1.3.0a0` from pin arguments.
pub(crate) fn pin_spec(
    name: &str,
    version: &str,
    build: &str,
    lower: Option<&str>,
    upper: Option<&str>,
    exact: bool,
    build_pattern: Option<&str>,
) -> String {
    if exact {
        return format!("{name} =={version} {build}");
    }
    let mut bounds = Vec::new();
    if let Some(lower) = lower {
        bounds.push(format!(">={}", lower_bound(version, lower)));
    }
    if let Some(upper) = upper {
        bounds.push(format!("<{}", upper_bound(version, upper)));
    }
    let range = if bounds.is_empty() {
        "*".to_string()
    } else {
        bounds.join(",")
    };
    match build_pattern {
        Some(pattern) => format!("{name} {range} {pattern}"),
        None if bounds.is_empty() => name.to_string(),
        None => format!("{name} {range}"),
    }
}

/// The number of `x` in a pattern like `x.x.x`, or `None` for a literal.
fn pattern_len(pattern: &str) -> Option<usize> {
    let parts: Vec<&str> = pattern.split('.').collect();
    parts
        .iter()
        .all(|p| p.eq_ignore_ascii_case("x"))
        .then_some(parts.len())
}

fn lower_bound(version: &str, pattern: &str) -> String {
    match pattern_len(pattern) {
        Some(n) => version.split('.').take(n).collect::<Vec<_>>().join("."),
        None => pattern.to_string(),
    }
}

fn upper_bound(version: &str, pattern: &str) -> String {
    let Some(n) = pattern_len(pattern) else {
        return pattern.to_string();
    };
    let mut parts: Vec<String> = version.split('.').take(n).map(String::from).collect();
    while parts.len() < n {
        parts.push("0".into());
    }
    if let Some(last) = parts.last_mut() {
        let digits: String = last.chars().take_while(char::is_ascii_digit).collect();
        *last = (digits.parse::<u64>().unwrap_or(0) + 1).to_string();
    }
    format!("{}.0a0", parts.join("."))
}

#[cfg(test)]
mod tests {
    use super::pin_spec;

    #[test]
    fn bounds_follow_conda_conventions() {
        let spec = |l, u, e| pin_spec("foo", "1.2.3", "h123_0", l, u, e, None);
        assert_eq!(
            spec(Some("x.x.x"), Some("x.x"), false),
            "foo >=1.2.3,<1.3.0a0"
        );
        assert_eq!(
            spec(Some("x.x.x.x.x.x"), Some("x"), false),
            "foo >=1.2.3,<2.0a0"
        );
        assert_eq!(spec(None, Some("x.x.x.x"), false), "foo <1.2.3.1.0a0");
        assert_eq!(spec(Some("1.0"), Some("3"), false), "foo >=1.0,<3");
        assert_eq!(spec(None, None, false), "foo");
        assert_eq!(spec(None, None, true), "foo ==1.2.3 h123_0");
        assert_eq!(
            pin_spec("foo", "9rc1", "h", None, Some("x"), false, None),
            "foo <10.0a0"
        );
        assert_eq!(
            pin_spec("foo", "1.2.3", "h", Some("x.x"), None, false, Some("h*")),
            "foo >=1.2 h*"
        );
    }
}
