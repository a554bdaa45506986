//! The preprocessor fallback: the preprocessed text of a call, with the
//! roots' paths normalised, keys its entry (an edit that leaves that text
//! alone, like a comment, still hits); its line markers name every file it
//! read, which become the direct-mode manifest.

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
}

/// Runs the preprocessor on the call's source with its flags and `extra`;
/// `None` when the preprocessor fails (the compile will say why).
pub fn run(
    compiler: &Path,
    extra: &[String],
    compile: &Compile,
    roots: &Roots,
) -> Result<Option<Preprocessed>, CompileError> {
    let out = compiler::output(
        Command::new(compiler)
            .args(extra)
            .args(&compile.flags)
            .args(["-E", "-x", compile.language.as_x(), &compile.source])
            .stdin(Stdio::null())
            .stderr(Stdio::null()),
        compiler,
    )?;
    if !out.status.success() {
        return Ok(None);
    }
    Ok(Some(read(&out.stdout, &compile.source, roots)))
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
