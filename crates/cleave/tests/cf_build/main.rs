//! Build conformance with the peer, py-rattler-build 0.73: do real
//! conda-forge recipes build into the packages the tool they were written
//! for makes?
//!
//! The corpus is `../shared/cf-build` beside the repository: conda-forge
//! recipes whose sources are local tarballs, toolchain stand-ins
//! (`_toolchain/`, conda-forge's package names around this machine's
//! tools) and `ORDER`. The test copies the recipes into a temporary
//! directory (the sources' `@CF_SOURCES@` pointing at the corpus's
//! `_sources/`), has cleave build the stand-ins into a channel, then
//! builds every recipe in order with both tools against that channel and
//! the recipe's `ci_support_linux_64.yaml`: each tool's packages go into a
//! channel of its own that its later recipes solve from, except for
//! recipes marked `side` in `ORDER`.
//!
//! Neither tool runs the packages' tests: the stand-ins wrap this
//! machine's tools for builds, and a test that compiles (xz-static's)
//! finds no compiler through them in either tool, because conda-forge's
//! compiler activation looks in `$BUILD_PREFIX` when `CONDA_BUILD=1`,
//! which a test environment sets without a build prefix. What the
//! packages store of their tests is compared.
//!
//! Per package it compares `paths.json` (path, path type, permission
//! bits, prefix placeholder and its mode, `no_link`), `depends`,
//! `constrains`, `run_exports.json`, the other `index.json` and the
//! `about.json` fields, `info/licenses/`, `info/tests/` (and the tests
//! py-rattler-build's `Package` finds there) and `info/link.json`. It
//! prints a table and every difference, then fails when cleave does not
//! build a recipe the peer builds, when the two make different packages,
//! or on a difference that `tests/cf-build/expected-differences.toml` does
//! not list with a reason, and on a listed one that no longer differs. A
//! recipe the peer cannot build (it rejects the top-level `cache:`) is
//! built by cleave and reported, with nothing to compare it with.
//!
//! The peer's builds are kept under Cargo's test scratch directory, named
//! by their inputs (see [`runs::peer`]); cleave builds every time, the
//! recipes one after the other with one cache, beside the peer when the
//! peer has to build too.
//!
//! Without the corpus, the peer or conda-package-handling
//! (`scripts/prerequisites --with-oracles` installs both) the test says so
//! and passes, unless `CLEAVE_REQUIRE_CONFORMANCE=1` is set.

#[path = "../common/mod.rs"]
mod common;
mod compare;
mod corpus;
mod runs;

use std::path::Path;
use std::time::Instant;

use common::skip_unless_required;
use compare::{ChannelNames, Recipe, load_expected, report};

const REQUIRE: &str = "CLEAVE_REQUIRE_CONFORMANCE";
/// `peer.py` exits with this when py-rattler-build 0.73.0 or
/// conda-package-handling is missing.
const PEER_MISSING: i32 = 3;

/// The peer rejects the deprecated top-level `cache:` (and says so); any
/// other failure of the peer means it is broken here, and the comparison
/// would prove nothing.
fn has_top_level_cache(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("recipe.yaml"))
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("cache:"))
}

#[test]
#[allow(
    clippy::print_stderr,
    reason = "the table and the differences are the test's report"
)]
fn real_recipes_build_into_the_packages_the_peer_makes() {
    let started = Instant::now();
    let shared = corpus::shared();
    if !shared.join("ORDER").is_file() {
        skip_unless_required(
            REQUIRE,
            "the build corpus ../shared/cf-build is not beside the repository",
        );
        return;
    }
    if !runs::peer_available() {
        return;
    }
    let order = corpus::order(&shared);
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("recipes");
    corpus::copy(&shared, &order, &copy);
    let toolchain = corpus::toolchain(&shared);
    let toolchain_seconds = started.elapsed().as_secs_f64();

    let cleave_root = tmp.path().join("cleave");
    let ((peer_channels, peer_runs, peer_reused), (cleave_channels, cleave_runs)) =
        std::thread::scope(|s| {
            let peer = s.spawn(|| runs::peer(&shared, &order, &copy, &toolchain));
            let cleave = runs::cleave(&order, &copy, &toolchain, &cleave_root);
            (peer.join().expect("the peer's builds"), cleave)
        });
    let builds_seconds = started.elapsed().as_secs_f64() - toolchain_seconds;

    let files: Vec<&Path> = peer_runs
        .iter()
        .chain(&cleave_runs)
        .flat_map(|r| r.packages.iter().map(|p| p.as_path()))
        .collect();
    let summaries = runs::inspect(&files);
    let mut summaries = summaries.into_iter();
    let mut take = |runs: &[runs::Run]| -> Vec<Vec<serde_json::Value>> {
        runs.iter()
            .map(|r| summaries.by_ref().take(r.packages.len()).collect())
            .collect()
    };
    let peer_packages = take(&peer_runs);
    let cleave_packages = take(&cleave_runs);

    let recipes: Vec<Recipe<'_>> = order
        .iter()
        .enumerate()
        .map(|(i, r)| Recipe {
            name: &r.name,
            peer: &peer_runs[i],
            cleave: &cleave_runs[i],
            peer_packages: &peer_packages[i],
            cleave_packages: &cleave_packages[i],
        })
        .collect();

    // The comparison itself: the peer against itself, its packages in
    // another order, must be all equal.
    let peer_names = ChannelNames::new(&[
        (&peer_channels.toolchain, "<toolchain>"),
        (&peer_channels.out, "<output>"),
        (&peer_channels.side, "<side>"),
    ]);
    let cleave_names = ChannelNames::new(&[
        (&toolchain, "<toolchain>"),
        (&cleave_channels.out, "<output>"),
        (&cleave_channels.side, "<side>"),
    ]);
    for r in &recipes {
        let mut shuffled = r.peer_packages.to_vec();
        shuffled.reverse();
        let differences = compare::compare(
            r.name,
            r.peer_packages,
            &shuffled,
            (&peer_names, &peer_names),
        );
        assert!(
            differences.is_empty(),
            "the peer differs from itself: {differences:#?}"
        );
    }

    let expected = load_expected();
    let (text, mut failures) = report(&recipes, (&peer_names, &cleave_names), &expected);
    eprintln!(
        "cleave vs py-rattler-build 0.73: ../shared/cf-build, linux-64\n\n{text}\n\
         toolchain stand-ins {toolchain_seconds:.0}s, builds {builds_seconds:.0}s \
         (the peer {:.0}s{}, cleave {:.0}s), whole test {:.0}s",
        peer_runs.iter().map(|r| r.seconds).sum::<f64>(),
        if peer_reused {
            ", in an earlier run"
        } else {
            ""
        },
        cleave_runs.iter().map(|r| r.seconds).sum::<f64>(),
        started.elapsed().as_secs_f64(),
    );
    for (recipe, run) in order.iter().zip(&peer_runs) {
        if run.error.is_some() && !has_top_level_cache(&shared.join(&recipe.name)) {
            failures.push(format!("{}: the peer does not build it", recipe.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences from the peer (report above):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
