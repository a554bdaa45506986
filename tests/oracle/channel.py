"""Checks a channel written by cleave with the ecosystem's own clients.

Usage: channel.py [--channel DIR]... CHANNEL_DIR PREFIX [SPEC...] [-- COMMAND...]

CHANNEL_DIR (and a --channel) may also be an http(s) URL, a channel that a
server or bucket serves: then its packages are not extracted (step 1) and
SPEC... must be given.

1. Every package in the channel is extracted by conda-package-handling, and
   its info/index.json and info/paths.json must describe the files that came
   out of it (sha256 and size of each; for a softlink, the digest of the file
   it resolves to inside the package, or of empty content, and the length of
   the link's target).
2. py-rattler solves SPEC... (default: every package in the channel) from
   the channel, then each `--channel` (say, one its packages depend on),
   with the machine's virtual packages, and installs them into PREFIX.
3. COMMAND, if given, runs with PREFIX/bin first on PATH; its output is
   printed.

Prints one JSON object: {"packages": [...], "installed": [...]}; each package
has its "file", "index", "paths", "link" (info/link.json, or null) and
"licenses" (the text of each file in info/licenses/ by its path there).
"""

import asyncio
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile

import conda_package_handling.api as cph
import rattler


def check_archive(path: pathlib.Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cph.extract(str(path), dest_dir=tmp)
        root = pathlib.Path(tmp)
        index = json.loads((root / "info/index.json").read_text())
        paths = json.loads((root / "info/paths.json").read_text())
        for entry in paths["paths"]:
            file = root / entry["_path"]
            if entry["path_type"] == "softlink":
                assert file.is_symlink(), entry
                # The size is the link's own; the digest is that of the
                # file it resolves to inside the package, else of nothing.
                assert entry["size_in_bytes"] == len(os.fsencode(os.readlink(file))), entry
                target = file.resolve()
                inside = target.is_relative_to(root.resolve()) and target.is_file()
                data = target.read_bytes() if inside else b""
                assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry
                continue
            if entry["path_type"] == "directory":
                assert file.is_dir(), entry
                continue
            data = file.read_bytes()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry
            assert len(data) == entry["size_in_bytes"], entry
        files = (root / "info/files").read_text().split()
        assert sorted(files) == sorted(e["_path"] for e in paths["paths"]), files
        licenses = {
            str(f.relative_to(root / "info/licenses")): f.read_text()
            for f in sorted((root / "info/licenses").rglob("*"))
            if f.is_file()
        }
        link = root / "info/link.json"
        link = json.loads(link.read_text()) if link.exists() else None
        return {
            "file": path.name,
            "index": index,
            "paths": paths["paths"],
            "licenses": licenses,
            "link": link,
        }


async def install(channels: list, prefix: pathlib.Path, specs: list) -> list:
    records = await rattler.solve(
        sources=[rattler.Channel(c if isinstance(c, str) else c.as_uri()) for c in channels],
        specs=specs,
        platforms=[rattler.Platform.current(), rattler.Platform("noarch")],
        virtual_packages=rattler.VirtualPackage.detect(),
    )
    # A package cache per check: tests build packages with equal names and
    # versions but different contents, and may run at the same time.
    cache = prefix.parent / (prefix.name + ".pkgs")
    await rattler.install(records, target_prefix=str(prefix), cache_dir=cache, show_progress=False)
    return sorted(f"{r.name.normalized}-{r.version}-{r.build}" for r in records)


def main() -> None:
    args = sys.argv[1:]
    command = []
    if "--" in args:
        cut = args.index("--")
        args, command = args[:cut], args[cut + 1 :]
    def source(text):
        return text if "://" in text else pathlib.Path(text).resolve()

    extra = []
    while args[:1] == ["--channel"]:
        extra.append(source(args[1]))
        args = args[2:]
    channel, prefix, specs = source(args[0]), pathlib.Path(args[1]), args[2:]
    archives = [] if isinstance(channel, str) else sorted(
        p for p in channel.glob("*/*") if p.name.endswith((".conda", ".tar.bz2"))
    )
    packages = [check_archive(p) for p in archives]
    if not specs:
        specs = sorted({p["index"]["name"] for p in packages})
    installed = asyncio.run(install([channel, *extra], prefix, specs))
    out = {"packages": packages, "installed": installed}
    if command:
        env = dict(os.environ, PATH=f"{prefix / 'bin'}:{os.environ['PATH']}")
        env.pop("LD_LIBRARY_PATH", None)
        run = subprocess.run(command, env=env, capture_output=True, text=True)
        out["command"] = {"code": run.returncode, "stdout": run.stdout, "stderr": run.stderr}
    json.dump(out, sys.stdout)
    sys.stdout.flush()


main()
# py-rattler's runtime threads can crash the interpreter while it shuts
# down (PyGILState_Release during finalization); everything is checked and
# written by now, so leave without finalizing.
os._exit(0)
