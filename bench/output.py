"""What showing a build costs: zstd 1.5.4 (examples/zstd) built by cleave
with `-q`, by default, with `-vv`, and by default under a pseudo-terminal
(progress bars drawn), each in a pipe but the last.

Usage: scripts/bench output     (or: python3 bench/output.py [--runs N])

Scenarios, each figure the median of N runs (default 2), the modes taking
turns within each run:
  1. cold: `--no-cache` (the staging build runs in a scratch store,
     without the compile cache), so every run compiles all of zstd;
  2. warm: the four packages reused from a filled cache into a new
     output directory, where the output's own cost weighs the most.
Reports the wall time and how much the build wrote to stderr. Needs a
release build of cleave, cmake, ninja, util-linux `script`, and the
vendored tarball (scripts/zstd-source).
"""

import argparse
import pathlib
import shlex
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import ROOT, Bench  # noqa: E402

TARBALL = "libzstd_1.5.4+dfsg2.orig.tar.xz"
MODES = ("-q", "default", "-vv", "default, terminal")


def run(cmd, env, terminal):
    """Runs cmd; returns (seconds, bytes of stderr); in a pseudo-terminal,
    everything it drew."""
    if terminal:
        cmd = ["script", "-q", "-e", "-c", shlex.join(cmd), "/dev/null"]
        env = dict(env, TERM="xterm-256color")
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-4000:].decode(errors='replace')}")
    shown = proc.stdout if terminal else proc.stderr
    return seconds, len(shown)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--warm-only", action="store_true", help="skip the cold builds")
    args = parser.parse_args()
    runs = args.runs
    scenarios = ("warm",) if args.warm_only else ("cold", "warm")
    bench = Bench("cleave-bench-output-")
    work = bench.work
    recipe = work / "zstd"
    shutil.copytree(ROOT / "examples/zstd", recipe)
    if not (recipe / TARBALL).exists():
        sys.exit("the zstd tarball is missing: run scripts/zstd-source")
    env = dict(bench.env)
    env.pop("GITHUB_ACTIONS", None)
    counter = iter(range(10**6))

    def build(mode, *args):
        flags = [] if mode.startswith("default") else [mode]
        cmd = bench.command("cleave", recipe, work / f"out-{next(counter)}", *flags, *args)
        cmd += ["--staging-root", str(work / "stg")]
        return run(cmd, env, mode.endswith("terminal"))

    results = {}
    for _ in range(runs if "cold" in scenarios else 0):
        for mode in MODES:
            results.setdefault(("cold", mode), []).append(build(mode, "--no-cache"))
    build("-q")  # fills the cache
    for _ in range(runs):
        for mode in MODES:
            results.setdefault(("warm", mode), []).append(build(mode))

    print(f"\nmedian of {runs} runs\n")
    print("| scenario | output | wall | vs -q | shown |")
    print("|---|---|---:|---:|---:|")
    for scenario in scenarios:
        quiet = statistics.median([r[0] for r in results[(scenario, "-q")]])
        for mode in MODES:
            rows = results[(scenario, mode)]
            wall = statistics.median([r[0] for r in rows])
            shown = statistics.median([r[1] for r in rows])
            print(f"| {scenario} | {mode} | {wall:.2f} s | {wall / quiet:.2f}x | {shown / 1024:.1f} KiB |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
