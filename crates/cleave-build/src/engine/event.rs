//! What a build reports while it runs, for the caller's progress display.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cleave_cache::Digest;

use super::BuiltPackage;
use crate::environment::EnvKind;
use crate::error::BuildError;

/// Something the build did, for the caller's progress display.
#[derive(Debug)]
pub enum Event<'a> {
    /// A staging build or package output starts.
    Started {
        /// `staging` or `package`.
        kind: &'static str,
        /// Its name (and build string for packages).
        what: &'a str,
    },
    /// An environment is being solved (its repodata read first).
    Solving {
        /// The output or staging build.
        what: &'a str,
        /// Build, host or test.
        kind: EnvKind,
    },
    /// An environment was solved.
    Solved {
        /// The output or staging build.
        what: &'a str,
        /// Build, host or test.
        kind: EnvKind,
        /// How many packages it holds.
        packages: usize,
        /// How long reading repodata and solving took.
        duration: Duration,
    },
    /// An environment is being installed.
    Installing {
        /// The output or staging build.
        what: &'a str,
        /// Build, host or test.
        kind: EnvKind,
        /// How many packages it holds.
        packages: usize,
    },
    /// An environment was solved and installed.
    Environment {
        /// Build, host or test.
        kind: EnvKind,
        /// How many packages it holds.
        packages: usize,
    },
    /// The staging files were put back for an inheriting output.
    Restored {
        /// The staging name.
        from: &'a str,
        /// Bytes of file contents written.
        bytes: u64,
    },
    /// The staging build is in the cache; its script does not run.
    StagingCached {
        /// The staging name.
        staging: &'a str,
        /// Its key.
        key: &'a Digest,
        /// How long the build that made the entry took, when it says.
        saved: Option<Duration>,
    },
    /// The staging build ran and its result is stored.
    StagingStored {
        /// The staging name.
        staging: &'a str,
        /// Its key.
        key: &'a Digest,
        /// Files, links and directories kept.
        items: usize,
        /// Bytes of file contents.
        bytes: u64,
        /// How long the build took (environments, sources, script).
        duration: Duration,
    },
    /// Another process builds the same staging build or package; this one
    /// waits.
    Waiting {
        /// What is being built (`staging `x``, `package x-1.0-h..._0`).
        what: &'a str,
        /// The lock file.
        lock: &'a Path,
    },
    /// A package output is in the cache: its archive is put into the output
    /// channel as it was built, and nothing runs.
    Reused {
        /// `name-version-build`.
        what: &'a str,
        /// Its key.
        key: &'a Digest,
        /// How long the build that made the entry took, when it says.
        saved: Option<Duration>,
    },
    /// A package output was built and its archive stored in the cache.
    PackageStored {
        /// `name-version-build`.
        what: &'a str,
        /// Its key.
        key: &'a Digest,
    },
    /// An entry missing locally was found in a remote store and taken
    /// into the local one.
    Fetched {
        /// `staging `x`` or `name-version-build`.
        what: &'a str,
        /// The remote, without credentials.
        remote: &'a str,
        /// Bytes of file contents.
        bytes: u64,
    },
    /// Something the user should know that does not stop the build.
    Warning(&'a str),
    /// Staging files no package took.
    Unclaimed {
        /// The staging name.
        staging: &'a str,
        /// The files, relative to the prefix.
        files: &'a [&'a PathBuf],
    },
    /// Staging files more than one package took.
    Overlapping {
        /// The staging name.
        staging: &'a str,
        /// Each file with the packages that took it.
        files: &'a [(&'a PathBuf, &'a Vec<String>)],
    },
    /// Old staging entries were evicted to keep the cache under its cap.
    Evicted {
        /// How many entries.
        entries: usize,
        /// Bytes freed.
        bytes: u64,
    },
    /// A build script starts.
    ScriptStarted {
        /// The output or staging build.
        what: &'a str,
        /// The build directory: the script (`build.sh`), the variables it
        /// sees (`build_env.sh`) and its log (`build.log`).
        dir: &'a Path,
    },
    /// A build script ended.
    ScriptFinished {
        /// The output or staging build.
        what: &'a str,
        /// How long it ran.
        duration: Duration,
        /// Whether it exited with 0.
        success: bool,
    },
    /// A line of script output.
    Line(&'a str),
    /// A package was written and indexed.
    Packaged(&'a BuiltPackage),
    /// A package's tests start.
    Testing {
        /// The package.
        what: &'a str,
        /// How many tests it has.
        count: usize,
    },
    /// A staging build or package output failed; with `keep_going` the
    /// build goes on with what does not need it.
    Failed {
        /// `name-version-build`, `staging `name`` or the recipe file.
        what: &'a str,
        /// Why.
        error: BuildError,
    },
    /// A package output is not built: its package is in a channel already.
    Skipped {
        /// `name-version-build`.
        what: &'a str,
        /// The channel that has it.
        channel: &'a str,
    },
    /// A package output or staging build is not built because something
    /// it needs failed.
    NotBuilt {
        /// `name-version-build` or `staging `name``.
        what: &'a str,
        /// The failed output it needs.
        because: &'a str,
    },
    /// One test of a package passed.
    TestPassed {
        /// `test N of NAME`.
        test: &'a str,
    },
    /// A package's tests passed.
    Tested {
        /// The package.
        what: &'a str,
        /// How many tests ran.
        count: usize,
    },
}
