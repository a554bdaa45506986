//! How many variants one recipe may render, and which keys made it more.
//!
//! Variant keys multiply: five keys of ten values each are 100,000
//! combinations, and an output that reads all five is rendered once per
//! combination. So the renders of a recipe are counted against
//! [`MAX_VARIANTS`], and the keys an output's render multiplied on its way
//! to a combination are kept with it. The moment those keys alone promise
//! more renders than are left, rendering stops with an error naming them
//! and their counts, before any of their combinations is rendered: after as
//! many renders as the output reads keys, not after the limit.

use crate::error::ProblemKind;

/// The most variants (renders of an output for one combination of variant
/// keys, skipped ones included) one recipe may have. conda-forge's
/// recipes stay below a few hundred with the global pinning and its CI's
/// variant files give them at most ten per output; a render takes about
/// 50 µs, so the limit costs a fraction of a second.
pub const MAX_VARIANTS: u64 = 4096;

/// The keys that multiplied one output's renders on the way to one
/// combination, each with how many values it took there.
#[derive(Debug, Clone, Default)]
pub(super) struct Factors(Vec<(String, usize)>);

impl Factors {
    /// These factors and `key` with `count` values.
    pub(super) fn with(&self, key: &str, count: usize) -> Factors {
        let mut factors = self.0.clone();
        factors.push((key.to_string(), count));
        Factors(factors)
    }

    /// How many combinations the factors make.
    fn product(&self) -> u64 {
        self.0
            .iter()
            .fold(1, |n: u64, (_, count)| n.saturating_mul(*count as u64))
    }

    fn describe(&self) -> String {
        if self.0.is_empty() {
            return "it reads no variant key; the outputs before it used up the limit".into();
        }
        let keys: Vec<String> = self
            .0
            .iter()
            .map(|(key, count)| format!("{key} ({count})"))
            .collect();
        format!("it multiplies {}", keys.join(" × "))
    }
}

/// The renders of one recipe so far.
#[derive(Debug, Default)]
pub(super) struct Budget {
    rendered: u64,
    exceeded: bool,
}

impl Budget {
    /// True once the limit was passed: nothing more is rendered.
    pub(super) fn exceeded(&self) -> bool {
        self.exceeded
    }

    /// Counts one finished render (done, skipped or failed) of `output`;
    /// the problem when it is one too many.
    pub(super) fn count(&mut self, output: &str, factors: &Factors) -> Option<ProblemKind> {
        self.rendered += 1;
        self.check(output, factors, self.rendered)
    }

    /// The problem when `factors`, just extended by a key, promise more
    /// renders of `output` than the limit leaves.
    pub(super) fn promise(&mut self, output: &str, factors: &Factors) -> Option<ProblemKind> {
        self.check(
            output,
            factors,
            self.rendered.saturating_add(factors.product()),
        )
    }

    fn check(&mut self, output: &str, factors: &Factors, total: u64) -> Option<ProblemKind> {
        if total <= MAX_VARIANTS || self.exceeded {
            return None;
        }
        self.exceeded = true;
        Some(ProblemKind::TooManyVariants {
            output: output.to_string(),
            count: if total == u64::MAX {
                "more than 10^19".into()
            } else {
                total.to_string()
            },
            limit: MAX_VARIANTS,
            keys: factors.describe(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_promise_too_many_renders_are_named_with_their_counts() {
        let mut budget = Budget::default();
        let factors = Factors::default().with("python", 5).with("numpy", 4);
        assert!(budget.promise("lib", &factors).is_none());
        let factors = factors.with("cuda", 300);
        let problem = budget.promise("lib", &factors).unwrap();
        assert_eq!(
            problem.to_string(),
            "rendering `lib` would make at least 6000 variants, more than the 4096 a recipe may have: \
             it multiplies python (5) × numpy (4) × cuda (300)"
        );
        assert!(budget.exceeded());
        // Said once.
        assert!(budget.promise("lib", &factors).is_none());
    }

    #[test]
    fn renders_count_across_outputs() {
        let mut budget = Budget::default();
        for _ in 0..MAX_VARIANTS {
            assert!(budget.count("one", &Factors::default()).is_none());
        }
        let problem = budget.count("one", &Factors::default()).unwrap();
        assert!(problem.to_string().contains("4097 variants"), "{problem}");
    }

    #[test]
    fn products_saturate() {
        let mut factors = Factors::default();
        for i in 0..100 {
            factors = factors.with(&format!("k{i}"), 1000);
        }
        assert_eq!(factors.product(), u64::MAX);
    }
}
