//! `cleave test --package-file`: runs the tests a package carries.

use std::sync::Arc;

use cleave_build::check::package_tests::{PackageFileTests, test_package_file};
use cleave_build::script::guard::Guard;
use miette::{IntoDiagnostic, WrapErr};
use rattler_conda_types::Subdir;

use crate::Status;
use crate::cli::{LogStyle, TestArgs};
use crate::config::{Overrides, Settings};
use crate::output::{self, BuildReporter};

pub(crate) fn run(args: TestArgs) -> miette::Result<Status> {
    let cwd = std::env::current_dir().into_diagnostic()?;
    let settings = Settings::load(
        &cwd,
        Overrides {
            cache_dir: args.store.cache_dir.as_deref(),
            staging_root: None,
            remotes: &[],
            remote_mode: None,
            helpers: &[],
        },
    )?;
    let channels = args
        .channels
        .iter()
        .map(|c| super::build::parse_channel(c, &cwd))
        .collect::<miette::Result<Vec<_>>>()?;
    // Removed when the tests pass; kept, with each test's log, when one fails.
    let dir = tempfile::Builder::new()
        .prefix("cleave-test-")
        .tempdir()
        .into_diagnostic()
        .wrap_err("cannot create a directory for the test environments")?;
    let options = PackageFileTests {
        package: cwd.join(&args.package_file),
        channels,
        cache_dir: settings.cache_dir,
        dir: dir.path().to_path_buf(),
        base_env: super::build::passed_variables(),
        guard: Guard::new(
            std::env::current_exe()
                .into_diagnostic()
                .wrap_err("cannot find cleave's own executable to guard test scripts")?,
        ),
        platform: Subdir::current().unwrap_or(Subdir::Linux64),
    };
    let name = args.package_file.display().to_string();
    let printer = output::printer();
    let reporter = BuildReporter::new(printer, None);
    let result = test_package_file(&options, Arc::new(reporter.clone()));
    match result {
        Ok(count) => {
            reporter.finish();
            let plural = if count == 1 { "" } else { "s" };
            printer.line(&match printer.style {
                LogStyle::Json => serde_json::json!({
                    "type": "result",
                    "package": name,
                    "tests": count,
                })
                .to_string(),
                _ if count == 0 => format!("{name} carries no tests"),
                _ => format!("{name}: {count} test{plural} passed"),
            });
            Ok(Status::Success)
        }
        Err(err) => {
            reporter.failed(&name);
            reporter.finish();
            super::print_report(&super::build::report(err));
            // Kept only when a test environment was made: its log is there.
            if dir.path().join("test").exists() {
                let kept = dir.keep();
                printer.line(&format!(
                    "the test environments are kept in {}",
                    kept.display()
                ));
            }
            Ok(Status::Failure)
        }
    }
}
