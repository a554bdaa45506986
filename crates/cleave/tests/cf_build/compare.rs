//! Comparing the packages of the two tools, package by package, and the
//! report: a table and every difference.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::differences::{Difference, Expected, cell};
use crate::common::repo;
use crate::runs::Run;

/// What an expected difference may excuse. Whether a recipe builds and
/// which packages it makes cannot be excused.
pub const EXCUSABLE: [&str; 9] = [
    "files",
    "depends",
    "constrains",
    "run_exports",
    "index",
    "about",
    "licenses",
    "tests",
    "link",
];

/// The kinds each column of the table covers.
const COLUMNS: [(&str, &[&str]); 4] = [
    ("files", &["files"]),
    ("depends", &["depends", "constrains"]),
    ("run_exports", &["run_exports"]),
    ("metadata", &["index", "about", "licenses", "tests", "link"]),
];

/// The differences tests/cf-build/expected-differences.toml excuses.
pub fn load_expected() -> Vec<Expected> {
    crate::common::differences::load_expected(
        &repo().join("tests/cf-build/expected-differences.toml"),
        &EXCUSABLE,
    )
}

/// How a tool's own channel paths are written in `about.json`'s
/// `channels`, to compare them as the same channel.
#[derive(Debug, Clone, Default)]
pub struct ChannelNames {
    /// (directory, the name it is shown as)
    pub dirs: Vec<(PathBuf, String)>,
}

impl ChannelNames {
    pub fn new(dirs: &[(&Path, &str)]) -> ChannelNames {
        ChannelNames {
            dirs: dirs
                .iter()
                .map(|(d, n)| {
                    (
                        std::fs::canonicalize(d).unwrap_or(d.to_path_buf()),
                        n.to_string(),
                    )
                })
                .collect(),
        }
    }

    fn name(&self, channel: &str) -> String {
        let path = channel
            .strip_prefix("file://")
            .unwrap_or(channel)
            .trim_end_matches('/');
        self.dirs
            .iter()
            .find(|(d, _)| Path::new(path) == d)
            .map_or_else(|| channel.to_string(), |(_, n)| n.clone())
    }
}

/// One package's summary from `peer.py inspect`.
fn field<'a>(package: &'a Value, key: &str) -> &'a Value {
    &package[key]
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "absent".to_string(),
        other => other.to_string(),
    }
}

/// Pairs each peer package with one of cleave's of the same name, the same
/// build string first.
fn pairs<'a>(
    peer: &'a [Value],
    cleave: &'a [Value],
) -> (Vec<(&'a Value, &'a Value)>, Vec<&'a Value>, Vec<&'a Value>) {
    let mut left: Vec<&Value> = peer.iter().collect();
    let mut right: Vec<&Value> = cleave.iter().collect();
    let mut pairs = Vec::new();
    let rules: [fn(&Value, &Value) -> bool; 2] = [
        |a, b| a["name"] == b["name"] && a["build"] == b["build"],
        |a, b| a["name"] == b["name"],
    ];
    for same in rules {
        let mut i = 0;
        while i < left.len() {
            match right.iter().position(|c| same(left[i], c)) {
                Some(j) => pairs.push((left.remove(i), right.remove(j))),
                None => i += 1,
            }
        }
    }
    (pairs, left, right)
}

/// `paths.json` as path → what is compared of it.
fn paths(package: &Value) -> BTreeMap<String, String> {
    field(package, "paths")
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    let placeholder = match &e["placeholder"] {
                        Value::String(mode) => format!(", {mode} placeholder"),
                        _ => String::new(),
                    };
                    let no_link = if e["no_link"] == true {
                        ", no_link"
                    } else {
                        ""
                    };
                    let mode = match &e["mode"] {
                        Value::String(m) => format!(" {m}"),
                        _ => String::new(),
                    };
                    (
                        text(&e["path"]),
                        format!("{}{mode}{placeholder}{no_link}", text(&e["type"])),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default()
}

/// Key → value of a JSON object, `null` and empty lists left out (the
/// same information either way).
fn object(value: &Value) -> BTreeMap<String, Value> {
    value
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, v)| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Differences of two maps, one per key.
fn map_differences<V: PartialEq + std::fmt::Debug>(
    peer: &BTreeMap<String, V>,
    cleave: &BTreeMap<String, V>,
    mut push: impl FnMut(String, String),
) {
    let keys: BTreeSet<&String> = peer.keys().chain(cleave.keys()).collect();
    for key in keys {
        match (peer.get(key), cleave.get(key)) {
            (Some(p), Some(c)) if p == c => {}
            (Some(p), Some(c)) => push(key.clone(), format!("peer: {p:?}\ncleave: {c:?}")),
            (Some(p), None) => push(key.clone(), format!("only the peer: {p:?}")),
            (None, Some(c)) => push(key.clone(), format!("only cleave: {c:?}")),
            (None, None) => {}
        }
    }
}

/// The `about.json` of a package, channels named by what they are.
fn about(package: &Value, names: &ChannelNames) -> BTreeMap<String, Value> {
    let mut about = object(field(package, "about"));
    if let Some(channels) = about.get_mut("channels") {
        *channels = Value::Array(
            channels
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| Value::String(names.name(&text(c))))
                .collect(),
        );
    }
    about
}

/// `index.json` without what is compared on its own (`depends`,
/// `constrains`) or differs by nature (`timestamp`, taken out by peer.py).
fn index(package: &Value) -> BTreeMap<String, Value> {
    let mut index = object(field(package, "index"));
    index.remove("depends");
    index.remove("constrains");
    index
}

/// `run_exports.json` as kind → sorted specs.
fn run_exports(package: &Value) -> BTreeMap<String, BTreeSet<String>> {
    object(field(package, "run_exports"))
        .into_iter()
        .map(|(k, v)| (k, strings(&v)))
        .collect()
}

/// The tests as stored: each test of `tests.yaml`, the other files below
/// `info/tests/`, and what py-rattler-build's `Package` sees.
fn tests(package: &Value) -> BTreeMap<String, Value> {
    let mut tests = BTreeMap::new();
    if let Some(list) = field(package, "tests").as_array() {
        for (i, test) in list.iter().enumerate() {
            tests.insert(format!("tests.yaml[{i}]"), test.clone());
        }
    }
    if field(package, "tests").is_null() {
        tests.insert("tests.yaml".to_string(), Value::Null);
    }
    for (path, digest) in object(field(package, "test_files")) {
        tests.insert(path, digest);
    }
    tests.insert(
        "Package.tests".to_string(),
        field(package, "peer_tests").clone(),
    );
    tests
}

/// How cleave's packages of `recipe` differ from the peer's.
pub fn compare(
    recipe: &str,
    peer: &[Value],
    cleave: &[Value],
    names: (&ChannelNames, &ChannelNames),
) -> Vec<Difference> {
    let mut differences = Vec::new();
    let mut push = |package: Option<&str>, what: &str, item: Option<String>, detail: String| {
        differences.push(Difference {
            recipe: recipe.to_string(),
            package: package.map(String::from),
            what: what.to_string(),
            item,
            detail,
            expected: false,
        });
    };
    let (pairs, only_peer, only_cleave) = pairs(peer, cleave);
    if !only_peer.is_empty() || !only_cleave.is_empty() {
        let label = |p: &&Value| format!("{} {}", text(&p["name"]), text(&p["build"]));
        push(
            None,
            "packages",
            None,
            format!(
                "only the peer: {:?}; only cleave: {:?}",
                only_peer.iter().map(label).collect::<Vec<_>>(),
                only_cleave.iter().map(label).collect::<Vec<_>>()
            ),
        );
    }
    for (p, c) in pairs {
        let name = text(&p["name"]);
        let package = Some(name.as_str());
        map_differences(&paths(p), &paths(c), |path, detail| {
            push(package, "files", Some(path), detail);
        });
        for what in ["depends", "constrains"] {
            let (ps, cs) = (strings(&p["index"][what]), strings(&c["index"][what]));
            if ps != cs {
                push(
                    package,
                    what,
                    None,
                    format!(
                        "only the peer: {:?}; only cleave: {:?}",
                        ps.difference(&cs).collect::<Vec<_>>(),
                        cs.difference(&ps).collect::<Vec<_>>()
                    ),
                );
            }
        }
        map_differences(&run_exports(p), &run_exports(c), |key, detail| {
            push(package, "run_exports", Some(key), detail);
        });
        map_differences(&index(p), &index(c), |key, detail| {
            push(package, "index", Some(key), detail);
        });
        map_differences(&about(p, names.0), &about(c, names.1), |key, detail| {
            push(package, "about", Some(key), detail);
        });
        map_differences(
            &object(field(p, "licenses")),
            &object(field(c, "licenses")),
            |path, detail| push(package, "licenses", Some(path), detail),
        );
        map_differences(&tests(p), &tests(c), |item, detail| {
            push(package, "tests", Some(item), detail);
        });
        if p["link"] != c["link"] {
            push(
                package,
                "link",
                None,
                format!("peer: {}\ncleave: {}", p["link"], c["link"]),
            );
        }
    }
    differences
}

/// One recipe's builds and packages, as the report takes them.
#[derive(Clone, Copy)]
pub struct Recipe<'a> {
    pub name: &'a str,
    pub peer: &'a Run,
    pub cleave: &'a Run,
    pub peer_packages: &'a [Value],
    pub cleave_packages: &'a [Value],
}

/// The report: a table, then every difference; and the failures.
pub fn report(
    recipes: &[Recipe<'_>],
    names: (&ChannelNames, &ChannelNames),
    expected: &[Expected],
) -> (String, Vec<String>) {
    let mut table = String::from(
        "| recipe | peer | cleave | files equal | depends equal | run_exports equal | metadata equal |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let mut diffs = String::new();
    let mut failures = Vec::new();
    let mut used = vec![false; expected.len()];
    for r in recipes {
        let both = r.peer.error.is_none() && r.cleave.error.is_none();
        let mut differences = if both {
            compare(r.name, r.peer_packages, r.cleave_packages, names)
        } else {
            Vec::new()
        };
        for d in &mut differences {
            if let Some(i) = expected.iter().position(|e| e.excuses(d)) {
                d.expected = true;
                used[i] = true;
            }
        }
        let status = |run: &Run| match &run.error {
            None => format!("ok ({}) {:.0}s", run.packages.len(), run.seconds),
            Some(_) => format!("fails {:.0}s", run.seconds),
        };
        write!(
            table,
            "| {} | {} | {} |",
            r.name,
            status(r.peer),
            status(r.cleave)
        )
        .unwrap();
        for (_, whats) in COLUMNS {
            write!(table, " {} |", cell(&differences, whats, both)).unwrap();
        }
        table.push('\n');
        for (tool, run) in [("the peer", r.peer), ("cleave", r.cleave)] {
            if let Some(error) = &run.error {
                writeln!(diffs, "{}: {tool} fails:", r.name).unwrap();
                for line in error.lines() {
                    writeln!(diffs, "    {line}").unwrap();
                }
            }
        }
        // What the peer cannot build (the top-level `cache:` it rejects)
        // has nothing to compare with: cleave's result is reported only.
        if r.cleave.error.is_some() && r.peer.error.is_none() {
            failures.push(format!("{}: cleave does not build it", r.name));
        }
        for d in &differences {
            let package = d
                .package
                .as_deref()
                .map(|p| format!(" {p}"))
                .unwrap_or_default();
            let item = d
                .item
                .as_deref()
                .map(|i| format!(" {i}"))
                .unwrap_or_default();
            let mark = if d.expected { " (expected)" } else { "" };
            writeln!(diffs, "{}{package} {}{item}{mark}:", r.name, d.what).unwrap();
            for line in d.detail.lines() {
                writeln!(diffs, "    {line}").unwrap();
            }
            if !d.expected {
                failures.push(format!("{}{package}: {}{item}", r.name, d.what));
            }
        }
    }
    // An entry that excuses nothing, for a recipe both tools build, is stale.
    for (entry, used) in expected.iter().zip(used) {
        let built = recipes
            .iter()
            .find(|r| r.name == entry.recipe)
            .is_some_and(|r| r.peer.error.is_none() && r.cleave.error.is_none());
        if built && !used {
            failures.push(format!(
                "expected-differences.toml: {} {:?} {} {:?} no longer differs; remove it",
                entry.recipe, entry.package, entry.what, entry.item
            ));
        }
    }
    (format!("{table}\n{diffs}"), failures)
}

/// The comparison on made-up packages: no corpus or peer needed.
mod comparison {
    use super::*;
    use serde_json::json;

    fn package(name: &str, build: &str) -> Value {
        json!({
            "name": name, "version": "1.0", "build": build, "subdir": "linux-64",
            "paths": [
                {"path": "lib/libz.so.1", "type": "hardlink", "mode": "0o755",
                 "placeholder": null, "no_link": false},
                {"path": "include/zlib.h", "type": "hardlink", "mode": "0o644",
                 "placeholder": "text", "no_link": false},
            ],
            "index": {"name": name, "version": "1.0", "build": build,
                      "depends": ["libgcc >=14"], "constrains": []},
            "about": {"channels": ["file:///a/toolchain/"], "summary": "z"},
            "run_exports": {"weak": ["z >=1.0,<2.0a0"]},
            "link": null,
            "licenses": {"LICENSE": "abc"},
            "tests": [{"script": ["z --version"]}],
            "test_files": {},
            "peer_tests": ["CommandsTest"],
        })
    }

    fn names() -> ChannelNames {
        ChannelNames::default()
    }

    fn whats(differences: &[Difference]) -> Vec<(&str, Option<&str>)> {
        differences
            .iter()
            .map(|d| (d.what.as_str(), d.item.as_deref()))
            .collect()
    }

    #[test]
    fn equal_packages_in_any_order_do_not_differ() {
        let peer = [package("a", "h1_0"), package("b", "h2_0")];
        let cleave = [package("b", "h2_0"), package("a", "h1_0")];
        assert!(compare("r", &peer, &cleave, (&names(), &names())).is_empty());
    }

    #[test]
    fn files_metadata_and_tests_differ_item_by_item() {
        let peer = [package("a", "h1_0")];
        let mut c = package("a", "h1_0");
        c["paths"][1]["placeholder"] = Value::Null;
        c["paths"]
            .as_array_mut()
            .unwrap()
            .push(json!({"path": "lib/libz.la", "type": "hardlink", "mode": "0o644"}));
        c["index"]["depends"] = json!(["libgcc >=14", "zlib"]);
        c["index"]["license_family"] = Value::Null;
        c["about"]["description"] = json!("text\n");
        c["tests"] = json!([]);
        c["peer_tests"] = json!([]);
        let differences = compare("r", &peer, &[c], (&names(), &names()));
        assert_eq!(
            whats(&differences),
            [
                ("files", Some("include/zlib.h")),
                ("files", Some("lib/libz.la")),
                ("depends", None),
                ("about", Some("description")),
                ("tests", Some("Package.tests")),
                ("tests", Some("tests.yaml[0]")),
            ]
        );
        assert!(differences[2].detail.contains(r#"only cleave: ["zlib"]"#));
    }

    #[test]
    fn each_tools_own_channels_compare_by_what_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let (mine, theirs) = (dir.path().join("mine"), dir.path().join("theirs"));
        let mut p = package("a", "h1_0");
        p["about"]["channels"] = json!([format!("file://{}/", theirs.display())]);
        let mut c = package("a", "h1_0");
        c["about"]["channels"] = json!([format!("file://{}/", mine.display())]);
        let peer_names = ChannelNames::new(&[(&theirs, "<output>")]);
        let cleave_names = ChannelNames::new(&[(&mine, "<output>")]);
        assert!(
            compare(
                "r",
                &[p.clone()],
                &[c.clone()],
                (&peer_names, &cleave_names)
            )
            .is_empty()
        );
        assert_eq!(
            whats(&compare("r", &[p], &[c], (&names(), &names()))),
            [("about", Some("channels"))]
        );
    }

    #[test]
    fn missing_packages_are_a_difference_that_pairs_by_name() {
        let peer = [package("a", "h1_0"), package("b", "h2_0")];
        let cleave = [package("a", "h9_0")];
        let differences = compare("r", &peer, &cleave, (&names(), &names()));
        assert_eq!(
            whats(&differences),
            [("packages", None), ("index", Some("build"))]
        );
        assert!(
            differences[0]
                .detail
                .contains(r#"only the peer: ["b h2_0"]"#)
        );
    }

    fn run(error: Option<&str>) -> Run {
        Run {
            error: error.map(String::from),
            seconds: 1.0,
            packages: Vec::new(),
        }
    }

    #[test]
    fn listed_differences_are_expected_and_unused_entries_are_stale() {
        let peer = [package("a", "h1_0")];
        let mut c = package("a", "h1_0");
        c["about"]["summary"] = json!("other");
        let cleave = [c];
        let (ok, ok2) = (run(None), run(None));
        let recipes = [Recipe {
            name: "r",
            peer: &ok,
            cleave: &ok2,
            peer_packages: &peer,
            cleave_packages: &cleave,
        }];
        let entry = |item: &str| Expected {
            recipe: "r".into(),
            package: Some("a".into()),
            what: "about".into(),
            item: Some(item.into()),
            reason: "because".into(),
        };
        let (text, failures) = report(&recipes, (&names(), &names()), &[entry("summary")]);
        assert!(failures.is_empty(), "{failures:?}");
        assert!(text.contains("| yes | yes | yes | expected |"), "{text}");
        let (_, failures) = report(&recipes, (&names(), &names()), &[]);
        assert_eq!(failures, ["r a: about summary"]);
        let (_, failures) = report(&recipes, (&names(), &names()), &[entry("home")]);
        assert_eq!(failures.len(), 2, "{failures:?}");
        assert!(failures[1].contains("no longer differs"), "{failures:?}");
    }

    #[test]
    fn cleave_failing_a_recipe_the_peer_builds_cannot_be_excused() {
        let (fails, ok) = (run(Some("no")), run(None));
        let recipes = [Recipe {
            name: "r",
            peer: &ok,
            cleave: &fails,
            peer_packages: &[],
            cleave_packages: &[],
        }];
        let (text, failures) = report(&recipes, (&names(), &names()), &[]);
        assert_eq!(failures, ["r: cleave does not build it"]);
        assert!(
            text.contains("| r | ok (0) 1s | fails 1s | - | - | - | - |"),
            "{text}"
        );
        let both = [Recipe {
            peer: &fails,
            ..recipes[0]
        }];
        let (text, failures) = report(&both, (&names(), &names()), &[]);
        assert!(failures.is_empty(), "{failures:?}");
        assert!(text.contains("r: cleave fails"), "{text}");
    }
}
