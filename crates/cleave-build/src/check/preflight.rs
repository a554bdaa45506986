//! Checks of a package output that can fail before anything is built:
//! settings the package format forbids. Failing here costs nothing;
//! failing after the build script ran costs the build, and going on
//! would write a package other than the one the recipe describes.

use cleave_recipe::model::PackageOutput;

use crate::error::BuildError;

/// Fails on the first setting of `output` that cannot be honoured.
pub fn check(output: &PackageOutput) -> Result<(), BuildError> {
    let name = output.name.as_normalized();
    let python = &output.build.python;
    if python.site_packages_path.is_some() && name != "python" {
        return Err(BuildError::InvalidMetadata {
            what: name.to_string(),
            reason: "`build.python.site_packages_path` is for the `python` package only \
                     (index.json's `python_site_packages_path`, CEP 17)"
                .into(),
        });
    }
    Ok(())
}
