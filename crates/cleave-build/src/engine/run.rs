//! A build of a [`Plan`]: every step in order, what exists skipped, what a
//! failure stops not built, and one report at the end.
//!
//! A failed step is reported through [`Event::Failed`] when it happens.
//! Without `keep_going` nothing after it is built; with it, only the steps
//! that need it (see [`Plan::needs`]) are not, and their rows say which
//! failure stopped them. An output whose exact package (name, version,
//! build string) a channel already has is skipped with `skip_existing`,
//! and so is a staging build whose inheriting outputs are all skipped.

use std::collections::BTreeMap;
use std::time::Instant;

use cleave_recipe::model::RenderedOutput;
use rattler_conda_types::PackageName;

use super::plan::{Plan, Step};
use super::{Builder, BuiltPackage, CacheMode, Event, SkipExisting, causes};
use crate::error::BuildError;

/// What became of one package output.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Built, or taken from the cache (see [`BuiltPackage::reused`]).
    Built(BuiltPackage),
    /// Its package was in a channel already: not built.
    Skipped {
        /// The channel that has it.
        channel: String,
    },
    /// It failed (the error went out as [`Event::Failed`]).
    Failed,
    /// Not built because something it needs failed, or the build stopped.
    NotBuilt {
        /// The failure that stopped it.
        because: String,
    },
}

/// One package output of the plan and what became of it.
#[derive(Debug, Clone)]
pub struct OutputReport {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Build string.
    pub build: String,
    /// What happened.
    pub outcome: Outcome,
}

/// What a build did, package output by package output, in build order.
#[derive(Debug, Clone, Default)]
pub struct BuildReport {
    /// The package outputs.
    pub outputs: Vec<OutputReport>,
    /// How many steps (staging builds and packages) or recipe-wide checks
    /// failed.
    pub failures: usize,
}

impl BuildReport {
    /// Whether nothing failed.
    pub fn succeeded(&self) -> bool {
        self.failures == 0
    }

    /// The packages built or reused.
    pub fn packages(&self) -> impl Iterator<Item = &BuiltPackage> {
        self.outputs.iter().filter_map(|o| match &o.outcome {
            Outcome::Built(p) => Some(p),
            _ => None,
        })
    }
}

/// Where a step stands.
#[derive(Debug, Clone)]
enum State {
    Pending,
    Done(Option<BuiltPackage>),
    Skipped(String),
    Failed(String),
    NotBuilt(String),
}

/// `name-version-build` or `staging `name``, for messages.
fn label(output: &RenderedOutput) -> String {
    match output {
        RenderedOutput::Staging(s) => format!("staging `{}`", s.name),
        RenderedOutput::Package(p) => {
            format!(
                "{}-{}-{}",
                p.name.as_normalized(),
                p.version,
                p.build.string
            )
        }
    }
}

impl Builder {
    /// Builds the steps of `plan` in order, and reports each package
    /// output's outcome.
    pub fn build(&mut self, plan: &Plan, on_event: &mut dyn FnMut(Event<'_>)) -> BuildReport {
        let mut states: Vec<State> = vec![State::Pending; plan.steps.len()];
        let mut failures = 0;
        let mut stopped: Option<String> = None;

        // Every output's settings, before the first one builds.
        for (i, step) in plan.steps.iter().enumerate() {
            if let RenderedOutput::Package(package) = plan.output(*step)
                && let Err(error) = crate::check::preflight::check(package)
            {
                let what = label(plan.output(*step));
                on_event(Event::Failed { what: &what, error });
                failures += 1;
                states[i] = State::Failed(what.clone());
                if !self.options.keep_going {
                    stopped = Some(what);
                }
            }
        }
        if stopped.is_none() {
            match self.skipped(plan) {
                Ok(skipped) => {
                    for (i, channel) in skipped {
                        states[i] = State::Skipped(channel);
                    }
                }
                Err(error) => {
                    let what = "the look-up of existing packages".to_string();
                    on_event(Event::Failed { what: &what, error });
                    failures += 1;
                    stopped = Some(what);
                }
            }
        }

        for (i, step) in plan.steps.iter().enumerate() {
            let output = plan.output(*step);
            let what = label(output);
            if let Some(because) = &stopped {
                if matches!(states[i], State::Pending) {
                    states[i] = State::NotBuilt(because.clone());
                }
                continue;
            }
            match &states[i] {
                State::Skipped(channel) => {
                    if let RenderedOutput::Package(_) = output {
                        on_event(Event::Skipped {
                            what: &what,
                            channel,
                        });
                    }
                    continue;
                }
                State::Pending => {}
                _ => continue,
            }
            let blocked = plan.needs[i].iter().find_map(|&j| match &states[j] {
                State::Failed(root) | State::NotBuilt(root) => Some(root.clone()),
                _ => None,
            });
            if let Some(root) = blocked {
                on_event(Event::NotBuilt {
                    what: &what,
                    because: &root,
                });
                states[i] = State::NotBuilt(root);
                continue;
            }
            match self.step(plan, *step, on_event) {
                Ok(built) => states[i] = State::Done(built),
                Err(error) => {
                    on_event(Event::Failed { what: &what, error });
                    failures += 1;
                    states[i] = State::Failed(what.clone());
                    if !self.options.keep_going {
                        stopped = Some(what);
                    }
                }
            }
        }

        // The split of each recipe whose outputs were all built.
        for (r, planned) in plan.recipes.iter().enumerate() {
            let complete = plan
                .steps
                .iter()
                .zip(&states)
                .filter(|(s, _)| s.recipe == r)
                .all(|(_, state)| matches!(state, State::Done(_)));
            let Some(claims) = self.claims.get(&r).filter(|_| complete) else {
                continue;
            };
            if let Err(error) = claims.report(
                self.options.error_unclaimed,
                self.options.error_overlapping,
                on_event,
            ) {
                let what = planned.file.display().to_string();
                on_event(Event::Failed { what: &what, error });
                failures += 1;
            }
        }
        if failures == 0 && !self.options.keep_build {
            // Only what this build made: the build root may be a directory
            // the user also keeps other things in.
            for dir in &self.made {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        self.locks.clear();
        self.entries.clear();
        self.trim_after(on_event);

        let outputs = plan
            .steps
            .iter()
            .zip(states)
            .filter_map(|(step, state)| {
                let RenderedOutput::Package(p) = plan.output(*step) else {
                    return None;
                };
                let outcome = match state {
                    State::Done(Some(package)) => Outcome::Built(package),
                    State::Skipped(channel) => Outcome::Skipped { channel },
                    State::Failed(_) => Outcome::Failed,
                    State::NotBuilt(because) => Outcome::NotBuilt { because },
                    State::Done(None) | State::Pending => return None,
                };
                Some(OutputReport {
                    name: p.name.as_normalized().to_string(),
                    version: p.version.to_string(),
                    build: p.build.string.clone(),
                    outcome,
                })
            })
            .collect();
        BuildReport { outputs, failures }
    }

    /// Builds one step: a staging build (no package) or a package output.
    fn step(
        &mut self,
        plan: &Plan,
        step: Step,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<Option<BuiltPackage>, BuildError> {
        self.current = step.recipe;
        let planned = &plan.recipes[step.recipe];
        match plan.output(step) {
            RenderedOutput::Staging(staging) => {
                on_event(Event::Started {
                    kind: "staging",
                    what: &staging.name,
                });
                let inherited = planned.recipe.outputs.iter().any(|o| match o {
                    RenderedOutput::Package(p) => p
                        .inherit
                        .as_ref()
                        .is_some_and(|i| i.from == staging.name && i.hash == staging.hash),
                    RenderedOutput::Staging(_) => false,
                });
                if !inherited {
                    on_event(Event::Warning(&format!(
                        "staging `{}` is inherited by no output; it is built, and all its files are unclaimed",
                        staging.name
                    )));
                }
                self.build_staging(staging, &planned.recipe.recipe_dir, on_event)?;
                Ok(None)
            }
            RenderedOutput::Package(package) => {
                let id = label(plan.output(step));
                on_event(Event::Started {
                    kind: "package",
                    what: &id,
                });
                let started = Instant::now();
                let mut built =
                    self.build_package(package, &planned.recipe, &planned.file, on_event)?;
                built.duration = started.elapsed();
                Ok(Some(built))
            }
        }
    }

    /// The steps skipped because their package exists (with the channel
    /// that has it), and the staging builds only they inherit.
    fn skipped(&self, plan: &Plan) -> Result<BTreeMap<usize, String>, BuildError> {
        let channels = match self.options.skip_existing {
            SkipExisting::None => return Ok(BTreeMap::new()),
            SkipExisting::Local => vec![self.output_channel.clone()],
            SkipExisting::All => std::iter::once(self.output_channel.clone())
                .chain(self.options.channels.iter().cloned())
                .collect(),
        };
        let mut names: Vec<PackageName> = plan
            .steps
            .iter()
            .filter_map(|s| match plan.output(*s) {
                RenderedOutput::Package(p) => Some(p.name.clone()),
                RenderedOutput::Staging(_) => None,
            })
            .collect();
        names.sort();
        names.dedup();
        let existing = self
            .envs
            .existing(&channels, &names, self.options.target_platform)?;
        let mut skipped = BTreeMap::new();
        for (i, step) in plan.steps.iter().enumerate() {
            if let RenderedOutput::Package(_) = plan.output(*step)
                && let Some(channel) = existing.get(&label(plan.output(*step)))
            {
                skipped.insert(i, channel.clone());
            }
        }
        for (i, step) in plan.steps.iter().enumerate() {
            if let RenderedOutput::Staging(_) = plan.output(*step) {
                let mut inheritors = (0..plan.steps.len()).filter(|j| plan.needs[*j].contains(&i));
                let mut any = false;
                if inheritors.all(|j| {
                    any = true;
                    skipped.contains_key(&j)
                }) && any
                {
                    skipped.insert(i, "every output inheriting it is skipped".to_string());
                }
            }
        }
        Ok(skipped)
    }

    /// Keeps the store under its size cap after a build.
    fn trim_after(&self, on_event: &mut dyn FnMut(Event<'_>)) {
        if let (Some(max), CacheMode::ReadWrite) =
            (self.options.max_cache_size, self.options.cache_mode)
        {
            match self.trim(max) {
                Ok(report) if !report.removed.is_empty() => on_event(Event::Evicted {
                    entries: report.removed.len(),
                    bytes: report.freed,
                }),
                Ok(_) => {}
                // The packages are built: a cache that cannot be trimmed
                // now is trimmed by a later build or `cleave cache gc`.
                Err(e) => on_event(Event::Warning(&format!(
                    "trimming the cache: {}",
                    causes(&e)
                ))),
            }
        }
    }
}
