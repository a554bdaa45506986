//! Where `cleave publish --to URL` copies packages, spelled as rattler-build
//! spells its `publish --to` targets.
//!
//! ```text
//! ./channel, /srv/channel, file:///srv/channel   a local channel directory
//! s3://BUCKET/CHANNEL?endpoint=URL&region=R        an S3-compatible bucket
//! quetz://HOST[:PORT]/CHANNEL                      a quetz server (https)
//! quetz+http://HOST:PORT/CHANNEL                   a quetz server over http
//! prefix://HOST/CHANNEL, https://prefix.dev/CHANNEL
//! https://anaconda.org/OWNER[/CHANNEL]             (CHANNEL default: main)
//! artifactory://HOST/CHANNEL                       an Artifactory server (https)
//! ```
//!
//! An S3 bucket takes the credentials and URL conventions of cleave's S3
//! remote (see `cleave_cache::remote::RemoteUrl`); the servers take their
//! API keys from the variables rattler-build's `upload` reads
//! (`QUETZ_API_KEY`, `PREFIX_API_KEY`, `ANACONDA_API_KEY`,
//! `ARTIFACTORY_TOKEN` or `ARTIFACTORY_USERNAME` and `ARTIFACTORY_PASSWORD`),
//! else from rattler's authentication storage (`rattler auth login`).

use std::fmt;
use std::path::{Path, PathBuf};

use cleave_cache::remote::RemoteUrl;
use url::Url;

use crate::error::ChannelError;

/// A channel to publish to.
#[derive(Debug, Clone)]
pub enum Target {
    /// A channel directory on this machine.
    Local(PathBuf),
    /// A channel below a prefix of an S3-compatible bucket.
    S3(RemoteUrl),
    /// A package server that indexes what it receives.
    Server(Server),
}

/// A package server, reached through rattler_upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Server {
    /// quetz: `SERVER/api/channels/CHANNEL/upload/FILE`.
    Quetz {
        /// The server's base URL.
        server: Url,
        /// The channel.
        channel: String,
    },
    /// prefix.dev or a server like it.
    Prefix {
        /// The server's base URL.
        server: Url,
        /// The channel.
        channel: String,
    },
    /// anaconda.org.
    Anaconda {
        /// The user or organisation.
        owner: String,
        /// The channel (label).
        channel: String,
    },
    /// JFrog Artifactory.
    Artifactory {
        /// The server's base URL.
        server: Url,
        /// The repository.
        channel: String,
    },
}

impl Target {
    /// Reads a target; a relative path is taken from `cwd`.
    pub fn parse(text: &str, cwd: &Path) -> Result<Target, ChannelError> {
        let text = text.trim();
        let bad = |reason: &str| ChannelError::Target {
            url: redact(text),
            reason: reason.to_string(),
        };
        if !text.contains("://") {
            if text.is_empty() {
                return Err(bad("it is empty"));
            }
            return Ok(Target::Local(cwd.join(text)));
        }
        let url = Url::parse(text).map_err(|e| bad(&e.to_string()))?;
        let channel = || {
            url.path_segments()
                .and_then(|mut s| s.rfind(|s| !s.is_empty()))
                .map(str::to_string)
                .ok_or_else(|| bad("the URL's path ends in the channel's name"))
        };
        let server = |scheme: &str| -> Result<Url, ChannelError> {
            let host = url.host_str().ok_or_else(|| bad("the URL names no host"))?;
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            Url::parse(&format!("{scheme}://{host}{port}/")).map_err(|e| bad(&e.to_string()))
        };
        let host = url.host_str().unwrap_or_default();
        let target = match url.scheme() {
            "file" => Target::Local(
                url.to_file_path()
                    .map_err(|()| bad("a file URL names a local directory: file:///DIR"))?,
            ),
            "s3" => Target::S3(RemoteUrl::parse(text).map_err(|e| bad(&e.to_string()))?),
            "quetz" | "quetz+https" => Target::Server(Server::Quetz {
                server: server("https")?,
                channel: channel()?,
            }),
            "quetz+http" => Target::Server(Server::Quetz {
                server: server("http")?,
                channel: channel()?,
            }),
            "prefix" => Target::Server(Server::Prefix {
                server: server("https")?,
                channel: channel()?,
            }),
            "artifactory" => Target::Server(Server::Artifactory {
                server: server("https")?,
                channel: channel()?,
            }),
            scheme @ ("http" | "https") if host.ends_with("prefix.dev") => {
                Target::Server(Server::Prefix {
                    server: server(scheme)?,
                    channel: channel()?,
                })
            }
            scheme @ ("http" | "https") if host.contains("quetz") => {
                Target::Server(Server::Quetz {
                    server: server(scheme)?,
                    channel: channel()?,
                })
            }
            "http" | "https" if host.ends_with("anaconda.org") => {
                let segments: Vec<&str> = url
                    .path_segments()
                    .map(|s| s.filter(|s| !s.is_empty()).collect())
                    .unwrap_or_default();
                match segments.as_slice() {
                    [owner] => Target::Server(Server::Anaconda {
                        owner: owner.to_string(),
                        channel: "main".into(),
                    }),
                    [owner, channel] => Target::Server(Server::Anaconda {
                        owner: owner.to_string(),
                        channel: channel.to_string(),
                    }),
                    _ => {
                        return Err(bad(
                            "an anaconda.org URL is https://anaconda.org/OWNER[/CHANNEL]",
                        ));
                    }
                }
            }
            _ => {
                return Err(bad(
                    "publishing goes to a directory, file://, s3://, quetz://, quetz+http://, prefix://, artifactory://, https://prefix.dev/CHANNEL or https://anaconda.org/OWNER",
                ));
            }
        };
        Ok(target)
    }
}

/// A URL as it may be printed: user info and query cut.
fn redact(text: &str) -> String {
    let text = text.split('?').next().unwrap_or_default();
    match (text.find("://"), text.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &text[..scheme], &text[at + 1..])
        }
        _ => text.to_string(),
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Local(dir) => write!(f, "{}", dir.display()),
            Target::S3(url) => write!(f, "{url}"),
            Target::Server(Server::Quetz { server, channel }) => {
                write!(f, "quetz {server}{channel}")
            }
            Target::Server(Server::Prefix { server, channel }) => write!(f, "{server}{channel}"),
            Target::Server(Server::Anaconda { owner, channel }) => {
                write!(f, "anaconda.org/{owner}/{channel}")
            }
            Target::Server(Server::Artifactory { server, channel }) => {
                write!(f, "artifactory {server}{channel}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(text: &str) -> Server {
        match Target::parse(text, Path::new("/work")).unwrap() {
            Target::Server(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_spelling_names_its_channel() {
        assert!(matches!(
            Target::parse("out", Path::new("/w")).unwrap(),
            Target::Local(p) if p == Path::new("/w/out")
        ));
        assert!(matches!(
            Target::parse("file:///srv/ch", Path::new("/w")).unwrap(),
            Target::Local(p) if p == Path::new("/srv/ch")
        ));
        assert!(matches!(
            Target::parse(
                "s3://bucket/ch?endpoint=http://127.0.0.1:9",
                Path::new("/w")
            )
            .unwrap(),
            Target::S3(_)
        ));
        assert_eq!(
            server("quetz+http://127.0.0.1:8000/mine"),
            Server::Quetz {
                server: Url::parse("http://127.0.0.1:8000/").unwrap(),
                channel: "mine".into()
            }
        );
        assert_eq!(
            server("quetz://q.example/x/mine/"),
            Server::Quetz {
                server: Url::parse("https://q.example/").unwrap(),
                channel: "mine".into()
            }
        );
        assert_eq!(
            server("https://prefix.dev/mine"),
            Server::Prefix {
                server: Url::parse("https://prefix.dev/").unwrap(),
                channel: "mine".into()
            }
        );
        assert_eq!(
            server("https://anaconda.org/me"),
            Server::Anaconda {
                owner: "me".into(),
                channel: "main".into()
            }
        );
        assert!(matches!(
            server("artifactory://a.example/conda"),
            Server::Artifactory { .. }
        ));
    }

    #[test]
    fn unknown_or_incomplete_targets_are_refused_without_credentials() {
        for text in [
            "ftp://x/y",
            "quetz://host",
            "https://example.org/ch",
            "s3:///nobucket",
        ] {
            let err = Target::parse(text, Path::new("/w"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("not a channel to publish to"), "{err}");
        }
        let err = Target::parse("quetz://user:hunter22@host", Path::new("/w"))
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter22"), "{err}");
    }
}
