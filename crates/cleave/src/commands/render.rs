//! `cleave render`: print the rendered outputs of a recipe.

use std::io::Write;

use miette::IntoDiagnostic;

use crate::Status;
use crate::cli::{Format, RenderArgs};

pub(crate) fn run(args: RenderArgs) -> miette::Result<Status> {
    let Some(rendered) = super::recipe::render(&args.recipe)? else {
        return Ok(Status::Failure);
    };
    // Going through JSON values gives plain YAML mappings instead of YAML
    // tags for enum variants.
    let value = serde_json::to_value(&rendered.recipe.outputs).into_diagnostic()?;
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
