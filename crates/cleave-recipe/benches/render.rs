//! Render time of a 20-output recipe with 3 variant keys.
//!
//! Run with `cargo bench -p cleave-recipe --bench render`. Prints the median
//! and fastest of repeated parse+render runs; BENCHMARKS.md records figures.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cleave_recipe::{RenderConfig, SourceFile, VariantConfig};
use rattler_conda_types::Subdir;

/// A staging build and 19 packages: libraries, Python bindings per Python
/// version, tools built with a compiler version variant, and sibling pins.
fn recipe() -> String {
    let mut text = String::from(
        "schema_version: 1\ncontext:\n  version: \"2.4.1\"\n  major: ${{ version.split('.')[0] }}\n\
         recipe:\n  name: bench\n  version: ${{ version }}\n\
         source:\n  - url: https://example.org/bench-${{ version }}.tar.gz\n    sha256: \"0000000000000000000000000000000000000000000000000000000000000000\"\n\
         outputs:\n  - staging:\n      name: bench-build\n    requirements:\n      build:\n        - ${{ compiler('c') }}\n        - cmake\n      host:\n        - libfoo\n    build:\n      script:\n        - cmake -B build\n        - cmake --build build --target install\n",
    );
    for i in 0..19 {
        let body = match i % 4 {
            0 => format!(
                "  - package:\n      name: libbench{i}\n    inherit: bench-build\n    requirements:\n      host:\n        - libfoo\n      run_exports:\n        - ${{{{ pin_subpackage('libbench{i}', upper_bound='x.x') }}}}\n    build:\n      files: [lib/libbench{i}*]\n"
            ),
            1 => format!(
                "  - package:\n      name: py-bench{i}\n    inherit: bench-build\n    requirements:\n      host:\n        - python\n        - libbench{}\n      run:\n        - python\n        - if: linux\n          then: ${{{{ pin_subpackage('libbench{}', exact=True) }}}}\n    tests:\n      - python:\n          imports: [bench{i}]\n",
                i - 1,
                i - 1
            ),
            2 => format!(
                "  - package:\n      name: bench-tool{i}\n    inherit: bench-build\n    requirements:\n      build:\n        - ${{{{ compiler('cxx') }}}}\n      run:\n        - libbench{}\n    build:\n      files:\n        include: [bin/tool{i}]\n        exclude: [\"**/*.pdb\"]\n",
                i - 2
            ),
            _ => format!(
                "  - package:\n      name: bench-data{i}\n    build:\n      noarch: generic\n      script:\n        - mkdir -p $PREFIX/share/bench{i}\n    about:\n      summary: Data set ${{{{ major }}}}\n"
            ),
        };
        text.push_str(&body);
    }
    text
}

const VARIANTS: &str = "python:\n  - \"3.11\"\n  - \"3.12\"\n  - \"3.13\"\nlibfoo:\n  - \"1.0\"\n  - \"2.0\"\nc_compiler_version:\n  - \"13\"\n  - \"14\"\ncxx_compiler_version:\n  - \"13\"\n  - \"14\"\nzip_keys:\n  - [c_compiler_version, cxx_compiler_version]\n";

fn main() {
    let text = recipe();
    let variant_source = SourceFile::new("variants.yaml", VARIANTS);
    let variants = VariantConfig::parse(
        &variant_source,
        cleave_recipe::VariantPlatforms {
            target: Subdir::Linux64,
            build: Subdir::Linux64,
        },
    )
    .expect("valid variants");
    let config = RenderConfig {
        target_platform: Subdir::Linux64,
        build_platform: Subdir::Linux64,
        variants,
    };
    let run = || {
        let source = SourceFile::new("recipe.yaml", text.clone());
        let recipe = cleave_recipe::parse(source, PathBuf::from(".")).expect("valid recipe");
        cleave_recipe::render(&recipe, &config).expect("renders")
    };
    let rendered = run();
    let mut times: Vec<Duration> = (0..50)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(run());
            start.elapsed()
        })
        .collect();
    times.sort();
    let staging = rendered
        .outputs
        .iter()
        .filter(|o| matches!(o, cleave_recipe::model::RenderedOutput::Staging(_)))
        .count();
    let report = format!(
        "render: 20 declared outputs, 3 variant keys -> {} rendered ({} staging); median {:.2} ms, fastest {:.2} ms over {} runs\n",
        rendered.outputs.len(),
        staging,
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times.len()
    );
    std::io::Write::write_all(&mut std::io::stdout(), report.as_bytes()).expect("stdout");
}
