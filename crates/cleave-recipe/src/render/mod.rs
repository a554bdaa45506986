//! Renders a recipe into its outputs, once per combination of the variant
//! keys each output actually uses, in build order.
//!
//! Each output is rendered under a partial variant assignment. A render that
//! reads a key without a value stops and is retried once per value of that
//! key; a render that pins or depends on a sibling not rendered yet stops,
//! the sibling is rendered first, and the render is retried. The finished
//! assignments are exactly the used variants, and the order in which outputs
//! finish is a topological order.
//!
//! What counts as used, and the build string hash computed from it, follow
//! conda-build and rattler-build (see [`used`]), so the same recipe and
//! variant file give the same build strings with every tool.

mod limit;
mod names;
mod outputs;
mod requirements;
mod used;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rattler_conda_types::Subdir;
use serde::Serialize;

use crate::error::{Problem, ProblemKind, RecipeErrors};
use crate::jinja::{Need, PinTarget, Scope, Shared};
use crate::model::{Dependency, Inherit, PackageOutput, RenderedOutput};
use crate::parse::{Recipe, Unit};
use crate::read::Reader;
use crate::template::Renderer;
use crate::variant::{VariantConfig, VariantValue};
use crate::yaml::Node;

pub use limit::MAX_VARIANTS;
use limit::{Budget, Factors};

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
    /// What renders but should be looked at: deprecated forms, script
    /// templates left for the build.
    #[serde(skip)]
    pub warnings: Vec<Problem>,
}

/// Renders every output for every variant it uses.
pub fn render(recipe: &Recipe, config: &RenderConfig) -> Result<RenderedRecipe, RecipeErrors> {
    let shared = Arc::new(Shared {
        source: recipe.source.clone(),
        recipe_dir: recipe.recipe_dir.clone(),
        context: recipe.context.clone(),
        variants: config.variants.clone(),
        target: config.target_platform,
        build: config.build_platform,
        package_names: std::sync::OnceLock::new(),
        rendered: Mutex::new(HashMap::new()),
        failed: Mutex::new(std::collections::BTreeSet::new()),
    });
    let mut driver = Driver {
        recipe,
        shared,
        names: vec![Vec::new(); recipe.units.len()],
        inherits: vec![None; recipe.units.len()],
        done: vec![None; recipe.units.len()],
        stack: Vec::new(),
        outputs: Vec::new(),
        problems: Vec::new(),
        budget: Budget::default(),
    };
    driver.name_units();
    driver.resolve_inherits();
    driver.check_context();
    for unit in 0..recipe.units.len() {
        driver.visit(unit);
    }
    driver.check_duplicates();
    let mut problems = driver.problems;
    problems.extend(recipe.warnings.iter().cloned());
    if problems.iter().all(Problem::is_warning) {
        let warnings = RecipeErrors::new(problems).problems().to_vec();
        Ok(RenderedRecipe {
            recipe_dir: recipe.recipe_dir.clone(),
            target_platform: config.target_platform.as_str().to_string(),
            outputs: driver.outputs,
            warnings,
        })
    } else {
        Err(RecipeErrors::new(problems))
    }
}

type Assignment = BTreeMap<String, VariantValue>;

/// A used variant: what the build string hash is computed from.
type Used = BTreeMap<String, serde_json::Value>;

/// A resolved `inherit:`.
#[derive(Debug, Clone, Copy)]
struct InheritSpec {
    unit: usize,
    run_exports: bool,
}

/// A finished render of one unit under one used variant.
#[derive(Debug, Clone)]
struct Instance {
    variant: Assignment,
    /// The used variant, as hashed.
    used: Used,
    /// The variant part of the build string (`py312h1a2b3c4`).
    hash: String,
    name: String,
    version: String,
    build_string: String,
}

enum Attempt {
    /// The output, its instance, and warnings found while rendering it.
    Done(Box<(RenderedOutput, Instance, Vec<Problem>)>),
    Skipped,
    Need(Need),
    Failed(Vec<Problem>),
}

struct Driver<'a> {
    recipe: &'a Recipe,
    shared: Arc<Shared>,
    /// Each unit's names: one per value of the variant keys its name uses.
    names: Vec<Vec<String>>,
    inherits: Vec<Option<InheritSpec>>,
    /// Finished units; `Some(vec![])` when all were skipped or failed.
    done: Vec<Option<Vec<Instance>>>,
    stack: Vec<usize>,
    outputs: Vec<RenderedOutput>,
    problems: Vec<Problem>,
    /// The renders so far, against [`MAX_VARIANTS`].
    budget: Budget,
}

impl Driver<'_> {
    fn unit(&self, index: usize) -> &Unit {
        &self.recipe.units[index]
    }

    /// A name for messages about `unit`.
    fn label(&self, unit: usize) -> String {
        self.names[unit]
            .first()
            .cloned()
            .unwrap_or_else(|| "?".into())
    }

    /// Renders every context entry once, so a broken one is reported even
    /// if no output uses it.
    fn check_context(&mut self) {
        for index in 0..self.recipe.context.len() {
            let scope = Scope::new(self.shared.clone(), Assignment::new(), None);
            let _ = scope.context_value(index);
            if scope.need().is_none() {
                self.problems.extend(scope.take_problems());
            }
        }
    }

    fn visit(&mut self, unit: usize) {
        if self.done[unit].is_some() {
            return;
        }
        if self.budget.exceeded() {
            self.done[unit] = Some(Vec::new());
            return;
        }
        if self.unit(unit).node.as_map().is_none_or(<[_]>::is_empty) {
            // An output the parser could not make sense of; already reported.
            self.done[unit] = Some(Vec::new());
            return;
        }
        if let Some(pos) = self.stack.iter().position(|&u| u == unit) {
            let mut path: Vec<String> = self.stack[pos..].iter().map(|&u| self.label(u)).collect();
            path.push(self.label(unit));
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
        let starts: Vec<(Assignment, Used, Option<Inherit>)> = match self.inherits[unit] {
            Some(spec) => {
                self.visit(spec.unit);
                self.done[spec.unit]
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|inst| {
                        let inherit = Inherit {
                            from: inst.name.clone(),
                            hash: inst.hash.clone(),
                            run_exports: spec.run_exports,
                        };
                        (inst.variant, inst.used, Some(inherit))
                    })
                    .collect()
            }
            None => vec![(Assignment::new(), Used::new(), None)],
        };
        let mut instances = Vec::new();
        for (start, inherited, inherit) in starts {
            if self.done[unit].is_some() {
                break;
            }
            self.expand(unit, start, &inherited, inherit, &mut instances);
        }
        self.stack.pop();
        if self.done[unit].is_some() {
            return;
        }
        if !self.unit(unit).staging {
            let mut rendered = self
                .shared
                .rendered
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for name in &self.names[unit] {
                rendered.entry(name.clone()).or_default();
            }
            for inst in &instances {
                rendered
                    .entry(inst.name.clone())
                    .or_default()
                    .push(PinTarget {
                        version: inst.version.clone(),
                        build_string: inst.build_string.clone(),
                        variant: inst.variant.clone(),
                    });
            }
        }
        self.done[unit] = Some(instances);
    }

    /// Renders `unit` for every completion of `start` it needs.
    fn expand(
        &mut self,
        unit: usize,
        start: Assignment,
        inherited: &Used,
        inherit: Option<Inherit>,
        instances: &mut Vec<Instance>,
    ) {
        let mut work = vec![(start, Factors::default())];
        while let Some((assignment, factors)) = work.pop() {
            if self.budget.exceeded() {
                // Passed while a sibling this output needs was rendered.
                self.done[unit] = Some(Vec::new());
                return;
            }
            let attempt = self.attempt(unit, &assignment, inherited, inherit.clone());
            if !matches!(attempt, Attempt::Need(_))
                && let Some(problem) = self.budget.count(&self.label(unit), &factors)
            {
                self.over_limit(unit, problem);
                return;
            }
            match attempt {
                Attempt::Done(done) => {
                    let (output, instance, warnings) = *done;
                    self.problems.extend(warnings);
                    // Variants that differ only in keys that do not reach
                    // the package (a noarch python package built for every
                    // python) are one package.
                    let same = instances.iter().any(|i: &Instance| {
                        i.name == instance.name
                            && i.version == instance.version
                            && i.build_string == instance.build_string
                            && i.hash == instance.hash
                    });
                    if !same {
                        self.outputs.push(output);
                        instances.push(instance);
                    }
                }
                Attempt::Skipped => {}
                Attempt::Failed(problems) => {
                    let mut failed = self.shared.failed.lock().unwrap_or_else(|e| e.into_inner());
                    failed.extend(self.names[unit].iter().cloned());
                    drop(failed);
                    self.problems.extend(problems);
                }
                Attempt::Need(Need::Key(key)) => {
                    let choices = self.shared.variants.choices(&key, &assignment);
                    let factors = factors.with(&key, choices.len());
                    if let Some(problem) = self.budget.promise(&self.label(unit), &factors) {
                        self.over_limit(unit, problem);
                        return;
                    }
                    for value in choices.into_iter().rev() {
                        let mut next = assignment.clone();
                        next.insert(key.clone(), value);
                        work.push((next, factors.clone()));
                    }
                }
                Attempt::Need(Need::Output(name)) => {
                    let Some(other) = self.package_unit(&name) else {
                        continue;
                    };
                    self.visit(other);
                    if self.done[unit].is_some() {
                        return;
                    }
                    work.push((assignment, factors));
                }
            }
        }
    }

    /// Stops rendering at `unit`: the recipe has too many variants.
    fn over_limit(&mut self, unit: usize, problem: ProblemKind) {
        let span = self.unit(unit).name_span;
        self.problems
            .push(Problem::new(&self.recipe.source, problem, span).with_help(
                "variant keys multiply unless they are zipped: zip the keys whose values go \
                 together (`zip_keys`), or give the variant files fewer values",
            ));
        self.done[unit] = Some(Vec::new());
    }

    /// The package unit that can be called `name`.
    fn package_unit(&self, name: &str) -> Option<usize> {
        (0..self.names.len())
            .find(|&i| !self.unit(i).staging && self.names[i].iter().any(|n| n == name))
    }

    fn attempt(
        &self,
        unit_index: usize,
        assignment: &Assignment,
        inherited: &Used,
        inherit: Option<Inherit>,
    ) -> Attempt {
        let unit = self.unit(unit_index);
        let self_name = match self.unit_name(unit, assignment) {
            Ok(name) => name,
            Err(need) => return Attempt::Need(need),
        };
        let package_name = self_name.clone().filter(|_| !unit.staging);
        let scope = Scope::new(
            self.shared.clone(),
            assignment.clone(),
            package_name.clone(),
        );
        if let Some(need) = self.read_always_used(&scope) {
            return Attempt::Need(need);
        }
        let mut renderer = Renderer::new(scope.clone(), &self.recipe.source);

        if let Some(skip) = unit.node.get("build").and_then(|b| b.get("skip")) {
            // Every condition is evaluated, so each one's keys are read.
            let mut skipped = false;
            for condition in renderer.selected(skip) {
                if !condition.is_null() {
                    skipped |= renderer.condition(&condition).unwrap_or(false);
                }
            }
            if let Some(need) = scope.need() {
                return Attempt::Need(need);
            }
            if skipped && renderer.problems.iter().all(Problem::is_warning) {
                return Attempt::Skipped;
            }
        }

        let mut node = renderer.render(&unit.node);
        if let Some(need) = scope.need() {
            return Attempt::Need(need);
        }
        if let Err(need) = requirements::pin_variant_requirements(&scope, &mut node) {
            return Attempt::Need(need);
        }
        let use_keys = node
            .get("build")
            .and_then(|b| b.get("variant"))
            .and_then(|v| v.get("use_keys"));
        if let Some(keys) = use_keys {
            for key in requirements::keys_of(keys) {
                if scope.variant_value(&key).is_err()
                    && let Some(need) = scope.need()
                {
                    return Attempt::Need(need);
                }
            }
        }
        let mut problems = scope.take_problems();
        problems.append(&mut renderer.problems);
        if problems.iter().any(|p| !p.is_warning()) {
            return Attempt::Failed(problems);
        }

        let learned = scope.learned();
        let build_number = node
            .get("build")
            .and_then(|b| b.get("number"))
            .and_then(Node::as_str)
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let (used, hash) = used::used_variant(
            assignment,
            inherited,
            &learned,
            &node,
            (self.shared.target, self.shared.build),
        );
        let templated_string = unit
            .node
            .get("build")
            .and_then(|b| b.get("string"))
            .and_then(Node::as_str)
            .is_some_and(|s| s.contains("${{"));
        if learned.hash_used || templated_string {
            let scope = Scope::with_hash(
                self.shared.clone(),
                assignment.clone(),
                package_name,
                hash.digest.clone(),
                build_number,
            );
            let mut again = Renderer::new(scope.clone(), &self.recipe.source);
            node = again.render(&unit.node);
            if let Err(need) = requirements::pin_variant_requirements(&scope, &mut node) {
                return Attempt::Need(need);
            }
            problems.extend(again.problems.into_iter().filter(|p| !p.is_warning()));
            if !problems.iter().all(Problem::is_warning) {
                return Attempt::Failed(problems);
            }
        }
        let build_string = node
            .get("build")
            .and_then(|b| b.get("string"))
            .and_then(Node::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("{}_{build_number}", hash.tag()));

        let mut reader = Reader::in_dir(&self.recipe.source, &self.recipe.recipe_dir);
        let output = if unit.staging {
            RenderedOutput::Staging(Box::new(self.read_staging(
                &mut reader,
                &node,
                unit,
                &used,
                &hash.tag(),
            )))
        } else {
            match self.read_package(&mut reader, &mut node, &used, build_string, inherit) {
                Some(output) => RenderedOutput::Package(Box::new(output)),
                None => {
                    problems.extend(reader.problems);
                    return Attempt::Failed(problems);
                }
            }
        };
        let reader_failed = reader.problems.iter().any(|p| !p.is_warning());
        problems.extend(reader.problems);
        if reader_failed {
            return Attempt::Failed(problems);
        }
        if let RenderedOutput::Package(package) = &output
            && let Some(need) = self.unrendered_sibling(package)
        {
            return Attempt::Need(need);
        }
        let (name, version, build_string) = match &output {
            RenderedOutput::Staging(s) => (s.name.clone(), String::new(), String::new()),
            RenderedOutput::Package(p) => (
                p.name.as_normalized().to_string(),
                p.version.to_string(),
                p.build.string.clone(),
            ),
        };
        let instance = Instance {
            variant: assignment.clone(),
            used,
            hash: hash.tag(),
            name,
            version,
            build_string,
        };
        Attempt::Done(Box::new((output, instance, problems)))
    }

    /// Keys that are part of every output's variant when a variant file
    /// sets them (the channels a package goes to, conda-build's
    /// environment keys), and every key a context entry reads: context is
    /// shared by all outputs. Returns what is still to be chosen.
    fn read_always_used(&self, scope: &Arc<Scope>) -> Option<Need> {
        for key in used::always_used_keys(self.shared.target) {
            if scope.variant_value(key).is_err() {
                return scope.need();
            }
        }
        for index in 0..self.recipe.context.len() {
            scope.context_value(index);
            if let Some(need) = scope.need() {
                return Some(need);
            }
        }
        None
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
                self.package_unit(name)
                    .is_some_and(|i| self.done[i].is_none())
            })
            .map(Need::Output)
    }

    fn check_duplicates(&mut self) {
        let mut seen: HashMap<(bool, &str), usize> = HashMap::new();
        for (i, unit) in self.recipe.units.iter().enumerate() {
            for name in &self.names[i] {
                if let Some(first) = seen.insert((unit.staging, name.as_str()), i)
                    && first != i
                {
                    self.problems.push(Problem::new(
                        &self.recipe.source,
                        ProblemKind::DuplicateOutput { name: name.clone() },
                        unit.name_span,
                    ));
                }
            }
        }
    }
}
