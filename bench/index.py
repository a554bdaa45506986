"""Indexing a channel after one new package: cleave vs py-rattler's
index_fs vs conda-index, side by side in one run.

Needs a release build of cleave (cargo build --release -p cleave),
conda-package-handling and py-rattler (scripts/prerequisites --with-oracles).

Usage: bench/index.py [--packages N] [--rounds R] [--cleave PATH]
                      [--conda-index-python PYTHON]

N distinct noarch packages (default 2000) are made once with
conda-package-handling. Each tool gets its own copy of that channel and
indexes it from scratch ("cold"); then, R times (default 3), one new
package goes into the channel and the tool indexes it again ("one more",
the median is shown). For cleave that is `cleave publish --to CHANNEL PKG`
(the copy and the index, as a build or a publish does it); for py-rattler
the copy and `rattler.index.index_fs(CHANNEL)` (repodata.json only, no
.zst or shards, as cleave writes); for conda-index the copy and
`PYTHON -m conda_index --subdir noarch CHANNEL` with every output but
repodata.json turned off (its own sqlite cache keeps what it read).
conda-index needs conda itself, whose current releases are not on PyPI:
`--conda-index-python` names a Python that has both (default: this one);
without them the table says so instead of timing it.
"""

import argparse
import asyncio
import json
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import CLEAVE  # noqa: E402

# The cleave binary timed (--cleave).
BINARY = CLEAVE

import conda_package_handling.api as cph  # noqa: E402
import rattler.index  # noqa: E402


def make_package(work: pathlib.Path, out: pathlib.Path, name: str) -> pathlib.Path:
    src = work / name
    (src / "info").mkdir(parents=True)
    (src / "share").mkdir()
    (src / "share" / f"{name}.txt").write_text(name * 64)
    index = {
        "name": name,
        "version": "1.0",
        "build": "0",
        "build_number": 0,
        "subdir": "noarch",
        "noarch": "generic",
        "depends": [],
    }
    (src / "info" / "index.json").write_text(json.dumps(index))
    (src / "info" / "paths.json").write_text(json.dumps({"paths": [], "paths_version": 1}))
    files = ["info/index.json", "info/paths.json", f"share/{name}.txt"]
    cph.create(str(src), files, f"{name}-1.0-0.conda", out_folder=str(out))
    shutil.rmtree(src)
    return out / f"{name}-1.0-0.conda"


def cleave_index(channel: pathlib.Path, package: pathlib.Path) -> float:
    start = time.monotonic()
    subprocess.run(
        [str(BINARY), "publish", "--to", str(channel), str(package)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - start


def rattler_index(channel: pathlib.Path, package: pathlib.Path) -> float:
    start = time.monotonic()
    shutil.copy(package, channel / "noarch" / package.name)
    asyncio.run(
        rattler.index.index_fs(channel, write_zst=False, write_shards=False)
    )
    return time.monotonic() - start


# The Python that runs conda-index (--conda-index-python).
CONDA_INDEX_PYTHON = pathlib.Path(sys.executable)


def conda_index(channel: pathlib.Path, package: pathlib.Path) -> float:
    start = time.monotonic()
    shutil.copy(package, channel / "noarch" / package.name)
    subprocess.run(
        [
            str(CONDA_INDEX_PYTHON), "-m", "conda_index", "--subdir", "noarch",
            "--no-zst", "--no-bz2", "--no-channeldata", "--no-rss",
            "--no-current-repodata", "--no-run-exports", str(channel),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.monotonic() - start


def conda_index_missing() -> str | None:
    """Why conda-index cannot run with CONDA_INDEX_PYTHON, or None."""
    probe = subprocess.run(
        [str(CONDA_INDEX_PYTHON), "-c", "import conda, conda_index.index; print(conda.__version__)"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return "not run: conda and conda-index are not importable (--conda-index-python)"
    return None


def conda_index_version() -> str:
    probe = subprocess.run(
        [str(CONDA_INDEX_PYTHON), "-c",
         "import importlib.metadata as m; print(m.version('conda-index'), m.version('conda'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    index, conda = probe.stdout.split()
    return f"conda-index {index} (conda {conda})"


def main() -> None:
    global BINARY, CONDA_INDEX_PYTHON
    parser = argparse.ArgumentParser()
    parser.add_argument("--packages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cleave", type=pathlib.Path, default=CLEAVE)
    parser.add_argument("--conda-index-python", type=pathlib.Path, default=CONDA_INDEX_PYTHON)
    args = parser.parse_args()
    BINARY = args.cleave
    CONDA_INDEX_PYTHON = args.conda_index_python
    if not BINARY.exists():
        sys.exit(f"{BINARY} is missing: cargo build --release -p cleave")
    with tempfile.TemporaryDirectory(prefix="cleave-bench-index-") as tmp:
        tmp = pathlib.Path(tmp)
        template = tmp / "template"
        template.mkdir()
        started = time.monotonic()
        for i in range(args.packages):
            make_package(tmp / "work", template, f"pkg{i:05d}")
        extra = tmp / "extra"
        extra.mkdir()
        more = [make_package(tmp / "work", extra, f"more{r}") for r in range(args.rounds)]
        made = time.monotonic() - started
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, "
            f"{platform.system()} {platform.release()}; {args.packages} packages made in {made:.0f} s"
        )
        rows = []
        missing = conda_index_missing()
        tools = [("cleave", cleave_index), ("py-rattler index_fs", rattler_index)]
        if not missing:
            tools.append((conda_index_version(), conda_index))
        for tool, index in tools:
            channel = tmp / tool.split()[0]
            (channel / "noarch").mkdir(parents=True)
            files = sorted(template.iterdir())
            for f in files[:-1]:
                shutil.copy(f, channel / "noarch" / f.name)
            # Cold: the last of the N goes in with the whole channel unindexed.
            cold = index(channel, files[-1])
            warm = [index(channel, package) for package in more]
            repodata = json.loads((channel / "noarch/repodata.json").read_text())
            listed = len(repodata["packages.conda"])
            assert listed == args.packages + args.rounds, (tool, listed)
            rows.append((tool, f"{cold:.2f} s", f"{statistics.median(warm):.3f} s", listed))
        print()
        print(f"| tool | cold index of {args.packages} | one more package (median of {args.rounds}) | listed |")
        print("|---|---:|---:|---:|")
        for tool, cold, warm, listed in rows:
            print(f"| {tool} | {cold} | {warm} | {listed} |")
        if missing:
            print(f"| conda-index | {missing} | | |")


if __name__ == "__main__":
    main()
