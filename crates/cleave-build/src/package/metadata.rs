//! The package's `info/` metadata, written through rattler_conda_types' own
//! types as rattler-build writes it: absent fields are left out (never
//! `null`), texts the recipe wrote as YAML blocks lose their surrounding
//! whitespace, and `about.json` names the channels the build solved from.

use std::path::Path;

use cleave_recipe::model::{Dependency, NoArch, PackageOutput};
use rattler_conda_types::package::{
    AboutJson, IndexJson, LinkJson, PathType, PathsEntry, PathsJson, RunExportsJson,
};
use rattler_conda_types::{NoArchType, Subdir};
use serde::Serialize;

use super::PackageContents;
use crate::error::BuildError;

/// Writes `info/index.json`, `paths.json`, `about.json`, `run_exports.json`,
/// `link.json`, `hash_input.json`, `files` and `recipe/` for the package
/// whose files `paths` describes.
pub(super) fn write_info(
    contents: &PackageContents<'_>,
    paths: &[PathsEntry],
    scratch: &Path,
) -> Result<(), BuildError> {
    let output = contents.output;
    let info = scratch.join("info");
    let write_json = |name: &str, value: &dyn erased::Json| -> Result<(), BuildError> {
        let path = info.join(name);
        let mut text = value.to_pretty();
        text.push('\n');
        std::fs::write(&path, text).map_err(BuildError::io(format!("writing {}", path.display())))
    };
    write_json("index.json", &index_json(contents)?)?;

    // Empty directories travel in the archive but are not listed: conda
    // clients install only what paths.json lists, and rattler's installer
    // rejects directory entries.
    let listed: Vec<PathsEntry> = paths
        .iter()
        .filter(|p| p.path_type != PathType::Directory)
        .cloned()
        .collect();
    write_json(
        "paths.json",
        &PathsJson {
            paths: listed.clone(),
            paths_version: 1,
        },
    )?;
    write_json("about.json", &about_json(output, contents.channels))?;
    let run_exports = run_exports_json(output);
    if !run_exports.is_empty() {
        write_json("run_exports.json", &run_exports)?;
    }
    if let Some(link) = contents.link {
        write_json("link.json", link as &LinkJson)?;
    }
    write_json("hash_input.json", &output.variant)?;

    let mut files = String::new();
    let mut sorted: Vec<&PathsEntry> = listed.iter().collect();
    sorted.sort_by(|a, b| a.relative_path.cmp(&b.relative_path));
    for entry in sorted {
        files.push_str(&entry.relative_path.to_string_lossy());
        files.push('\n');
    }
    let path = info.join("files");
    std::fs::write(&path, files).map_err(BuildError::io(format!("writing {}", path.display())))?;

    let recipe_dir = info.join("recipe");
    let recipe_copy = recipe_dir.join("recipe.yaml");
    std::fs::copy(contents.recipe_file, &recipe_copy).map_err(BuildError::io(format!(
        "copying {}",
        contents.recipe_file.display()
    )))?;
    let rendered = recipe_dir.join("rendered_recipe.yaml");
    std::fs::write(&rendered, &contents.rendered)
        .map_err(BuildError::io(format!("writing {}", rendered.display())))?;
    Ok(())
}

/// A text of `about`: trimmed, as rattler-build trims it (a YAML block
/// ends in a newline that is no part of the text); empty is absent.
fn trimmed(text: Option<&String>) -> Option<String> {
    text.map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
}

fn index_json(contents: &PackageContents<'_>) -> Result<IndexJson, BuildError> {
    let output = contents.output;
    let noarch = match output.build.noarch {
        Some(NoArch::Generic) => NoArchType::generic(),
        Some(NoArch::Python) => NoArchType::python(),
        // An abi3 package is built per platform and installed like a
        // noarch python one, as rattler-build marks it.
        None if output.build.python.version_independent => NoArchType::python(),
        None => NoArchType::none(),
    };
    let target =
        Some(contents.target).filter(|t| output.build.noarch.is_none() && *t != Subdir::NoArch);
    let build = output.build.string.parse().map_err(|e| BuildError::Io {
        context: format!("writing index.json of {}", contents.identifier()),
        source: std::io::Error::other(format!("invalid build string: {e}")),
    })?;
    Ok(IndexJson {
        arch: target.and_then(|p| p.arch()).map(|a| a.to_string()),
        build,
        build_number: output.build.number,
        constrains: contents.constrains.clone(),
        depends: contents.depends.clone(),
        extra_depends: Default::default(),
        features: None,
        flags: Vec::new(),
        license: trimmed(output.about.license.as_ref()),
        license_family: trimmed(output.about.license_family.as_ref()),
        name: output.name.clone(),
        noarch,
        platform: target.and_then(|p| p.only_platform().map(String::from)),
        purls: None,
        python_site_packages_path: output.build.python.site_packages_path.clone(),
        repodata_revision: None,
        subdir: Some(contents.subdir().to_string()),
        timestamp: Some(contents.timestamp.into()),
        track_features: output
            .build
            .variant
            .track_features(output.name.as_normalized()),
        version: output.version.clone(),
    })
}

/// The channels a build solved from as its packages' `about.json` lists
/// them, as rattler-build does: each base URL without credentials (user,
/// password, or an anaconda.org `/t/TOKEN/` prefix).
pub(crate) fn about_channels(channels: &[rattler_conda_types::Channel]) -> Vec<String> {
    channels
        .iter()
        .map(|c| {
            let mut url: url::Url = c.base_url.url().clone().into();
            let _ = url.set_username("");
            let _ = url.set_password(None);
            let segments: Vec<String> = url
                .path_segments()
                .map(|s| s.map(String::from).collect())
                .unwrap_or_default();
            if segments.len() > 2 && segments[0] == "t" {
                url.set_path(&segments[2..].join("/"));
            }
            url.to_string()
        })
        .collect()
}

fn about_json(output: &PackageOutput, channels: &[String]) -> AboutJson {
    let about = &output.about;
    let extra = match &output.extra {
        serde_json::Value::Object(map) => map.clone().into_iter().collect(),
        _ => Default::default(),
    };
    AboutJson {
        channels: channels.to_vec(),
        description: trimmed(about.description.as_ref()),
        dev_url: about.repository.iter().cloned().collect(),
        doc_url: about.documentation.iter().cloned().collect(),
        extra,
        home: about.homepage.iter().cloned().collect(),
        license: trimmed(about.license.as_ref()),
        license_family: trimmed(about.license_family.as_ref()),
        source_url: None,
        summary: trimmed(about.summary.as_ref()),
    }
}

fn run_exports_json(output: &PackageOutput) -> RunExportsJson {
    let list = |deps: &[Dependency]| deps.iter().map(ToString::to_string).collect::<Vec<_>>();
    let run_exports = &output.requirements.run_exports;
    RunExportsJson {
        weak: list(&run_exports.weak),
        strong: list(&run_exports.strong),
        noarch: list(&run_exports.noarch),
        weak_constrains: list(&run_exports.weak_constraints),
        strong_constrains: list(&run_exports.strong_constraints),
    }
}

/// Pretty JSON of any serializable metadata, behind one object-safe
/// signature so that `write_json` takes each type.
mod erased {
    pub(super) trait Json {
        fn to_pretty(&self) -> String;
    }

    impl<T: super::Serialize> Json for T {
        fn to_pretty(&self) -> String {
            serde_json::to_string_pretty(self).expect("metadata serializes")
        }
    }
}
