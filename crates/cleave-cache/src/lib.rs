//! The content-addressed store behind cleave's staging cache.
//!
//! It knows nothing about conda. A caller names the inputs of a build
//! ([`Inputs`]), gets a [`Digest`] key, and either restores an entry
//! under that key or runs the build and captures its result:
//!
//! - [`fingerprint`]: digests of source trees, with an mtime/size/inode
//!   fast path that never trusts a file newer than its last hashing;
//! - [`filter`]: include/exclude globs that narrow a walked tree;
//! - [`key`]: named inputs to one key, and the difference between two
//!   input sets (why two builds missed each other);
//! - [`store`]: blobs deduplicated by BLAKE3, atomic entries, capture,
//!   verified restore with path relocation, verify and LRU gc;
//! - [`manifest`]: an entry's items, checked before anything is written;
//! - [`lock`]: process locks released by the kernel on exit;
//! - [`progress`]: the progress of restores and transfers, for a caller's
//!   display (this crate draws nothing);
//! - [`remote`]: remote stores behind the local one, through OpenDAL;
//! - [`helper`]: cache helpers, third-party tiers run as executables, and
//!   [`portable`], the entry format they exchange;
//! - [`foreign`]: every read of data from outside (a helper, a remote, a
//!   shared directory) bounded in size, of regular files only, and what
//!   of it is printed escaped.

pub mod digest;
mod error;
pub mod filter;
pub mod fingerprint;
pub mod foreign;
pub mod helper;
pub mod key;
pub mod lock;
pub mod manifest;
pub mod portable;
pub mod progress;
mod relocate;
pub mod remote;
mod shared_dir;
pub mod store;

pub use digest::Digest;
pub use error::{CacheError, ErrorKind};
pub use key::Inputs;
pub use store::Store;
