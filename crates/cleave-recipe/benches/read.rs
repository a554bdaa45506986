//! Reading time of large recipes: it must grow linearly with their size.
//!
//! Run with `cargo bench -p cleave-recipe --bench read`. Each case is parsed
//! and rendered a few times; the fastest run is printed, for a size and four
//! times that size, with the ratio (about 4 when reading is linear).
//! BENCHMARKS.md records figures.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cleave_recipe::{RenderConfig, SourceFile};

const RUNS: usize = 3;

/// What a case measures, how to write a recipe of a size, and the smaller
/// size.
type Case = (&'static str, fn(usize) -> String, usize);

/// `n` keys in one block mapping (`extra:`), one per line.
fn keys(n: usize) -> String {
    let mut text = String::from("package: {name: big, version: \"1.0\"}\nextra:\n");
    for i in 0..n {
        text.push_str(&format!("  key{i}: value{i}\n"));
    }
    text
}

/// `n` context entries, one per line.
fn context(n: usize) -> String {
    let mut text = String::from("context:\n");
    for i in 0..n {
        text.push_str(&format!("  entry{i}: value{i}\n"));
    }
    text.push_str("package: {name: big, version: \"1.0\"}\n");
    text
}

/// `n` scalars in one flow list, all on one line.
fn flow(n: usize) -> String {
    let items: Vec<String> = (0..n).map(|i| format!("item{i}")).collect();
    format!(
        "package: {{name: big, version: \"1.0\"}}\nextra:\n  list: [{}]\n",
        items.join(", ")
    )
}

/// The fastest of [`RUNS`] parse+render runs of `text`.
fn time(text: &str) -> Duration {
    let config = RenderConfig::native();
    (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            let source = SourceFile::new("recipe.yaml", text);
            let recipe = cleave_recipe::parse(source, PathBuf::from(".")).expect("valid recipe");
            std::hint::black_box(cleave_recipe::render(&recipe, &config).expect("renders"));
            start.elapsed()
        })
        .min()
        .expect("at least one run")
}

fn main() {
    let cases: [Case; 3] = [
        ("keys in a mapping", keys, 25_000),
        ("context entries", context, 25_000),
        ("flow scalars on one line", flow, 50_000),
    ];
    for (what, make, n) in cases {
        let (small, large) = (make(n), make(4 * n));
        let (t_small, t_large) = (time(&small), time(&large));
        let _ = std::io::Write::write_all(
            &mut std::io::stdout(),
            format!(
                "{what}: {n}: {:.1} ms ({} KB), {}: {:.1} ms ({} KB), ratio {:.1}\n",
                t_small.as_secs_f64() * 1e3,
                small.len() / 1024,
                4 * n,
                t_large.as_secs_f64() * 1e3,
                large.len() / 1024,
                t_large.as_secs_f64() / t_small.as_secs_f64()
            )
            .as_bytes(),
        );
    }
}
