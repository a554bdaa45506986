//! `package_contents` tests: globs checked against the written archive's
//! paths, without installing anything.

use std::path::PathBuf;

use cleave_recipe::model::PackageContents;

use crate::error::BuildError;

/// Checks a `package_contents` test against the archive's paths.
pub(super) fn check_contents(
    contents: &PackageContents,
    paths: &[PathBuf],
    what: &str,
    index: usize,
) -> Result<(), BuildError> {
    let mut problems = Vec::new();
    let mut expected: Vec<(String, Vec<String>)> = Vec::new();
    for glob in &contents.files {
        expected.push((glob.clone(), vec![glob.clone()]));
    }
    for name in &contents.bin {
        expected.push((format!("bin: {name}"), vec![format!("bin/{name}")]));
    }
    for name in &contents.lib {
        expected.push((
            format!("lib: {name}"),
            vec![
                format!("lib/lib{name}.so"),
                format!("lib/lib{name}.so.*"),
                format!("lib/lib{name}.dylib"),
                format!("lib/lib{name}.*.dylib"),
                format!("lib/lib{name}.a"),
            ],
        ));
    }
    for glob in &contents.include {
        expected.push((format!("include: {glob}"), vec![format!("include/{glob}")]));
    }
    for glob in &contents.site_packages {
        let module = glob.replace('.', "/");
        expected.push((
            format!("site_packages: {glob}"),
            vec![
                format!("lib/python*/site-packages/{module}"),
                format!("lib/python*/site-packages/{module}/**"),
                format!("lib/python*/site-packages/{module}.py"),
                format!("lib/python*/site-packages/{module}.*.so"),
                format!("site-packages/{module}"),
                format!("site-packages/{module}/**"),
                format!("site-packages/{module}.py"),
            ],
        ));
    }
    let mut matchers = Vec::new();
    for (label, globs) in &expected {
        let set = crate::package::capture::glob_set(globs)?;
        if !paths.iter().any(|p| set.is_match(p)) {
            problems.push(format!("no file matches `{label}`"));
        }
        matchers.push(set);
    }
    for glob in &contents.files_absent {
        let set = crate::package::capture::glob_set(std::slice::from_ref(glob))?;
        for path in paths.iter().filter(|p| set.is_match(p)) {
            problems.push(format!(
                "`{}` is present but must not be (`{glob}`)",
                path.display()
            ));
        }
    }
    if contents.strict {
        for path in paths {
            if !matchers.iter().any(|m| m.is_match(path)) {
                problems.push(format!(
                    "`{}` is not listed (the test is strict)",
                    path.display()
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(BuildError::TestFailed {
            what: format!("test {} of {what} (package_contents)", index + 1),
            problems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(list: &[&str]) -> Vec<PathBuf> {
        list.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn contents_checks_report_every_missing_and_forbidden_path() {
        let contents = PackageContents {
            files: vec!["include/*.h".into(), "share/doc/**".into()],
            files_absent: vec!["lib/*.a".into()],
            lib: vec!["greet".into()],
            bin: vec!["greet".into()],
            ..PackageContents::default()
        };
        let have = paths(&["include/greet.h", "lib/libgreet.so.1", "lib/libgreet.a"]);
        let Err(BuildError::TestFailed { problems, .. }) = check_contents(&contents, &have, "x", 0)
        else {
            panic!("expected a failure")
        };
        assert_eq!(
            problems,
            [
                "no file matches `share/doc/**`",
                "no file matches `bin: greet`",
                "`lib/libgreet.a` is present but must not be (`lib/*.a`)",
            ]
        );
    }

    #[test]
    fn strict_contents_reject_unlisted_files() {
        let contents = PackageContents {
            files: vec!["lib/*.so*".into()],
            strict: true,
            ..PackageContents::default()
        };
        let have = paths(&["lib/libgreet.so", "lib/extra.txt"]);
        let Err(BuildError::TestFailed { problems, .. }) = check_contents(&contents, &have, "x", 0)
        else {
            panic!("expected a failure")
        };
        assert_eq!(
            problems,
            ["`lib/extra.txt` is not listed (the test is strict)"]
        );
        assert!(check_contents(&contents, &paths(&["lib/libgreet.so.1"]), "x", 0).is_ok());
    }
}
