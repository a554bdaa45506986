//! A quetz server for the publishing tests: a deployment in a temporary
//! directory (sqlite, local package store) with an owner's API key made by
//! `tests/publish/quetz_setup.py`, started on 127.0.0.1 on a free port and
//! stopped by its PID when dropped. `scripts/prerequisites --with-oracles`
//! installs quetz-server into its own environment
//! (`$CLEAVE_QUETZ`, default `~/.cache/cleave-quetz`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::repo;

/// A running quetz server.
pub struct Quetz {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// An API key of a user who may create channels and upload.
    pub key: String,
    _dir: tempfile::TempDir,
}

impl Drop for Quetz {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The quetz-server environment.
fn environment() -> PathBuf {
    std::env::var_os("CLEAVE_QUETZ")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/cleave-quetz")
        })
}

impl Quetz {
    /// A fresh deployment, started.
    pub fn start() -> Quetz {
        let env = environment();
        let python = env.join("bin/python");
        assert!(
            python.is_file(),
            "no quetz-server environment at {}; `scripts/prerequisites --with-oracles` makes it",
            env.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let deployment = dir.path().join("quetz");
        let setup = Command::new(&python)
            .arg(repo().join("tests/publish/quetz_setup.py"))
            .arg(&deployment)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(
            setup.status.success(),
            "quetz_setup.py failed:\n{}",
            String::from_utf8_lossy(&setup.stderr)
        );
        let key = String::from_utf8_lossy(&setup.stdout).trim().to_string();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env.join("bin/quetz"))
            .arg("start")
            .arg(&deployment)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--no-supervisor", "--log-level", "warning"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start quetz");
        let mut quetz = Quetz {
            child,
            port,
            key,
            _dir: dir,
        };
        let started = Instant::now();
        while quetz.request("GET", "/api/channels", "").is_none() {
            if let Ok(Some(status)) = quetz.child.try_wait() {
                panic!("quetz exited at start: {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "quetz did not answer on {port}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        quetz
    }

    /// Creates a public channel through the REST API.
    pub fn create_channel(&self, name: &str) {
        let body = format!(r#"{{"name": "{name}", "private": false}}"#);
        let answer = self
            .request("POST", "/api/channels", &body)
            .expect("quetz answers");
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    }

    /// The URL clients read the channel from.
    pub fn channel_url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/get/{name}", self.port)
    }

    /// One HTTP/1.1 request with the API key; the whole answer, or `None`
    /// when nothing listens yet.
    fn request(&self, method: &str, path: &str, body: &str) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nX-API-Key: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            self.key,
            body.len()
        )
        .ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        (!answer.is_empty()).then_some(answer)
    }
}
