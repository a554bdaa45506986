//! Mutated corpus recipes never panic the parser or renderer.
//!
//! A deterministic stand-in for the cargo-fuzz target in `fuzz/`, so that
//! every test run covers the same ground: byte flips, deletions, duplicated
//! lines and truncation of every corpus recipe.

use std::path::{Path, PathBuf};

use cleave_recipe::{RenderConfig, SourceFile};

fn recipes() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/recipes");
    let mut files = Vec::new();
    for kind in ["good", "bad"] {
        for entry in std::fs::read_dir(root.join(kind)).expect("corpus") {
            let file = entry.expect("entry").path().join("recipe.yaml");
            if file.is_file() {
                files.push(file);
            }
        }
    }
    files.sort();
    files
}

/// xorshift64: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[&str] = &[
    "${{",
    "}}",
    "${{ x }}",
    ":",
    "- ",
    "if: ",
    "then:",
    "\n",
    "  ",
    "'",
    "\"",
    "[",
    "{",
    "*a",
    "&a",
    "!!str ",
    "---\n",
    "\t",
    "é",
    "pin_subpackage('",
    "inherit: ",
    "staging:\n  name: s\n",
];

fn mutate(text: &str, rng: &mut Rng) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(4) {
            0 if !bytes.is_empty() => {
                let end = (at + rng.below(16)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            1 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                bytes.splice(at..at, piece.bytes());
            }
            2 => bytes.truncate(at),
            _ => {
                let line_start = bytes[..at]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |p| p + 1);
                let line_end = bytes[at..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |p| at + p + 1);
                let line = bytes[line_start..line_end].to_vec();
                bytes.splice(line_end..line_end, line);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn mutated_recipes_give_errors_not_panics() {
    let mut rng = Rng(0x5eed_c1ea_fe00_0001);
    let config = RenderConfig::native();
    let mut runs = 0;
    for file in recipes() {
        let text = std::fs::read_to_string(&file).expect("read");
        for _ in 0..60 {
            let mutated = mutate(&text, &mut rng);
            let outcome = std::panic::catch_unwind(|| {
                let source = SourceFile::new("recipe.yaml", mutated.clone());
                if let Ok(recipe) = cleave_recipe::parse(source, PathBuf::from("/nonexistent")) {
                    let _ = cleave_recipe::render(&recipe, &config);
                }
            });
            assert!(outcome.is_ok(), "panic on input:\n{mutated}");
            runs += 1;
        }
    }
    assert!(runs > 1000, "only {runs} inputs were tried");
}

/// Variant files in both formats, as conda-forge writes them.
const VARIANT_FILES: &[(&str, &str)] = &[
    (
        "conda_build_config.yaml",
        "c_compiler:\n  - gcc        # [linux]\n  - clang      # [osx]\ncuda_compiler_version:\n  - None       # [py >= 312 or os.environ.get('X', '') == '1']\n  - 12.4       # [linux and x86_64]\npython:\n  - 3.12.* *_cpython\nzip_keys:\n  - [c_compiler, cuda_compiler_version]   # [linux]\npin_run_as_build:\n  python: {min_pin: x.x, max_pin: x.x}\n",
    ),
    (
        "variants.yaml",
        "c_stdlib:\n  - if: linux\n    then: [sysroot]\n    else: ${{ 'vs' if win else 'macosx_deployment_target' }}\npython: [3.11, '3.12.* *_cpython']\nzip_keys: [[python, numpy]]\nnumpy: [1, 2]\n",
    ),
];

#[test]
fn mutated_variant_files_give_errors_not_panics() {
    let mut rng = Rng(0x5eed_c1ea_fe00_0002);
    let platforms = cleave_recipe::VariantPlatforms {
        target: rattler_conda_types::Subdir::Linux64,
        build: rattler_conda_types::Subdir::Linux64,
    };
    let mut runs = 0;
    for (name, text) in VARIANT_FILES {
        for _ in 0..400 {
            let mutated = mutate(text, &mut rng);
            let outcome = std::panic::catch_unwind(|| {
                let source = SourceFile::new(*name, mutated.clone());
                if let Ok(config) = cleave_recipe::VariantConfig::parse(&source, platforms) {
                    let _ = config.validate();
                }
            });
            assert!(outcome.is_ok(), "panic on {name}:\n{mutated}");
            runs += 1;
        }
    }
    assert_eq!(runs, 800);
}
