"""A stack of real conda-forge recipes built from one directory, with cleave
and py-rattler-build side by side: a conda-forge migration in miniature.

Usage: python3 bench/stack.py [--corpus DIR] [--cleave BINARY] [--keep]

The stack is the build corpus (../shared/cf-build beside the repository:
ninja, zlib, xz, libpng, yaml, nettle, libogg as conda-forge wrote them,
their sources local tarballs). Both tools get the recipes as one directory
and order them themselves: cleave with `build --recipe-dir`, the peer with
`build_recipes` given every recipe. The peer cannot read zlib's recipe
(its top-level `cache:` and conda-build's bare versions), so its stack is
the other six, and its libpng solves the stand-in zlib. One variant file
stands for conda-forge's global pinning (a feedstock's own `ci_support`
file pins only what that feedstock uses). Both solve offline from the
corpus's toolchain stand-ins (`_toolchain/`, built into a channel by
cleave first, not timed), tests skipped.

Scenarios, one run each, each into the output channel of the one before:
  1. cold: an empty output channel; cleave with an empty cache;
  2. warm: the unchanged stack again. cleave must run nothing (checked:
     every package is `reused`); the peer has no cache: it rebuilds
     everything, or, with `skip_existing="local"`, skips what its channel
     holds;
  3. libogg changed (its build number + 1): cleave must build libogg's
     packages and reuse the rest (checked); the peer with
     `skip_existing="local"` builds what has a new name-version-build;
  4. zlib changed, as a migration's rebuild: cleave must build zlib's
     packages and libpng, whose host environment now holds the new zlib,
     and reuse the rest (checked). (With `skip_existing`, a tool that
     keys packages by name-version-build alone would keep libpng built
     against the zlib that was replaced.)
Prints the machine, a Markdown table (wall time, packages built, reused or
skipped) and which packages each tool built after each change.

Needs: a release build of cleave (cargo build --release -p cleave) with
`--recipe-dir`, py-rattler-build 0.73 and the corpus's build tools
(scripts/prerequisites --with-oracles).
"""

import argparse
import json
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import common  # noqa: E402

ROOT = common.ROOT
CLEAVE = common.CLEAVE

# conda-forge's pinning for what the stack's recipes use: the newest
# compiler the feedstocks' variant files name, and their library pins.
STACK_VARIANTS = """\
c_compiler:
- gcc
c_compiler_version:
- '14'
cxx_compiler:
- gxx
cxx_compiler_version:
- '14'
c_stdlib:
- sysroot
c_stdlib_version:
- '2.17'
cdt_name:
- conda
gmp:
- '6'
zlib:
- '1'
target_platform:
- linux-64
"""

PEER = """\
import json, sys
import rattler_build
recipes, variants, channel, out, skip = sys.argv[1:6]
rattler_build.build_recipes(
    json.loads(recipes),
    variant_config=[variants],
    channel=[channel],
    output_dir=out,
    target_platform="linux-64",
    build_platform="linux-64",
    host_platform="linux-64",
    test="skip",
    skip_existing=skip,
)
"""

# The libraries whose recipes change, one after the other, and the packages
# of other recipes that must be rebuilt with them: those whose host
# environment holds the changed packages.
CHANGES = {"libogg": set(), "zlib": {"libpng"}}

# Recipes of the stack the peer rejects, and why: its stack is the others
# (libpng then solves the stand-in zlib).
PEER_CANNOT_READ = {
    "zlib": "py-rattler-build 0.73 rejects zlib's top-level `cache:` and bare versions",
}


def run(cmd, env=None, log=None):
    """Runs `cmd`; returns (seconds, stdout). Exits with its output tail on
    failure; the whole output goes to `log`."""
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if log is not None:
        log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{(proc.stdout + proc.stderr)[-4000:]}")
    return seconds, proc.stdout


def copy_stack(corpus, dest):
    """The corpus's recipes in one directory, sources pointing at the
    corpus's tarballs; the feedstocks' own variant files are left out (the
    stack has one)."""
    sources = str((corpus / "_sources").resolve())
    names = []
    for line in (corpus / "ORDER").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            names.append(line.split()[0])
    for name in names:
        for src in (corpus / name).rglob("*"):
            if src.is_dir() or src.name == "ci_support_linux_64.yaml":
                continue
            to = dest / name / src.relative_to(corpus / name)
            to.parent.mkdir(parents=True, exist_ok=True)
            data = src.read_bytes()
            try:
                data = data.decode().replace("@CF_SOURCES@", sources).encode()
            except UnicodeDecodeError:
                pass
            to.write_bytes(data)
            to.chmod(src.stat().st_mode | 0o200)
    script = dest / "zlib" / "build_global.sh"
    if script.is_file():
        # Debian's repack of zlib drops win32/, whose zlib1.rc upstream's
        # CMakeLists.txt names on every platform (CMake ignores it off
        # Windows, but wants it to exist): no tool builds zlib from that
        # tarball as it is. The stack restores an empty one.
        text = script.read_text()
        script.write_text(text.replace("set -ex\n", "set -ex\nmkdir -p win32 && : > win32/zlib1.rc\n", 1))
    return names


def toolchain(corpus, work):
    """The stand-ins, built by cleave into a channel."""
    channel = work / "toolchain"
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000", NO_COLOR="1")
    for recipe in sorted((corpus / "_toolchain").iterdir()):
        if (recipe / "recipe.yaml").is_file():
            run([CLEAVE, "build", "--recipe", recipe, "--output-dir", channel,
                 "--cache-dir", work / "toolchain-cache"], env)
    return channel


def bump_build_number(recipe_dir):
    """zlib's recipe with its build number one higher."""
    recipe = recipe_dir / "recipe.yaml"
    text = recipe.read_text()
    bumped, n = re.subn(
        r"^(\s*build_num\s*[:=]\s*)(\d+)",
        lambda m: f"{m.group(1)}{int(m.group(2)) + 1}",
        text,
        count=1,
        flags=re.M,
    )
    if n == 0:
        bumped, n = re.subn(
            r"^(\s*number:\s*)(\d+)\s*$",
            lambda m: f"{m.group(1)}{int(m.group(2)) + 1}",
            text,
            count=1,
            flags=re.M,
        )
    if n == 0:
        sys.exit(f"no build number found in {recipe}")
    recipe.write_text(bumped)


def cleave_states(stdout):
    """package -> built|reused, from cleave's summary."""
    states = {}
    for line in stdout.splitlines():
        cells = line.split()
        if len(cells) >= 5 and cells[4] in ("built", "reused"):
            states[cells[0]] = cells[4]
    return states


def packages(out):
    return {p.name for p in out.glob("*/*.conda")}


def package_name(file_name):
    return file_name.rsplit("-", 2)[0]


def main():
    global CLEAVE
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=pathlib.Path, default=ROOT.parent / "shared/cf-build")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("--cleave", type=pathlib.Path, default=CLEAVE, help="the cleave binary")
    parser.add_argument("--tools", default="cleave,peer", help="cleave, peer or both (the default)")
    args = parser.parse_args()
    CLEAVE = args.cleave.resolve()
    if not CLEAVE.exists():
        sys.exit(f"build cleave first: cargo build --release -p cleave ({CLEAVE})")
    if not (args.corpus / "ORDER").is_file():
        sys.exit(f"no build corpus at {args.corpus}")
    work = pathlib.Path(tempfile.mkdtemp(prefix="cleave-stack-"))
    try:
        bench(args.corpus, work, set(args.tools.replace(' ', '').split(',')))
    finally:
        if args.keep:
            print(f"\nkept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def bench(corpus, work, tools):
    channel = toolchain(corpus, work)
    variants = work / "stack-variants.yaml"
    variants.write_text(STACK_VARIANTS)
    peer_script = work / "peer.py"
    peer_script.write_text(PEER)
    stacks = {tool: work / f"stack-{tool}" for tool in ("cleave", "peer")}
    for tool, stack in stacks.items():
        names = copy_stack(corpus, stack)
    for name in PEER_CANNOT_READ:
        shutil.rmtree(stacks["peer"] / name)
    outs = {tool: work / f"out-{tool}" for tool in stacks}
    env = dict(os.environ, NO_COLOR="1")
    env.pop("SOURCE_DATE_EPOCH", None)
    logs = work / "logs"
    logs.mkdir()

    def cleave(step):
        before = packages(outs["cleave"])
        seconds, stdout = run(
            [CLEAVE, "build", "--recipe-dir", stacks["cleave"], "-m", variants,
             "-c", channel, "--output-dir", outs["cleave"], "--cache-dir", work / "cache",
             "--test", "skip"],
            env, logs / f"cleave-{step}.log")
        states = cleave_states(stdout)
        built = sorted(n for n, s in states.items() if s == "built")
        reused = sum(1 for s in states.values() if s == "reused")
        new = {package_name(p) for p in packages(outs["cleave"]) - before}
        return seconds, built, reused, new

    def peer(step, skip):
        start = time.time()
        # The peer takes recipe files, not their directories.
        recipes = sorted(str(p / "recipe.yaml") for p in stacks["peer"].iterdir())
        seconds, _ = run(
            [sys.executable, "-W", "ignore", peer_script, json.dumps(recipes), variants,
             channel, outs["peer"], skip],
            env, logs / f"peer-{step}-{skip}.log")
        files = list(outs["peer"].glob("*/*.conda"))
        written = sorted({package_name(p.name) for p in files if p.stat().st_mtime >= start})
        return seconds, written, len(files) - len(written)

    rows = []
    changed_builds = []
    for step in ("cold", "warm", *(f"{c} changed" for c in CHANGES)):
        changed = step.split()[0] if step.endswith("changed") else None
        if changed:
            for tool, stack in stacks.items():
                if (stack / changed).is_dir():
                    bump_build_number(stack / changed)
        seconds, built, reused, new = cleave(step)
        expected = set() if step == "warm" else (new | CHANGES.get(changed, set()))
        if step != "cold" and set(built) != expected:
            sys.exit(f"{step}: cleave built {built}, not {sorted(expected)}")
        rows.append((step, "cleave", seconds, len(built), f"{reused} reused"))
        if changed:
            changed_builds.append((step, "cleave", built))
        if "peer" not in tools:
            continue
        if changed in PEER_CANNOT_READ:
            rows.append((step, "py-rattler-build", None, "-", PEER_CANNOT_READ[changed]))
            continue
        for skip in ("none", "local") if step == "warm" else ("local",) if changed else ("none",):
            seconds, written, kept = peer(step, skip)
            label = "py-rattler-build" + (" (skip_existing=local)" if skip == "local" else "")
            rows.append((step, label, seconds, len(written),
                         f"{kept} skipped" if skip == "local" else "-"))
            if changed:
                changed_builds.append((step, label, written))

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
    print(f"stack: {', '.join(names)} ({corpus.name}); the peer without "
          f"{', '.join(PEER_CANNOT_READ)} ({'; '.join(PEER_CANNOT_READ.values())})\n")
    print("| scenario | tool | wall time | packages built | reused / skipped |")
    print("|---|---|---:|---:|---:|")
    for step, tool, seconds, built, other in rows:
        time_cell = "-" if seconds is None else f"{seconds:.1f} s"
        print(f"| {step} | {tool} | {time_cell} | {built} | {other} |")
    print("\nbuilt after a change (its build number + 1):")
    for step, tool, built in changed_builds:
        print(f"- {step}, {tool}: {', '.join(built) or 'nothing'}")


if __name__ == "__main__":
    main()
