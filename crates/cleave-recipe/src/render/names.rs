//! Output names, which may be templates, and what `inherit:` refers to.
//!
//! A name like `libclang-cpp${{ maj_min }}` depends on the context; one
//! like `zig_impl_${{ cross_target_platform_ }}` on a variant key, so one
//! output declaration can be several packages. Names are rendered before
//! anything else, once per value of the keys they read, so that
//! `pin_subpackage` and `inherit` can find outputs by any of their names.

use std::collections::BTreeSet;

use super::{Assignment, Driver, InheritSpec};
use crate::error::{Problem, ProblemKind};
use crate::jinja::{Need, Scope};
use crate::parse::{InheritTarget, Unit};
use crate::template::Renderer;
use crate::yaml::Node;

/// Renders of one name beyond this are not explored: a name that depends
/// on this many variant combinations is not a name.
const MAX_NAME_RENDERS: usize = 512;

impl Driver<'_> {
    /// Renders each unit's names, so pins and dependencies can find their
    /// sibling before it is rendered.
    pub(super) fn name_units(&mut self) {
        let mut package_names = BTreeSet::new();
        for (i, unit) in self.recipe.units.iter().enumerate() {
            let Some(name) = name_node(unit) else {
                continue;
            };
            let names = self.render_names(name);
            if !unit.staging {
                package_names.extend(names.iter().cloned());
            }
            self.names[i] = names;
        }
        let _ = self.shared.package_names.set(package_names);
    }

    /// Every text `node` renders to over the variant keys it reads.
    fn render_names(&self, node: &Node) -> Vec<String> {
        let mut work = vec![Assignment::new()];
        let mut names = Vec::new();
        let mut renders = 0;
        while let Some(assignment) = work.pop() {
            renders += 1;
            if renders > MAX_NAME_RENDERS {
                break;
            }
            let scope = Scope::new(self.shared.clone(), assignment.clone(), None);
            let mut renderer = Renderer::new(scope.clone(), &self.recipe.source);
            let rendered = renderer.render(node);
            match scope.need() {
                Some(Need::Key(key)) => {
                    for value in self.shared.variants.choices(&key, &assignment) {
                        let mut next = assignment.clone();
                        next.insert(key.clone(), value);
                        work.push(next);
                    }
                }
                Some(Need::Output(_)) => {}
                None => {
                    if renderer.problems.is_empty()
                        && let Some(text) = rendered.as_str().filter(|t| !t.is_empty())
                        && !names.iter().any(|n| n == text)
                    {
                        names.push(text.to_string());
                    }
                }
            }
        }
        names
    }

    /// The output's name under `assignment`, or the key it still needs.
    pub(super) fn unit_name(
        &self,
        unit: &Unit,
        assignment: &Assignment,
    ) -> Result<Option<String>, Need> {
        let Some(node) = name_node(unit) else {
            return Ok(None);
        };
        if !node.as_str().is_some_and(|n| n.contains("${{")) {
            return Ok(node.as_str().map(str::to_string));
        }
        let scope = Scope::new(self.shared.clone(), assignment.clone(), None);
        let mut renderer = Renderer::new(scope.clone(), &self.recipe.source);
        let rendered = renderer.render(node);
        if let Some(need) = scope.need() {
            return Err(need);
        }
        Ok(rendered.as_str().map(str::to_string))
    }

    /// Finds the staging output of every `inherit:` that could only be
    /// resolved once names were rendered.
    pub(super) fn resolve_inherits(&mut self) {
        for i in 0..self.recipe.units.len() {
            let Some(decl) = self.recipe.units[i].inherit.clone() else {
                continue;
            };
            let unit = match &decl.target {
                InheritTarget::Unit(unit) => Some(*unit),
                InheritTarget::Name(node) => self.find_staging(node),
            };
            self.inherits[i] = unit.map(|unit| InheritSpec {
                unit,
                run_exports: decl.run_exports,
            });
        }
    }

    fn find_staging(&mut self, node: &Node) -> Option<usize> {
        let names = self.render_names(node);
        let staging: Vec<(usize, &String)> = self
            .recipe
            .units
            .iter()
            .enumerate()
            .filter(|(_, u)| u.staging)
            .flat_map(|(i, _)| self.names[i].iter().map(move |n| (i, n)))
            .collect();
        if let Some(name) = names.first()
            && let Some((unit, _)) = staging.iter().find(|(_, n)| *n == name)
        {
            return Some(*unit);
        }
        let written = names
            .first()
            .cloned()
            .unwrap_or_else(|| node.as_str().unwrap_or_default().to_string());
        let known: Vec<&str> = staging.iter().map(|(_, n)| n.as_str()).collect();
        let help = crate::parse::unknown_staging_help(&written, &known);
        self.problems.push(
            Problem::new(
                &self.recipe.source,
                ProblemKind::UnknownStaging { name: written },
                node.span,
            )
            .with_help(help),
        );
        None
    }
}

/// Why `name` cannot be one component of a path, if it cannot. Staging
/// names name build directories and lock files, build strings package
/// files: `/tmp/x`, `a/../../b` or `..` would put them anywhere.
pub(crate) fn unsafe_in_path(name: &str) -> Option<&'static str> {
    if name.contains('/') {
        Some("it would be used as a path, and cannot contain `/`")
    } else if name.contains('\\') {
        Some("it would be used as a path, and cannot contain `\\`")
    } else if name.chars().any(char::is_control) {
        Some("it would be used as a path, and cannot contain control characters")
    } else if name == "." || name == ".." {
        Some("it would be used as a path, and cannot be `.` or `..`")
    } else {
        None
    }
}

/// The node holding an output's name.
fn name_node(unit: &Unit) -> Option<&Node> {
    let section = if unit.staging { "staging" } else { "package" };
    unit.node.get(section).and_then(|s| s.get("name"))
}
