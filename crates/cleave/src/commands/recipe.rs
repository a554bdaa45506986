//! Finding, loading and rendering recipes with their variant files, shared
//! by the commands that take `--recipe` and `--recipe-dir`.

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

/// Loads and renders every recipe `args` name, in the order given (the
/// recipes of `--recipe-dir` sorted by path after those of `--recipe`,
/// each once). Recipe and variant errors are printed, every recipe's, and
/// give `None`; other failures (unreadable files, bad flags) are errors.
pub(crate) fn render_all(args: &RecipeArgs) -> miette::Result<Option<Vec<Rendered>>> {
    let mut files = Vec::new();
    for recipe in &args.recipes {
        files.push(recipe_file(recipe)?);
    }
    if let Some(dir) = &args.recipe_dir {
        let found = discover(dir)?;
        if found.is_empty() {
            return Err(miette::miette!(
                "--recipe-dir {}: no directory below it holds a recipe.yaml",
                dir.display()
            ));
        }
        files.extend(found);
    }
    let mut seen = std::collections::BTreeSet::new();
    files.retain(|f| seen.insert(std::fs::canonicalize(f).unwrap_or_else(|_| f.clone())));
    let mut rendered = Vec::new();
    let mut broken = false;
    for file in files {
        match render(args, file)? {
            Some(r) => rendered.push(r),
            None => broken = true,
        }
    }
    Ok((!broken).then_some(rendered))
}

/// `recipe.yaml` of a recipe directory, or the file itself.
fn recipe_file(path: &Path) -> miette::Result<PathBuf> {
    if path.is_dir() {
        let file = path.join("recipe.yaml");
        // Anything there is the recipe: reading it refuses what is not a
        // regular file, saying what it is.
        if std::fs::symlink_metadata(&file).is_err() {
            return Err(miette::miette!("{} holds no recipe.yaml", path.display()));
        }
        Ok(file)
    } else {
        Ok(path.to_path_buf())
    }
}

/// The `recipe.yaml` files below `dir`, as rattler-build finds them for
/// `--recipe-dir`: every directory at any depth (`dir` itself included)
/// holding one, hidden directories and what `.gitignore` and `.ignore`
/// files exclude skipped, sorted by path.
fn discover(dir: &Path) -> miette::Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Err(miette::miette!(
            "--recipe-dir {} is not a directory",
            dir.display()
        ));
    }
    let mut found = Vec::new();
    for entry in ignore::WalkBuilder::new(dir).build() {
        let entry = entry
            .into_diagnostic()
            .wrap_err_with(|| format!("reading {}", dir.display()))?;
        let file = entry.path().join("recipe.yaml");
        if entry.file_type().is_some_and(|t| t.is_dir()) && file.is_file() {
            found.push(file);
        }
    }
    found.sort();
    Ok(found)
}

/// Loads and renders one recipe file.
fn render(args: &RecipeArgs, file: PathBuf) -> miette::Result<Option<Rendered>> {
    let mut config = RenderConfig::native();
    if let Some(platform) = &args.target_platform {
        config.target_platform = platform
            .parse::<Subdir>()
            .into_diagnostic()
            .wrap_err_with(|| format!("invalid --target-platform `{platform}`"))?;
    }
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

/// Where in its recipe a build error points, for an annotation: the
/// failed script's `build.script`, the missing `path` source. With
/// several recipes, the one whose output the error names.
pub(crate) fn locate(rendered: &[Rendered], err: &BuildError) -> Option<Location> {
    let (what, section, key, path) = match err {
        // A test script's (`the test script of test 2 of NAME`) is not
        // the recipe's `build.script`: it keeps no prefix to strip.
        BuildError::ScriptFailed { what, .. } => (
            what.strip_prefix("the build script of ")?,
            "build",
            "script",
            None,
        ),
        BuildError::MissingSource { what, path } => (what.as_str(), "source", "path", Some(path)),
        _ => return None,
    };
    // `what` is `name-version-build` or "staging `name`": the longest
    // output name it starts with or quotes, in whichever recipe has it;
    // an output not found gets no place rather than another output's.
    let (recipe, output) = rendered
        .iter()
        .flat_map(|r| r.recipe.outputs.iter().map(move |o| (r, o.name())))
        .filter(|(_, n)| what.starts_with(&format!("{n}-")) || what.contains(&format!("`{n}`")))
        .max_by_key(|(_, n)| n.len())?;
    let value = path.and_then(|p| {
        p.strip_prefix(&recipe.recipe.recipe_dir)
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    });
    let span = recipe
        .parsed
        .locate(Some(output), section, key, value.as_deref())?;
    let (line, col) = recipe.parsed.source().line_col(span.offset());
    Some(Location {
        file: recipe.file.display().to_string(),
        line,
        col,
    })
}

/// Where a staging build is named in its recipe (`staging: name:`), for
/// a warning about its files; with several recipes, the first that names
/// it. A top-level `cache:` has no name to point at.
pub(crate) fn locate_staging(rendered: &[Rendered], staging: &str) -> Option<Location> {
    rendered.iter().find_map(|recipe| {
        let parsed = &recipe.parsed;
        let span = parsed.locate(Some(staging), "staging", "name", Some(staging))?;
        // `locate` falls back to another output's name: only this one's.
        let text = parsed.source().slice(span);
        if text.trim_matches(['"', '\'']) != staging {
            return None;
        }
        let (line, col) = parsed.source().line_col(span.offset());
        Some(Location {
            file: recipe.file.display().to_string(),
            line,
            col,
        })
    })
}

/// The variant file next to the recipe (`variants.yaml`, or else
/// conda-build's `conda_build_config.yaml`, as rattler-build picks it), then
/// each `--variant-config` in order, then the `--variant` overrides (the
/// last one given for a key wins). A file beside the recipe that is not a
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
    for (key, values) in &args.variants {
        config.set(key, values);
    }
    Ok(config.validate().map(|()| config))
}
