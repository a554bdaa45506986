"""Rendering real recipes: `cleave render` vs py-rattler-build's render, per
recipe of the conformance corpus (../shared/conformance/conda-forge beside
the repository, as the conformance test reads it).

Usage: python3 bench/render.py [--runs N] [--corpus DIR]   (from the repository root)

Each recipe is rendered for linux-64 with its ci_support_linux_64.yaml, as
crates/cleave/tests/conformance.rs renders it:
  - cleave: the release binary, a fresh process per render
    (`cleave render --recipe DIR -m ci_support_linux_64.yaml
    --target-platform linux-64 --output json`);
  - py-rattler-build, process: a fresh python3 per render that imports
    rattler_build and calls build_recipes(render_only=True);
  - py-rattler-build, in-process: the same call in this process, already
    imported (what a Python caller that renders many recipes pays).
The tools take turns within each run; each figure is the median of N runs
(default 5). A render that fails is timed all the same and marked; its
figure says little. Needs a release build of cleave (cargo build --release
-p cleave) and py-rattler-build 0.73 (scripts/prerequisites --with-oracles).
Prints machine facts and a Markdown table; ratio = py-rattler-build / cleave.
"""

import argparse
import contextlib
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import CLEAVE, ROOT  # noqa: E402

PEER_RENDER = """\
import sys, warnings
warnings.simplefilter("ignore")
import rattler_build
rattler_build.build_recipes(
    [sys.argv[1]],
    variant_config=sys.argv[2:] or None,
    render_only=True,
    target_platform="linux-64",
    build_platform="linux-64",
)
"""


def variant_files(recipe):
    ci_support = recipe / "ci_support_linux_64.yaml"
    return [ci_support] if ci_support.exists() else []


def timed(cmd, cwd):
    """Runs cmd with its output discarded; returns (seconds, succeeded)."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start, proc.returncode == 0


@contextlib.contextmanager
def quiet_fd1():
    """The peer prints its render on fd 1: send it to /dev/null meanwhile."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def in_process(rattler_build, recipe):
    """One render by the already imported peer; (seconds, succeeded)."""
    start = time.perf_counter()
    ok = True
    with quiet_fd1():
        try:
            rattler_build.build_recipes(
                [str(recipe / "recipe.yaml")],
                variant_config=[str(v) for v in variant_files(recipe)] or None,
                render_only=True,
                target_platform="linux-64",
                build_platform="linux-64",
            )
        except Exception:  # noqa: BLE001 - a rejected recipe is timed too
            ok = False
    return time.perf_counter() - start, ok


def ratio(r):
    return f"{r:.1f}x" if r >= 1 else f"{r:.2f}x"


def seconds(s):
    return f"{s * 1000:.0f} ms" if s < 10 else f"{s:.1f} s"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--corpus", type=pathlib.Path, default=ROOT.parent / "shared/conformance/conda-forge")
    args = parser.parse_args()
    if not CLEAVE.exists():
        sys.exit(f"build cleave first: cargo build --release -p cleave ({CLEAVE})")
    recipes = sorted(p for p in args.corpus.resolve().iterdir() if (p / "recipe.yaml").is_file())
    if not recipes:
        sys.exit(f"no recipes in {args.corpus}")
    warnings.simplefilter("ignore")
    import rattler_build

    scratch = pathlib.Path(tempfile.mkdtemp(prefix="cleave-bench-render-"))
    peer_script = scratch / "peer_render.py"
    peer_script.write_text(PEER_RENDER)
    tools = ("cleave", "peer process", "peer in-process")
    samples = {(r.name, t): [] for r in recipes for t in tools}
    ok = {}
    # The bare cost of a fresh peer process: python3 and the import.
    imports = []
    cwd = os.getcwd()
    os.chdir(scratch)  # the peer names ./output in its render
    try:
        for _ in range(args.runs):
            imports.append(timed([sys.executable, "-c", "import rattler_build"], scratch)[0])
            for recipe in recipes:
                variants = variant_files(recipe)
                cleave = [str(CLEAVE), "render", "--recipe", str(recipe), "--target-platform", "linux-64",
                          "--output", "json"]
                for v in variants:
                    cleave += ["-m", str(v)]
                peer = [sys.executable, str(peer_script), str(recipe / "recipe.yaml"), *map(str, variants)]
                for tool, run in (
                    ("cleave", lambda: timed(cleave, scratch)),
                    ("peer process", lambda: timed(peer, scratch)),
                    ("peer in-process", lambda: in_process(rattler_build, recipe)),
                ):
                    took, succeeded = run()
                    samples[(recipe.name, tool)].append(took)
                    ok[(recipe.name, tool)] = succeeded
    finally:
        os.chdir(cwd)

    median = {key: statistics.median(v) for key, v in samples.items()}
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}")
    print(f"py-rattler-build {rattler_build.rattler_build_version()}, Python {platform.python_version()}")
    print(f"runs per figure: {args.runs} (median); {len(recipes)} recipes")
    print(f"python3 -c 'import rattler_build' alone: {seconds(statistics.median(imports))}\n")
    print("| recipe | cleave | py-rattler-build (process) | ratio | py-rattler-build (in-process) | ratio |")
    print("|---|---:|---:|---:|---:|---:|")

    def figure(name, tool):
        mark = "" if ok[(name, tool)] else " (fails)"
        return f"{seconds(median[(name, tool)])}{mark}"

    for recipe in recipes:
        name = recipe.name
        c = median[(name, "cleave")]
        p = median[(name, "peer process")]
        q = median[(name, "peer in-process")]
        print(f"| {name} | {figure(name, 'cleave')} | {figure(name, 'peer process')} | {ratio(p / c)} "
              f"| {figure(name, 'peer in-process')} | {ratio(q / c)} |")
    total = {t: sum(median[(r.name, t)] for r in recipes) for t in tools}
    print(f"| **all {len(recipes)}** | {seconds(total['cleave'])} | {seconds(total['peer process'])} "
          f"| {ratio(total['peer process'] / total['cleave'])} | {seconds(total['peer in-process'])} "
          f"| {ratio(total['peer in-process'] / total['cleave'])} |")
    failing = sorted({name for (name, tool), good in ok.items() if not good and tool == "cleave"})
    if failing:
        print(f"\ncleave fails to render {len(failing)} of {len(recipes)}: {', '.join(failing)}")
    shutil.rmtree(scratch, ignore_errors=True)


main()
