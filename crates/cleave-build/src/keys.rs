//! The inputs of cache keys: of a staging build, and of a package output.
//!
//! Everything that can change what a build produces goes in, each under its
//! own name so that `cleave cache explain` can say which one changed: the
//! script (text, and the contents of a script file), the contents of every
//! source, the exact packages of the build and host environments, the
//! platforms and the variant. Nothing that differs between machines or runs
//! goes in: no absolute path, no time, no user.
//!
//! A staging build's key leaves out the outputs that inherit it, so editing
//! one of them rebuilds only that output. A package output's key adds its
//! whole rendered section (requirements, `about`, tests, file selection),
//! the key of the staging build it inherits, the recipe-dir files it packages
//! or tests with, and the archive format. A package built earlier in the
//! same recipe enters an environment by its own output key rather than its
//! archive's digest: the archive holds a timestamp, the key does not.

use std::collections::HashMap;
use std::path::Path;

use cleave_cache::fingerprint::Fingerprinter;
use cleave_cache::{Digest, Inputs};
use cleave_recipe::model::{FileSelection, PackageOutput, ScriptContent, Source, StagingCache};
use rattler_conda_types::{RepoDataRecord, Subdir};

use crate::error::BuildError;
use crate::package::licenses::LicensePatterns;

/// The version of what cleave writes into a package: bumped when the same
/// inputs would give other package bytes, so that no older package is
/// reused.
const PACKAGE_FORMAT: &str = "cleave-package-2";

/// What a key depends on besides the section itself.
pub struct KeyContext<'a> {
    /// Where relative sources and script files are.
    pub recipe_dir: &'a Path,
    /// The solved build environment.
    pub build: &'a [RepoDataRecord],
    /// The solved host environment.
    pub host: &'a [RepoDataRecord],
    /// The platform packages are for.
    pub target_platform: Subdir,
    /// The platform the build runs on.
    pub build_platform: Subdir,
    /// Hashes `path:` sources, with a fast path for unchanged files.
    pub fingerprints: &'a Fingerprinter,
    /// Packages built (or reused) earlier in this build, by archive file
    /// name, with their output keys.
    pub siblings: &'a HashMap<String, Digest>,
}

/// The named inputs of `staging`'s key.
pub fn inputs(staging: &StagingCache, ctx: &KeyContext<'_>) -> Result<Inputs, BuildError> {
    let what = format!("staging `{}`", staging.name);
    let mut inputs = Inputs::new();
    inputs.insert("name", &staging.name);
    // The script sees it as PKG_VERSION.
    if let Some(version) = &staging.version {
        inputs.insert("version", version);
    }
    inputs.insert("script", json(&staging.script));
    if let ScriptContent::File(file) = &staging.script.content {
        inputs.insert("script.file", file_digest(ctx.recipe_dir, file, &what)?);
    }
    let variant: Vec<String> = staging
        .variant
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    inputs.insert("variant", variant.join(" "));
    if !staging.include_files.is_empty() {
        inputs.insert("include_files", staging.include_files.join(" "));
    }
    inputs.insert("platform.target", ctx.target_platform.as_str());
    inputs.insert("platform.build", ctx.build_platform.as_str());
    insert_environments(&mut inputs, ctx);
    insert_sources(&mut inputs, &staging.sources, ctx, &what)?;
    Ok(inputs)
}

/// The named inputs of a package output's key. `staging` is the key of the
/// staging build it inherits; `format` the archive format.
pub fn output_inputs(
    output: &PackageOutput,
    staging: Option<&Digest>,
    format: &str,
    ctx: &KeyContext<'_>,
) -> Result<Inputs, BuildError> {
    let name = output.name.as_normalized();
    let what = format!("{name}-{}-{}", output.version, output.build.string);
    let mut inputs = Inputs::new();
    inputs.insert("format", PACKAGE_FORMAT);
    inputs.insert("package.format", format);
    inputs.insert("name", name);
    inputs.insert("output", json(output));
    if let Some(staging) = staging {
        inputs.insert("staging", staging.to_hex());
    }
    if let ScriptContent::File(file) = &output.build.script.content {
        inputs.insert("script.file", file_digest(ctx.recipe_dir, file, &what)?);
    }
    inputs.insert("platform.target", ctx.target_platform.as_str());
    inputs.insert("platform.build", ctx.build_platform.as_str());
    insert_environments(&mut inputs, ctx);
    insert_sources(&mut inputs, &output.sources, ctx, &what)?;
    // Files of the recipe dir that go into the package or its tests.
    let licenses = LicensePatterns::new(&output.about.license_file)
        .map_err(BuildError::license(&what))?
        .recipe_files(ctx.recipe_dir)
        .map_err(BuildError::license(&what))?;
    for file in licenses {
        let digest = cleave_cache::Digest::of_file(&file.source)
            .map_err(BuildError::io(format!("reading {}", file.source.display())))?;
        inputs.insert(
            format!("license.{}", file.dest.display()),
            format!("blake3:{digest}"),
        );
    }
    for test in &output.tests {
        if let cleave_recipe::model::Test::Script { files, .. } = test {
            for (path, rel) in
                crate::check::package_tests::matching_files(ctx.recipe_dir, &files.recipe)?
            {
                let digest = cleave_cache::Digest::of_file(&path)
                    .map_err(BuildError::io(format!("reading {}", path.display())))?;
                inputs.insert(
                    format!("test.file.{}", rel.display()),
                    format!("blake3:{digest}"),
                );
            }
        }
    }
    Ok(inputs)
}

fn insert_environments(inputs: &mut Inputs, ctx: &KeyContext<'_>) {
    inputs.insert("env.build", environment(ctx.build, ctx.siblings));
    inputs.insert("env.host", environment(ctx.host, ctx.siblings));
}

fn insert_sources(
    inputs: &mut Inputs,
    sources: &[Source],
    ctx: &KeyContext<'_>,
    what: &str,
) -> Result<(), BuildError> {
    for (i, source) in sources.iter().enumerate() {
        let (spec, contents, patches) = source_input(source, ctx, what)?;
        inputs.insert(format!("source.{i}"), spec);
        inputs.insert(format!("source.{i}.contents"), contents);
        for patch in patches {
            let digest = file_digest(ctx.recipe_dir, patch, what)?;
            inputs.insert(format!("source.{i}.patch.{patch}"), digest);
        }
    }
    Ok(())
}

/// The source as written (without mirror URLs: the digest decides), its
/// contents' digest, and its patches. A filter is part of what is written:
/// a path source's digest covers only the files it takes, and for the
/// others it changes what reaches the work dir.
fn source_input<'s>(
    source: &'s Source,
    ctx: &KeyContext<'_>,
    what: &str,
) -> Result<(String, String, &'s [String]), BuildError> {
    Ok(match source {
        Source::Path {
            path,
            target_directory,
            file_name,
            use_gitignore,
            patches,
            ..
        } => {
            let full = ctx.recipe_dir.join(path);
            let walk = crate::source::walk_of(source, *use_gitignore)?;
            let digest = ctx
                .fingerprints
                .tree(&full, &walk)
                .map_err(|e| match e {
                    cleave_cache::CacheError::Io { source, .. }
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        BuildError::MissingSource {
                            what: what.to_string(),
                            path: full.clone(),
                        }
                    }
                    other => BuildError::Cache(other),
                })?
                .digest;
            let spec = format!(
                "path {path} -> {} {}",
                target_directory.as_deref().unwrap_or("."),
                file_name.as_deref().unwrap_or("")
            );
            (
                with_filter(spec.trim_end(), source.filter()),
                format!("blake3:{digest}"),
                patches,
            )
        }
        Source::Url {
            sha256,
            md5,
            file_name,
            target_directory,
            patches,
            url,
            ..
        } => {
            let contents = match (sha256, md5) {
                (Some(sha), _) => format!("sha256:{sha}"),
                (None, Some(md5)) => format!("md5:{md5}"),
                // No digest: only the address identifies the contents.
                (None, None) => format!(
                    "url:{}",
                    url.iter().map(|u| u.as_str()).collect::<Vec<_>>().join(" ")
                ),
            };
            let spec = format!(
                "url -> {} {}",
                target_directory.as_deref().unwrap_or("."),
                file_name.as_deref().unwrap_or("")
            );
            (
                with_filter(spec.trim_end(), source.filter()),
                contents,
                patches,
            )
        }
        Source::Git {
            git,
            reference,
            depth,
            lfs,
            submodules,
            expected_commit,
            target_directory,
            patches,
            ..
        } => {
            let spec = format!(
                "git -> {} depth={depth:?} lfs={lfs} submodules={submodules}",
                target_directory.as_deref().unwrap_or(".")
            );
            // A commit id names the contents; a tag or branch may move.
            let contents = match expected_commit {
                Some(commit) => format!("git:{git} commit {commit}"),
                None => format!("git:{git} {}", json(reference)),
            };
            (with_filter(&spec, source.filter()), contents, patches)
        }
    })
}

/// A source's spec with its filter, when it has one.
fn with_filter(spec: &str, filter: &FileSelection) -> String {
    if filter.is_all() {
        spec.to_string()
    } else {
        format!("{spec} filter={}", json(filter))
    }
}

/// One line per package: name, version, build and its archive digest (a
/// sibling's output key instead: see the module doc).
fn environment(records: &[RepoDataRecord], siblings: &HashMap<String, Digest>) -> String {
    let mut lines: Vec<String> = records
        .iter()
        .map(|r| {
            let p = &r.package_record;
            let file_name = r.url.path_segments().and_then(|mut s| s.next_back());
            let sibling = file_name
                .and_then(|name| siblings.get(name))
                .map(|key| format!("output:{}", key.to_hex()));
            let digest = sibling
                .or_else(|| p.sha256.map(|d| format!("sha256:{}", hex(&d))))
                .or_else(|| p.md5.map(|d| format!("md5:{}", hex(&d))))
                .unwrap_or_else(|| format!("url:{}", r.url));
            format!(
                "{}-{}-{} {digest}",
                p.name.as_normalized(),
                p.version,
                p.build
            )
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

fn file_digest(recipe_dir: &Path, file: &str, what: &str) -> Result<String, BuildError> {
    let path = recipe_dir.join(file);
    cleave_cache::Digest::of_file(&path)
        .map(|d| format!("blake3:{d}"))
        .map_err(|_| BuildError::MissingSource {
            what: what.to_string(),
            path,
        })
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
