"""A recipe whose staging step takes 30 s, split into 4 packages: first and
second invocation of cleave and of py-rattler-build, side by side.

Usage: python3 bench/cache.py     (from the repository root)

Needs a release build of cleave (cargo build --release -p cleave) and
py-rattler-build from PyPI. Runs offline against an empty local channel.
cleave's second invocation finds the staging build in its cache;
py-rattler-build runs the staging step again. Prints a Markdown table.
"""

import pathlib
import shutil
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import Bench, timed  # noqa: E402

RECIPE = """\
schema_version: 1

recipe:
  name: slowlib
  version: "1.0.0"

build:
  number: 0

outputs:
  - staging:
      name: slowlib-build
    build:
      script:
        - |
          for part in lib include bin share; do
            mkdir -p "$PREFIX/$part/slowlib"
            for i in $(seq 1 100); do
              echo "$part $i" > "$PREFIX/$part/slowlib/f$i"
            done
          done
        - sleep 30
"""
for part in ("lib", "include", "bin", "share"):
    RECIPE += f"""
  - package:
      name: slowlib-{part}
    inherit: slowlib-build
    build:
      files:
        - {part}/slowlib/**
"""


def main():
    bench = Bench("cleave-bench-cache-")
    work = bench.work
    recipe = bench.recipe("slowlib", RECIPE)
    rows = []
    for tool in ("cleave", "py-rattler-build"):
        times = []
        for invocation in (1, 2):
            out = work / f"out-{tool}-{invocation}"
            cmd = bench.command(tool, recipe, out, "--staging-root", str(work / "staging"))
            times.append(timed(cmd, bench.env)[0])
            packages = list(out.glob("*/*.conda"))
            if len(packages) != 4:
                sys.exit(f"{tool} wrote {len(packages)} packages, not 4")
        rows.append((tool, *times))
    print("| tool | 1st invocation | 2nd invocation (no change) | 2nd / 1st |")
    print("|---|---:|---:|---:|")
    for tool, first, second in rows:
        print(f"| {tool} | {first:.2f} s | {second:.2f} s | {100 * second / first:.1f}% |")
    cleave_second = rows[0][2]
    peer_second = rows[1][2]
    print(f"\n2nd invocation: py-rattler-build / cleave = {peer_second / cleave_second:.0f}x")
    shutil.rmtree(work, ignore_errors=True)


main()
