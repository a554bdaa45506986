//! What a tier talks to: a storage service through OpenDAL, or a shared
//! directory through cleave's own [`SharedDir`] (which never follows a link).
//! Both answer the four requests a tier makes, with reads bounded: an
//! object larger than its format allows is refused after at most that
//! many bytes, and packs are read as a stream, never whole.

use std::io::Read;

use futures::TryStreamExt;
use opendal::{ErrorKind as DalKind, Operator};

use crate::foreign::FileRange;
use crate::shared_dir::{SharedDir, SharedDirError};

/// A remote's storage.
#[derive(Clone)]
pub(super) enum Backend {
    /// A service through OpenDAL, with a handle for reading packs as
    /// streams from worker threads.
    Dal {
        op: Operator,
        blocking: opendal::blocking::Operator,
    },
    /// A shared directory.
    Dir(SharedDir),
}

/// Why a request gave nothing.
#[derive(Debug)]
pub(super) enum Failure {
    /// The remote failed to answer (down, refusing, stalled), or is not to
    /// be trusted (a link planted in a shared directory).
    Service(String),
    /// An object is larger than its format allows.
    TooLarge(String),
}

impl From<SharedDirError> for Failure {
    fn from(e: SharedDirError) -> Failure {
        match e {
            SharedDirError::TooLarge(what) => Failure::TooLarge(what),
            e => Failure::Service(chain(&e)),
        }
    }
}

/// An OpenDAL answer: `None` for an object that is not there (or shorter
/// than the range asked for).
fn dal<T>(result: opendal::Result<T>) -> Result<Option<T>, Failure> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if matches!(e.kind(), DalKind::NotFound | DalKind::RangeNotSatisfied) => Ok(None),
        Err(e) => Err(Failure::Service(e.to_string())),
    }
}

/// An error with its causes, as one line.
pub(super) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = cause.source();
    }
    text
}

/// Runs a shared directory's call on a blocking thread: its deadline is
/// the caller's, like any request's.
async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, SharedDirError> + Send + 'static,
) -> Result<T, Failure> {
    match tokio::task::spawn_blocking(call).await {
        Ok(result) => result.map_err(Failure::from),
        Err(e) => Err(Failure::Service(e.to_string())),
    }
}

impl Backend {
    /// The object at `path`, of at most `limit` bytes: `None` if it is not
    /// there, [`Failure::TooLarge`] after reading at most `limit + 1`
    /// bytes of a larger one.
    pub(super) async fn read(&self, path: String, limit: u64) -> Result<Option<Vec<u8>>, Failure> {
        match self {
            Backend::Dal { op, .. } => {
                let Some(reader) = dal(op.reader(&path).await)? else {
                    return Ok(None);
                };
                let Some(mut stream) = dal(reader.into_stream(..).await)? else {
                    return Ok(None);
                };
                let mut bytes = Vec::new();
                loop {
                    let buffer = match stream.try_next().await {
                        Ok(Some(buffer)) => buffer,
                        Ok(None) => break,
                        // Services that answer a missing object only when
                        // its body is asked for.
                        Err(e) => return dal(Err(e)).map(|_: Option<()>| None),
                    };
                    if (bytes.len() + buffer.len()) as u64 > limit {
                        return Err(Failure::TooLarge(format!(
                            "{path} is larger than {limit} bytes, the most it may have"
                        )));
                    }
                    for chunk in buffer {
                        bytes.extend_from_slice(&chunk);
                    }
                }
                Ok(Some(bytes))
            }
            Backend::Dir(dir) => {
                let dir = dir.clone();
                blocking(move || dir.read(&path, limit)).await
            }
        }
    }

    /// Whether an object is at `path`.
    pub(super) async fn exists(&self, path: String) -> Result<bool, Failure> {
        match self {
            Backend::Dal { op, .. } => Ok(dal(op.stat(&path).await)?.is_some()),
            Backend::Dir(dir) => {
                let dir = dir.clone();
                blocking(move || dir.exists(&path)).await
            }
        }
    }

    /// Writes an object whole.
    pub(super) async fn write(&self, path: String, bytes: Vec<u8>) -> Result<(), Failure> {
        match self {
            Backend::Dal { op, .. } => match op.write(&path, bytes).await {
                Ok(_) => Ok(()),
                Err(e) => Err(Failure::Service(e.to_string())),
            },
            Backend::Dir(dir) => {
                let dir = dir.clone();
                blocking(move || dir.write(&path, &bytes)).await
            }
        }
    }

    /// A stream of the bytes `start..end` of the object at `path`, for a
    /// worker thread (never a runtime's own): `None` if the object is not
    /// there. A stream shorter than the range ends early; the caller
    /// counts.
    pub(super) fn range(
        &self,
        path: &str,
        start: u64,
        end: u64,
    ) -> Result<Option<Box<dyn Read + Send>>, Failure> {
        match self {
            Backend::Dal { blocking, .. } => {
                let Some(reader) = dal(blocking.reader(path))? else {
                    return Ok(None);
                };
                let Some(read) = dal(reader.into_std_read(start..end))? else {
                    return Ok(None);
                };
                Ok(Some(Box::new(read)))
            }
            Backend::Dir(dir) => {
                let Some(file) = dir.open(path)? else {
                    return Ok(None);
                };
                Ok(Some(Box::new(FileRange::new(file, start, end))))
            }
        }
    }
}
