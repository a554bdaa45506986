"""zstd 1.5.4 (examples/zstd: one cmake + ninja staging build split into 4
packages): cleave vs py-rattler-build vs cleave with its cache off.

Usage: scripts/bench            (or: python3 bench/zstd.py [--runs N])

Scenarios, each figure the median of N runs (default 3):
  1. cold build: fresh output dir; cleave with an empty cache;
  2. warm rebuild after a change to one output's tests only;
  3. rebuild after a source edit (a new patch each run): both tools must
     build again, and the zstd binary of each must hold the edit; cleave
     with its compile cache (on by default: the other objects come from
     it) and with `--compile-cache off`;
  4. the same recipe into a second output dir with a warm cache: cleave
     reuses its four packages and runs nothing (checked); once more with a
     second staging root, which changes no key;
  5. peak memory: the tool's own process (VmHWM) and the largest process
     of its tree (the compiler, usually; from /usr/bin/time).
Both tools build the same recipe file (it is in the peer's `staging:`
syntax), offline against an empty local channel, tests skipped. Needs a
release build of cleave, cmake, ninja, py-rattler-build, and the vendored
tarball (scripts/zstd-source). Prints machine facts and Markdown tables.
"""

import argparse
import difflib
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import ROOT, Bench, measure  # noqa: E402

TARBALL = "libzstd_1.5.4+dfsg2.orig.tar.xz"
EDITED = "programs/zstdcli.c"


def packages(out):
    found = sorted(p.name for p in out.glob("*/*.conda"))
    if len(found) != 4:
        sys.exit(f"{out}: {len(found)} packages, not 4: {found}")
    return found


def zstd_binary_holds(out, marker):
    """Whether bin/zstd of the zstd package in `out` contains `marker`."""
    import conda_package_handling.api as cph

    (archive,) = [p for p in out.glob("*/zstd-1.5.4-*.conda")]
    with tempfile.TemporaryDirectory() as tmp:
        cph.extract(str(archive), dest_dir=tmp)
        return marker.encode() in (pathlib.Path(tmp) / "bin/zstd").read_bytes()


def edit_patch(recipe, marker):
    """A patch that adds `marker` to the zstd CLI, as a maintainer would."""
    with tarfile.open(recipe / TARBALL) as tar:
        member = tar.extractfile(f"zstd-1.5.4/{EDITED}")
        before = member.read().decode().splitlines(keepends=True)
    at = next(i for i, line in enumerate(before) if line.startswith("#include")) + 1
    after = before[:at] + [f'__attribute__((used)) static const char bench_edit[] = "{marker}";\n'] + before[at:]
    return "".join(difflib.unified_diff(before, after, f"a/{EDITED}", f"b/{EDITED}"))


def machine():
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        platform.processor(),
    )
    mem = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))

    def version(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0]
        except (OSError, IndexError):
            return "missing"

    import rattler_build

    commit = version("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD")
    print(f"- machine: {cpu}, {os.cpu_count()} cores, {mem / 2**20:.0f} GiB, {platform.platform()}")
    print(f"- cleave {commit}; py-rattler-build {rattler_build.rattler_build_version()}")
    print(f"- {version('cmake', '--version')}; ninja {version('ninja', '--version')}; {version('cc', '--version')}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    bench = Bench("cleave-bench-zstd-")
    work = bench.work
    recipe = work / "zstd"
    shutil.copytree(ROOT / "examples/zstd", recipe)
    if not (recipe / TARBALL).exists():
        sys.exit("the zstd tarball is missing: run scripts/zstd-source")
    text = (recipe / "recipe.yaml").read_text()
    staging = work / "stg"
    counter = iter(range(10**6))

    def out():
        return work / f"out-{next(counter)}"

    def build(tool, *args, cache=None):
        target = out()
        env = dict(bench.env, CLEAVE_CACHE_DIR=str(cache or work / "cache"))
        extra = ["--staging-root", str(staging), *args] if tool == "cleave" else []
        seconds, own, tree, stderr = measure(bench.command(tool, recipe, target, *extra), env)
        packages(target)
        return seconds, own, tree, stderr, target

    machine()

    # Tools take turns within each run, so that drift in the machine's
    # speed reaches all of them alike.
    results = {}

    def record(scenario, tool, row):
        results.setdefault((scenario, tool), []).append(row)

    # 1. cold
    for run in range(runs):
        record("cold", "cleave", build("cleave", cache=work / f"cold-cache-{run}"))
        record("cold", "cleave --no-cache", build("cleave", "--no-cache"))
        record("cold", "py-rattler-build", build("peer"))

    # 2. warm, after a change to the zstd output's tests
    build("cleave")  # fills the shared cache
    for run in range(runs):
        for tool in ("cleave", "peer"):
            (recipe / "recipe.yaml").write_text(
                text.replace("zstd --version | grep", f"echo edit-{tool}-{run} && zstd --version | grep")
            )
            row = build(tool)
            if tool == "cleave" and "cached: staging `zstd-build`" not in row[3]:
                sys.exit("cleave ran the staging build after a test-only change")
            record("tests edited", "cleave" if tool == "cleave" else "py-rattler-build", row)
    (recipe / "recipe.yaml").write_text(text)

    # 3. a source edit: a new patch each run; both must rebuild, correctly
    patched = text.replace(
        "  sha256: 8cf4bbb65e77ec348d052c8d6230eba66d435bddf64c8b5be2fcb16880c19953\n",
        "  sha256: 8cf4bbb65e77ec348d052c8d6230eba66d435bddf64c8b5be2fcb16880c19953\n"
        "  patches:\n    - bench-edit.patch\n",
    )
    (recipe / "recipe.yaml").write_text(patched)
    labels = {
        "cleave": "cleave",
        "cleave-off": "cleave --compile-cache off",
        "peer": "py-rattler-build",
    }
    for run in range(runs):
        for tool in ("cleave", "cleave-off", "peer"):
            marker = f"cleave-bench-edit-{tool}-{run}-{time.time_ns()}"
            (recipe / "bench-edit.patch").write_text(edit_patch(recipe, marker))
            if tool == "cleave-off":
                row = build("cleave", "--compile-cache", "off")
            else:
                row = build(tool)
            if not zstd_binary_holds(row[4], marker):
                sys.exit(f"{tool}: bin/zstd does not hold the source edit")
            if tool != "peer" and "stored staging `zstd-build`" not in row[3]:
                sys.exit("cleave did not rebuild after a source edit")
            record("source edited", labels[tool], row)
    (recipe / "recipe.yaml").write_text(text)
    (recipe / "bench-edit.patch").unlink()

    # 4. a second output dir, warm cache (the unedited recipe is cached)
    for run in range(runs):
        row = build("cleave")
        if row[3].count("nothing runs") != 4:
            sys.exit("cleave did not reuse its four packages from the cache")
        record("second output dir", "cleave", row)
        staging = work / f"stg-moved-{run}"
        record("second output dir", "cleave, other staging root", build("cleave"))
        staging = work / "stg"
        record("second output dir", "py-rattler-build", build("peer"))

    print(f"\nmedian of {runs} runs; ratio = py-rattler-build / this row\n")
    print("| scenario | tool | wall | ratio | tool peak RSS | tree peak RSS |")
    print("|---|---|---:|---:|---:|---:|")
    for scenario in ("cold", "tests edited", "source edited", "second output dir"):
        peer = statistics.median([r[0] for r in results[(scenario, "py-rattler-build")]])
        for (s, tool), rows in results.items():
            if s != scenario:
                continue
            wall = statistics.median([r[0] for r in rows])
            own = statistics.median([r[1] for r in rows])
            tree = statistics.median([r[2] for r in rows])
            print(f"| {s} | {tool} | {wall:.2f} s | {peer / wall:.2f}x | {own:.0f} MiB | {tree:.0f} MiB |")
    cold = statistics.median([r[0] for r in results[("cold", "cleave")]])
    edited = statistics.median([r[0] for r in results[("source edited", "cleave")]])
    print(f"\ncleave's rebuild after a source edit takes {edited / cold:.2f}x its cold build")
    shutil.rmtree(work, ignore_errors=True)


main()
