"""The Python side of the build-conformance test (crates/cleave/tests/cf_build.rs).

Usage:
  peer.py check                  exits 0 when py-rattler-build 0.73.0 and
                                 conda-package-handling are installed, else 3
  peer.py build --out DIR --side DIR --logs DIR CHANNEL RECIPE[:side]...
                                 builds each recipe directory in order with
                                 py-rattler-build 0.73 (the peer)
  peer.py inspect PACKAGE...     summarises each package file, for the
                                 comparison

`build` builds RECIPE/recipe.yaml for linux-64 with
RECIPE/ci_support_linux_64.yaml as the variant config (the recipe's own
conda_build_config.yaml is found by the peer), without running the
packages' tests (see crates/cleave/tests/cf_build/main.rs for why). A recipe's packages go into the
`--out` channel, which later recipes solve from (the peer always solves
from its output directory first), and it solves from CHANNEL after that; a
recipe marked `:side` goes into the `--side` channel instead and solves
from `--out` and CHANNEL, so that later recipes never see its packages.
Each recipe's log is `--logs/RECIPE.log`. It prints one JSON list, one
entry per recipe in order: {"recipe", "error": null | "why", "seconds",
"packages": [the package files it added]}.

`inspect` extracts each `.conda` and `.tar.bz2` package with
conda-package-handling (one of the ecosystem's own readers) and prints one
JSON list with an entry per package, in order:

  {"file", "name", "version", "build", "subdir",
   "paths": [{"path", "type", "mode", "placeholder", "no_link"}],
   "index": index.json without `timestamp`,
   "about": about.json, "run_exports": run_exports.json or null,
   "link": link.json or null,
   "licenses": {path below info/licenses/: sha256},
   "tests": info/tests/tests.yaml parsed or null,
   "test_files": {other path below info/tests/: sha256},
   "peer_tests": the test types py-rattler-build's Package.from_file sees}

`mode` is the file's permission bits in the archive (octal text, null for
links); `placeholder` is the `file_mode` of its prefix placeholder (`text`
or `binary`) or null.
"""

import contextlib
import hashlib
import json
import os
import stat
import sys
import tempfile
import time
import warnings

PEER_VERSION = "0.73.0"

try:
    import conda_package_handling.api as cph
    import rattler_build
    import yaml
except ImportError as err:
    print(f"missing python module: {err.name} (scripts/prerequisites --with-oracles)", file=sys.stderr)
    sys.exit(3)
if rattler_build.rattler_build_version() != PEER_VERSION:
    print(
        f"py-rattler-build {rattler_build.rattler_build_version()} is installed; "
        f"the comparison is with {PEER_VERSION} (scripts/prerequisites --with-oracles)",
        file=sys.stderr,
    )
    sys.exit(3)


@contextlib.contextmanager
def output_to(path):
    """The process's stdout and stderr (the peer's own output) into `path`."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def packages_in(channels):
    """The package files in the platform subdirectories of `channels`."""
    found = set()
    for channel in channels:
        for subdir in ("noarch", "linux-64"):
            sub = os.path.join(channel, subdir)
            if os.path.isdir(sub):
                found.update(
                    os.path.join(sub, n)
                    for n in os.listdir(sub)
                    if n.endswith((".conda", ".tar.bz2"))
                )
    return found


def build(out, side, logs, channel, recipes):
    os.makedirs(logs, exist_ok=True)
    results = []
    for item in recipes:
        before = packages_in([out, side])
        recipe, _, mark = item.partition(":")
        name = os.path.basename(os.path.normpath(recipe))
        is_side = mark == "side"
        variants = os.path.join(recipe, "ci_support_linux_64.yaml")
        start = time.monotonic()
        error = None
        with output_to(os.path.join(logs, f"{name}.log")):
            try:
                rattler_build.build_recipes(
                    [os.path.join(recipe, "recipe.yaml")],
                    channel=[out, channel] if is_side else [channel],
                    variant_config=[variants] if os.path.exists(variants) else None,
                    output_dir=side if is_side else out,
                    target_platform="linux-64",
                    build_platform="linux-64",
                    host_platform="linux-64",
                    test="skip",
                )
            except Exception as err:  # noqa: BLE001 - the peer's failure is data
                error = f"{type(err).__name__}: {err}".strip()
        results.append(
            {
                "recipe": name,
                "error": error,
                "seconds": round(time.monotonic() - start, 1),
                "packages": sorted(packages_in([out, side]) - before),
            }
        )
    return results


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def read_json(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def files_below(root):
    found = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            full = os.path.join(dirpath, n)
            found[os.path.relpath(full, root)] = digest(full)
    return found


def peer_tests(path):
    """What py-rattler-build sees of a package's tests: their types."""
    try:
        return [type(t).__name__ for t in rattler_build.Package.from_file(path).tests]
    except Exception as err:  # noqa: BLE001 - an unreadable package is data
        return f"{type(err).__name__}: {err}"


def summary(path, scratch):
    cph.extract(path, dest_dir=scratch)
    info = os.path.join(scratch, "info")
    index = read_json(os.path.join(info, "index.json")) or {}
    index.pop("timestamp", None)
    paths = []
    for entry in (read_json(os.path.join(info, "paths.json")) or {}).get("paths", []):
        rel = entry["_path"]
        mode = None
        full = os.path.join(scratch, rel)
        if os.path.lexists(full) and not os.path.islink(full):
            mode = oct(stat.S_IMODE(os.lstat(full).st_mode))
        placeholder = entry.get("prefix_placeholder")
        paths.append(
            {
                "path": rel,
                "type": entry.get("path_type"),
                "mode": mode,
                "placeholder": entry.get("file_mode", "text") if placeholder else None,
                "no_link": bool(entry.get("no_link", False)),
            }
        )
    tests_dir = os.path.join(info, "tests")
    tests_yaml = os.path.join(tests_dir, "tests.yaml")
    tests = None
    if os.path.exists(tests_yaml):
        with open(tests_yaml) as f:
            tests = yaml.safe_load(f)
    test_files = {
        rel: sha
        for rel, sha in (files_below(tests_dir) if os.path.isdir(tests_dir) else {}).items()
        if rel != "tests.yaml"
    }
    licenses = os.path.join(info, "licenses")
    return {
        "file": path,
        "name": index.get("name"),
        "version": index.get("version"),
        "build": index.get("build"),
        "subdir": index.get("subdir"),
        "paths": paths,
        "index": index,
        "about": read_json(os.path.join(info, "about.json")),
        "run_exports": read_json(os.path.join(info, "run_exports.json")),
        "link": read_json(os.path.join(info, "link.json")),
        "licenses": files_below(licenses) if os.path.isdir(licenses) else {},
        "tests": tests,
        "test_files": test_files,
        "peer_tests": peer_tests(path),
    }


def inspect(files):
    packages = []
    for path in files:
        with tempfile.TemporaryDirectory(prefix="cf-build-inspect-") as scratch:
            packages.append(summary(path, scratch))
    return packages


def main():
    # build_recipes is deprecated in 0.73, and still the call that builds.
    warnings.simplefilter("ignore")
    args = sys.argv[1:]
    if args == ["check"]:
        return
    if args[:1] == ["build"] and len(args) >= 8:
        options = dict(zip(args[1:7:2], args[2:7:2]))
        if sorted(options) != ["--logs", "--out", "--side"]:
            sys.exit(__doc__)
        json.dump(
            build(options["--out"], options["--side"], options["--logs"], args[7], args[8:]),
            sys.stdout,
        )
    elif args[:1] == ["inspect"]:
        json.dump(inspect(args[1:]), sys.stdout)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
