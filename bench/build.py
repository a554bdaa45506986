"""Wall time and peak memory of `cleave build` and py-rattler-build, side by
side, on the bundled example and on a synthetic recipe with 5 outputs of
2,000 files each (one staging build writes all 10,000).

Usage: python3 bench/build.py [--runs N]     (from the repository root)

Needs: a release build of cleave (cargo build --release -p cleave), cmake,
and py-rattler-build from PyPI. Everything runs offline: both tools solve
from an empty local channel. Prints a Markdown table; each figure is the
median of N runs (default 3), each run in a fresh output directory.
"""

import argparse
import os
import pathlib
import platform
import shutil
import statistics
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import ROOT, Bench, timed  # noqa: E402

SYNTHETIC = """\
schema_version: 1

recipe:
  name: synthetic
  version: "1.0.0"

build:
  number: 0

outputs:
  - staging:
      name: files
    build:
      script:
        - |
          for part in 1 2 3 4 5; do
            mkdir -p "$PREFIX/share/part$part"
            for i in $(seq 1 2000); do
              echo "part $part file $i of a synthetic staging build" > "$PREFIX/share/part$part/f$i.txt"
            done
          done
"""
for part in range(1, 6):
    SYNTHETIC += f"""
  - package:
      name: synthetic-part{part}
    inherit: files
    build:
      files:
        - share/part{part}/**
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    bench = Bench("cleave-bench-")
    work = bench.work
    synthetic = bench.recipe("synthetic", SYNTHETIC)
    recipes = {"examples/libgreet": ROOT / "examples/libgreet", "synthetic 5x2000": synthetic}
    results = {}
    for label, recipe in recipes.items():
        for tool in ("cleave", "py-rattler-build"):
            samples = []
            for run in range(args.runs):
                out = work / f"out-{tool}-{run}"
                shutil.rmtree(out, ignore_errors=True)
                if tool == "cleave":
                    # A fresh cache each run: these are cold builds (see
                    # bench/cache.py for the second invocation).
                    shutil.rmtree(work / "cache", ignore_errors=True)
                cmd = bench.command(tool, recipe, out)
                samples.append(timed(cmd, bench.env))
                shutil.rmtree(out, ignore_errors=True)
            results[(label, tool)] = (
                statistics.median(s[0] for s in samples),
                statistics.median(s[1] for s in samples),
            )
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}")
    print(f"runs per figure: {args.runs} (median)\n")
    print("| recipe | cleave wall | py-rattler-build wall | ratio | cleave peak RSS | py-rattler-build peak RSS |")
    print("|---|---:|---:|---:|---:|---:|")
    for label in recipes:
        cw, cm = results[(label, "cleave")]
        pw, pm = results[(label, "py-rattler-build")]
        print(f"| {label} | {cw:.2f} s | {pw:.2f} s | {pw / cw:.1f}x | {cm:.0f} MiB | {pm:.0f} MiB |")
    shutil.rmtree(work, ignore_errors=True)


main()
