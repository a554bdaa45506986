//! Which staging files the packages took: the files no output claims, or
//! that two outputs claim, are reported after the build (and fail it when
//! the options say so), so that a split never drops or duplicates a file
//! silently.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::engine::Event;
use crate::error::BuildError;

/// How many files an error lists.
const LISTED: usize = 20;

/// The claims on the files of every staging build of a recipe.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    by_staging: BTreeMap<String, StagingClaims>,
}

#[derive(Debug, Default)]
struct StagingClaims {
    /// Files and links the staging build put in the prefix.
    files: BTreeSet<PathBuf>,
    /// Per file, the packages that took it.
    takers: BTreeMap<PathBuf, Vec<String>>,
}

impl Claims {
    /// Registers a staging build, so that it is reported even when no
    /// output inherits it.
    pub(crate) fn staging(&mut self, staging: &str) {
        self.by_staging.entry(staging.to_string()).or_default();
    }

    /// Records that `package`, inheriting `staging` whose restored files
    /// are `staging_files`, packaged `taken` (paths relative to the prefix).
    pub(crate) fn record<'a>(
        &mut self,
        staging: &str,
        staging_files: &[PathBuf],
        package: &str,
        taken: impl Iterator<Item = &'a PathBuf>,
    ) {
        let claims = self.by_staging.entry(staging.to_string()).or_default();
        let from_staging: BTreeSet<&PathBuf> = staging_files.iter().collect();
        claims.files.extend(staging_files.iter().cloned());
        for path in taken.filter(|p| from_staging.contains(p)) {
            claims
                .takers
                .entry(path.clone())
                .or_default()
                .push(package.to_string());
        }
    }

    /// Lists staging files no package took, or more than one took; fails
    /// when `error_unclaimed` or `error_overlapping` say so.
    pub(crate) fn report(
        &self,
        error_unclaimed: bool,
        error_overlapping: bool,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), BuildError> {
        for (staging, claims) in &self.by_staging {
            // What no package ever takes is left by rule, not unclaimed.
            let unclaimed: Vec<&PathBuf> = claims
                .files
                .iter()
                .filter(|f| !claims.takers.contains_key(*f))
                .filter(|f| !crate::package::capture::never_packaged(f))
                .collect();
            let overlapping: Vec<(&PathBuf, &Vec<String>)> =
                claims.takers.iter().filter(|(_, t)| t.len() > 1).collect();
            if !unclaimed.is_empty() {
                on_event(Event::Unclaimed {
                    staging,
                    files: &unclaimed,
                });
                if error_unclaimed {
                    return Err(BuildError::Unclaimed {
                        staging: staging.clone(),
                        count: unclaimed.len(),
                        files: unclaimed
                            .iter()
                            .take(LISTED)
                            .map(|f| f.display().to_string())
                            .collect(),
                    });
                }
            }
            if !overlapping.is_empty() {
                on_event(Event::Overlapping {
                    staging,
                    files: &overlapping,
                });
                if error_overlapping {
                    return Err(BuildError::Overlapping {
                        staging: staging.clone(),
                        count: overlapping.len(),
                        files: overlapping
                            .iter()
                            .take(LISTED)
                            .map(|(f, t)| format!("{} ({})", f.display(), t.join(", ")))
                            .collect(),
                    });
                }
            }
        }
        Ok(())
    }
}
