//! `cleave render`: print the rendered outputs of a recipe.

use std::io::Write;

use cleave_build::engine::{Plan, PlannedRecipe};
use miette::IntoDiagnostic;

use crate::Status;
use crate::cli::{Format, RenderArgs};

pub(crate) fn run(args: RenderArgs) -> miette::Result<Status> {
    let Some(rendered) = super::recipe::render_all(&args.recipe)? else {
        return Ok(Status::Failure);
    };
    let recipes = rendered
        .into_iter()
        .map(|r| PlannedRecipe {
            recipe: r.recipe,
            file: r.file,
        })
        .collect();
    // Several recipes print as one list, in the order they would build.
    let plan = match Plan::new(recipes, None) {
        Ok(plan) => plan,
        Err(err) => {
            super::print_report(&miette::Report::from_err(err));
            return Ok(Status::Failure);
        }
    };
    let outputs: Vec<_> = plan.steps.iter().map(|s| plan.output(*s)).collect();
    // Going through JSON values gives plain YAML mappings instead of YAML
    // tags for enum variants.
    let value = serde_json::to_value(&outputs).into_diagnostic()?;
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
