//! Real storage services for the tests, each started on 127.0.0.1 on a free
//! port and stopped by its PID when dropped: an S3 server (moto), Redis, a
//! WebDAV server (wsgidav), and a listener that accepts and never answers.
//! `scripts/prerequisites --with-oracles` installs them.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
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
