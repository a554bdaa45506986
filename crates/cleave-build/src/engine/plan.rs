//! One build order for the outputs of several recipes.
//!
//! Each rendered recipe already lists its outputs in an order that builds
//! (staging builds before what inherits them, siblings before the outputs
//! pinning them). Across recipes, an output whose build or host
//! requirements name a package another recipe makes builds after every
//! output of that name, as rattler-build orders `--recipe-dir`. The order
//! is otherwise the recipes' own (recipes in the order given, outputs as
//! rendered), and a cycle across recipes is an error naming the packages
//! in it.
//!
//! The same edges say what an output needs: `--up-to NAME` keeps what the
//! outputs called NAME need (transitively) and themselves, and with
//! `--keep-going` a failed output stops only what needs it. Within a
//! recipe an output also needs the staging build it inherits and the
//! earlier siblings any of its requirements name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use cleave_recipe::RenderedRecipe;
use cleave_recipe::model::{Dependency, RenderedOutput};

/// A rendered recipe and its file, one of the recipes of a build.
#[derive(Debug)]
pub struct PlannedRecipe {
    /// The rendered outputs.
    pub recipe: RenderedRecipe,
    /// Its `recipe.yaml`, which goes into each package's `info/recipe/`.
    pub file: PathBuf,
}

/// One output of one recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Step {
    /// The recipe, by its place among the recipes.
    pub recipe: usize,
    /// The output, by its place among the recipe's rendered outputs.
    pub output: usize,
}

/// The recipes of a build and the order their outputs build in.
#[derive(Debug)]
pub struct Plan {
    /// The recipes, as given.
    pub recipes: Vec<PlannedRecipe>,
    /// Every output to build, in order.
    pub steps: Vec<Step>,
    /// Per step (by its index in `steps`), the earlier steps it needs.
    pub needs: Vec<Vec<usize>>,
}

/// Why no order exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Outputs need each other across recipes.
    #[error("the recipes need each other in a cycle: {}", packages.join(", "))]
    Cycle {
        /// The packages in (or behind) the cycle.
        packages: Vec<String>,
    },
    /// `--up-to` names no output.
    #[error("--up-to `{name}`: no recipe makes a package of that name")]
    UnknownUpTo {
        /// The name given.
        name: String,
    },
}

impl Plan {
    /// The build order of the outputs of `recipes`, every output or only
    /// what `up_to` needs.
    pub fn new(recipes: Vec<PlannedRecipe>, up_to: Option<&str>) -> Result<Plan, PlanError> {
        let nodes: Vec<Step> = recipes
            .iter()
            .enumerate()
            .flat_map(|(r, planned)| {
                (0..planned.recipe.outputs.len()).map(move |o| Step {
                    recipe: r,
                    output: o,
                })
            })
            .collect();
        let index: BTreeMap<Step, usize> = nodes.iter().enumerate().map(|(i, s)| (*s, i)).collect();
        let output = |s: &Step| &recipes[s.recipe].recipe.outputs[s.output];
        // Package outputs by name, across recipes.
        let mut by_name: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, step) in nodes.iter().enumerate() {
            if let RenderedOutput::Package(p) = output(step) {
                by_name
                    .entry(p.name.as_normalized().to_string())
                    .or_default()
                    .push(i);
            }
        }
        let mut needs: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); nodes.len()];
        for (i, step) in nodes.iter().enumerate() {
            let (own, build_host, run): (Option<String>, Vec<&Dependency>, Vec<&Dependency>) =
                match output(step) {
                    RenderedOutput::Staging(s) => (
                        None,
                        s.requirements
                            .build
                            .iter()
                            .chain(&s.requirements.host)
                            .collect(),
                        Vec::new(),
                    ),
                    RenderedOutput::Package(p) => {
                        if let Some(inherit) = &p.inherit {
                            let staging = (0..step.output).find(|&o| {
                                matches!(
                                    &recipes[step.recipe].recipe.outputs[o],
                                    RenderedOutput::Staging(s) if s.name == inherit.from && s.hash == inherit.hash
                                )
                            });
                            if let Some(o) = staging {
                                needs[i].insert(
                                    index[&Step {
                                        recipe: step.recipe,
                                        output: o,
                                    }],
                                );
                            }
                        }
                        let r = &p.requirements;
                        (
                            Some(p.name.as_normalized().to_string()),
                            r.build.iter().chain(&r.host).collect(),
                            r.run.iter().chain(&r.run_constraints).collect(),
                        )
                    }
                };
            for dep in build_host.iter().chain(&run) {
                let Some(name) = dep.name() else { continue };
                if own.as_deref() == Some(name.as_str()) {
                    continue;
                }
                let is_build_host = build_host.iter().any(|d| std::ptr::eq(*d, *dep));
                for &j in by_name.get(&name).into_iter().flatten() {
                    let other = nodes[j];
                    // Siblings: only those rendered earlier (the render
                    // already ordered them). Other recipes: what the
                    // build and host environments need.
                    let counts = if other.recipe == step.recipe {
                        other.output < step.output
                    } else {
                        is_build_host
                    };
                    if counts {
                        needs[i].insert(j);
                    }
                }
            }
        }
        let keep: BTreeSet<usize> = match up_to {
            None => (0..nodes.len()).collect(),
            Some(name) => {
                let name = name.trim().to_lowercase();
                let targets = by_name
                    .get(&name)
                    .ok_or_else(|| PlanError::UnknownUpTo { name: name.clone() })?;
                let mut keep = BTreeSet::new();
                let mut stack: Vec<usize> = targets.clone();
                while let Some(n) = stack.pop() {
                    if keep.insert(n) {
                        stack.extend(needs[n].iter().copied());
                    }
                }
                keep
            }
        };
        // Kahn's algorithm, lowest (recipe, output) first among the ready.
        let mut waiting: Vec<usize> = (0..nodes.len())
            .map(|i| needs[i].iter().filter(|j| keep.contains(j)).count())
            .collect();
        let mut ready: BTreeSet<usize> =
            keep.iter().copied().filter(|&i| waiting[i] == 0).collect();
        let mut order: Vec<usize> = Vec::with_capacity(keep.len());
        while let Some(n) = ready.pop_first() {
            order.push(n);
            for &m in &keep {
                if needs[m].contains(&n) {
                    waiting[m] -= 1;
                    if waiting[m] == 0 {
                        ready.insert(m);
                    }
                }
            }
        }
        if order.len() < keep.len() {
            let placed: BTreeSet<usize> = order.iter().copied().collect();
            let packages: BTreeSet<String> = keep
                .iter()
                .filter(|n| !placed.contains(n))
                .map(|&n| output(&nodes[n]).name().to_string())
                .collect();
            return Err(PlanError::Cycle {
                packages: packages.into_iter().collect(),
            });
        }
        let position: BTreeMap<usize, usize> =
            order.iter().enumerate().map(|(at, &n)| (n, at)).collect();
        let plan_needs = order
            .iter()
            .map(|n| {
                needs[*n]
                    .iter()
                    .filter_map(|m| position.get(m).copied())
                    .collect()
            })
            .collect();
        Ok(Plan {
            steps: order.iter().map(|&n| nodes[n]).collect(),
            needs: plan_needs,
            recipes,
        })
    }

    /// The rendered output of `step`.
    pub fn output(&self, step: Step) -> &RenderedOutput {
        &self.recipes[step.recipe].recipe.outputs[step.output]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cleave_recipe::{RenderConfig, SourceFile};

    fn recipe(text: &str) -> PlannedRecipe {
        let parsed =
            cleave_recipe::parse(SourceFile::new("recipe.yaml", text), ".".into()).unwrap();
        PlannedRecipe {
            recipe: cleave_recipe::render(&parsed, &RenderConfig::native()).unwrap(),
            file: "recipe.yaml".into(),
        }
    }

    fn single(name: &str, host: &[&str]) -> PlannedRecipe {
        recipe(&format!(
            "package: {{name: {name}, version: '1.0'}}\nrequirements:\n  host: [{}]\n",
            host.join(", ")
        ))
    }

    fn names(plan: &Plan) -> Vec<String> {
        plan.steps
            .iter()
            .map(|s| plan.output(*s).name().to_string())
            .collect()
    }

    #[test]
    fn an_output_builds_after_what_its_host_names_in_another_recipe() {
        let plan = Plan::new(
            vec![
                single("app", &["libb"]),
                single("libb", &["liba"]),
                single("liba", &[]),
            ],
            None,
        )
        .unwrap();
        assert_eq!(names(&plan), ["liba", "libb", "app"]);
        assert_eq!(plan.needs[2], [1]);
    }

    #[test]
    fn independent_recipes_keep_their_order() {
        let plan = Plan::new(vec![single("b", &[]), single("a", &[])], None).unwrap();
        assert_eq!(names(&plan), ["b", "a"]);
    }

    #[test]
    fn a_cycle_across_recipes_names_its_packages() {
        let err = Plan::new(
            vec![single("x", &["y"]), single("y", &["x"]), single("z", &[])],
            None,
        )
        .unwrap_err();
        assert_eq!(
            err,
            PlanError::Cycle {
                packages: vec!["x".into(), "y".into()]
            }
        );
    }

    #[test]
    fn up_to_keeps_what_the_package_needs() {
        let plan = Plan::new(
            vec![
                single("app", &["libb"]),
                single("libb", &["liba"]),
                single("liba", &[]),
                single("other", &[]),
            ],
            Some("libb"),
        )
        .unwrap();
        assert_eq!(names(&plan), ["liba", "libb"]);
        let err = Plan::new(vec![single("a", &[])], Some("nope")).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn an_inheriting_output_needs_its_staging_build() {
        let plan = Plan::new(
            vec![recipe(
                "recipe: {name: s, version: '1'}\noutputs:\n  - staging: {name: s-build}\n    build: {script: 'true'}\n  - package: {name: s-lib}\n    inherit: s-build\n",
            )],
            Some("s-lib"),
        )
        .unwrap();
        assert_eq!(names(&plan), ["s-build", "s-lib"]);
        assert_eq!(plan.needs[1], [0]);
    }
}
