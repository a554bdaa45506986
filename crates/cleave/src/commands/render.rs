//! `cleave render`: print the rendered outputs of a recipe.

use std::io::Write;
use std::path::Path;

use cleave_recipe::{LoadError, RenderConfig, SourceFile, VariantConfig};
use miette::{Context, IntoDiagnostic};
use rattler_conda_types::Subdir;

use crate::Status;
use crate::cli::{Format, RenderArgs};

pub(crate) fn run(args: RenderArgs) -> miette::Result<Status> {
    let mut config = RenderConfig::native();
    if let Some(platform) = &args.target_platform {
        config.target_platform = platform
            .parse::<Subdir>()
            .into_diagnostic()
            .wrap_err_with(|| format!("invalid --target-platform `{platform}`"))?;
    }
    let recipe = match cleave_recipe::load(&args.recipe) {
        Ok(recipe) => recipe,
        Err(LoadError::Invalid(errors)) => {
            super::print_report(&miette::Report::new(errors));
            return Ok(Status::Failure);
        }
        Err(err @ LoadError::Read { .. }) => return Err(err).into_diagnostic(),
    };
    match load_variants(&args, recipe_dir(&args.recipe), config.target_platform)? {
        Ok(variants) => config.variants = variants,
        Err(errors) => {
            super::print_report(&miette::Report::new(errors));
            return Ok(Status::Failure);
        }
    }
    let rendered = match cleave_recipe::render(&recipe, &config) {
        Ok(rendered) => rendered,
        Err(errors) => {
            super::print_report(&miette::Report::new(errors));
            return Ok(Status::Failure);
        }
    };
    // Going through JSON values gives plain YAML mappings instead of YAML
    // tags for enum variants.
    let value = serde_json::to_value(&rendered.outputs).into_diagnostic()?;
    let text = match args.output {
        Format::Yaml => serde_yaml_ng::to_string(&value).into_diagnostic()?,
        Format::Json => {
            let mut text = serde_json::to_string_pretty(&value).into_diagnostic()?;
            text.push('\n');
            text
        }
    };
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .into_diagnostic()?;
    Ok(Status::Success)
}

fn recipe_dir(recipe: &Path) -> &Path {
    if recipe.is_dir() {
        recipe
    } else {
        recipe.parent().unwrap_or(Path::new("."))
    }
}

/// `variants.yaml` next to the recipe, then each `--variant-config` in order.
fn load_variants(
    args: &RenderArgs,
    dir: &Path,
    target: Subdir,
) -> miette::Result<Result<VariantConfig, cleave_recipe::RecipeErrors>> {
    let beside = dir.join("variants.yaml");
    let files = beside
        .is_file()
        .then_some(beside)
        .into_iter()
        .chain(args.variant_config.iter().cloned());
    let mut config = VariantConfig::default();
    for path in files {
        let text = std::fs::read_to_string(&path)
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot read variant config {}", path.display()))?;
        let source = SourceFile::new(path.display().to_string(), text);
        match VariantConfig::parse(&source, target) {
            Ok(file) => config.merge(file),
            Err(errors) => return Ok(Err(errors)),
        }
    }
    Ok(config.validate().map(|()| config))
}
