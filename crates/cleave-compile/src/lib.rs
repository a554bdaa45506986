//! cleave's compiler-call cache for C and C++: a staging build that reruns
//! because one source file changed compiles that file, and takes every
//! other object from the cache, even in a new directory.
//!
//! It is ccache's design on cleave's content-addressed store
//! ([`cleave_cache::Store`]), so compile entries share its locking,
//! verification, eviction and tiers with staging builds and packages:
//!
//! - [`args`]: which calls are served (one source compiled to one object)
//!   and why the others pass straight through;
//! - [`roots`]: the directories (work dir, prefixes, a user's base dir)
//!   whose paths keys do not hold and objects name canonically;
//! - direct mode: a key from the compiler, the flags and the source's
//!   digest leads to a manifest of the files earlier compiles read; when
//!   all still have their digests (the mtime/size/inode fast path saves
//!   reading them), the result is restored without preprocessing;
//! - the preprocessor fallback: the normalised preprocessed text keys the
//!   result, and its line markers make the manifest;
//! - [`stats`]: hits, misses by reason, uncacheable calls by reason, and
//!   the time saved, counted safely by concurrent compiles;
//! - [`masquerade`]: the compiler-named links that put the wrapper in
//!   front of every compiler of a build;
//! - [`rust`]: the same for rustc, as cargo's `RUSTC_WRAPPER`;
//! - [`run`]: one call, as the `cleave` binary runs it when started as a
//!   compiler or as `cleave cc COMPILER ARGS...`.
//!
//! It knows nothing about conda: the build engine installs the wrappers
//! and names the roots through the variables of [`vars`].

pub mod args;
mod compiler;
pub mod entries;
mod error;
pub mod files;
pub mod masquerade;
mod preprocess;
pub mod remote;
pub mod roots;
pub mod rust;
pub mod stats;
pub mod vars;
mod wrapper;

pub use error::CompileError;
pub use wrapper::{Config, Invocation, run};
