//! Loading and rendering a recipe with its variant files, shared by the
//! commands that take `--recipe`.

use std::path::{Path, PathBuf};

use cleave_recipe::{
    LoadError, RenderConfig, RenderedRecipe, SHOWN_PROBLEMS, SourceFile, VariantConfig,
    VariantPlatforms,
};
use miette::{Context, IntoDiagnostic};
use rattler_conda_types::Subdir;

use cleave_build::BuildError;

use crate::cli::RecipeArgs;
use crate::output::Location;

/// A rendered recipe and the file it came from.
pub(crate) struct Rendered {
    /// Every output, in build order.
    pub(crate) recipe: RenderedRecipe,
    /// The `recipe.yaml` itself.
    pub(crate) file: PathBuf,
    /// What it was rendered for.
    pub(crate) config: RenderConfig,
    /// The parsed recipe, whose spans place an error found while building.
    pub(crate) parsed: cleave_recipe::Recipe,
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
        Ok(mut rendered) => {
            let printer = crate::output::printer();
            for warning in rendered.warnings.iter().take(SHOWN_PROBLEMS) {
                printer.warning(&miette::Report::new(warning.clone()));
            }
            if let Some(more) = rendered.warnings.len().checked_sub(SHOWN_PROBLEMS)
                && more > 0
            {
                printer.warning(&miette::miette!(
                    severity = miette::Severity::Warning,
                    "{more} more warnings not shown"
                ));
            }
            // Scripts and `patch` run in the work dir: relative recipe
            // paths would not resolve there.
            rendered.recipe_dir = std::path::absolute(&rendered.recipe_dir).into_diagnostic()?;
            Ok(Some(Rendered {
                recipe: rendered,
                file,
                config,
                parsed: recipe,
            }))
        }
        Err(errors) => {
            super::print_report(&miette::Report::new(errors));
            Ok(None)
        }
    }
}

/// Where in the recipe a build error points, for an annotation: the
/// failed script's `build.script`, the missing `path` source.
pub(crate) fn locate(rendered: &Rendered, err: &BuildError) -> Option<Location> {
    let (what, section, key, value) = match err {
        BuildError::ScriptFailed { what, .. } => (what, "build", "script", None),
        BuildError::MissingSource { what, path } => (
            what,
            "source",
            "path",
            path.strip_prefix(&rendered.recipe.recipe_dir)
                .ok()
                .map(|p| p.to_string_lossy().into_owned()),
        ),
        _ => return None,
    };
    // `what` is `name-version-build` or "staging `name`": the longest
    // output name it starts with or quotes.
    let output = rendered
        .recipe
        .outputs
        .iter()
        .map(|o| o.name())
        .filter(|n| what.starts_with(&format!("{n}-")) || what.contains(&format!("`{n}`")))
        .max_by_key(|n| n.len());
    // A test's script (`test 2 of NAME`) or an output not found: no place
    // rather than another output's.
    output?;
    let span = rendered
        .parsed
        .locate(output, section, key, value.as_deref())?;
    let (line, col) = rendered.parsed.source().line_col(span.offset());
    Some(Location {
        file: rendered.file.display().to_string(),
        line,
        col,
    })
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
