//! Python, Perl, R and Ruby tests, as script tests: each is an environment
//! (the package under test plus the language's interpreter) and one script
//! that loads every module the test names. They differ only in those two
//! things, so they are made here and run by the script-test machinery.

use cleave_recipe::model::Test;
use rattler_conda_types::{MatchSpec, ParseStrictness};

use crate::error::BuildError;

/// One environment and script of a language test.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct LanguageRun {
    /// What the environment holds besides the package under test.
    pub specs: Vec<MatchSpec>,
    /// The script, one command per module.
    pub script: String,
    /// Which run this is, for messages (`python 3.12`).
    pub label: String,
}

/// The runs of a language test; `None` for the other kinds of test.
///
/// A Python test runs once per `python_version` spec, each time with
/// `python <spec>` in the environment; the others run once.
pub(super) fn runs(test: &Test) -> Option<Result<Vec<LanguageRun>, BuildError>> {
    let runs = match test {
        Test::Python {
            imports,
            pip_check,
            python_version,
        } => {
            let versions: Vec<Option<&str>> = if python_version.is_empty() {
                vec![None]
            } else {
                python_version.iter().map(|v| Some(v.as_str())).collect()
            };
            versions
                .into_iter()
                .map(|version| python_run(imports, *pip_check, version))
                .collect()
        }
        Test::Perl { uses } => single("perl", uses, |m| {
            format!("perl -e {}", shell_quote(&format!("use {m};")))
        }),
        Test::R { libraries } => single("r-base", libraries, |l| {
            format!("Rscript -e {}", shell_quote(&format!("library({l})")))
        }),
        Test::Ruby { requires } => single("ruby", requires, |r| {
            let literal = r.replace('\\', "\\\\").replace('"', "\\\"");
            format!("ruby -e {}", shell_quote(&format!("require \"{literal}\"")))
        }),
        Test::Script { .. } | Test::PackageContents(_) | Test::Downstream(_) => return None,
    };
    Some(runs)
}

fn python_run(
    imports: &[String],
    pip_check: bool,
    version: Option<&str>,
) -> Result<LanguageRun, BuildError> {
    let python = match version {
        Some(v) => format!("python {v}"),
        None => "python".to_string(),
    };
    let mut specs = vec![spec(&python)?];
    let mut lines: Vec<String> = imports
        .iter()
        .map(|m| format!("python -c {}", shell_quote(&format!("import {m}"))))
        .collect();
    if pip_check {
        specs.push(spec("pip")?);
        lines.push("python -m pip check".into());
    }
    Ok(LanguageRun {
        specs,
        script: lines.join("\n"),
        label: python,
    })
}

fn single(
    interpreter: &str,
    modules: &[String],
    command: impl Fn(&str) -> String,
) -> Result<Vec<LanguageRun>, BuildError> {
    Ok(vec![LanguageRun {
        specs: vec![spec(interpreter)?],
        script: modules
            .iter()
            .map(|m| command(m))
            .collect::<Vec<_>>()
            .join("\n"),
        label: interpreter.to_string(),
    }])
}

pub(super) fn spec(text: &str) -> Result<MatchSpec, BuildError> {
    MatchSpec::from_str(text, ParseStrictness::Lenient).map_err(|e| BuildError::Io {
        context: format!("parsing `{text}`"),
        source: std::io::Error::other(e.to_string()),
    })
}

/// `text` as one bash word.
pub(super) fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn specs(run: &LanguageRun) -> Vec<String> {
        run.specs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_python_test_runs_once_per_version_spec() {
        let test = Test::Python {
            imports: strings(&["probe", "probe.sub"]),
            pip_check: true,
            python_version: strings(&["3.11.*", ">=3.12"]),
        };
        let runs = runs(&test).unwrap().unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(specs(&runs[0]), ["python 3.11.*", "pip"]);
        assert_eq!(specs(&runs[1]), ["python >=3.12", "pip"]);
        assert_eq!(
            runs[1].script,
            "python -c 'import probe'\npython -c 'import probe.sub'\npython -m pip check"
        );
        assert_eq!(runs[0].label, "python 3.11.*");
    }

    #[test]
    fn a_python_test_without_versions_takes_any_python() {
        let test = Test::Python {
            imports: strings(&["probe"]),
            pip_check: false,
            python_version: Vec::new(),
        };
        let runs = runs(&test).unwrap().unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(specs(&runs[0]), ["python"]);
        assert_eq!(runs[0].script, "python -c 'import probe'");
    }

    #[test]
    fn perl_r_and_ruby_tests_load_each_module_with_their_interpreter() {
        let perl = runs(&Test::Perl {
            uses: strings(&["Data::Dumper", "It's"]),
        })
        .unwrap()
        .unwrap();
        assert_eq!(specs(&perl[0]), ["perl"]);
        assert_eq!(
            perl[0].script,
            "perl -e 'use Data::Dumper;'\nperl -e 'use It'\\''s;'"
        );
        let r = runs(&Test::R {
            libraries: strings(&["data.table"]),
        })
        .unwrap()
        .unwrap();
        assert_eq!(specs(&r[0]), ["r-base"]);
        assert_eq!(r[0].script, "Rscript -e 'library(data.table)'");
        let ruby = runs(&Test::Ruby {
            requires: strings(&["json", "odd\"name"]),
        })
        .unwrap()
        .unwrap();
        assert_eq!(specs(&ruby[0]), ["ruby"]);
        assert_eq!(
            ruby[0].script,
            "ruby -e 'require \"json\"'\nruby -e 'require \"odd\\\"name\"'"
        );
    }

    #[test]
    fn other_tests_are_not_language_tests() {
        assert!(runs(&Test::Downstream("app".into())).is_none());
    }
}
