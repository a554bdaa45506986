//! The connection to one REAPI server: one HTTP/2 channel (TLS and a token
//! where configured) shared by the CAS, Action Cache, ByteStream and
//! Capabilities clients, and every call bounded in time and retried.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use bazel_remote_apis::google::bytestream::byte_stream_client::ByteStreamClient;
use re::action_cache_client::ActionCacheClient;
use re::capabilities_client::CapabilitiesClient;
use re::content_addressable_storage_client::ContentAddressableStorageClient;
use tonic::Code;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::settings::ReapiSettings;

/// The most bytes one message from the server may hold besides a batch:
/// capabilities, an ActionResult, a ByteStream chunk.
const MAX_MESSAGE: usize = 4 << 20;

/// Adds the token to every request.
#[derive(Clone)]
pub struct Auth(Option<(AsciiMetadataKey, AsciiMetadataValue)>);

impl tonic::service::Interceptor for Auth {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some((key, value)) = &self.0 {
            request.metadata_mut().insert(key.clone(), value.clone());
        }
        Ok(request)
    }
}

type Service = InterceptedService<Channel, Auth>;

/// The clients of one server, and what bounds their calls.
#[derive(Clone)]
pub struct Client {
    pub cas: ContentAddressableStorageClient<Service>,
    pub ac: ActionCacheClient<Service>,
    pub bytestream: ByteStreamClient<Service>,
    pub capabilities: CapabilitiesClient<Service>,
    pub instance: String,
    /// How long one call (or one message of a stream) may take.
    pub timeout: Duration,
    /// How many times a call that failed for a passing reason is tried again.
    pub retries: usize,
    /// Requests made, bytes moved.
    pub counts: Arc<Counts>,
}

/// What the calls of one operation did.
#[derive(Debug, Default)]
pub struct Counts {
    pub requests: AtomicU64,
    pub bytes_down: AtomicU64,
    pub bytes_up: AtomicU64,
}

impl Counts {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Why a call failed.
#[derive(Debug)]
pub enum Failure {
    /// The server answered with an error status.
    Status(tonic::Status),
    /// No answer within the timeout.
    Timeout,
}

impl Failure {
    /// True when the server said it does not have the thing asked for.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Failure::Status(s) if s.code() == Code::NotFound)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Status(status) => {
                let code = format!("{:?}", status.code());
                let message = status.message();
                if message.is_empty() {
                    write!(f, "{}", screaming(&code))
                } else {
                    write!(f, "{} ({message})", screaming(&code))
                }
            }
            Failure::Timeout => f.write_str("no answer in time"),
        }
    }
}

/// `ResourceExhausted` as gRPC's documents spell it: `RESOURCE_EXHAUSTED`.
fn screaming(code: &str) -> String {
    let mut out = String::new();
    for (i, c) in code.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Whether a status is worth a retry: the server is busy, restarting or
/// was too slow this once.
fn passing(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::ResourceExhausted | Code::DeadlineExceeded | Code::Aborted
    )
}

impl Client {
    /// A client for the server `settings` names; nothing is sent yet. Must
    /// run inside the runtime (the channel's worker is spawned on it).
    pub fn new(
        settings: &ReapiSettings,
        timeout: Duration,
        retries: usize,
        batch_limit: usize,
    ) -> Result<Client, String> {
        let mut endpoint = Endpoint::from_shared(settings.endpoint.clone())
            .map_err(|e| format!("bad endpoint: {e}"))?
            .connect_timeout(timeout)
            .tcp_nodelay(true)
            // A connection that stops answering is dropped, even in the
            // middle of a long transfer.
            .http2_keep_alive_interval(timeout)
            .keep_alive_timeout(timeout)
            // Large windows: a 4 MiB batch in one round trip, not sixty.
            .initial_stream_window_size(16 << 20)
            .initial_connection_window_size(64 << 20)
            .user_agent(concat!("cleave/", env!("CARGO_PKG_VERSION")))
            .map_err(|e| format!("bad user agent: {e}"))?;
        if settings.tls {
            let mut tls = ClientTlsConfig::new()
                .domain_name(settings.host.clone())
                .timeout(timeout);
            tls = match &settings.ca_file {
                Some(path) => tls.ca_certificate(Certificate::from_pem(read_pem(path)?)),
                None => tls.with_native_roots(),
            };
            if let Some((cert, key)) = &settings.identity {
                tls = tls.identity(Identity::from_pem(read_pem(cert)?, read_pem(key)?));
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| format!("TLS settings: {e}"))?;
        }
        let auth = match &settings.token {
            Some((name, value)) => {
                let key = AsciiMetadataKey::from_bytes(name.as_bytes())
                    .map_err(|_| format!("`{name}` cannot be a header name"))?;
                let mut value = AsciiMetadataValue::try_from(value.as_str())
                    .map_err(|_| "the token holds characters a header cannot".to_string())?;
                value.set_sensitive(true);
                Auth(Some((key, value)))
            }
            None => Auth(None),
        };
        let channel = endpoint.connect_lazy();
        let service = || InterceptedService::new(channel.clone(), auth.clone());
        Ok(Client {
            cas: ContentAddressableStorageClient::new(service())
                .max_decoding_message_size(batch_limit + MAX_MESSAGE)
                .max_encoding_message_size(batch_limit + MAX_MESSAGE),
            ac: ActionCacheClient::new(service())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            bytestream: ByteStreamClient::new(service())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            capabilities: CapabilitiesClient::new(service()).max_decoding_message_size(MAX_MESSAGE),
            instance: settings.instance.clone(),
            timeout,
            retries,
            counts: Arc::new(Counts::default()),
        })
    }

    /// Runs `call` until it succeeds, fails for good, or has been tried
    /// `retries` more times, each try bounded by the timeout, with backoff
    /// (100 ms doubling up to 2 s) in between.
    pub async fn call<T, F, Fut>(&self, mut call: F) -> Result<T, Failure>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut delay = Duration::from_millis(100);
        let mut tries = 0;
        loop {
            tries += 1;
            Counts::add(&self.counts.requests, 1);
            let failure = match tokio::time::timeout(self.timeout, call()).await {
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Ok(Err(status)) if passing(status.code()) => Failure::Status(status),
                Ok(Err(status)) => return Err(Failure::Status(status)),
                Err(_) => Failure::Timeout,
            };
            if tries > self.retries {
                return Err(failure);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
}

/// A PEM file named by a variable, read whole (they are small).
fn read_pem(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::io::Read::read_to_end(&mut std::io::Read::take(file, 1 << 20), &mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_as_grpc_names_them() {
        let failure = Failure::Status(tonic::Status::resource_exhausted("quota"));
        assert_eq!(failure.to_string(), "RESOURCE_EXHAUSTED (quota)");
        assert_eq!(
            Failure::Status(tonic::Status::not_found("")).to_string(),
            "NOT_FOUND"
        );
        assert!(passing(Code::ResourceExhausted) && !passing(Code::PermissionDenied));
    }
}
