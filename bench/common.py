"""Helpers shared by the benchmark scripts."""

import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
CLEAVE = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release/cleave"

PEER = """\
import sys
import rattler_build
rattler_build.build_recipes(
    [sys.argv[1]],
    output_dir=sys.argv[2],
    channel=[sys.argv[3]],
    test="skip",
    no_build_id=False,
)
"""


def timed(cmd, env=None):
    """Runs cmd under /usr/bin/time; returns (seconds, peak RSS in MiB)."""
    with tempfile.NamedTemporaryFile("r") as stats:
        run = subprocess.run(
            ["/usr/bin/time", "-o", stats.name, "-f", "%e %M", *cmd],
            env=env,
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            sys.exit(f"failed: {' '.join(cmd)}\n{run.stderr[-3000:]}")
        seconds, kib = stats.read().split()[-2:]
    return float(seconds), int(kib) / 1024


def empty_channel(path):
    for subdir in ("noarch", "linux-64"):
        (path / subdir).mkdir(parents=True, exist_ok=True)
        (path / subdir / "repodata.json").write_text(
            json.dumps({"info": {"subdir": subdir}, "packages": {}, "packages.conda": {}})
        )


class Bench:
    """A scratch directory with an empty local channel, the py-rattler-build
    runner and a private cleave cache, and the command each tool runs."""

    def __init__(self, prefix):
        if not CLEAVE.exists():
            sys.exit(f"build cleave first: cargo build --release -p cleave ({CLEAVE})")
        self.work = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
        self.peer = self.work / "peer.py"
        self.peer.write_text(PEER)
        self.channel = self.work / "channel"
        empty_channel(self.channel)
        self.env = dict(os.environ, CLEAVE_CACHE_DIR=str(self.work / "cache"))

    def recipe(self, name, text):
        """Writes recipe.yaml into a new recipe directory; returns it."""
        recipe = self.work / name
        recipe.mkdir()
        (recipe / "recipe.yaml").write_text(text)
        return recipe

    def command(self, tool, recipe, out, *cleave_args):
        """The command line of `tool` building `recipe` into `out`."""
        if tool == "cleave":
            return [str(CLEAVE), "build", "-r", str(recipe), "--output-dir", str(out),
                    "-c", str(self.channel), "--test", "skip", *cleave_args]
        return [sys.executable, "-W", "ignore", str(self.peer),
                str(recipe / "recipe.yaml"), str(out), str(self.channel)]

