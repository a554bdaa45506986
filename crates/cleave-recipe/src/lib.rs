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

mod error;
mod jinja;
pub mod model;
mod parse;
mod read;
mod render;
mod source;
mod template;
mod variant;
mod yaml;

pub use error::{Problem, ProblemKind, RecipeErrors};
pub use parse::{IMPLICIT_CACHE_NAME, LoadError, Recipe, load, parse};
pub use render::{RenderConfig, RenderedRecipe, render};
pub use source::SourceFile;
pub use variant::VariantConfig;
