"""What py-rattler-build 0.73 (rattler-build's own reader) finds of the tests
a package stores, and whether it runs them.

Usage: package_tests.py [--run] [--channel DIR]... PACKAGE...

Prints one JSON list, an entry per PACKAGE: {"file", "tests": [each test
as its type's name ("type") and `to_dict()`], "results": [{"index",
"success"}] with --run (the tests run by py-rattler-build in environments
solved from the `--channel`s), else null}.

Exits with status 3 (and says why on stderr) when py-rattler-build 0.73.0
is not installed, so the test can tell "no peer" from a failure.
"""

import json
import sys
import warnings

PEER_VERSION = "0.73.0"

try:
    import rattler_build
except ImportError as err:
    print(f"missing python module: {err.name} (scripts/prerequisites --with-oracles)", file=sys.stderr)
    sys.exit(3)
if rattler_build.rattler_build_version() != PEER_VERSION:
    print(f"py-rattler-build {rattler_build.rattler_build_version()} is installed, not {PEER_VERSION}", file=sys.stderr)
    sys.exit(3)


def main():
    warnings.simplefilter("ignore")
    args = sys.argv[1:]
    run = "--run" in args
    args = [a for a in args if a != "--run"]
    channels, packages = [], []
    while args:
        arg = args.pop(0)
        if arg == "--channel":
            channels.append(args.pop(0))
        else:
            packages.append(arg)
    out = []
    for path in packages:
        pkg = rattler_build.Package.from_file(path)
        entry = {
            "file": path,
            "tests": [{"type": type(t).__name__, **t.to_dict()} for t in pkg.tests],
            "results": None,
        }
        if run:
            results = pkg.run_tests(channel=channels)
            entry["results"] = [{"index": r.test_index, "success": r.success} for r in results]
        out.append(entry)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
