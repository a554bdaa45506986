//! Remote URLs: which storage service, with which settings, and how the
//! remote is named where people read it (never with its credentials).
//!
//! ```text
//! s3://BUCKET/PREFIX?endpoint=http://127.0.0.1:9000&region=us-east-1
//! redis://[USER:PASSWORD@]HOST:PORT/DB      (rediss:// for TLS)
//! webdav+http://[USER:PASSWORD@]HOST:PORT/PATH   (webdav+https://)
//! file:///shared/dir
//! gcs://BUCKET/PREFIX
//! azblob://CONTAINER/PREFIX?endpoint=...
//! gha://PREFIX
//! grpc://HOST:PORT[/INSTANCE]     (grpcs:// for TLS)
//! ```
//!
//! Credentials come from where each service's users keep them: the AWS
//! variables for S3, the URL's user info for Redis and WebDAV,
//! `GOOGLE_APPLICATION_CREDENTIALS` for GCS, the `AZURE_STORAGE_*` variables
//! for Azure, the runner's variables for the GitHub Actions cache, the
//! `CLEAVE_REMOTE_*` variables for a REAPI server ([`ReapiSettings`]).

use std::collections::HashMap;

use opendal::{Operator, services};

use super::RemoteError;
use super::reapi::ReapiSettings;

/// A parsed remote URL.
#[derive(Clone)]
pub struct RemoteUrl {
    /// The service's settings, credentials included.
    settings: Settings,
    /// The URL without user info or query: safe to print.
    shown: String,
    /// The URL as given without its password: what a process cleave starts
    /// may be told (it reads other credentials from its own environment).
    handed: String,
}

#[derive(Clone)]
enum Settings {
    S3(HashMap<String, String>),
    Redis(HashMap<String, String>),
    Webdav(HashMap<String, String>),
    /// A shared directory: cleave's own tier (see `dir.rs`), not OpenDAL's.
    Dir(std::path::PathBuf),
    Gcs(HashMap<String, String>),
    Azblob(HashMap<String, String>),
    Ghac(HashMap<String, String>),
    Reapi(Box<ReapiSettings>),
}

impl std::fmt::Debug for RemoteUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl std::fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// Reads an environment variable that is set and not empty.
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl RemoteUrl {
    /// The URL as given, without its password: for a process cleave starts,
    /// which parses it with credentials from its own environment (a recipe
    /// script's holds only what the recipe lets in).
    pub fn without_password(&self) -> &str {
        &self.handed
    }

    /// An OpenDAL operator for the service (no request is made yet) and
    /// the values its messages must never show: for a caller that writes
    /// to the service itself, as publishing a channel into a bucket does.
    pub fn service(&self) -> Result<(Operator, Vec<String>), RemoteError> {
        // HTTP services need the process-wide transport; installing it
        // twice keeps the first.
        opendal::install_default();
        Ok((self.operator()?, self.secrets()))
    }

    /// Parses a remote URL, with credentials from the process's
    /// environment. The error names the URL without credentials.
    pub fn parse(text: &str) -> Result<RemoteUrl, RemoteError> {
        Self::parse_with(text, &process_env)
    }

    /// Parses a remote URL, reading variables through `env` (a caller that
    /// holds credentials elsewhere, or a test, passes its own).
    pub fn parse_with(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<RemoteUrl, RemoteError> {
        let url = url::Url::parse(text.trim()).map_err(|e| RemoteError::Url {
            url: redact(text),
            reason: e.to_string(),
        })?;
        let bad = |reason: &str| RemoteError::Url {
            url: redact(text),
            reason: reason.to_string(),
        };
        let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
        let host = url.host_str().unwrap_or_default().to_string();
        let path = url.path().trim_end_matches('/').to_string();
        let root = if path.is_empty() {
            "/".to_string()
        } else {
            path.clone()
        };
        let mut map = HashMap::new();
        map.insert("root".to_string(), root.clone());
        let settings = match url.scheme() {
            "s3" => {
                if host.is_empty() {
                    return Err(bad("an S3 URL names its bucket: s3://BUCKET/PREFIX"));
                }
                map.insert("bucket".into(), host.clone());
                let endpoint = query
                    .get("endpoint")
                    .cloned()
                    .or_else(|| env("AWS_ENDPOINT_URL"));
                if let Some(endpoint) = endpoint {
                    map.insert("endpoint".into(), endpoint);
                }
                let region = query
                    .get("region")
                    .cloned()
                    .or_else(|| env("AWS_REGION"))
                    .or_else(|| env("AWS_DEFAULT_REGION"))
                    .unwrap_or_else(|| "us-east-1".into());
                map.insert("region".into(), region);
                for (var, key) in [
                    ("AWS_ACCESS_KEY_ID", "access_key_id"),
                    ("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
                    ("AWS_SESSION_TOKEN", "session_token"),
                ] {
                    if let Some(value) = env(var) {
                        map.insert(key.into(), value);
                    }
                }
                if query.get("virtual-host").is_some_and(|v| v == "true") {
                    map.insert("enable_virtual_host_style".into(), "true".into());
                }
                Settings::S3(map)
            }
            scheme @ ("redis" | "rediss") => {
                let port = url.port().unwrap_or(6379);
                if host.is_empty() {
                    return Err(bad("a Redis URL names its host: redis://HOST:PORT/DB"));
                }
                map.insert("endpoint".into(), format!("{scheme}://{host}:{port}"));
                let db = path.trim_start_matches('/');
                if !db.is_empty() {
                    let db: i64 = db
                        .parse()
                        .map_err(|_| bad("a Redis URL's path is a database number"))?;
                    map.insert("db".into(), db.to_string());
                }
                map.insert("root".into(), "/".into());
                user_info(&url, &mut map);
                Settings::Redis(map)
            }
            scheme @ ("webdav+http" | "webdav+https") => {
                let base = &scheme["webdav+".len()..];
                let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
                if host.is_empty() {
                    return Err(bad("a WebDAV URL names its host"));
                }
                map.insert("endpoint".into(), format!("{base}://{host}{port}"));
                user_info(&url, &mut map);
                Settings::Webdav(map)
            }
            "file" => {
                if !host.is_empty() && host != "localhost" {
                    return Err(bad("a file URL names a local directory: file:///DIR"));
                }
                if path.is_empty() {
                    return Err(bad("a file URL names a directory"));
                }
                let dir = url
                    .to_file_path()
                    .map_err(|()| bad("a file URL names a local directory: file:///DIR"))?;
                Settings::Dir(dir)
            }
            "gcs" | "gs" => {
                if host.is_empty() {
                    return Err(bad("a GCS URL names its bucket: gcs://BUCKET/PREFIX"));
                }
                map.insert("bucket".into(), host.clone());
                if let Some(path) = env("GOOGLE_APPLICATION_CREDENTIALS") {
                    map.insert("credential_path".into(), path);
                }
                if let Some(endpoint) = query.get("endpoint") {
                    map.insert("endpoint".into(), endpoint.clone());
                }
                Settings::Gcs(map)
            }
            "azblob" => {
                if host.is_empty() {
                    return Err(bad(
                        "an Azure URL names its container: azblob://CONTAINER/PREFIX",
                    ));
                }
                map.insert("container".into(), host.clone());
                let account = env("AZURE_STORAGE_ACCOUNT");
                let endpoint = query
                    .get("endpoint")
                    .cloned()
                    .or_else(|| env("AZURE_STORAGE_ENDPOINT"))
                    .or_else(|| {
                        account
                            .as_ref()
                            .map(|a| format!("https://{a}.blob.core.windows.net"))
                    });
                if let Some(endpoint) = endpoint {
                    map.insert("endpoint".into(), endpoint);
                }
                if let Some(account) = account {
                    map.insert("account_name".into(), account);
                }
                if let Some(key) = env("AZURE_STORAGE_KEY") {
                    map.insert("account_key".into(), key);
                }
                if let Some(sas) = env("AZURE_STORAGE_SAS_TOKEN") {
                    map.insert("sas_token".into(), sas);
                }
                Settings::Azblob(map)
            }
            "gha" => {
                // The runner's variables name the service; the host part of
                // `gha://PREFIX` is the first path segment.
                let root = format!("/{host}{path}");
                map.insert("root".into(), root);
                map.insert("version".into(), "cleave-v1".into());
                Settings::Ghac(map)
            }
            "grpc" | "grpcs" => Settings::Reapi(Box::new(
                ReapiSettings::parse(&url, &query, env).map_err(|e| bad(&e))?,
            )),
            other => {
                return Err(bad(&format!(
                    "`{other}` is not a known kind of remote (s3, redis, webdav+http, webdav+https, file, gcs, azblob, gha, grpc, grpcs)"
                )));
            }
        };
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        let shown = format!("{}://{host}{port}{path}", url.scheme());
        let mut without_password = url.clone();
        let _ = without_password.set_password(None);
        Ok(RemoteUrl {
            settings,
            shown,
            handed: without_password.to_string(),
        })
    }

    /// The service's kind, for people.
    pub fn kind(&self) -> &'static str {
        match self.settings {
            Settings::S3(_) => "s3",
            Settings::Redis(_) => "redis",
            Settings::Webdav(_) => "webdav",
            Settings::Dir(_) => "file",
            Settings::Gcs(_) => "gcs",
            Settings::Azblob(_) => "azblob",
            Settings::Ghac(_) => "gha",
            Settings::Reapi(_) => "grpc",
        }
    }

    /// The settings of a REAPI server (`grpc://`, `grpcs://`), which is
    /// spoken to through its own protocol rather than OpenDAL.
    pub(super) fn reapi(&self) -> Option<&ReapiSettings> {
        match &self.settings {
            Settings::Reapi(settings) => Some(settings),
            _ => None,
        }
    }

    /// The directory of a `file://` remote.
    pub(super) fn dir(&self) -> Option<std::path::PathBuf> {
        match &self.settings {
            Settings::Dir(dir) => Some(dir.clone()),
            _ => None,
        }
    }

    /// An OpenDAL operator for the service (no request is made yet); a
    /// shared directory has none.
    pub(super) fn operator(&self) -> Result<Operator, RemoteError> {
        let built = match &self.settings {
            Settings::S3(m) => Operator::from_iter::<services::S3>(m.clone()),
            Settings::Redis(m) => Operator::from_iter::<services::Redis>(m.clone()),
            Settings::Webdav(m) => Operator::from_iter::<services::Webdav>(m.clone()),
            Settings::Dir(_) => {
                return Err(RemoteError::Url {
                    url: self.shown.clone(),
                    reason: "a shared directory is not a service".into(),
                });
            }
            Settings::Gcs(m) => Operator::from_iter::<services::Gcs>(m.clone()),
            Settings::Azblob(m) => Operator::from_iter::<services::Azblob>(m.clone()),
            Settings::Ghac(m) => Operator::from_iter::<services::Ghac>(m.clone()),
            Settings::Reapi(_) => {
                return Err(RemoteError::Url {
                    url: self.shown.clone(),
                    reason: "a REAPI server is not an OpenDAL service".into(),
                });
            }
        };
        built.map_err(|e| RemoteError::Url {
            url: self.shown.clone(),
            reason: super::scrub(&e.to_string(), &self.secrets()),
        })
    }

    /// Values that must never be printed.
    pub(super) fn secrets(&self) -> Vec<String> {
        let map = match &self.settings {
            Settings::Dir(_) => return Vec::new(),
            Settings::S3(m)
            | Settings::Redis(m)
            | Settings::Webdav(m)
            | Settings::Gcs(m)
            | Settings::Azblob(m)
            | Settings::Ghac(m) => m,
            Settings::Reapi(settings) => return settings.secrets(),
        };
        [
            "secret_access_key",
            "session_token",
            "access_key_id",
            "password",
            "account_key",
            "sas_token",
            "token",
        ]
        .iter()
        .filter_map(|k| map.get(*k))
        .filter(|v| v.len() >= 4)
        .cloned()
        .collect()
    }
}

/// Takes a URL's user name and password into the settings.
fn user_info(url: &url::Url, map: &mut HashMap<String, String>) {
    if !url.username().is_empty() {
        let name = percent_decode(url.username());
        map.insert("username".into(), name);
    }
    if let Some(password) = url.password() {
        map.insert("password".into(), percent_decode(password));
    }
}

/// A URL's user info decoded as RFC 3986 says: `%XX` escapes only. A `+`
/// is a plus (it means a space in form data, which user info is not).
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// A URL as it may be printed when it does not parse: user info and query
/// cut.
fn redact(text: &str) -> String {
    let text = text.split('?').next().unwrap_or_default();
    match (text.find("://"), text.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &text[..scheme], &text[at + 1..])
        }
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_parses_and_shows_no_credentials() {
        let cases = [
            (
                "s3://bucket/some/prefix?endpoint=http://127.0.0.1:9000",
                "s3",
                "s3://bucket/some/prefix",
            ),
            (
                "redis://user:hunter22@127.0.0.1:6380/2",
                "redis",
                "redis://127.0.0.1:6380/2",
            ),
            (
                "webdav+http://u:pw1234@127.0.0.1:8080/dav",
                "webdav",
                "webdav+http://127.0.0.1:8080/dav",
            ),
            ("file:///srv/cache", "file", "file:///srv/cache"),
            ("gcs://bucket/p", "gcs", "gcs://bucket/p"),
            ("azblob://container/p", "azblob", "azblob://container/p"),
            ("gha://cleave", "gha", "gha://cleave"),
            (
                "grpcs://cache.example:8980/main?token_env=T",
                "grpc",
                "grpcs://cache.example:8980/main",
            ),
        ];
        for (text, kind, shown) in cases {
            let url = RemoteUrl::parse(text).unwrap();
            assert_eq!(url.kind(), kind, "{text}");
            assert_eq!(url.to_string(), shown, "{text}");
            let handed = url.without_password();
            assert!(!handed.contains("hunter22") && !handed.contains("pw1234"));
            assert_eq!(RemoteUrl::parse(handed).unwrap().to_string(), shown);
        }
        let s3 = RemoteUrl::parse("s3://b/p?endpoint=http://127.0.0.1:9000").unwrap();
        assert!(
            s3.without_password().contains("endpoint="),
            "the endpoint is kept"
        );
    }

    #[test]
    fn a_plus_in_a_password_is_a_plus() {
        let url = RemoteUrl::parse("redis://user:pa+ss%2Bw%40rd@127.0.0.1:6379/0").unwrap();
        assert_eq!(url.secrets(), ["pa+ss+w@rd"]);
        let dir = RemoteUrl::parse("file:///srv/my%20cache").unwrap();
        assert_eq!(dir.dir().unwrap(), std::path::Path::new("/srv/my cache"));
    }

    #[test]
    fn bad_urls_are_refused_without_credentials() {
        for text in [
            "ftp://host/x",
            "s3:///nobucket",
            "redis://:pw1234@/x",
            "file://host/x",
        ] {
            let err = RemoteUrl::parse(text).err().unwrap().to_string();
            assert!(!err.contains("pw1234"), "{err}");
        }
        let err = RemoteUrl::parse("redis://127.0.0.1:1/notanumber")
            .err()
            .unwrap();
        assert!(err.to_string().contains("database number"), "{err}");
    }
}
