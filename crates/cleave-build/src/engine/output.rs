//! One package output: its environments, the staging files it inherits,
//! its script, the files it takes, the package and its tests.

use std::path::Path;

use cleave_recipe::RenderedRecipe;
use cleave_recipe::model::PackageOutput;

use super::script_env::ScriptVars;
use super::staging::Trees;
use super::{Builder, BuiltPackage, Event, TestMode};
use crate::capture::{NewEntry, package_entries};
use crate::check::{TestContext, run_tests};
use crate::env::EnvKind;
use crate::error::BuildError;
use crate::layout::OutputDirs;
use crate::licenses::LicensePatterns;
use crate::package::{PackageContents, WrittenPackage, write};
use crate::run_exports::{Inherited, for_output};
use crate::source::fetch_all;

impl Builder {
    pub(super) fn build_package(
        &mut self,
        output: &PackageOutput,
        recipe: &RenderedRecipe,
        recipe_file: &Path,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<BuiltPackage, BuildError> {
        let name = output.name.as_normalized().to_string();
        let what = format!("{name}-{}-{}", output.version, output.build.string);
        let staged = match &output.inherit {
            Some(inherit) => Some(
                self.staged
                    .get(&(inherit.from.clone(), inherit.hash.clone()))
                    .cloned()
                    .ok_or_else(|| BuildError::MissingStaging {
                        what: what.clone(),
                        from: inherit.from.clone(),
                    })?,
            ),
            None => None,
        };
        // Inheriting outputs build in the staging build's own directories.
        let dirs = match &staged {
            Some(s) => s.dirs.clone(),
            None => {
                let dirs = OutputDirs::new(&self.options.build_root, &what);
                self.made.push(dirs.root.clone());
                dirs
            }
        };
        let dirs = if output.build.merge_build_and_host_envs {
            dirs.merged()
        } else {
            dirs
        };
        let licenses =
            LicensePatterns::new(&output.about.license_file).map_err(BuildError::license(&what))?;
        let (build_reqs, host_reqs) = crate::env::requirements(output);
        let build = self.solve(&build_reqs, EnvKind::Build, &what)?;
        let host = self.solve(&host_reqs, EnvKind::Host, &what)?;
        let (build, host) = self.prepare(&dirs, build, host, &what, on_event)?;
        let staging_files = match &staged {
            Some(s) => {
                let trees = Trees::for_output(output, &licenses);
                self.restore_staging(s, (&build, &host), trees, &what, on_event)?
            }
            None => Vec::new(),
        };
        self.envs.runtime().block_on(fetch_all(
            &output.sources,
            &recipe.recipe_dir,
            &dirs.work,
            &self.sources,
            &what,
        ))?;
        let vars = ScriptVars {
            name: &name,
            version: Some(output.version.to_string()),
            build_number: Some(output.build.number),
            build_string: Some(&output.build.string),
            hash: output.build.string.split('_').next().unwrap_or_default(),
            variant: &output.variant,
        };
        self.run_script(
            &output.build.script,
            &vars,
            &dirs,
            &recipe.recipe_dir,
            &what,
            on_event,
        )?;

        let entries: Vec<NewEntry> = package_entries(
            &dirs.host_prefix,
            &output.build.files,
            &output.build.always_include_files,
        )?;
        if let Some(s) = &staged {
            let taken = entries.iter().map(|e| &e.path);
            self.claims
                .record(&s.staging.name, &staging_files, &name, taken);
        }

        let license_files = licenses
            .find(&dirs.work, &recipe.recipe_dir)
            .map_err(BuildError::license(&what))?;
        for dest in &license_files.overridden {
            on_event(Event::Warning(&format!(
                "{what}: license file {} of the recipe dir replaces the work dir's",
                dest.display()
            )));
        }
        let python =
            crate::python::prepare(output, &dirs.host_prefix, entries).map_err(|source| {
                BuildError::Python {
                    what: what.clone(),
                    source,
                }
            })?;
        let inherited = staged.as_ref().map(|s| Inherited {
            staging: &s.staging,
            build: &s.build,
            host: &s.host,
        });
        let requirements = for_output(output, &build, &host, inherited, &what)?;
        let rendered = rendered_yaml(output)?;
        let contents = PackageContents {
            output,
            target: self.options.target_platform,
            depends: requirements.depends,
            constrains: requirements.constrains,
            prefix: &dirs.host_prefix,
            build_prefix: &dirs.build_prefix,
            from_host: &requirements.from_host,
            entries: &python.entries,
            moved: &python.moved,
            link: python.link.as_ref(),
            recipe_file,
            rendered,
            timestamp: self.options.timestamp,
            licenses: &license_files.files,
        };
        let written: WrittenPackage = write(
            &contents,
            &self.options.output_dir,
            &dirs.root.join("package"),
            self.options.format,
        )?;
        for warning in &written.warnings {
            on_event(Event::Warning(&format!("{what}: {warning}")));
        }
        let subdir = written
            .path
            .parent()
            .and_then(Path::file_name)
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        crate::index::index_channel(&self.options.output_dir, &[self.options.target_platform])?;
        self.envs
            .channel_changed(&self.output_channel, &[self.options.target_platform]);
        let package = BuiltPackage {
            name: name.clone(),
            version: output.version.to_string(),
            build: output.build.string.clone(),
            subdir,
            size: written.size,
            files: written.paths.len(),
            path: written.path.clone(),
        };
        on_event(Event::Packaged(&package));

        if self.options.test == TestMode::Native && !output.tests.is_empty() {
            let ctx = TestContext {
                output,
                paths: &written.paths,
                dir: &dirs.root.join("test"),
                recipe_dir: &recipe.recipe_dir,
                work_dir: &dirs.work,
                target: self.options.target_platform,
                build_platform: self.options.build_platform,
                base_env: &self.options.base_env,
            };
            let count = run_tests(&ctx, &self.envs, &mut |line| on_event(Event::Line(line)))?;
            on_event(Event::Tested { what: &name, count });
        }
        Ok(package)
    }
}

/// The output as YAML, for `info/recipe/rendered_recipe.yaml`. Going
/// through JSON values gives plain mappings instead of YAML enum tags.
fn rendered_yaml(output: &PackageOutput) -> Result<String, BuildError> {
    serde_json::to_value(output)
        .map_err(|e| e.to_string())
        .and_then(|v| serde_yaml_ng::to_string(&v).map_err(|e| e.to_string()))
        .map_err(|e| BuildError::Io {
            context: "rendering the recipe for info/recipe".into(),
            source: std::io::Error::other(e),
        })
}
