//! Recipes for cleave: parse `recipe.yaml`, render it for a platform and a
//! set of variants, and explain what is wrong with it.
//!
//! The entry points are [`load`] (or [`parse`]) for a [`Recipe`], and
//! [`render`] for a [`RenderedRecipe`]: every staging cache and package
//! output, once per combination of the variant keys it uses, in build order.
//! Errors carry the file, the span of the offending text and a hint, as
//! [`RecipeErrors`], which renders through `miette`.
//!
//! This crate does not build, fetch, solve or cache anything; it only turns
//! text into the typed plan the build engine consumes.
//!
//! ```
//! use cleave_recipe::{RenderConfig, SourceFile, model::RenderedOutput};
//!
//! let text = r#"
//! recipe: {name: demo, version: "1.0"}
//! outputs:
//!   - staging: {name: demo-build}
//!     build: {script: make install}
//!   - package: {name: libdemo}
//!     inherit: demo-build
//!     build: {files: ["lib/**"]}
//! "#;
//! let recipe = cleave_recipe::parse(SourceFile::new("recipe.yaml", text), ".".into())?;
//! let rendered = cleave_recipe::render(&recipe, &RenderConfig::native())?;
//! let names: Vec<&str> = rendered.outputs.iter().map(RenderedOutput::name).collect();
//! assert_eq!(names, ["demo-build", "libdemo"]);
//!
//! // A typo is reported with its place in the file and a suggestion.
//! let broken = text.replace("inherit: demo-build", "inherit: demo-biuld");
//! let errors = cleave_recipe::parse(SourceFile::new("recipe.yaml", broken), ".".into()).unwrap_err();
//! assert_eq!(errors.problems()[0].help.as_deref(), Some("did you mean `demo-build`?"));
//! # Ok::<(), cleave_recipe::RecipeErrors>(())
//! ```

pub mod build_time;
mod error;
mod input;
mod jinja;
mod locate;
pub mod model;
mod parse;
mod platform;
mod position;
mod read;
mod render;
mod source;
mod template;
mod variant;
mod yaml;

pub use error::{Problem, ProblemKind, RecipeErrors, SHOWN_PROBLEMS};
pub use input::{MAX_FILE_SIZE, ReadFileError, read_file};
pub use parse::{IMPLICIT_CACHE_NAME, LoadError, Recipe, load, parse, recipe_dir};
pub use render::{MAX_VARIANTS, RenderConfig, RenderedRecipe, render};
pub use source::SourceFile;
pub use variant::{VariantConfig, VariantPlatforms, VariantValue};
pub use yaml::MAX_DEPTH;
