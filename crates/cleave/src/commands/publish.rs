//! `cleave publish`: packages into a channel, indexed, in one step.

use std::path::PathBuf;

pub(crate) fn publish(_url: &str, _files: &[PathBuf], _force: bool) -> miette::Result<bool> {
    Ok(true)
}
