//! Loading and rendering a recipe with its variant files, shared by the
//! commands that take `--recipe`.

use std::path::{Path, PathBuf};

use cleave_recipe::{
    LoadError, RenderConfig, RenderedRecipe, SHOWN_PROBLEMS, SourceFile, VariantConfig,
    VariantPlatforms,
};
use miette::{Context, IntoDiagnostic};
use rattler_conda_types::Subdir;

use crate::cli::RecipeArgs;

/// A rendered recipe and the file it came from.
pub(crate) struct Rendered {
    /// Every output, in build order.
    pub(crate) recipe: RenderedRecipe,
    /// The `recipe.yaml` itself.
    pub(crate) file: PathBuf,
    /// What it was rendered for.
    pub(crate) config: RenderConfig,
}

/// Loads and renders the recipe. Recipe and variant errors are printed and
/// give `None`; other failures (unreadable files, bad flags) are errors.
pub(crate) fn render(args: &RecipeArgs) -> miette::Result<Option<Rendered>> {
    let mut config = RenderConfig::native();
    if let Some(platform) = &args.target_platform {
        config.target_platform = platform
            .parse::<Subdir>()
            .into_diagnostic()
            .wrap_err_with(|| format!("invalid --target-platform `{platform}`"))?;
    }
    let file = if args.recipe.is_dir() {
        args.recipe.join("recipe.yaml")
    } else {
        args.recipe.clone()
    };
    let recipe = match cleave_recipe::load(&file) {
        Ok(recipe) => recipe,
        Err(LoadError::Invalid(errors)) => {
            super::print_report(&miette::Report::new(errors));
            return Ok(None);
        }
        Err(err @ LoadError::Read(_)) => return Err(err).into_diagnostic(),
    };
    let dir = cleave_recipe::recipe_dir(&file);
    let platforms = VariantPlatforms {
        target: config.target_platform,
        build: config.build_platform,
    };
    match load_variants(args, &dir, platforms)? {
        Ok(variants) => config.variants = variants,
        Err(errors) => {
            super::print_report(&miette::Report::new(errors));
            return Ok(None);
        }
    }
    match cleave_recipe::render(&recipe, &config) {
        Ok(mut recipe) => {
            for warning in recipe.warnings.iter().take(SHOWN_PROBLEMS) {
                super::print_report(&miette::Report::new(warning.clone()));
            }
            if let Some(more) = recipe.warnings.len().checked_sub(SHOWN_PROBLEMS)
                && more > 0
            {
                super::print_report(&miette::miette!(
                    severity = miette::Severity::Warning,
                    "{more} more warnings not shown"
                ));
            }
            // Scripts and `patch` run in the work dir: relative recipe
            // paths would not resolve there.
            recipe.recipe_dir = std::path::absolute(&recipe.recipe_dir).into_diagnostic()?;
            Ok(Some(Rendered {
                recipe,
                file,
                config,
            }))
        }
        Err(errors) => {
            super::print_report(&miette::Report::new(errors));
            Ok(None)
        }
    }
}

/// The variant file next to the recipe (`variants.yaml`, or else
/// conda-build's `conda_build_config.yaml`, as rattler-build picks it), then
/// each `--variant-config` in order. A file beside the recipe that is not a
/// regular file (a FIFO, a directory) is an error, not skipped.
fn load_variants(
    args: &RecipeArgs,
    dir: &Path,
    platforms: VariantPlatforms,
) -> miette::Result<Result<VariantConfig, cleave_recipe::RecipeErrors>> {
    let beside = ["variants.yaml", "conda_build_config.yaml"]
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.exists());
    let files = beside
        .into_iter()
        .chain(args.variant_config.iter().cloned());
    let mut config = VariantConfig::default();
    for path in files {
        let text = cleave_recipe::read_file(&path)
            .into_diagnostic()
            .wrap_err("cannot read a variant config")?;
        let source = SourceFile::new(path.display().to_string(), text);
        match VariantConfig::parse(&source, platforms) {
            Ok(file) => config.merge(file),
            Err(errors) => return Ok(Err(errors)),
        }
    }
    Ok(config.validate().map(|()| config))
}
