//! The Rust side of the compile cache: cleave as cargo's `RUSTC_WRAPPER`,
//! with keys that hold no absolute paths, so that two checkouts of the
//! same code at different paths (and different target dirs and
//! `CARGO_HOME`s) share every cacheable compile, where sccache keys on
//! absolute paths and misses.
//!
//! - [`args`]: which rustc calls are served (one crate into `--out-dir`,
//!   with dep-info) and why the others pass through;
//! - [`key`]: the rustc, the roots (workspace, target dir, `CARGO_HOME`),
//!   the environment and the dep-info that make a key;
//! - [`macros`]: the proc-macros a compile may run, and which of them are
//!   known to be pure (a compile that may run another passes through);
//! - [`run`]: one call: the outputs restored from the store, or rustc run
//!   with the roots remapped (`--remap-path-prefix`) and its outputs
//!   stored.
//!
//! Entries sit in cleave's store beside the C and C++ ones, counted in
//! their own stats directory ([`stats_dir`]).

pub mod args;
pub mod key;
pub mod macros;
mod wrapper;

pub use wrapper::{KIND_MANIFEST, KIND_RESULT, is_rustc, run, run_other, stats_dir};
