//! The `env` and `git` objects of the template context.
//!
//! `env.get("NAME", default="x")` and `env.exists("NAME")` read the
//! environment of the process rendering the recipe; `git.head_rev(path)`,
//! `git.latest_tag(path)`, `git.latest_tag_rev(path)` and
//! `git.latest_tag_distance(path)` ask git about a checkout next to the
//! recipe (or, for anything that is not a directory there, a remote).
//! What they return is part of the rendered recipe, and so of every cache
//! key computed from it: a new commit is a new build.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use minijinja::value::{Kwargs, Object, Value, from_args};
use minijinja::{Error, ErrorKind, State};

/// `env`: the environment variables of the render.
#[derive(Debug)]
pub(crate) struct EnvObject;

impl Object for EnvObject {
    fn call_method(
        self: &Arc<Self>,
        _state: &State,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "get" => {
                let (name, kwargs): (String, Kwargs) = from_args(args)?;
                let default: Option<Value> = kwargs.get("default")?;
                kwargs.assert_all_used()?;
                match (std::env::var(&name), default) {
                    (Ok(value), _) => Ok(Value::from(value)),
                    (Err(_), Some(default)) => Ok(Value::from(default.to_string())),
                    (Err(_), None) => Err(Error::new(
                        ErrorKind::InvalidOperation,
                        format!(
                            "environment variable `{name}` is not set (give `default=` for that case)"
                        ),
                    )),
                }
            }
            "exists" => {
                let (name,): (String,) = from_args(args)?;
                Ok(Value::from(std::env::var_os(name).is_some()))
            }
            other => Err(Error::new(
                ErrorKind::UnknownMethod,
                format!("`env` has `get` and `exists`, not `{other}`"),
            )),
        }
    }
}

/// `git`: facts about a repository, for versions taken from tags.
#[derive(Debug)]
pub(crate) struct GitObject {
    pub(crate) recipe_dir: PathBuf,
}

impl GitObject {
    /// A local checkout (absolute, or relative to the recipe) or a remote.
    fn location(&self, src: &str) -> Location {
        let path = Path::new(src);
        let local = if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.recipe_dir.join(path)
        };
        if local.is_dir() {
            Location::Local(local)
        } else {
            Location::Remote(src.to_string())
        }
    }
}

enum Location {
    Local(PathBuf),
    Remote(String),
}

impl Object for GitObject {
    fn call_method(
        self: &Arc<Self>,
        _state: &State,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let (src,): (String,) = from_args(args)?;
        let location = self.location(&src);
        let text = match (method, &location) {
            ("head_rev", Location::Local(dir)) => git(Some(dir), &["rev-parse", "HEAD"])?,
            ("head_rev", Location::Remote(url)) => {
                first_word(&git(None, &["ls-remote", url, "HEAD"])?)
            }
            ("latest_tag", Location::Local(dir)) => {
                git(Some(dir), &["describe", "--tags", "--abbrev=0"])?
            }
            ("latest_tag", Location::Remote(url)) => newest_remote_tag(url)?.1,
            ("latest_tag_rev", Location::Local(dir)) => {
                let tag = git(Some(dir), &["describe", "--tags", "--abbrev=0"])?;
                git(Some(dir), &["rev-list", "-n", "1", &tag])?
            }
            ("latest_tag_rev", Location::Remote(url)) => newest_remote_tag(url)?.0,
            ("latest_tag_distance", Location::Local(dir)) => {
                let described = git(Some(dir), &["describe", "--tags", "--long"])?;
                // `<tag>-<distance>-g<hash>`; the tag itself may hold dashes.
                described.rsplit('-').nth(1).unwrap_or_default().to_string()
            }
            ("latest_tag_distance", Location::Remote(_)) => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "git.latest_tag_distance needs a local checkout",
                ));
            }
            (other, _) => {
                return Err(Error::new(
                    ErrorKind::UnknownMethod,
                    format!(
                        "`git` has head_rev, latest_tag, latest_tag_rev and latest_tag_distance, not `{other}`"
                    ),
                ));
            }
        };
        Ok(Value::from(text))
    }
}

/// Runs git and returns its trimmed output; a failure carries git's message.
fn git(dir: Option<&Path>, args: &[&str]) -> Result<String, Error> {
    let mut command = Command::new("git");
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let output = command
        .args(args)
        .output()
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("cannot run git: {e}")))?;
    if !output.status.success() {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "git {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

fn first_word(text: &str) -> String {
    text.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The revision and name of a remote's highest version tag.
fn newest_remote_tag(url: &str) -> Result<(String, String), Error> {
    let listing = git(None, &["ls-remote", "--tags", "--sort=-v:refname", url])?;
    let line = listing
        .lines()
        .next()
        .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, format!("`{url}` has no tags")))?;
    let mut words = line.split_whitespace();
    let rev = words.next().unwrap_or_default().to_string();
    let tag = words
        .next()
        .unwrap_or_default()
        .trim_start_matches("refs/tags/")
        .trim_end_matches("^{}")
        .to_string();
    Ok((rev, tag))
}
