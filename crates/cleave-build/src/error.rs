//! What can go wrong while building, with the paths and names needed to act.

use std::path::PathBuf;

/// A failed build step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A filesystem operation failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A build or test script exited with an error.
    #[error("{what} failed{}", code.map(|c| format!(" with exit code {c}")).unwrap_or_else(|| " (killed by a signal)".into()))]
    ScriptFailed {
        /// Which script: `the build script of NAME`, `the test script of
        /// test N of NAME`.
        what: String,
        /// The exit code, `None` when killed by a signal.
        code: Option<i32>,
        /// The last lines of output.
        tail: String,
        /// The full log.
        log: PathBuf,
        /// The work dir, kept for inspection.
        work_dir: PathBuf,
    },
    /// A `path:` source does not exist.
    #[error("source path {} of {what} does not exist", path.display())]
    MissingSource {
        /// The output whose source it is.
        what: String,
        /// The resolved path.
        path: PathBuf,
    },
    /// A source could not be put into the work dir: a path that leaves it,
    /// a write through a link, a special file to copy.
    #[error("{what}: cannot place source `{from}` in the work dir")]
    SourceWrite {
        /// The output whose source it is.
        what: String,
        /// The source: its path, first url or repository.
        from: String,
        /// What went wrong.
        #[source]
        source: Box<crate::fs::confined::WriteError>,
    },
    /// A source archive could not be unpacked.
    #[error("{what}: cannot unpack {}", file.display())]
    Archive {
        /// The output whose source it is.
        what: String,
        /// The archive.
        file: PathBuf,
        /// What went wrong.
        #[source]
        source: Box<crate::source::archive::ArchiveError>,
    },
    /// A patch names a file that is, or lies below, a symlink.
    #[error("{what}: patch {} would write through a link", patch.display())]
    Patch {
        /// The output whose source it is.
        what: String,
        /// The patch file.
        patch: PathBuf,
        /// The file and the link.
        #[source]
        source: Box<crate::fs::confined::WriteError>,
    },
    /// A staging or package name cannot name a build directory.
    #[error("{what}")]
    UnsafeName {
        /// The output or staging build.
        what: String,
        /// The name and why.
        #[source]
        source: crate::layout::UnsafeName,
    },
    /// A FIFO, socket or device among a build's new `$PREFIX` files.
    #[error(
        "$PREFIX/{} is a {kind}; a package holds only regular files, symlinks and directories (remove it at the end of the script)",
        path.display()
    )]
    SpecialFile {
        /// The file, relative to the prefix.
        path: PathBuf,
        /// `FIFO`, `socket`, `block device` or `character device`.
        kind: &'static str,
    },
    /// A url source without a digest cannot be verified.
    #[error("{what}: a url source needs a `sha256` (or `md5`) to be verified")]
    UnverifiedSource {
        /// The output whose source it is.
        what: String,
    },
    /// A path source names a digest but is a directory, which has none.
    #[error("{what}: `{path}` is a directory; `sha256` and `md5` apply to a file source")]
    DigestOfDirectory {
        /// The output whose source it is.
        what: String,
        /// The directory.
        path: PathBuf,
    },
    /// A source does not have the digest the recipe names.
    #[error("checksum mismatch for {url}\n  expected: {expected}\n  actual:   {actual}")]
    DigestMismatch {
        /// Where the data came from.
        url: String,
        /// The recipe's digest.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// No mirror of a url source could be fetched.
    #[error("{what}: cannot download the source:\n  {}", reasons.join("\n  "))]
    Download {
        /// The output whose source it is.
        what: String,
        /// One line per url tried.
        reasons: Vec<String>,
    },
    /// `git` or `patch` failed on a source.
    #[error("{what}: {step} failed:\n{detail}")]
    SourceTool {
        /// The output whose source it is.
        what: String,
        /// The command that failed.
        step: String,
        /// Its output.
        detail: String,
    },
    /// A git checkout is not at the commit the recipe expects.
    #[error(
        "{what}: git source {repo} checked out commit {actual}, but the recipe's `expected_commit` is {expected}"
    )]
    UnexpectedCommit {
        /// The output whose source it is.
        what: String,
        /// The repository.
        repo: String,
        /// `expected_commit`.
        expected: String,
        /// `HEAD` after the checkout.
        actual: String,
    },
    /// A glob in the recipe does not compile (the recipe checks this; kept
    /// for callers that build a plan by hand).
    #[error("invalid glob `{glob}`")]
    Glob {
        /// The pattern.
        glob: String,
        /// The parser's error.
        #[source]
        source: globset::Error,
    },
    /// A `post_process` regex does not compile (the recipe checks this;
    /// kept for callers that build a plan by hand).
    #[error("invalid regex `{regex}`")]
    Regex {
        /// The pattern.
        regex: String,
        /// The parser's error.
        #[source]
        source: regex::Error,
    },
    /// A package's metadata breaks a rule of the package format.
    #[error("{what}: {reason}")]
    InvalidMetadata {
        /// The output.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A package's files could not be laid out for its archive.
    #[error("{what}: cannot lay out the package's files")]
    PackageFiles {
        /// The package.
        what: String,
        /// What went wrong.
        #[source]
        source: Box<crate::fs::confined::WriteError>,
    },
    /// A binary of a package cannot get the RPATH its package needs.
    #[error("{what}: a binary cannot get the RPATH the recipe asks for")]
    Relink {
        /// The package.
        what: String,
        /// Which file, and why.
        #[source]
        source: Box<crate::package::relink::RelinkError>,
    },
    /// The package archive could not be written.
    #[error("cannot write package {}", path.display())]
    WritePackage {
        /// The archive being written.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A package could not be put into, or listed in, the output channel.
    #[error(transparent)]
    OutputChannel(#[from] cleave_channel::ChannelError),
    /// The tests a package file stores cannot be read.
    #[error(transparent)]
    StoredTests(#[from] crate::check::package_tests::stored::StoredError),
    /// A channel could not be read.
    #[error("cannot read channel `{channel}`: {reason}")]
    Channel {
        /// The channel as given.
        channel: String,
        /// The cause.
        reason: String,
    },
    /// No set of packages satisfies the requirements.
    #[error("cannot solve the {env} environment of {what}:\n{reason}")]
    Solve {
        /// The output.
        what: String,
        /// `build` or `host`.
        env: &'static str,
        /// The solver's explanation.
        reason: String,
    },
    /// Installing solved packages failed.
    #[error("cannot install the {env} environment of {what}: {reason}")]
    Install {
        /// The output.
        what: String,
        /// `build` or `host`.
        env: &'static str,
        /// The cause.
        reason: String,
    },
    /// `pin_compatible` names a package that is not in the host environment.
    #[error("{what}: pin_compatible(`{name}`) needs `{name}` in the host requirements")]
    PinCompatible {
        /// The output.
        what: String,
        /// The package to pin.
        name: String,
    },
    /// A template left in a script for the build could not be filled in.
    #[error("{what}: the script's templates")]
    Template {
        /// The output or staging build.
        what: String,
        /// What failed.
        #[source]
        source: cleave_recipe::build_time::FillError,
    },
    /// The recipe asks for something this engine does not do.
    #[error("{what}: {feature} is not supported")]
    Unsupported {
        /// The output.
        what: String,
        /// What it asked for.
        feature: String,
    },
    /// A test of a built package failed.
    #[error("{what} failed:\n  {}", problems.join("\n  "))]
    TestFailed {
        /// The package and test.
        what: String,
        /// What is wrong.
        problems: Vec<String>,
    },
    /// A package's tests failed: it was kept out of the output channel.
    #[error("the tests of {what} failed; the package is not in the channel, it is at {}", path.display())]
    Broken {
        /// The package.
        what: String,
        /// Where the package is now (`<output>/broken/<file>`).
        path: PathBuf,
        /// The failure.
        #[source]
        source: Box<BuildError>,
    },
    /// Activation scripts of an environment failed.
    #[error("cannot activate the environment {}: {reason}", prefix.display())]
    Activation {
        /// The environment.
        prefix: PathBuf,
        /// The cause.
        reason: String,
    },
    /// A python package's files could not be prepared.
    #[error("{what}: python packaging")]
    Python {
        /// The output.
        what: String,
        /// What failed.
        #[source]
        source: crate::package::python::PythonError,
    },
    /// An output inherits a staging cache that is not in the plan.
    #[error("{what} inherits staging `{from}`, which is not in the rendered recipe")]
    MissingStaging {
        /// The output.
        what: String,
        /// The staging name.
        from: String,
    },
    /// The license files of an output could not be collected.
    #[error("license files of {what}")]
    License {
        /// The output.
        what: String,
        /// What is wrong.
        #[source]
        source: crate::package::licenses::LicenseError,
    },
    /// The linking checks of a package failed or found what the recipe
    /// makes an error.
    #[error("linking check of {what}")]
    Linking {
        /// The package.
        what: String,
        /// What is wrong.
        #[source]
        source: crate::check::linking::LinkingError,
    },
    /// The files of a staging build could not be put into the build of an
    /// output that inherits it: something in the output's directories is
    /// in the way.
    #[error("cannot put the files of staging `{staging}` into the build of {what}")]
    Restore {
        /// The staging name.
        staging: String,
        /// The output.
        what: String,
        /// What went wrong, naming the path.
        #[source]
        source: Box<cleave_cache::CacheError>,
    },
    /// The build cache failed (not a damaged entry: those are rebuilt).
    #[error("build cache")]
    Cache(#[from] cleave_cache::CacheError),
    /// Files of a staging build that no output takes, with
    /// `--error-unclaimed-files`.
    #[error("{count} file(s) of staging `{staging}` are in no package:\n  {}", files.join("\n  "))]
    Unclaimed {
        /// The staging name.
        staging: String,
        /// How many files.
        count: usize,
        /// The first of them.
        files: Vec<String>,
    },
    /// Files of a staging build that two or more outputs take, with
    /// `--error-overlapping-files`.
    #[error("{count} file(s) of staging `{staging}` are in more than one package:\n  {}", files.join("\n  "))]
    Overlapping {
        /// The staging name.
        staging: String,
        /// How many files.
        count: usize,
        /// The first of them, each with the packages taking it.
        files: Vec<String>,
    },
}

impl BuildError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuildError {
        let context = context.into();
        move |source| BuildError::Io { context, source }
    }

    pub(crate) fn license(
        what: &str,
    ) -> impl FnOnce(crate::package::licenses::LicenseError) -> BuildError + '_ {
        move |source| BuildError::License {
            what: what.to_string(),
            source,
        }
    }
}
