//! The per-file rules of `build` that apply while a package is written:
//! `always_copy_files` (installers copy these files rather than link them:
//! `no_link` in paths.json) and `post_process` (regex replacements in text
//! files).

use std::path::Path;

use cleave_recipe::model::PostProcess;
use globset::GlobSet;
use regex::Regex;

use crate::error::BuildError;
use crate::package::capture::glob_set;

/// One `post_process` step, compiled.
struct Replacement {
    files: GlobSet,
    regex: Regex,
    replacement: String,
}

/// The compiled rules of one package.
pub(crate) struct FileRules {
    always_copy: GlobSet,
    replacements: Vec<Replacement>,
}

impl FileRules {
    /// Compiles `build.always_copy_files` and `build.post_process` (the
    /// recipe already checked both).
    pub(crate) fn new(
        always_copy_files: &[String],
        post_process: &[PostProcess],
    ) -> Result<Self, BuildError> {
        let replacements = post_process
            .iter()
            .map(|step| {
                Ok(Replacement {
                    files: glob_set(&step.files)?,
                    regex: Regex::new(&step.regex).map_err(|source| BuildError::Regex {
                        regex: step.regex.clone(),
                        source,
                    })?,
                    replacement: step.replacement.clone(),
                })
            })
            .collect::<Result<_, BuildError>>()?;
        Ok(FileRules {
            always_copy: glob_set(always_copy_files)?,
            replacements,
        })
    }

    /// True when installers must copy the file at `path` (relative to the
    /// prefix) instead of linking it.
    pub(crate) fn no_link(&self, path: &Path) -> bool {
        self.always_copy.is_match(path)
    }

    /// Applies every `post_process` step that selects `path` to its
    /// contents, in order. Only UTF-8 text is edited: a regex replacement
    /// in a binary would shift every offset after it.
    pub(crate) fn post_process(&self, path: &Path, bytes: &mut Vec<u8>) {
        let steps: Vec<&Replacement> = self
            .replacements
            .iter()
            .filter(|step| step.files.is_match(path))
            .collect();
        if steps.is_empty() {
            return;
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            return;
        };
        let mut text = text.to_string();
        for step in steps {
            text = step
                .regex
                .replace_all(&text, step.replacement.as_str())
                .into_owned();
        }
        *bytes = text.into_bytes();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_files_are_copied_not_linked() {
        let rules = FileRules::new(&["etc/*.conf".into()], &[]).unwrap();
        assert!(rules.no_link(Path::new("etc/app.conf")));
        assert!(!rules.no_link(Path::new("bin/app")));
    }

    #[test]
    fn replacements_apply_in_order_to_selected_text_files_only() {
        let steps = vec![
            PostProcess {
                files: vec!["**/*.pc".into()],
                regex: "(?m)^prefix=(.*)$".into(),
                replacement: "prefix=${1}/opt".into(),
            },
            PostProcess {
                files: vec!["**/*.pc".into()],
                regex: "/opt".into(),
                replacement: "/srv".into(),
            },
        ];
        let rules = FileRules::new(&[], &steps).unwrap();
        let mut pc = b"prefix=/usr\nlibdir=${prefix}/lib\n".to_vec();
        rules.post_process(Path::new("lib/pkgconfig/x.pc"), &mut pc);
        assert_eq!(pc, b"prefix=/usr/srv\nlibdir=${prefix}/lib\n");
        let mut other = b"prefix=/usr\n".to_vec();
        rules.post_process(Path::new("share/x.txt"), &mut other);
        assert_eq!(other, b"prefix=/usr\n");
        let mut binary = b"prefix=/usr\xff\n".to_vec();
        rules.post_process(Path::new("lib/x.pc"), &mut binary);
        assert_eq!(binary, b"prefix=/usr\xff\n");
    }
}
