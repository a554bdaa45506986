//! Every wait is bounded: a helper that answers and exits but leaves a
//! process holding its output, or one that never reads its request, costs
//! its timeout; a pipe where a helper's entry or a shared directory's
//! index should be is refused, not opened for a writer that never comes.

use std::process::Command;
use std::time::Duration;

use super::common::machines::Machines;
use super::common::{assert_success, stderr};
use super::{LIMIT, Leftovers, bounded, build, keys, script};

/// A helper that answers a lookup with "not found" and exits, leaving a
/// `sleep` that holds its stdout; its PIDs go to `pids`.
fn leaving_helper(case: &Machines) -> (String, Leftovers) {
    let pids = case.path("pids");
    let helper = script(
        case.tmp.path(),
        "leaves-output.sh",
        &format!(
            "#!/bin/sh\ncat > /dev/null\necho '{{\"found\": false}}'\nsleep 600 &\necho $! >> {}\n",
            pids.display()
        ),
    );
    (helper.display().to_string(), Leftovers(pids))
}

fn with_timeout(case: &Machines, helper: &str) {
    let toml = format!("[cache]\nhelpers = [\"{helper}\"]\nhelper-timeout = \"2s\"\n");
    std::fs::write(case.path("cleave.toml"), toml).unwrap();
}

#[test]
fn a_helper_that_leaves_a_process_holding_its_output_costs_its_timeout() {
    let case = Machines::new();
    let (helper, _leftovers) = leaving_helper(&case);
    with_timeout(&case, &helper);
    let b = build(&case, "b", &[]);
    let printed = stderr(&b);
    assert_success(&b);
    assert_eq!(case.runs(), 4, "{printed}");
    assert!(printed.contains("kept its output open"), "{printed}");
    assert_eq!(printed.matches("warning: ").count(), 1, "{printed}");

    // A compile outside a recipe asks the same helper (cleave.toml of its
    // directory names it).
    std::fs::write(case.path("x.c"), "int f(void) { return 1; }\n").unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_cleave"));
    command
        .args(["cc", "cc", "-c", "x.c", "-o", "x.o"])
        .env("CLEAVE_CACHE_DIR", case.path("cache-cc"))
        .env("HOME", case.path("home-cc"))
        .current_dir(case.tmp.path());
    let (out, _) = bounded(command, LIMIT);
    assert_success(&out);
    assert!(case.path("x.o").is_file());
}

/// A recipe whose staging build leaves 2,000 files: a `store` request
/// larger than a pipe holds.
fn many_files(case: &Machines) {
    let recipe = r#"schema_version: 1
recipe:
  name: many
  version: "1.0"
outputs:
  - staging:
      name: many-build
    build:
      script:
        - mkdir -p $PREFIX/share/many
        - for i in $(seq 2000); do echo $i > $PREFIX/share/many/file-$i.txt; done
  - package:
      name: many
    inherit: many-build
"#;
    std::fs::write(case.recipe.join("recipe.yaml"), recipe).unwrap();
}

#[test]
fn a_store_request_that_a_leftover_never_reads_does_not_hold_the_build() {
    let case = Machines::new();
    many_files(&case);
    let pids = case.path("pids");
    // The helper answers without reading its request, and leaves a
    // process that holds its stdin and never reads either (through fd 3:
    // a shell gives a background job /dev/null as its stdin).
    let helper = script(
        case.tmp.path(),
        "leaves-input.sh",
        &format!(
            "#!/bin/sh\nif [ \"$1\" = store ]; then\n  exec 3<&0\n  sleep 600 <&3 >/dev/null 2>&1 &\n  echo $! >> {}\n  echo '{{}}'\nelse\n  echo '{{\"found\": false}}'\nfi\n",
            pids.display()
        ),
    );
    let _leftovers = Leftovers(pids);
    with_timeout(&case, &helper.display().to_string());
    let b = build(&case, "b", &[]);
    assert_success(&b);
    assert!(case.path("out-b/linux-64").is_dir(), "{}", stderr(&b));
    // The helper answered: its call succeeded, whatever it left behind.
    assert!(!stderr(&b).contains("warning"), "{}", stderr(&b));
}

#[test]
fn a_fifo_where_an_entry_or_an_index_should_be_is_refused_not_waited_on() {
    let case = Machines::new();
    assert_success(&build(&case, "a", &[]));
    let fifo = case.path("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    // A helper that names the pipe as every entry.
    let helper = script(
        case.tmp.path(),
        "fifo-helper.sh",
        &format!(
            "#!/bin/sh\ncat > /dev/null\nif [ \"$1\" = lookup ]; then echo '{{\"found\": true, \"entry\": \"{}\"}}'; else echo '{{}}'; fi\n",
            fifo.display()
        ),
    );
    let _ = std::fs::remove_dir_all(case.path("stg"));
    let (b, took) = bounded(
        case.command(
            "b",
            &case
                .build_args("b", &["--cache-helper", &helper.display().to_string()])
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            &[],
        ),
        LIMIT,
    );
    let printed = stderr(&b);
    assert_success(&b);
    assert!(
        printed.contains("neither a directory nor a regular file"),
        "{printed}"
    );
    assert!(took < Duration::from_secs(60), "{took:?}");

    // A shared directory whose every index is a pipe.
    let entries = case.path("shared/cleave-v1/entries");
    std::fs::create_dir_all(&entries).unwrap();
    for key in keys(&case, "a") {
        assert!(
            Command::new("mkfifo")
                .arg(entries.join(key))
                .status()
                .unwrap()
                .success()
        );
    }
    let url = format!("file://{}", case.path("shared").display());
    let _ = std::fs::remove_dir_all(case.path("stg"));
    let c = build(&case, "c", &["--remote", &url]);
    let printed = stderr(&c);
    assert_success(&c);
    assert!(printed.contains("not a regular file"), "{printed}");
    assert_eq!(printed.matches("not used again").count(), 1, "{printed}");
}
