//! What came from outside is printed escaped: a terminal must not take a
//! helper's answer, its error output or a name in an entry for cleave's
//! own output (a fake "cache verified OK" drawn over the real line).

use super::common::machines::Machines;
use super::common::{assert_success, stderr};
use super::{build, key_of, script};

/// The escape sequences a hostile text carries: clear the line, go back
/// to its start.
const FAKE: &str = "\u{1b}[2K\rcache verified OK";

#[test]
fn a_helper_s_answers_and_errors_are_printed_escaped() {
    let case = Machines::new();
    // Keeps nothing, but says it put every entry somewhere.
    let storing = script(
        case.tmp.path(),
        "relocating.sh",
        "#!/bin/sh\ncat > /dev/null\nif [ \"$1\" = store ]; then\n  printf '{\"relocated_to\": \"\\\\u001b[2K\\\\rcache verified OK\"}'\nelse\n  echo '{\"found\": false}'\nfi\n",
    );
    let a = build(
        &case,
        "a",
        &["--cache-helper", &storing.display().to_string()],
    );
    assert_success(&a);
    let key = key_of(&case, "a", "multi-build");
    let info = case.cleave("a", &["cache", "info", &key]);
    assert_success(&info);
    let shown = String::from_utf8_lossy(&info.stdout).into_owned();
    assert!(
        !shown.contains('\u{1b}') && !shown.contains('\r'),
        "{shown:?}"
    );
    assert!(
        shown.contains("\\u{1b}[2K\\u{d}cache verified OK"),
        "{shown:?}"
    );

    // A helper that fails with escapes on its stderr.
    let failing = script(
        case.tmp.path(),
        "failing.sh",
        &format!(
            "#!/bin/sh\ncat > /dev/null\nprintf '{}\\n' >&2\nexit 3\n",
            FAKE.replace('\u{1b}', "\\033").replace('\r', "\\r")
        ),
    );
    let b = build(
        &case,
        "b",
        &["--cache-helper", &failing.display().to_string()],
    );
    assert_success(&b);
    let printed = stderr(&b);
    assert!(printed.contains("failed"), "{printed}");
    assert!(
        !printed.contains('\u{1b}') && !printed.contains('\r'),
        "{printed:?}"
    );
}
