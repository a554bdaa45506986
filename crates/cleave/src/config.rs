//! Settings from `cleave.toml`: a user file, then the nearest project file,
//! then flags and environment variables, each overriding the one before.
//!
//! ```toml
//! [cache]
//! dir = "/var/cache/cleave"    # relative paths are relative to this file
//! max-size = "10 GiB"
//!
//! [[cache.remote]]                  # asked in order after the local cache
//! url = "s3://team-cache/cleave?region=eu-west-1"
//! mode = "read-write"               # or read-only, off
//! timeout = "10s"                   # per request, a stalled transfer included
//! retries = 2
//! pack-size = "128 MiB"
//!
//! [cache]                           # (with the above)
//! helpers = ["tools/my-cache-helper"]  # docs/cache-helpers.md
//! helper-timeout = "5s"             # for lookup
//!
//! [build]
//! staging-root = "/tmp/cleave-staging"
//! compile-cache = true         # C/C++ compiler calls of scripts cached
//! ```

use std::path::{Path, PathBuf};

use cleave_cache::helper::HelperConfig;
use cleave_cache::remote::{Mode, RemoteConfig, RemoteUrl};
use miette::{IntoDiagnostic, WrapErr, miette};
use serde::Deserialize;

/// The cache is trimmed to this size after each build unless configured.
pub(crate) const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024 * 1024;

/// The file's name, in the user config dir and in a project.
const FILE_NAME: &str = "cleave.toml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    cache: CacheSection,
    #[serde(default)]
    build: BuildSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CacheSection {
    dir: Option<PathBuf>,
    max_size: Option<String>,
    #[serde(default)]
    remote: Vec<RemoteSection>,
    #[serde(default)]
    helpers: Vec<PathBuf>,
    helper_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RemoteSection {
    url: String,
    mode: Option<String>,
    timeout: Option<String>,
    retries: Option<usize>,
    pack_size: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct BuildSection {
    staging_root: Option<PathBuf>,
    compile_cache: Option<bool>,
}

/// The settings in effect.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Packages, repodata, sources and the staging store.
    pub(crate) cache_dir: PathBuf,
    /// LRU cap of the staging store.
    pub(crate) max_size: u64,
    /// Where staging builds run.
    pub(crate) staging_root: PathBuf,
    /// Whether scripts' compiler calls go through the compile cache.
    pub(crate) compile_cache: bool,
    /// Remote stores, in the order they are asked.
    pub(crate) remotes: Vec<RemoteConfig>,
    /// Cache helpers, in the order they are asked.
    pub(crate) helpers: Vec<HelperConfig>,
}

/// What flags and environment variables set.
#[derive(Debug, Default)]
pub(crate) struct Overrides<'a> {
    pub(crate) cache_dir: Option<&'a Path>,
    pub(crate) staging_root: Option<&'a Path>,
    /// `--remote` URLs, after those of the files.
    pub(crate) remotes: &'a [String],
    /// `--remote-mode`, for every remote.
    pub(crate) remote_mode: Option<&'a str>,
    /// `--cache-helper` paths, after those of the files.
    pub(crate) helpers: &'a [PathBuf],
}

impl Settings {
    /// Reads the user and project files (if any) and applies `overrides`.
    pub(crate) fn load(cwd: &Path, overrides: Overrides<'_>) -> miette::Result<Settings> {
        let mut cache_dir = dirs::cache_dir().map(|d| d.join("cleave"));
        let mut max_size = DEFAULT_MAX_SIZE;
        let mut staging_root = std::env::temp_dir().join("cleave-staging");
        let mut compile_cache = true;
        let mut remotes = Vec::new();
        let mut helpers = Vec::new();
        let user = dirs::config_dir().map(|d| d.join("cleave").join(FILE_NAME));
        let project = cwd
            .ancestors()
            .map(|d| d.join(FILE_NAME))
            .find(|f| f.is_file());
        for file in [user, project]
            .into_iter()
            .flatten()
            .filter(|f| f.is_file())
        {
            let base = file.parent().unwrap_or(cwd);
            let config = read(&file)?;
            if let Some(dir) = config.cache.dir {
                cache_dir = Some(base.join(dir));
            }
            if let Some(size) = config.cache.max_size {
                max_size = parse_size(&size)
                    .wrap_err_with(|| format!("in {} (cache.max-size)", file.display()))?;
            }
            if let Some(root) = config.build.staging_root {
                staging_root = base.join(root);
            }
            if let Some(on) = config.build.compile_cache {
                compile_cache = on;
            }
            if !config.cache.helpers.is_empty() {
                let timeout = config
                    .cache
                    .helper_timeout
                    .as_deref()
                    .map(parse_age)
                    .transpose()
                    .wrap_err_with(|| format!("in {} (cache.helper-timeout)", file.display()))?;
                helpers = config
                    .cache
                    .helpers
                    .iter()
                    .map(|path| {
                        let mut helper = HelperConfig::new(base.join(path));
                        if let Some(timeout) = timeout {
                            helper.lookup_timeout = timeout;
                        }
                        helper
                    })
                    .collect();
            }
            // A project's remotes replace the user's: the project knows
            // where its team's cache is.
            if !config.cache.remote.is_empty() {
                remotes = config
                    .cache
                    .remote
                    .iter()
                    .map(remote)
                    .collect::<miette::Result<_>>()
                    .wrap_err_with(|| format!("in {} ([[cache.remote]])", file.display()))?;
            }
        }
        for path in overrides.helpers {
            helpers.push(HelperConfig::new(cwd.join(path)));
        }
        for url in overrides.remotes {
            remotes.push(RemoteConfig::new(RemoteUrl::parse(url).into_diagnostic()?));
        }
        if let Some(mode) = overrides.remote_mode {
            let mode: Mode = mode
                .parse()
                .map_err(|e: String| miette!("--remote-mode: {e}"))?;
            for remote in &mut remotes {
                remote.mode = mode;
            }
        }
        if let Some(dir) = overrides.cache_dir {
            cache_dir = Some(cwd.join(dir));
        }
        if let Some(root) = overrides.staging_root {
            staging_root = cwd.join(root);
        }
        let cache_dir = cache_dir.ok_or_else(|| {
            miette!("no cache directory on this system; pass --cache-dir or set CLEAVE_CACHE_DIR")
        })?;
        Ok(Settings {
            cache_dir,
            max_size,
            staging_root,
            compile_cache,
            remotes,
            helpers,
        })
    }

    /// The staging store's directory.
    pub(crate) fn store_dir(&self) -> PathBuf {
        store_dir(&self.cache_dir)
    }

    /// The compile cache's own files.
    pub(crate) fn compile_dir(&self) -> PathBuf {
        compile_dir(&self.cache_dir)
    }
}

/// The store in a cache directory: staging builds, packages and compile
/// entries.
pub(crate) fn store_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("staging")
}

/// The compile cache's own files in a cache directory: file indexes,
/// compiler profiles, stats.
pub(crate) fn compile_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("compile")
}

/// One `[[cache.remote]]` table.
fn remote(section: &RemoteSection) -> miette::Result<RemoteConfig> {
    let mut config = RemoteConfig::new(RemoteUrl::parse(&section.url).into_diagnostic()?);
    if let Some(mode) = &section.mode {
        config.mode = mode.parse().map_err(|e: String| miette!("mode: {e}"))?;
    }
    if let Some(timeout) = &section.timeout {
        config.timeout = parse_age(timeout).wrap_err("timeout")?;
    }
    if let Some(retries) = section.retries {
        config.retries = retries;
    }
    if let Some(size) = &section.pack_size {
        config.pack_size = parse_size(size).wrap_err("pack-size")?.max(1);
    }
    Ok(config)
}

fn read(file: &Path) -> miette::Result<ConfigFile> {
    let text = std::fs::read_to_string(file)
        .into_diagnostic()
        .wrap_err_with(|| format!("reading {}", file.display()))?;
    toml::from_str(&text)
        .into_diagnostic()
        .wrap_err_with(|| format!("{} is not a valid cleave.toml", file.display()))
}

/// `10GiB`, `500 MB`, `1048576`.
pub(crate) fn parse_size(text: &str) -> miette::Result<u64> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| miette!("`{text}` is not a size like `10GiB` or `500 MB`: {e}"))
}

/// `30d`, `12h`, `1week`.
pub(crate) fn parse_age(text: &str) -> miette::Result<std::time::Duration> {
    humantime::parse_duration(text.trim())
        .map_err(|e| miette!("`{text}` is not a duration like `30d` or `12h`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages_parse_with_units() {
        assert_eq!(parse_size("10GiB").unwrap(), 10 << 30);
        assert_eq!(parse_size("500 MB").unwrap(), 500_000_000);
        assert!(parse_size("lots").is_err());
        assert_eq!(parse_age("2d").unwrap().as_secs(), 2 * 86400);
        assert!(parse_age("soon").is_err());
    }

    #[test]
    fn a_project_file_is_read_relative_to_itself_and_flags_win() {
        let project = tempfile::tempdir().unwrap();
        std::fs::write(
            project.path().join(FILE_NAME),
            "[cache]\ndir = \"c\"\nmax-size = \"1 MiB\"\n[build]\nstaging-root = \"s\"\ncompile-cache = false\n",
        )
        .unwrap();
        let nested = project.path().join("recipes/lib");
        std::fs::create_dir_all(&nested).unwrap();
        let s = Settings::load(&nested, Overrides::default()).unwrap();
        assert_eq!(s.cache_dir, project.path().join("c"));
        assert_eq!(s.max_size, 1 << 20);
        assert_eq!(s.staging_root, project.path().join("s"));
        assert!(!s.compile_cache);
        let flag = Settings::load(
            &nested,
            Overrides {
                cache_dir: Some(Path::new("/elsewhere")),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(flag.cache_dir, Path::new("/elsewhere"));
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_the_file() {
        let project = tempfile::tempdir().unwrap();
        std::fs::write(project.path().join(FILE_NAME), "[cache]\nsize = 3\n").unwrap();
        let err = Settings::load(project.path(), Overrides::default()).unwrap_err();
        assert!(format!("{err:?}").contains(FILE_NAME), "{err:?}");
    }
}
