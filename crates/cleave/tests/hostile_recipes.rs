//! Recipes written to hurt the machine that renders them: `cleave render`
//! ends each with a clear error naming the file (and, for recipe text, the
//! line and column), never with a crash, a hang or memory run out.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

mod common;
use common::{output_within, stderr};

/// How long a render may take before the test calls it hung; every case
/// here ends in well under a second.
const HUNG: Duration = Duration::from_secs(60);

/// `cleave render -r DIR`, killed and failed if it has not ended by [`HUNG`].
fn render(dir: &Path) -> Output {
    render_with(Command::new(env!("CARGO_BIN_EXE_cleave")), dir)
}

fn render_with(mut command: Command, dir: &Path) -> Output {
    output_within(
        HUNG,
        command
            .arg("render")
            .arg("-r")
            .arg(dir)
            .env("NO_COLOR", "1"),
    )
}

/// The report with miette's wrapping at 80 columns undone, in either
/// drawing style (Unicode or ASCII, as the terminal's locale chooses).
fn unwrap(report: &str) -> String {
    report
        .split_whitespace()
        .filter(|word| !matches!(*word, "│" | "|"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(made.success());
}

const RECIPE: &str = "package: {name: plain, version: '1.0'}\nbuild:\n  script: echo\n";

#[test]
fn nesting_20000_deep_is_an_error_at_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let text = format!(
        "package: {{name: deep, version: '1.0'}}\nextra:\n  deep:\n    {}x\n",
        "- ".repeat(20_000)
    );
    std::fs::write(tmp.path().join("recipe.yaml"), text).unwrap();
    let output = render(tmp.path());
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("nest more than 64 deep"), "{err}");
    // The top mapping, `extra` and the first `- ` are 3; the 63rd `- `,
    // at column 129, is the 65th.
    assert!(err.contains("recipe.yaml:4:129"), "{err}");
}

#[test]
fn a_fifo_beside_the_recipe_or_as_the_recipe_is_refused_at_once() {
    for name in ["variants.yaml", "conda_build_config.yaml", "recipe.yaml"] {
        let tmp = tempfile::tempdir().unwrap();
        if name != "recipe.yaml" {
            std::fs::write(tmp.path().join("recipe.yaml"), RECIPE).unwrap();
        }
        mkfifo(&tmp.path().join(name));
        let output = render(tmp.path());
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{name}: {err}");
        assert!(
            err.contains(&format!("{name} is a FIFO, not a regular file")),
            "{name}: {err}"
        );
    }
}

#[test]
fn load_from_file_of_a_device_is_refused_before_reading() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("recipe.yaml"),
        "context:\n  data: ${{ load_from_file('/dev/zero') }}\n\
         package: {name: zero, version: '1.0'}\n",
    )
    .unwrap();
    // Reading /dev/zero until memory runs out would take the machine with
    // it: 2 GiB of address space is plenty for a render and ends such a
    // read early.
    let mut limited = Command::new("bash");
    limited.args(["-c", "ulimit -v 2000000 && exec \"$0\" \"$@\""]);
    limited.arg(env!("CARGO_BIN_EXE_cleave"));
    let output = render_with(limited, tmp.path());
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        unwrap(&err).contains("/dev/zero is a character device, not a regular file"),
        "{err}"
    );
    assert!(err.contains("recipe.yaml:2:9"), "{err}");
}

#[test]
fn a_recipe_larger_than_the_limit_is_refused_with_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let file = std::fs::File::create(tmp.path().join("recipe.yaml")).unwrap();
    // Sparse: 9 MiB that take no disk.
    file.set_len(9 << 20).unwrap();
    let output = render(tmp.path());
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains("recipe.yaml is larger than 8 MiB"), "{err}");
}

#[test]
fn variant_keys_that_multiply_past_the_limit_are_an_error_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    // Five keys of ten values: 100,000 variants, and one key of 200,000.
    let mut variants = String::new();
    for k in 0..5 {
        let values: Vec<String> = (0..10).map(|v| format!("'{v}'")).collect();
        variants.push_str(&format!("key{k}: [{}]\n", values.join(", ")));
    }
    let values: Vec<String> = (0..200_000).map(|v| format!("'{v}'")).collect();
    variants.push_str(&format!("wide: [{}]\n", values.join(", ")));
    std::fs::write(tmp.path().join("variants.yaml"), variants).unwrap();
    let recipe = |summary: &str| {
        format!("package:\n  name: many\n  version: '1.0'\nabout:\n  summary: \"{summary}\"\n")
    };
    std::fs::write(
        tmp.path().join("recipe.yaml"),
        recipe("${{ key0 }} ${{ key1 }} ${{ key2 }} ${{ key3 }} ${{ key4 }}"),
    )
    .unwrap();
    let output = render(tmp.path());
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("recipe.yaml:2:9"), "{err}");
    let flat = unwrap(&err);
    assert!(
        flat.contains("key0 (10) × key1 (10) × key2 (10) × key3 (10)"),
        "{err}"
    );
    std::fs::write(tmp.path().join("recipe.yaml"), recipe("${{ wide }}")).unwrap();
    let output = render(tmp.path());
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    let flat = unwrap(&err);
    assert!(flat.contains("at least 200000 variants"), "{err}");
    assert!(flat.contains("wide (200000)"), "{err}");
}

#[test]
fn thousands_of_errors_are_counted_and_the_first_hundred_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let mut text = String::from("package: {name: typos, version: '1.0'}\n");
    for i in 0..20_000 {
        text.push_str(&format!("bogus{i}: 1\n"));
    }
    std::fs::write(tmp.path().join("recipe.yaml"), text).unwrap();
    let output = render(tmp.path());
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("20000 errors (the first 100 shown)"),
        "{}",
        &err[..err.len().min(2000)]
    );
    assert_eq!(err.matches("unknown key `bogus").count(), 100);
    assert!(err.contains("unknown key `bogus99`"));
}

#[test]
fn warnings_beyond_the_first_hundred_are_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let mut text = String::from("package: {name: names, version: '1.0'}\nbuild:\n  script:\n");
    for i in 0..150 {
        text.push_str(&format!("    - echo ${{{{ nosuch{i} }}}}\n"));
    }
    std::fs::write(tmp.path().join("recipe.yaml"), text).unwrap();
    let output = render(tmp.path());
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert_eq!(err.matches("is not a recipe variable").count(), 100);
    assert!(err.contains("50 more warnings not shown"), "{err}");
}
