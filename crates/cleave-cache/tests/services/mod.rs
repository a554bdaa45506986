//! Real storage services for the tests, each started on 127.0.0.1 on a free
//! port and stopped by its PID when dropped: an S3 server (moto), Redis, a
//! WebDAV server (wsgidav), a REAPI server (BuildGrid), and a listener that
//! accepts and never answers. `scripts/prerequisites --with-oracles`
//! installs them.
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
    let child = Command::new(program)
        .args(args)
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
