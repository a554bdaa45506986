//! `downstream` tests: does a package that depends on this one still
//! install with it?
//!
//! rattler-build fetches the downstream package and runs its tests against
//! the new build. cleave checks the part of that which needs nothing but
//! the channels: one environment holding the downstream spec and exactly
//! the package under test (name, version and build string) must solve,
//! from the package's own channel, the output channel and the other
//! channels, and install into a
//! fresh prefix. A failure names the solver's (or installer's)
//! explanation. The downstream package's own tests do not run.

use std::path::Path;

use super::{TestEnv, language::spec};
use crate::environment::{EnvKind, Environments};
use crate::error::BuildError;

/// Solves and installs `downstream` with the package under test into
/// `dir/test_env`.
pub(super) fn check(
    ctx: &TestEnv<'_>,
    envs: &Environments,
    downstream: &str,
    dir: &Path,
    what: &str,
) -> Result<(), BuildError> {
    let own = &ctx.subject.name;
    let specs = vec![ctx.subject.spec()?, spec(downstream)?];
    let failed = |problem: String| BuildError::TestFailed {
        what: format!("{what}: downstream {downstream}"),
        problems: vec![problem],
    };
    let records = match envs.solve_from(ctx.channels, &specs, ctx.target, what, EnvKind::Test) {
        Ok(records) => records,
        Err(BuildError::Solve { reason, .. }) => {
            return Err(failed(format!(
                "`{downstream}` cannot be installed together with this build of {own}:\n{reason}"
            )));
        }
        Err(other) => return Err(other),
    };
    match envs.install(
        &dir.join("test_env"),
        records,
        ctx.target,
        what,
        EnvKind::Test,
    ) {
        Ok(()) => Ok(()),
        Err(BuildError::Install { reason, .. }) => Err(failed(format!(
            "`{downstream}` solves with this build of {own} but does not install: {reason}"
        ))),
        Err(other) => Err(other),
    }
}
