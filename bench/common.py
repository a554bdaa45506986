"""Helpers shared by the benchmark scripts."""

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time

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


def measure(cmd, env, cwd=None):
    """Runs cmd (in cwd); returns (seconds, tool peak MiB, tree peak MiB, stderr)."""
    with tempfile.NamedTemporaryFile("r") as stats:
        start = time.monotonic()
        proc = subprocess.Popen(
            ["/usr/bin/time", "-o", stats.name, "-f", "%M", *cmd],
            env=env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        hwm = [0]

        def poll():
            # The tool is /usr/bin/time's child; its VmHWM only grows.
            while proc.poll() is None:
                try:
                    child = pathlib.Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
                    pid = child.read_text().split()[0]
                    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            hwm[0] = max(hwm[0], int(line.split()[1]))
                except (OSError, IndexError):
                    pass
                time.sleep(0.05)

        watcher = threading.Thread(target=poll)
        watcher.start()
        stderr = proc.communicate()[1]
        seconds = time.monotonic() - start
        watcher.join()
        if proc.returncode != 0:
            sys.exit(f"failed: {' '.join(cmd)}\n{stderr[-4000:]}")
        tree = int(stats.read().split()[-1])
    return seconds, hwm[0] / 1024, tree / 1024, stderr


def timed(cmd, env=None):
    """Runs cmd; returns (seconds, peak RSS of its largest process in MiB)."""
    seconds, _, tree, _ = measure(cmd, env)
    return seconds, tree


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

