//! Conformance with the peer, py-rattler-build 0.73: does cleave read real
//! recipes as the tool they were written for does?
//!
//! Every recipe under `../shared/conformance/conda-forge/` beside the
//! repository is rendered for linux-64 with its `ci_support_linux_64.yaml`
//! (the variant file conda-forge CI passes) by the peer, through
//! `tests/conformance/peer.py`, and by `cleave render`. Per recipe the test
//! compares whether each renders, the package outputs as (name, version)
//! and their build strings, and per package output the `build`, `host`,
//! `run` and `run_constraints` requirements as sets of match specs, pinned
//! as the peer pins them and normalised by py-rattler (see `peer.py`).
//! Staging outputs are not packages and are not compared.
//!
//! It prints a table and every difference, then fails unless cleave renders
//! every recipe (also the one the peer rejects for its top-level `cache:`)
//! with the peer's package outputs, and build strings and requirements
//! agree except where `tests/conformance/expected-differences.toml` lists
//! the difference with a reason.
//!
//! Without the corpus or the peer (`scripts/prerequisites --with-oracles`
//! installs it) the test says so and passes, unless
//! `CLEAVE_REQUIRE_CONFORMANCE=1` is set.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

mod common;
use common::differences::{Difference, Expected, cell};
use common::{repo, skip_unless_required, stderr};

const REQUIRE: &str = "CLEAVE_REQUIRE_CONFORMANCE";
const SECTIONS: [&str; 4] = ["build", "host", "run", "run_constraints"];
/// What an expected difference may excuse.
const EXCUSABLE: [&str; 5] = ["build_string", "build", "host", "run", "run_constraints"];
/// `peer.py` exits with this when py-rattler or py-rattler-build 0.73.0 is missing.
const PEER_MISSING: i32 = 3;

/// One package output of a render.
#[derive(Debug, Clone, PartialEq)]
struct Package {
    name: String,
    version: String,
    build_string: String,
    /// Section (`build`, `host`, ...) to its requirements.
    requirements: BTreeMap<String, BTreeSet<String>>,
}

impl Package {
    fn label(&self) -> String {
        format!("{} {} {}", self.name, self.version, self.build_string)
    }
}

/// One tool's render of one recipe: its package outputs, or why it failed.
#[derive(Debug, Clone)]
struct Render {
    error: Option<String>,
    packages: Vec<Package>,
}

fn corpus() -> PathBuf {
    repo().join("../shared/conformance/conda-forge")
}

fn peer_script() -> PathBuf {
    repo().join("tests/conformance/peer.py")
}

/// The recipe directories of the corpus, sorted by name.
fn recipes(corpus: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpus)
        .expect("read the conformance corpus")
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.join("recipe.yaml").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn recipe_name(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

/// Runs `peer.py` with `args` and `input` on stdin; `None` when the peer is
/// not installed.
fn run_peer(args: &[&str], input: Option<&[u8]>) -> Option<Value> {
    let spawned = Command::new("python3")
        .arg(peer_script())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            skip_unless_required(REQUIRE, "there is no python3 to run the peer");
            return None;
        }
        spawned => spawned.expect("run python3"),
    };
    let mut stdin = child.stdin.take().unwrap();
    if let Some(input) = input {
        stdin.write_all(input).expect("write to peer.py");
    }
    drop(stdin);
    let output = child.wait_with_output().expect("wait for peer.py");
    if output.status.code() == Some(PEER_MISSING) {
        skip_unless_required(
            REQUIRE,
            &format!("the peer is not installed: {}", stderr(&output).trim()),
        );
        return None;
    }
    assert!(
        output.status.success(),
        "peer.py {args:?} failed:\n{}",
        stderr(&output)
    );
    Some(serde_json::from_slice(&output.stdout).expect("peer.py JSON"))
}

/// A requirement as text: a spec as it is, a pin object as a call with
/// every argument spelled out (the peer leaves absent bounds out, cleave
/// writes them as null).
fn requirement(value: &Value, normalized: &BTreeMap<String, String>) -> String {
    match value {
        Value::String(spec) => normalized.get(spec).unwrap_or(spec).clone(),
        Value::Object(map) if map.len() == 1 => {
            let (function, args) = map.iter().next().unwrap();
            let Some(args) = args.as_object() else {
                return value.to_string();
            };
            let text = |key: &str| match args.get(key) {
                None | Some(Value::Null) => "None".to_string(),
                Some(Value::String(s)) => format!("{s:?}"),
                Some(other) => other.to_string(),
            };
            // An exact pin has no bounds, whichever way they are written.
            let exact = args.get("exact").and_then(Value::as_bool).unwrap_or(false);
            let bound = |key: &str| if exact { "None".to_string() } else { text(key) };
            let mut call = format!(
                "{function}({}, lower_bound={}, upper_bound={}, exact={exact}",
                text("name"),
                bound("lower_bound"),
                bound("upper_bound"),
            );
            for (key, v) in args {
                if !["name", "lower_bound", "upper_bound", "exact"].contains(&key.as_str()) {
                    write!(call, ", {key}={v}").unwrap();
                }
            }
            call.push(')');
            call
        }
        other => other.to_string(),
    }
}

/// A package output from the peer's summary or from cleave's JSON render.
fn package(
    name: &Value,
    version: &Value,
    build_string: &Value,
    requirements: &Value,
    normalized: &BTreeMap<String, String>,
) -> Package {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let requirements = SECTIONS
        .iter()
        .map(|section| {
            let specs = requirements[section]
                .as_array()
                .map(|list| list.iter().map(|d| requirement(d, normalized)).collect())
                .unwrap_or_default();
            (section.to_string(), specs)
        })
        .collect();
    Package {
        name: text(name),
        version: text(version),
        build_string: text(build_string),
        requirements,
    }
}

/// The peer's renders, in the order of `dirs`; `None` without the peer.
fn peer_renders(dirs: &[PathBuf]) -> Option<Vec<Render>> {
    let mut args = vec!["render"];
    args.extend(dirs.iter().map(|d| d.to_str().unwrap()));
    let summary = run_peer(&args, None)?;
    let none = BTreeMap::new();
    let renders = summary
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| Render {
            error: r["error"].as_str().map(String::from),
            packages: r["packages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    package(
                        &p["name"],
                        &p["version"],
                        &p["build_string"],
                        &p["requirements"],
                        &none,
                    )
                })
                .collect(),
        })
        .collect::<Vec<_>>();
    assert_eq!(renders.len(), dirs.len());
    Some(renders)
}

/// What a recipe's own CI gives it besides a variant file. RAPIDS renders
/// libcudf from the root of a git checkout of cudf, where the recipe is
/// `conda/recipes/libcudf` and reads `python/libcudf/pyproject.toml` and
/// `git.head_rev(".")`, with versions in environment variables. The test
/// builds that checkout in a temporary directory, with made-up values.
struct CiEnvironment {
    recipe_path: &'static str,
    vars: &'static [(&'static str, &'static str)],
    files: &'static [(&'static str, &'static str)],
}

fn ci_environment(recipe: &str) -> Option<CiEnvironment> {
    (recipe == "rapidsai-cudf-libcudf").then_some(CiEnvironment {
        recipe_path: "conda/recipes/libcudf",
        vars: &[
            ("RAPIDS_PACKAGE_VERSION", "26.10.00a42"),
            ("RAPIDS_CUDA_VERSION", "12.9.1"),
            ("RAPIDS_DATETIME_STRING", "260807"),
            ("RAPIDS_CONDA_ARCH", "x86_64"),
            ("CMAKE_C_COMPILER_LAUNCHER", "sccache"),
            ("CMAKE_CUDA_COMPILER_LAUNCHER", "sccache"),
            ("CMAKE_CXX_COMPILER_LAUNCHER", "sccache"),
            ("CMAKE_GENERATOR", "Ninja"),
        ],
        files: &[(
            "python/libcudf/pyproject.toml",
            "[project]\nname = \"libcudf\"\nlicense = \"Apache-2.0\"\ndescription = \"cuDF core library\"\n\n[project.urls]\nHomepage = \"https://github.com/rapidsai/cudf\"\n",
        )],
    })
}

/// `cleave render` of one corpus recipe, as the peer is asked to render it
/// (run in the recipe's directory, so its messages name short paths, or
/// where its CI runs it).
fn cleave_render(dir: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cleave"));
    cmd.args([
        "render",
        "--target-platform",
        "linux-64",
        "--output",
        "json",
    ])
    .env("NO_COLOR", "1");
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let Some(ci) = ci_environment(name) else {
        cmd.args(["--recipe", "."]).current_dir(dir);
        if dir.join("ci_support_linux_64.yaml").exists() {
            cmd.args(["-m", "ci_support_linux_64.yaml"]);
        }
        return cmd.output().expect("run cleave");
    };
    let root = tempfile::tempdir().expect("temp dir");
    let recipe = root.path().join(ci.recipe_path);
    std::fs::create_dir_all(&recipe).expect("mkdir");
    for entry in std::fs::read_dir(dir).expect("read recipe dir") {
        let entry = entry.expect("dir entry");
        std::fs::copy(entry.path(), recipe.join(entry.file_name())).expect("copy");
    }
    for (path, text) in ci.files {
        let file = root.path().join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(file, text).expect("write");
    }
    for args in [
        &["init", "-q"][..],
        &["add", "."],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "ci",
        ],
    ] {
        let status = Command::new("git")
            .args(args)
            .current_dir(root.path())
            .status()
            .expect("run git");
        assert!(status.success(), "git {args:?}");
    }
    cmd.args(["--recipe", ci.recipe_path])
        .current_dir(root.path())
        .envs(ci.vars.iter().copied())
        .output()
        .expect("run cleave")
}

/// The first problems cleave reported on a failed render.
fn cleave_error(output: &Output) -> String {
    let text = stderr(output);
    // miette's "× recipe.yaml: N errors" heads the list; the problems follow.
    let is_count = |line: &str| {
        line.rsplit_once(": ").is_some_and(|(_, tail)| {
            let mut words = tail.split(' ');
            words.next().is_some_and(|n| n.parse::<u32>().is_ok())
                && matches!(words.next(), Some("error" | "errors"))
        })
    };
    let problems: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('×') && !is_count(l))
        .collect();
    let mut summary: Vec<String> = problems.iter().take(4).map(|l| l.to_string()).collect();
    if problems.len() > 4 {
        summary.push(format!("... and {} more", problems.len() - 4));
    }
    if summary.is_empty() {
        summary = text.trim().lines().take(4).map(String::from).collect();
    }
    let status = output
        .status
        .code()
        .map_or("a signal".to_string(), |c| c.to_string());
    format!("cleave exits with {status}:\n{}", summary.join("\n"))
}

/// cleave's renders of `dirs` (in parallel), specs normalised as the
/// peer's are.
fn cleave_renders(dirs: &[PathBuf]) -> Option<Vec<Render>> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut outputs: Vec<Option<Output>> = vec![None; dirs.len()];
    std::thread::scope(|scope| {
        for (chunk, slots) in dirs
            .chunks(dirs.len().div_ceil(threads).max(1))
            .zip(outputs.chunks_mut(dirs.len().div_ceil(threads).max(1)))
        {
            scope.spawn(move || {
                for (dir, slot) in chunk.iter().zip(slots) {
                    *slot = Some(cleave_render(dir));
                }
            });
        }
    });
    let rendered: Vec<Result<Vec<Value>, String>> = outputs
        .into_iter()
        .map(|o| {
            let output = o.unwrap();
            if !output.status.success() {
                return Err(cleave_error(&output));
            }
            let outputs: Value = serde_json::from_slice(&output.stdout)
                .map_err(|e| format!("cleave printed no JSON: {e}"))?;
            Ok(outputs
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|o| o["kind"] == "package")
                .collect())
        })
        .collect();
    // Every spec through py-rattler's MatchSpec, in one call.
    let specs: BTreeSet<&str> = rendered
        .iter()
        .flatten()
        .flatten()
        .flat_map(|o| SECTIONS.iter().map(move |s| &o["requirements"][s]))
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let specs: Vec<&str> = specs.into_iter().collect();
    let input = serde_json::to_vec(&specs).unwrap();
    let normalized = run_peer(&["normalize"], Some(&input))?;
    let normalized: BTreeMap<String, String> = specs
        .iter()
        .zip(normalized.as_array().expect("a list"))
        .map(|(s, n)| (s.to_string(), n.as_str().unwrap().to_string()))
        .collect();
    Some(
        rendered
            .into_iter()
            .map(|r| match r {
                Err(error) => Render {
                    error: Some(error),
                    packages: Vec::new(),
                },
                Ok(outputs) => Render {
                    error: None,
                    packages: outputs
                        .iter()
                        .map(|o| {
                            package(
                                &o["name"],
                                &o["version"],
                                &o["build"]["string"],
                                &o["requirements"],
                                &normalized,
                            )
                        })
                        .collect(),
                },
            })
            .collect(),
    )
}

/// Elements of `a` not in `b`, counting repeats.
fn multiset_minus(a: &[String], b: &[String]) -> Vec<String> {
    let mut rest = b.to_vec();
    let mut only = Vec::new();
    for x in a {
        match rest.iter().position(|y| y == x) {
            Some(i) => {
                rest.swap_remove(i);
            }
            None => only.push(x.clone()),
        }
    }
    only.sort();
    only
}

/// Pairs each peer package output with one of cleave's of the same name:
/// the same version and build string first, then the same version, then any;
/// among several candidates, the one sharing the most requirements (the
/// same variant, when build strings differ).
fn pairs<'a>(peer: &'a [Package], cleave: &'a [Package]) -> Vec<(&'a Package, &'a Package)> {
    let mut left: Vec<&Package> = peer.iter().collect();
    let mut right: Vec<&Package> = cleave.iter().collect();
    let mut pairs = Vec::new();
    let rules: [fn(&Package, &Package) -> bool; 3] = [
        |a, b| a.name == b.name && a.version == b.version && a.build_string == b.build_string,
        |a, b| a.name == b.name && a.version == b.version,
        |a, b| a.name == b.name,
    ];
    let shared = |a: &Package, b: &Package| {
        SECTIONS
            .iter()
            .map(|s| a.requirements[*s].intersection(&b.requirements[*s]).count())
            .sum::<usize>()
    };
    for same in rules {
        let mut i = 0;
        while i < left.len() {
            let best = right
                .iter()
                .enumerate()
                .filter(|(_, c)| same(left[i], c))
                .max_by_key(|(j, c)| (shared(left[i], c), std::cmp::Reverse(*j)))
                .map(|(j, _)| j);
            match best {
                Some(j) => pairs.push((left.remove(i), right.remove(j))),
                None => i += 1,
            }
        }
    }
    pairs
}

/// How cleave's render of `recipe` differs from the peer's.
fn compare(recipe: &str, peer: &Render, cleave: &Render) -> Vec<Difference> {
    let difference = |package: Option<&str>, what: &str, detail: String| Difference {
        recipe: recipe.to_string(),
        package: package.map(String::from),
        what: what.to_string(),
        item: None,
        detail,
        expected: false,
    };
    if let Some(error) = &cleave.error {
        return vec![difference(None, "renders", error.clone())];
    }
    if peer.error.is_some() {
        return Vec::new();
    }
    let mut differences = Vec::new();
    let ids = |r: &Render| -> Vec<String> {
        r.packages
            .iter()
            .map(|p| format!("{} {}", p.name, p.version))
            .collect()
    };
    let (only_peer, only_cleave) = (
        multiset_minus(&ids(peer), &ids(cleave)),
        multiset_minus(&ids(cleave), &ids(peer)),
    );
    if !only_peer.is_empty() || !only_cleave.is_empty() {
        differences.push(difference(
            None,
            "packages",
            format!("only the peer: {only_peer:?}; only cleave: {only_cleave:?}"),
        ));
    }
    for (p, c) in pairs(&peer.packages, &cleave.packages) {
        if p.build_string != c.build_string {
            differences.push(difference(
                Some(&p.name),
                "build_string",
                format!(
                    "{} {}: peer {}, cleave {}",
                    p.name, p.version, p.build_string, c.build_string
                ),
            ));
        }
        for section in SECTIONS {
            let (ps, cs) = (&p.requirements[section], &c.requirements[section]);
            if ps != cs {
                differences.push(difference(
                    Some(&p.name),
                    section,
                    format!(
                        "{}: only the peer: {:?}; only cleave: {:?}",
                        p.label(),
                        ps.difference(cs).collect::<Vec<_>>(),
                        cs.difference(ps).collect::<Vec<_>>(),
                    ),
                ));
            }
        }
    }
    differences
}

/// The report: a table, then every difference; and the failures.
fn report(
    names: &[String],
    peer: &[Render],
    cleave: &[Render],
    expected: &[Expected],
) -> (String, Vec<String>) {
    let mut table = String::from(
        "| recipe | peer | cleave | packages equal | build strings equal | requirements equal |\n\
         |---|---|---|---|---|---|\n",
    );
    let mut diffs = String::new();
    let mut failures = Vec::new();
    let mut used = vec![false; expected.len()];
    for ((name, p), c) in names.iter().zip(peer).zip(cleave) {
        let mut differences = compare(name, p, c);
        for d in &mut differences {
            if let Some(i) = expected.iter().position(|e| e.excuses(d)) {
                d.expected = true;
                used[i] = true;
            }
        }
        let status = |r: &Render| match &r.error {
            None => format!("ok ({})", r.packages.len()),
            Some(_) => "rejected".to_string(),
        };
        let both = p.error.is_none() && c.error.is_none();
        writeln!(
            table,
            "| {name} | {} | {} | {} | {} | {} |",
            status(p),
            status(c),
            cell(&differences, &["packages"], both),
            cell(&differences, &["build_string"], both),
            cell(&differences, &SECTIONS, both),
        )
        .unwrap();
        if let Some(error) = &p.error {
            let first = error.lines().next().unwrap_or_default();
            writeln!(diffs, "{name}: the peer rejects it: {first}").unwrap();
        }
        for d in &differences {
            let package = d
                .package
                .as_deref()
                .map(|p| format!(" {p}"))
                .unwrap_or_default();
            let mark = if d.expected { " (expected)" } else { "" };
            writeln!(diffs, "{name}{package} {}{mark}:", d.what).unwrap();
            for line in d.detail.lines() {
                writeln!(diffs, "    {line}").unwrap();
            }
            if !d.expected {
                failures.push(format!("{name}{package}: {}", d.what));
            }
        }
    }
    // An entry that excuses nothing, for a recipe both tools render, is stale.
    for (entry, used) in expected.iter().zip(used) {
        let rendered = names
            .iter()
            .position(|n| *n == entry.recipe)
            .is_some_and(|i| peer[i].error.is_none() && cleave[i].error.is_none());
        if rendered && !used {
            failures.push(format!(
                "expected-differences.toml: {} {:?} {:?} no longer differs; remove it",
                entry.recipe, entry.package, entry.what
            ));
        }
    }
    (format!("{table}\n{diffs}"), failures)
}

/// The peer rejects only recipes with the deprecated top-level `cache:`
/// (it says so); any other rejection means the peer is broken here and the
/// comparison would prove nothing.
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
fn cleave_renders_real_recipes_as_the_peer_does() {
    let corpus = corpus();
    if !corpus.is_dir() {
        skip_unless_required(
            REQUIRE,
            "the conformance corpus ../shared/conformance/conda-forge is not beside the repository",
        );
        return;
    }
    let dirs = recipes(&corpus);
    assert!(!dirs.is_empty(), "no recipes in {}", corpus.display());
    let names: Vec<String> = dirs.iter().map(|d| recipe_name(d)).collect();
    let Some(peer) = peer_renders(&dirs) else {
        return;
    };
    let Some(cleave) = cleave_renders(&dirs) else {
        return;
    };

    // The comparison itself: the peer against itself, its outputs in another
    // order, must be all equal.
    for (name, p) in names.iter().zip(&peer).filter(|(_, p)| p.error.is_none()) {
        let mut shuffled = p.clone();
        shuffled.packages.reverse();
        let differences = compare(name, p, &shuffled);
        assert!(
            differences.is_empty(),
            "the peer differs from itself: {differences:#?}"
        );
    }

    let expected = common::differences::load_expected(
        &repo().join("tests/conformance/expected-differences.toml"),
        &EXCUSABLE,
    );
    let (text, mut failures) = report(&names, &peer, &cleave, &expected);
    eprintln!("cleave vs py-rattler-build 0.73, linux-64\n\n{text}");
    for ((name, dir), p) in names.iter().zip(&dirs).zip(&peer) {
        if p.error.is_some() && !has_top_level_cache(dir) {
            failures.push(format!("{name}: the peer rejects it: {:?}", p.error));
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences from the peer (report above):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The suite's own good recipes (`tests/recipes/good/`) the peer does not
/// render, and why; every other one must render with it.
const SUITE_PEER_REJECTS: [(&str, &str); 5] = [
    (
        "conda-build-spec",
        "conda-build's `python 3.11` and `zlib 1.3.1 *_2`, which cleave reads with a warning",
    ),
    ("seed-cache-basic", "the top-level `cache:`"),
    ("seed-cache-cachycache", "the top-level `cache:`"),
    (
        "selectors-and-jinja",
        "Python string methods and `hash` outside `build.string`",
    ),
    (
        "tests-languages-downstream",
        "a `python_version` spec with an operator (`>=3.13`)",
    ),
];

/// The suite's good recipes that render differently on purpose (docs/recipe.md
/// says why), by what differs.
const SUITE_EXPECTED: [(&str, &str); 1] = [(
    "skip-with-inline-template",
    "packages: a skip condition with `${{ }}` written into it compares the value",
)];

/// The rules of docs/recipe.md on small recipes made for them: every good
/// recipe of the suite renders as the peer renders it (package outputs,
/// build strings, requirements), unless the peer rejects it or the
/// difference is one cleave makes on purpose (both listed above).
#[test]
#[allow(
    clippy::print_stderr,
    reason = "the table and the differences are the test's report"
)]
fn cleave_renders_the_suite_recipes_as_the_peer_does() {
    let dirs = recipes(&repo().join("tests/recipes/good"));
    let names: Vec<String> = dirs.iter().map(|d| recipe_name(d)).collect();
    let Some(peer) = peer_renders(&dirs) else {
        return;
    };
    let Some(cleave) = cleave_renders(&dirs) else {
        return;
    };
    let (text, failures) = report(&names, &peer, &cleave, &[]);
    eprintln!("cleave vs py-rattler-build 0.73 on tests/recipes/good, linux-64\n\n{text}");
    let mut unexpected = Vec::new();
    for ((name, p), c) in names.iter().zip(&peer).zip(&cleave) {
        let rejected = SUITE_PEER_REJECTS.iter().any(|(r, _)| r == name);
        match (&p.error, rejected) {
            (Some(error), false) => {
                unexpected.push(format!("{name}: the peer rejects it: {error}"))
            }
            (None, true) => unexpected.push(format!(
                "{name}: the peer renders it now; take it out of SUITE_PEER_REJECTS"
            )),
            _ => {}
        }
        if let Some(error) = &c.error {
            unexpected.push(format!("{name}: {error}"));
        }
    }
    for failure in failures {
        let recipe = failure.split([' ', ':']).next().unwrap_or_default();
        if !SUITE_EXPECTED.iter().any(|(r, _)| *r == recipe) {
            unexpected.push(failure);
        }
    }
    for (recipe, what) in SUITE_EXPECTED {
        let i = names
            .iter()
            .position(|n| n == recipe)
            .expect("listed recipe exists");
        if compare(recipe, &peer[i], &cleave[i]).is_empty() {
            unexpected.push(format!(
                "{recipe} no longer differs ({what}); take it out of SUITE_EXPECTED"
            ));
        }
    }
    assert!(
        unexpected.is_empty(),
        "{} differences from the peer (report above):\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
}

/// The comparison on made-up renders: no corpus or peer needed.
mod comparison {
    use super::*;

    fn pkg(name: &str, build: &str, host: &[&str]) -> Package {
        let mut requirements: BTreeMap<String, BTreeSet<String>> = SECTIONS
            .iter()
            .map(|s| (s.to_string(), BTreeSet::new()))
            .collect();
        requirements.insert("host".into(), host.iter().map(|s| s.to_string()).collect());
        Package {
            name: name.into(),
            version: "1.0".into(),
            build_string: build.into(),
            requirements,
        }
    }

    fn render(packages: Vec<Package>) -> Render {
        Render {
            error: None,
            packages,
        }
    }

    fn whats(differences: &[Difference]) -> Vec<(Option<&str>, &str)> {
        differences
            .iter()
            .map(|d| (d.package.as_deref(), d.what.as_str()))
            .collect()
    }

    #[test]
    fn equal_renders_in_any_order_do_not_differ() {
        let a = render(vec![pkg("a", "h1_0", &["zlib 1.*"]), pkg("b", "h2_0", &[])]);
        let b = render(vec![pkg("b", "h2_0", &[]), pkg("a", "h1_0", &["zlib 1.*"])]);
        assert!(compare("r", &a, &b).is_empty());
    }

    #[test]
    fn build_strings_and_requirements_are_compared_per_package() {
        let peer = render(vec![pkg("a", "h1_0", &["zlib 1.*"]), pkg("b", "h2_0", &[])]);
        let cleave = render(vec![pkg("a", "h9_0", &["zlib"]), pkg("b", "h2_0", &[])]);
        let differences = compare("r", &peer, &cleave);
        assert_eq!(
            whats(&differences),
            [(Some("a"), "build_string"), (Some("a"), "host")]
        );
        assert!(
            differences[1]
                .detail
                .contains(r#"only the peer: ["zlib 1.*"]; only cleave: ["zlib"]"#)
        );
    }

    #[test]
    fn variants_of_one_name_pair_by_their_requirements() {
        let peer = render(vec![
            pkg("a", "py310h1_0", &["python 3.10.*"]),
            pkg("a", "py311h2_0", &["python 3.11.*"]),
        ]);
        let cleave = render(vec![
            pkg("a", "py311h8_0", &["python 3.11.*"]),
            pkg("a", "py310h9_0", &["python 3.10.*"]),
        ]);
        let differences = compare("r", &peer, &cleave);
        assert_eq!(
            whats(&differences),
            [(Some("a"), "build_string"), (Some("a"), "build_string")]
        );
    }

    #[test]
    fn package_counts_count() {
        let peer = render(vec![pkg("a", "h1_0", &[]), pkg("a", "h2_0", &[])]);
        let cleave = render(vec![pkg("a", "h1_0", &[])]);
        let differences = compare("r", &peer, &cleave);
        assert_eq!(whats(&differences), [(None, "packages")]);
        assert!(
            differences[0]
                .detail
                .contains(r#"only the peer: ["a 1.0"]"#)
        );
    }

    #[test]
    fn only_cleave_failing_to_render_is_a_difference() {
        let ok = render(vec![pkg("a", "h1_0", &[])]);
        let failed = Render {
            error: Some("no".into()),
            packages: Vec::new(),
        };
        assert_eq!(whats(&compare("r", &ok, &failed)), [(None, "renders")]);
        assert!(compare("r", &failed, &ok).is_empty());
    }

    #[test]
    fn pins_compare_as_objects_whichever_way_absent_bounds_are_written() {
        let none = BTreeMap::new();
        let peer: Value =
            serde_json::json!({"pin_compatible": {"name": "x", "upper_bound": "x.x"}});
        let cleave: Value = serde_json::json!({"pin_compatible": {
            "name": "x", "lower_bound": null, "upper_bound": "x.x", "exact": false}});
        assert_eq!(requirement(&peer, &none), requirement(&cleave, &none));
        assert_eq!(
            requirement(&peer, &none),
            r#"pin_compatible("x", lower_bound=None, upper_bound="x.x", exact=false)"#
        );
    }

    #[test]
    fn listed_differences_are_expected_and_unused_entries_are_stale() {
        let peer = vec![render(vec![pkg("a", "h1_0", &[])])];
        let cleave = vec![render(vec![pkg("a", "h9_0", &[])])];
        let names = vec!["r".to_string()];
        let entry = |what: &str| Expected {
            recipe: "r".into(),
            package: Some("a".into()),
            what: what.into(),
            item: None,
            reason: "because".into(),
        };
        let (text, failures) = report(&names, &peer, &cleave, &[entry("build_string")]);
        assert!(failures.is_empty(), "{failures:?}");
        assert!(
            text.contains("| r | ok (1) | ok (1) | yes | expected | yes |"),
            "{text}"
        );
        let (_, failures) = report(&names, &peer, &cleave, &[]);
        assert_eq!(failures, ["r a: build_string"]);
        let (_, failures) = report(&names, &peer, &peer, &[entry("host")]);
        assert_eq!(failures.len(), 1);
        assert!(failures[0].contains("no longer differs"), "{failures:?}");
    }
}
