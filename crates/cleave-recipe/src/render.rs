//! Renders a recipe into its outputs, once per combination of the variant
//! keys each output actually uses, in build order.
//!
//! Each output is rendered under a partial variant assignment. A render that
//! reads a key without a value stops and is retried once per value of that
//! key; a render that pins or depends on a sibling not rendered yet stops,
//! the sibling is rendered first, and the render is retried. The finished
//! assignments are exactly the used variants, and the order in which outputs
//! finish is a topological order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rattler_conda_types::{Subdir, VersionWithSource};
use serde::Serialize;

use crate::error::{Problem, ProblemKind, RecipeErrors};
use crate::jinja::{Need, PinTarget, Scope, Shared};
use crate::model::{
    About, Build, Dependency, Inherit, PIN_SUBPACKAGE_MARK, PackageOutput, PinArgs, RenderedOutput,
    Requirements, Script, Source, StagingCache, StagingRequirements, Test, pin_spec_for,
};
use crate::parse::{Recipe, Unit};
use crate::read::Reader;
use crate::template::Renderer;
use crate::variant::VariantConfig;
use crate::yaml::{Node, NodeKind};

/// Platform and variants to render for.
#[derive(Debug, Clone)]
pub struct RenderConfig {
    /// The platform packages are built for.
    pub target_platform: Subdir,
    /// The platform the build runs on.
    pub build_platform: Subdir,
    /// Variant values.
    pub variants: VariantConfig,
}

impl RenderConfig {
    /// Native build for the current machine, no variants.
    pub fn native() -> Self {
        let current = Subdir::current().unwrap_or(Subdir::Linux64);
        RenderConfig {
            target_platform: current,
            build_platform: current,
            variants: VariantConfig::default(),
        }
    }
}

/// Every output of a recipe, rendered, in the order they must be built.
#[derive(Debug, Clone, Serialize)]
pub struct RenderedRecipe {
    /// Directory of `recipe.yaml`; relative paths in outputs start here.
    pub recipe_dir: PathBuf,
    /// The platform rendered for.
    pub target_platform: String,
    /// Staging caches and packages, dependencies first.
    pub outputs: Vec<RenderedOutput>,
}

/// Renders every output for every variant it uses.
pub fn render(recipe: &Recipe, config: &RenderConfig) -> Result<RenderedRecipe, RecipeErrors> {
    let shared = Arc::new(Shared {
        source: recipe.source.clone(),
        context: recipe.context.clone(),
        variants: config.variants.clone(),
        target: config.target_platform,
        build: config.build_platform,
        package_names: std::sync::OnceLock::new(),
        rendered: Mutex::new(HashMap::new()),
    });
    let mut driver = Driver {
        recipe,
        shared,
        names: vec![None; recipe.units.len()],
        done: vec![None; recipe.units.len()],
        stack: Vec::new(),
        outputs: Vec::new(),
        problems: Vec::new(),
    };
    driver.name_units();
    driver.check_context();
    for unit in 0..recipe.units.len() {
        driver.visit(unit);
    }
    driver.check_duplicates();
    if driver.problems.is_empty() {
        Ok(RenderedRecipe {
            recipe_dir: recipe.recipe_dir.clone(),
            target_platform: config.target_platform.as_str().to_string(),
            outputs: driver.outputs,
        })
    } else {
        Err(RecipeErrors::new(driver.problems))
    }
}

type Assignment = BTreeMap<String, String>;

/// A finished render of one unit under one used variant.
#[derive(Debug, Clone)]
struct Instance {
    variant: Assignment,
    hash: String,
}

enum Attempt {
    Done(Box<(RenderedOutput, Instance)>),
    Skipped,
    Need(Need),
    Failed(Vec<Problem>),
}

struct Driver<'a> {
    recipe: &'a Recipe,
    shared: Arc<Shared>,
    /// Each unit's name, when it renders without a variant.
    names: Vec<Option<String>>,
    /// Finished units; `Some(vec![])` when all were skipped or failed.
    done: Vec<Option<Vec<Instance>>>,
    stack: Vec<usize>,
    outputs: Vec<RenderedOutput>,
    problems: Vec<Problem>,
}

impl Driver<'_> {
    fn unit(&self, index: usize) -> &Unit {
        &self.recipe.units[index]
    }

    /// Renders each unit's name once, so pins and dependencies can find
    /// their sibling before it is rendered.
    fn name_units(&mut self) {
        let mut package_names = BTreeSet::new();
        for (i, unit) in self.recipe.units.iter().enumerate() {
            let section = if unit.staging { "staging" } else { "package" };
            let Some(name) = unit.node.get(section).and_then(|s| s.get("name")) else {
                continue;
            };
            let scope = Scope::new(self.shared.clone(), Assignment::new(), None, None);
            let mut renderer = Renderer::new(scope, &self.recipe.source);
            let rendered = renderer.render(name);
            if renderer.problems.is_empty()
                && let Some(text) = rendered.as_str().filter(|t| !t.is_empty())
            {
                if !unit.staging {
                    package_names.insert(text.to_string());
                }
                self.names[i] = Some(text.to_string());
            }
        }
        let _ = self.shared.package_names.set(package_names);
    }

    /// Renders every context entry once, so a broken one is reported even
    /// if no output uses it.
    fn check_context(&mut self) {
        for (name, _) in &self.recipe.context {
            let scope = Scope::new(self.shared.clone(), Assignment::new(), None, None);
            let _ =
                minijinja::value::Object::get_value(&scope, &minijinja::Value::from(name.as_str()));
            if scope.need().is_none() {
                self.problems.extend(scope.take_problems());
            }
        }
    }

    fn visit(&mut self, unit: usize) {
        if self.done[unit].is_some() {
            return;
        }
        if let Some(pos) = self.stack.iter().position(|&u| u == unit) {
            let mut path: Vec<String> = self.stack[pos..]
                .iter()
                .map(|&u| self.names[u].clone().unwrap_or_else(|| "?".into()))
                .collect();
            path.push(self.names[unit].clone().unwrap_or_else(|| "?".into()));
            let span = self.unit(unit).name_span;
            self.problems.push(Problem::new(
                &self.recipe.source,
                ProblemKind::Cycle {
                    path: path.join(" -> "),
                },
                span,
            ));
            // Mark the cycle's members done so the error is reported once.
            for &u in &self.stack[pos..] {
                self.done[u] = Some(Vec::new());
            }
            return;
        }
        self.stack.push(unit);
        let starts: Vec<(Assignment, Option<Inherit>)> = match self.unit(unit).inherit.clone() {
            Some(spec) => {
                self.visit(spec.unit);
                let from = self.names[spec.unit].clone().unwrap_or_default();
                self.done[spec.unit]
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|inst| {
                        let inherit = Inherit {
                            from: from.clone(),
                            hash: inst.hash.clone(),
                            run_exports: spec.run_exports,
                        };
                        (inst.variant, Some(inherit))
                    })
                    .collect()
            }
            None => vec![(Assignment::new(), None)],
        };
        let mut instances = Vec::new();
        for (start, inherit) in starts {
            if self.done[unit].is_some() {
                break;
            }
            self.expand(unit, start, inherit, &mut instances);
        }
        self.stack.pop();
        if self.done[unit].is_some() {
            return;
        }
        if let Some(name) = self.names[unit].clone() {
            let targets = self
                .outputs
                .iter()
                .filter_map(|o| match o {
                    RenderedOutput::Package(p) if p.name.as_normalized() == name => {
                        Some(PinTarget {
                            version: p.version.to_string(),
                            build_string: p.build.string.clone(),
                            variant: p.variant.clone(),
                        })
                    }
                    _ => None,
                })
                .collect();
            self.shared
                .rendered
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name, targets);
        }
        self.done[unit] = Some(instances);
    }

    /// Renders `unit` for every completion of `start` it needs.
    fn expand(
        &mut self,
        unit: usize,
        start: Assignment,
        inherit: Option<Inherit>,
        instances: &mut Vec<Instance>,
    ) {
        let mut work = vec![start];
        while let Some(assignment) = work.pop() {
            match self.attempt(unit, &assignment, inherit.clone()) {
                Attempt::Done(done) => {
                    let (output, instance) = *done;
                    self.outputs.push(output);
                    instances.push(instance);
                }
                Attempt::Skipped => {}
                Attempt::Failed(problems) => self.problems.extend(problems),
                Attempt::Need(Need::Key(key)) => {
                    let choices = self.shared.variants.choices(&key, &assignment);
                    for value in choices.into_iter().rev() {
                        let mut next = assignment.clone();
                        next.insert(key.clone(), value);
                        work.push(next);
                    }
                }
                Attempt::Need(Need::Output(name)) => {
                    let Some(other) = self.names.iter().position(|n| n.as_deref() == Some(&name))
                    else {
                        continue;
                    };
                    self.visit(other);
                    if self.done[unit].is_some() {
                        return;
                    }
                    work.push(assignment);
                }
            }
        }
    }

    fn attempt(
        &self,
        unit_index: usize,
        assignment: &Assignment,
        inherit: Option<Inherit>,
    ) -> Attempt {
        let unit = self.unit(unit_index);
        let self_name = self.names[unit_index].clone().filter(|_| !unit.staging);
        let scope = Scope::new(
            self.shared.clone(),
            assignment.clone(),
            None,
            self_name.clone(),
        );
        let mut renderer = Renderer::new(scope.clone(), &self.recipe.source);

        if let Some(skip) = unit.node.get("build").and_then(|b| b.get("skip")) {
            let conditions: Vec<&Node> = match &skip.kind {
                NodeKind::Seq(items) => items.iter().collect(),
                _ => vec![skip],
            };
            let mut skipped = false;
            for condition in conditions {
                skipped |= renderer.condition(condition).unwrap_or(false);
            }
            if let Some(need) = scope.need() {
                return Attempt::Need(need);
            }
            if skipped && renderer.problems.is_empty() {
                return Attempt::Skipped;
            }
        }

        let mut node = renderer.render(&unit.node);
        if let Some(need) = scope.need() {
            return Attempt::Need(need);
        }
        if let Err(need) = pin_variant_requirements(&scope, &mut node) {
            return Attempt::Need(need);
        }
        let use_keys = node
            .get("build")
            .and_then(|b| b.get("variant"))
            .and_then(|v| v.get("use_keys"));
        if let Some(keys) = use_keys {
            for key in keys_of(keys) {
                if scope.variant_value(&key).is_err()
                    && let Some(need) = scope.need()
                {
                    return Attempt::Need(need);
                }
            }
        }
        let mut problems = scope.take_problems();
        problems.append(&mut renderer.problems);
        if !problems.is_empty() {
            return Attempt::Failed(problems);
        }

        let noarch = node
            .get("build")
            .and_then(|b| b.get("noarch"))
            .and_then(Node::as_str)
            .map(String::from);
        let ignore_keys: Vec<String> = node
            .get("build")
            .and_then(|b| b.get("variant"))
            .and_then(|v| v.get("ignore_keys"))
            .map(keys_of)
            .unwrap_or_default();
        let hash = variant_hash(
            assignment,
            &ignore_keys,
            noarch.as_deref(),
            self.shared.target,
        );

        if scope.hash_used() {
            let scope = Scope::new(
                self.shared.clone(),
                assignment.clone(),
                Some(hash.clone()),
                self_name,
            );
            let mut again = Renderer::new(scope.clone(), &self.recipe.source);
            node = again.render(&unit.node);
            if let Err(need) = pin_variant_requirements(&scope, &mut node) {
                return Attempt::Need(need);
            }
        }

        let instance = Instance {
            variant: assignment.clone(),
            hash: hash.clone(),
        };
        let mut reader = Reader::new(&self.recipe.source);
        let output = if unit.staging {
            RenderedOutput::Staging(Box::new(self.read_staging(
                &mut reader,
                &node,
                unit,
                assignment,
                &hash,
            )))
        } else {
            match self.read_package(&mut reader, &mut node, assignment, &hash, inherit) {
                Some(output) => RenderedOutput::Package(Box::new(output)),
                None => return Attempt::Failed(reader.problems),
            }
        };
        if !reader.problems.is_empty() {
            return Attempt::Failed(reader.problems);
        }
        if let RenderedOutput::Package(package) = &output
            && let Some(need) = self.unrendered_sibling(package)
        {
            return Attempt::Need(need);
        }
        Attempt::Done(Box::new((output, instance)))
    }

    /// A sibling output this one depends on by name that is not rendered yet.
    fn unrendered_sibling(&self, package: &PackageOutput) -> Option<Need> {
        let own = package.name.as_normalized();
        let reqs = &package.requirements;
        reqs.build
            .iter()
            .chain(&reqs.host)
            .chain(&reqs.run)
            .filter_map(Dependency::name)
            .filter(|name| name != own)
            .find(|name| {
                self.names.iter().enumerate().any(|(i, n)| {
                    n.as_deref() == Some(name) && !self.unit(i).staging && self.done[i].is_none()
                })
            })
            .map(Need::Output)
    }

    fn read_staging(
        &self,
        r: &mut Reader<'_>,
        node: &Node,
        unit: &Unit,
        assignment: &Assignment,
        hash: &str,
    ) -> StagingCache {
        let requirements = node
            .get("requirements")
            .and_then(|n| {
                r.map(
                    n,
                    "staging requirements",
                    // Run-time keys were already reported by the parser as
                    // keys a staging output cannot have.
                    crate::model::REQUIREMENT_KEYS,
                )
            })
            .map(|n| StagingRequirements {
                build: crate::model::read_dependencies(r, n.get("build")),
                host: crate::model::read_dependencies(r, n.get("host")),
                ignore_run_exports: n
                    .get("ignore_run_exports")
                    .map(|i| crate::model::read_ignore_run_exports(r, i))
                    .unwrap_or_default(),
            })
            .unwrap_or_default();
        let script = node
            .get("build")
            .and_then(|b| r.map(b, "staging build", &["script"]))
            .and_then(|b| b.get("script"))
            .map(|s| Script::read(r, s))
            .unwrap_or_else(|| self.default_script());
        StagingCache {
            name: node
                .get("staging")
                .and_then(|s| s.get("name"))
                .and_then(Node::as_str)
                .unwrap_or_default()
                .to_string(),
            implicit: unit.implicit,
            hash: hash.to_string(),
            variant: assignment.clone(),
            sources: node
                .get("source")
                .map(|s| Source::read_all(r, s))
                .unwrap_or_default(),
            requirements,
            script,
        }
    }

    /// `build.sh` next to the recipe, if there is one.
    fn default_script(&self) -> Script {
        if self.recipe.recipe_dir.join("build.sh").is_file() {
            Script::file("build.sh")
        } else {
            Script::default()
        }
    }

    fn read_package(
        &self,
        r: &mut Reader<'_>,
        node: &mut Node,
        assignment: &Assignment,
        hash: &str,
        inherit: Option<Inherit>,
    ) -> Option<PackageOutput> {
        let package = node.get("package")?;
        let name_text = r.opt_string(package, "name")?;
        let name = crate::model::read_package_name(r, &name_text)?;
        let version_text = r.opt_string(package, "version")?;
        let parsed = if version_text.value.contains('-') {
            Err(
                "conda versions cannot contain `-` (it separates name, version and build)"
                    .to_string(),
            )
        } else {
            version_text
                .value
                .parse::<VersionWithSource>()
                .map_err(|e| e.to_string())
        };
        let version = match parsed {
            Ok(v) => v,
            Err(err) => {
                r.report(
                    ProblemKind::InvalidValue {
                        what: "version",
                        value: version_text.value.clone(),
                        reason: err,
                    },
                    version_text.span,
                );
                return None;
            }
        };
        let build_node = node.get("build");
        let number = build_node
            .and_then(|b| b.get("number"))
            .and_then(|n| n.as_str())
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let build_string = match build_node.and_then(|b| r.opt_string(b, "string")) {
            Some(custom) if custom.value.contains('-') => {
                r.report(
                    ProblemKind::InvalidValue {
                        what: "build string",
                        value: custom.value,
                        reason: "build strings cannot contain `-`".into(),
                    },
                    custom.span,
                );
                return None;
            }
            Some(custom) => custom.value,
            None => format!("{hash}_{number}"),
        };
        resolve_self_pins(
            node,
            name.as_normalized(),
            &version_text.value,
            &build_string,
        );

        let script = match node.get("build").and_then(|b| b.get("script")) {
            Some(script) => Script::read(r, script),
            None if inherit.is_some() => Script::default(),
            None => self.default_script(),
        };
        let build = match node.get("build") {
            Some(b) => Build::read(r, b, build_string, script),
            None => Build::read(r, &Node::scalar("", true, node.span), build_string, script),
        };
        Some(PackageOutput {
            name,
            version,
            build,
            requirements: node
                .get("requirements")
                .map(|n| Requirements::read(r, n))
                .unwrap_or_default(),
            inherit,
            sources: node
                .get("source")
                .map(|s| Source::read_all(r, s))
                .unwrap_or_default(),
            tests: node
                .get("tests")
                .map(|t| Test::read_all(r, t))
                .unwrap_or_default(),
            about: node
                .get("about")
                .map(|a| About::read(r, a))
                .unwrap_or_default(),
            extra: node
                .get("extra")
                .map(to_json)
                .unwrap_or(serde_json::Value::Null),
            variant: assignment.clone(),
        })
    }

    fn check_duplicates(&mut self) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, unit) in self.recipe.units.iter().enumerate() {
            if unit.staging {
                continue;
            }
            if let Some(name) = self.names[i].as_deref()
                && seen.insert(name, i).is_some()
            {
                self.problems.push(Problem::new(
                    &self.recipe.source,
                    ProblemKind::DuplicateOutput {
                        name: name.to_string(),
                    },
                    unit.name_span,
                ));
            }
        }
    }
}

fn keys_of(node: &Node) -> Vec<String> {
    match &node.kind {
        NodeKind::Seq(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(String::from))
            .collect(),
        NodeKind::Scalar(s) if !node.is_null() => vec![s.value.clone()],
        _ => Vec::new(),
    }
}

/// A bare requirement whose name is a variant key gets the variant's value:
/// `python` with `python: [3.12]` becomes `python 3.12.*`.
fn pin_variant_requirements(scope: &Scope, node: &mut Node) -> Result<(), Need> {
    let Some(NodeKind::Map(entries)) = find_mut(node, "requirements").map(|n| &mut n.kind) else {
        return Ok(());
    };
    for (key, list) in entries.iter_mut() {
        if key.name != "build" && key.name != "host" {
            continue;
        }
        let NodeKind::Seq(items) = &mut list.kind else {
            continue;
        };
        for item in items {
            let NodeKind::Scalar(scalar) = &mut item.kind else {
                continue;
            };
            let name = scalar.value.trim();
            if name.is_empty()
                || name.contains(|c: char| c.is_whitespace() || "=<>!~*[".contains(c))
            {
                continue;
            }
            let value = match scope.variant_value(name) {
                Ok(Some(v)) => Some(v),
                Ok(None) => match scope.variant_value(&name.replace('-', "_")) {
                    Ok(v) => v,
                    Err(_) => return Err(scope.need().unwrap_or(Need::Key(name.to_string()))),
                },
                Err(_) => return Err(scope.need().unwrap_or(Need::Key(name.to_string()))),
            };
            if let Some(value) = value {
                scalar.value = format!("{name} {}", crate::jinja::version_constraint(&value));
            }
        }
    }
    Ok(())
}

fn find_mut<'n>(node: &'n mut Node, key: &str) -> Option<&'n mut Node> {
    match &mut node.kind {
        NodeKind::Map(entries) => entries
            .iter_mut()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v),
        _ => None,
    }
}

/// Replaces `pin_subpackage` markers for the output itself, now that its
/// version and build string are known.
fn resolve_self_pins(node: &mut Node, name: &str, version: &str, build: &str) {
    match &mut node.kind {
        NodeKind::Scalar(s) => {
            if let Some(json) = s.value.trim().strip_prefix(PIN_SUBPACKAGE_MARK)
                && let Ok(args) = serde_json::from_str::<PinArgs>(json)
                && args.name == name
            {
                s.value = pin_spec_for(&args, version, build);
            }
        }
        NodeKind::Seq(items) => items
            .iter_mut()
            .for_each(|i| resolve_self_pins(i, name, version, build)),
        NodeKind::Map(entries) => entries
            .iter_mut()
            .for_each(|(_, v)| resolve_self_pins(v, name, version, build)),
    }
}

/// `h` and seven hex digits over the used variant (and the platform unless
/// noarch); `py312` in front when the variant chooses a Python version.
fn variant_hash(
    variant: &Assignment,
    ignore: &[String],
    noarch: Option<&str>,
    target: Subdir,
) -> String {
    let mut input: BTreeMap<&str, &str> = variant
        .iter()
        .filter(|(k, _)| !ignore.contains(k))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if noarch.is_none() {
        input.insert("target_platform", target.as_str());
    }
    let json = serde_json::to_string(&input).unwrap_or_default();
    let digest = blake3::hash(json.as_bytes()).to_hex();
    let prefix = match (noarch, variant.get("python")) {
        (Some("python"), _) => "py".to_string(),
        (_, Some(python)) => format!("py{}", python_digits(python)),
        _ => String::new(),
    };
    format!("{prefix}h{}", &digest[..7])
}

fn python_digits(version: &str) -> String {
    version
        .trim_end_matches(".*")
        .split('.')
        .take(2)
        .map(|p| p.chars().filter(char::is_ascii_digit).collect::<String>())
        .collect()
}

fn to_json(node: &Node) -> serde_json::Value {
    match &node.kind {
        _ if node.is_null() => serde_json::Value::Null,
        NodeKind::Scalar(s) => serde_json::Value::String(s.value.clone()),
        NodeKind::Seq(items) => items.iter().map(to_json).collect(),
        NodeKind::Map(entries) => entries
            .iter()
            .map(|(k, v)| (k.name.clone(), to_json(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}
