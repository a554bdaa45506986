//! A `grpc://` or `grpcs://` remote's settings: where the server is, which
//! instance, and the credentials, which come from the environment only
//! (never from the URL, which is printed and handed to compile calls).
//!
//! ```text
//! grpc://HOST:PORT[/INSTANCE]                  plain HTTP/2
//! grpcs://HOST[:PORT][/INSTANCE][?token_env=VAR&token_header=NAME]
//! ```
//!
//! | variable | what it holds |
//! |---|---|
//! | `CLEAVE_REMOTE_TOKEN` (or the one `token_env` names) | a token sent as `authorization: Bearer TOKEN`, or raw in the header `token_header` names |
//! | `CLEAVE_REMOTE_CA_FILE` | PEM certificates to trust instead of the system's roots |
//! | `CLEAVE_REMOTE_CLIENT_CERT`, `CLEAVE_REMOTE_CLIENT_KEY` | a PEM client certificate and key (mutual TLS) |

use std::collections::HashMap;
use std::path::PathBuf;

/// The variable a token is read from unless the URL names another.
pub const TOKEN_VAR: &str = "CLEAVE_REMOTE_TOKEN";
/// PEM certificates to trust (a private CA).
pub const CA_VAR: &str = "CLEAVE_REMOTE_CA_FILE";
/// A PEM client certificate, for mutual TLS.
pub const CERT_VAR: &str = "CLEAVE_REMOTE_CLIENT_CERT";
/// The PEM key of the client certificate.
pub const KEY_VAR: &str = "CLEAVE_REMOTE_CLIENT_KEY";

/// Path segments a REAPI instance name must not hold: the servers' resource
/// names use them.
const RESERVED: &[&str] = &[
    "blobs",
    "uploads",
    "actions",
    "actionResults",
    "operations",
    "capabilities",
    "compressed-blobs",
];

/// How to reach one REAPI server.
#[derive(Clone)]
pub struct ReapiSettings {
    /// `http://HOST:PORT` or `https://HOST:PORT`.
    pub endpoint: String,
    /// The host name TLS checks the certificate against.
    pub host: String,
    /// Whether to speak TLS.
    pub tls: bool,
    /// The instance name (the URL's path, without its slashes).
    pub instance: String,
    /// The header carrying the token, and its value.
    pub token: Option<(String, String)>,
    /// PEM certificates to trust instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key, both PEM files.
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl ReapiSettings {
    /// Reads the settings of `url` (scheme `grpc` or `grpcs`), with
    /// credentials through `env`. The error says what is wrong, without
    /// any credential.
    pub fn parse(
        url: &url::Url,
        query: &HashMap<String, String>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ReapiSettings, String> {
        let tls = url.scheme() == "grpcs";
        let host = url.host_str().unwrap_or_default().to_string();
        if host.is_empty() {
            return Err("a REAPI URL names its server: grpc://HOST:PORT/INSTANCE".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "a REAPI URL holds no credentials: a token goes in ${TOKEN_VAR} (or the variable `token_env` names)"
            ));
        }
        for name in query.keys() {
            if name != "token_env" && name != "token_header" {
                return Err(format!(
                    "`{name}` is not a REAPI URL setting (token_env, token_header)"
                ));
            }
        }
        let port = match (url.port(), tls) {
            (Some(port), _) => port,
            (None, true) => 443,
            (None, false) => return Err("a grpc:// URL names its port: grpc://HOST:PORT".into()),
        };
        let instance = url.path().trim_matches('/').to_string();
        if instance
            .split('/')
            .any(|s| (s.is_empty() && !instance.is_empty()) || RESERVED.contains(&s) || s == "..")
        {
            return Err(format!(
                "`{instance}` cannot be a REAPI instance name (empty segments and {} are reserved)",
                RESERVED.join(", ")
            ));
        }
        let token_var = query
            .get("token_env")
            .map_or(TOKEN_VAR, String::as_str)
            .to_string();
        let header = query
            .get("token_header")
            .map_or("authorization", String::as_str)
            .to_ascii_lowercase();
        if header.is_empty()
            || !header
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!("`{header}` cannot be a header name"));
        }
        let token = env(&token_var).map(|token| {
            let value = if header == "authorization" {
                format!("Bearer {token}")
            } else {
                token
            };
            (header, value)
        });
        let identity = match (env(CERT_VAR), env(KEY_VAR)) {
            (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
            (None, None) => None,
            _ => return Err(format!("mutual TLS needs both ${CERT_VAR} and ${KEY_VAR}")),
        };
        let ca_file = env(CA_VAR).map(PathBuf::from);
        if !tls && (identity.is_some() || ca_file.is_some()) {
            return Err(format!(
                "${CA_VAR} and the client certificate are for grpcs:// remotes"
            ));
        }
        let scheme = if tls { "https" } else { "http" };
        let shown_host = match url.host() {
            Some(url::Host::Ipv6(addr)) => format!("[{addr}]"),
            _ => host.clone(),
        };
        Ok(ReapiSettings {
            endpoint: format!("{scheme}://{shown_host}:{port}"),
            host,
            tls,
            instance,
            token,
            ca_file,
            identity,
        })
    }

    /// The token as sent, which must never be printed.
    pub fn secrets(&self) -> Vec<String> {
        match &self.token {
            Some((_, value)) => {
                let bare = value.strip_prefix("Bearer ").unwrap_or(value).to_string();
                vec![value.clone(), bare]
            }
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<ReapiSettings, String> {
        let url = url::Url::parse(text).unwrap();
        let query = url.query_pairs().into_owned().collect();
        ReapiSettings::parse(&url, &query, env)
    }

    #[test]
    fn the_instance_port_and_token_are_read() {
        let env = |name: &str| (name == "MY_TOKEN").then(|| "s3cr3t-token".to_string());
        let s = parse("grpcs://cache.example:8980/a/b?token_env=MY_TOKEN", &env).unwrap();
        assert_eq!(s.endpoint, "https://cache.example:8980");
        assert_eq!(s.instance, "a/b");
        assert_eq!(
            s.token,
            Some(("authorization".into(), "Bearer s3cr3t-token".into()))
        );
        assert!(s.secrets().contains(&"s3cr3t-token".to_string()));
        let s = parse("grpcs://h?token_env=MY_TOKEN&token_header=X-Api-Key", &env).unwrap();
        assert_eq!(s.endpoint, "https://h:443");
        assert_eq!(s.instance, "");
        assert_eq!(s.token, Some(("x-api-key".into(), "s3cr3t-token".into())));
        let s = parse("grpc://127.0.0.1:9092", &|_| None).unwrap();
        assert_eq!((s.tls, s.token.is_none()), (false, true));
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        let none = |_: &str| None;
        for (text, says) in [
            ("grpc://127.0.0.1", "port"),
            ("grpc://u:pw@127.0.0.1:1", "no credentials"),
            ("grpc://127.0.0.1:1/main/blobs", "instance"),
            ("grpc://127.0.0.1:1/a//b", "instance"),
            ("grpc://127.0.0.1:1?ca=x", "not a REAPI URL setting"),
        ] {
            let err = parse(text, &none).err().unwrap();
            assert!(err.contains(says), "{text}: {err}");
            assert!(!err.contains("pw"), "{err}");
        }
        let cert_only = |name: &str| (name == CERT_VAR).then(|| "/c.pem".to_string());
        let err = parse("grpcs://h:1", &cert_only).err().unwrap();
        assert!(err.contains(KEY_VAR), "{err}");
    }
}
