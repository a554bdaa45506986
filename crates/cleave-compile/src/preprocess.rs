//! The preprocessor fallback: the preprocessed text of a call, with the
//! roots' paths normalised, keys its entry (an edit that leaves that text
//! alone, like a comment, still hits); its line markers name every file it
//! read, which become the direct-mode manifest.
//!
//! It also tells whether the call expands a time macro (`__DATE__`,
//! `__TIME__`, `__TIMESTAMP__`), wherever it comes from: the source, a
//! header, a `-D` on the command line, or pieces pasted together with
//! `##`. Reading the text for the names cannot rule out the last two; the
//! compiler's own `-Wdate-time` reports each expansion, so it is turned on
//! for this run (and on in system headers, and never an error), and what
//! it reports is read from the messages.

use std::path::Path;
use std::process::{Command, Stdio};

use cleave_cache::Digest;

use crate::args::Compile;
use crate::compiler;
use crate::error::CompileError;
use crate::roots::Roots;

/// What preprocessing a call gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preprocessed {
    /// Digest of the normalised text.
    pub digest: Digest,
    /// Every file read besides the source, as the markers name them
    /// (relative to the compile's directory when not absolute), in order.
    pub includes: Vec<String>,
    /// Whether a precompiled header was used.
    pub pch: bool,
    /// The time macros it expanded.
    pub expanded: Expanded,
}

/// The time macros a preprocessing expanded, as `-Wdate-time` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expanded {
    /// At least one.
    pub any: bool,
    /// One that may be `__TIMESTAMP__` (a file's time, which
    /// `SOURCE_DATE_EPOCH` does not fix in every compiler): gcc names the
    /// macro, clang does not.
    pub timestamp: bool,
}

/// What makes the preprocessor report every time macro it expands, in
/// system headers too, as a warning (an error would fail the run), with
/// the option named (so that the report can be told from other warnings).
const REPORT_TIME_MACROS: &[&str] = &[
    "-Wdate-time",
    "-Wsystem-headers",
    "-Wno-error",
    "-Wno-error=date-time",
    "-Wno-pedantic",
    "-fdiagnostics-show-option",
];

/// Runs the preprocessor on the call's source with its flags and `extra`,
/// with time macros reported (see [`REPORT_TIME_MACROS`]); `None` when
/// the preprocessor fails (the compile will say why).
pub fn run(
    compiler: &Path,
    extra: &[String],
    compile: &Compile,
    roots: &Roots,
) -> Result<Option<Preprocessed>, CompileError> {
    // `-w` silences every warning, whatever comes after it; it changes
    // nothing in the text.
    let flags = compile
        .flags
        .iter()
        .filter(|f| !matches!(f.as_str(), "-w" | "--no-warnings"));
    let out = compiler::output(
        Command::new(compiler)
            .args(extra)
            .args(flags)
            .args(REPORT_TIME_MACROS)
            .args(["-E", "-x", compile.language.as_x(), &compile.source])
            .stdin(Stdio::null()),
        compiler,
    )?;
    if !out.status.success() {
        return Ok(None);
    }
    let mut pre = read(&out.stdout, &compile.source, roots);
    pre.expanded = expanded(&out.stderr);
    Ok(Some(pre))
}

/// The time macros the messages of a `-Wdate-time` run report: gcc's
/// `macro "__TIME__" might prevent reproducible builds [-Wdate-time]`,
/// clang's `expansion of date or time macro is not reproducible
/// [-Wdate-time]` (or the same in JSON).
fn expanded(messages: &[u8]) -> Expanded {
    let mut found = Expanded::default();
    for line in String::from_utf8_lossy(messages).lines() {
        if !line.contains("date-time") {
            continue;
        }
        found.any = true;
        let named = (line.contains("__DATE__") || line.contains("__TIME__"))
            && !line.contains("__TIMESTAMP__");
        found.timestamp |= !named;
    }
    found
}

/// Digests and reads the markers of preprocessed text.
fn read(text: &[u8], source: &str, roots: &Roots) -> Preprocessed {
    let digest = Digest::of(&roots.normalize_bytes(text));
    let mut includes: Vec<String> = Vec::new();
    let mut pch = false;
    for line in text
        .split(|b| *b == b'\n')
        .filter(|l| l.first() == Some(&b'#'))
    {
        if line.starts_with(b"#pragma GCC pch_preprocess") {
            pch = true;
            continue;
        }
        let Some(name) = marker_file(line) else {
            continue;
        };
        let pseudo = name.starts_with('<') && name.ends_with('>');
        // `# 0 "/dir//"`: the working directory, which -g adds.
        if pseudo || name.ends_with('/') || name == source {
            continue;
        }
        if !includes.contains(&name) {
            includes.push(name);
        }
    }
    Preprocessed {
        digest,
        includes,
        pch,
        expanded: Expanded::default(),
    }
}

/// The file of a line marker: `# 12 "dir/a.h" 2` or `#line 12 "a.h"`,
/// unescaped as cpp escapes it (`\\`, `\"`, octal).
fn marker_file(line: &[u8]) -> Option<String> {
    let rest = line.strip_prefix(b"#")?;
    let rest = rest.strip_prefix(b"line").unwrap_or(rest);
    let rest = rest.trim_ascii_start();
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let rest = rest[digits..].trim_ascii_start().strip_prefix(b"\"")?;
    let mut name = Vec::new();
    let mut i = 0;
    while i < rest.len() {
        match rest[i] {
            b'"' => return String::from_utf8(name).ok(),
            b'\\' => {
                let octal = rest[i + 1..]
                    .iter()
                    .take(3)
                    .take_while(|b| (b'0'..=b'7').contains(b))
                    .count();
                if octal > 0 {
                    let digits = std::str::from_utf8(&rest[i + 1..i + 1 + octal]).ok()?;
                    name.push(u8::from_str_radix(digits, 8).ok()?);
                    i += 1 + octal;
                } else {
                    name.push(*rest.get(i + 1)?);
                    i += 2;
                }
            }
            b => {
                name.push(b);
                i += 1;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn markers_name_each_file_once_and_skip_the_source_and_pseudo_files() {
        let text = b"# 0 \"src/x.c\"\n# 0 \"/w//\"\n# 0 \"<built-in>\"\n# 0 \"<command-line>\"\n\
# 1 \"/usr/include/stdc-predef.h\" 1 3 4\n# 1 \"src/x.c\"\n# 1 \"/w/a b\\\\c\\\".h\" 1\nint a;\n\
# 2 \"src/x.c\" 2\n#line 7 \"/usr/include/stdio.h\"\n# 3 \"/usr/include/stdc-predef.h\"\n";
        let got = read(text, "src/x.c", &Roots::default());
        assert_eq!(
            got.includes,
            [
                "/usr/include/stdc-predef.h",
                "/w/a b\\c\".h",
                "/usr/include/stdio.h"
            ]
        );
        assert!(!got.pch);
    }

    #[test]
    fn time_macros_are_read_from_gcc_s_and_clang_s_reports() {
        let gcc = b"t.c:1:17: warning: macro \"__TIME__\" might prevent reproducible builds [-Wdate-time]\n    1 | x\n";
        assert_eq!(
            expanded(gcc),
            Expanded {
                any: true,
                timestamp: false
            }
        );
        let stamp = b"t.c:1:1: warning: macro \"__TIMESTAMP__\" might prevent reproducible builds [-Wdate-time]\n";
        assert!(expanded(stamp).timestamp);
        let clang = b"t.c:1:1: warning: expansion of date or time macro is not reproducible [-Wdate-time]\n";
        assert_eq!(
            expanded(clang),
            Expanded {
                any: true,
                timestamp: true
            }
        );
        assert_eq!(
            expanded(b"t.c:2:3: warning: unused [-Wunused]\n"),
            Expanded::default()
        );
    }

    #[test]
    fn the_digest_does_not_depend_on_the_roots_paths() {
        let a = Roots::new([("work", PathBuf::from("/stg/a/work"))]);
        let b = Roots::new([("work", PathBuf::from("/elsewhere/b/work"))]);
        let text = |root: &str| format!("# 1 \"{root}/x.c\"\nconst char *f = \"{root}/x.c\";\n");
        let da = read(text("/stg/a/work").as_bytes(), "x.c", &a).digest;
        let db = read(text("/elsewhere/b/work").as_bytes(), "x.c", &b).digest;
        assert_eq!(da, db);
        let other = read(text("/stg/a/work").as_bytes(), "x.c", &b).digest;
        assert_ne!(da, other);
    }
}
