"""The peer's side of the conformance test (crates/cleave/tests/conformance.rs).

Usage:
  peer.py render [--variant-config FILE] [--variant KEY=VALUE[,VALUE]]...
                 RECIPE_DIR...   renders each recipe with py-rattler-build
  peer.py normalize              normalises the JSON list of match specs on
                                 stdin, as `render` normalises the peer's

`render` renders RECIPE_DIR/recipe.yaml for linux-64 with
RECIPE_DIR/ci_support_linux_64.yaml as the variant config when it exists,
or FILE for every recipe when `--variant-config` is given (variants.yaml
and conda_build_config.yaml next to the recipe are found by the peer
itself), with each `--variant` override as the peer's `--variant` flag
applies it, all recipes in this one process. It prints one JSON list,
one entry per RECIPE_DIR in order:

  {"recipe": DIR, "error": null | "why the peer rejected it",
   "packages": [{"name", "version", "build_string",
                 "requirements": {"build": [...], "host": [...],
                                  "run": [...], "run_constraints": [...]}}]}

The peer renders a package output's requirements as the recipe wrote them;
it pins them only when it solves. So that both tools compare as match specs,
this script does what the peer does at that point, from the peer's own
render (see rattler-build's `apply_variant`):

- `pin_subpackage` objects become specs from `build_configuration.subpackages`
  (exact: `name ==version build`; lower bound `x.x`: `>=` the first N
  segments; upper bound `x.x`: `<` the first N segments with the Nth bumped,
  then `.0a0`; a literal bound as written); a pin of a name the peer does not
  list is left as an object and shows up as a difference;
- a bare build or host requirement whose name (`-` and `_` alike) is a key of
  the output's variant gets the variant's value: `zlib` with `zlib: 1`
  becomes `zlib 1.*`, `libfoo` with `libfoo: 2.3 h1*` becomes
  `libfoo ==2.3 h1*`;
- `pin_compatible` stays an object: it needs the solved host environment.

Every spec is normalised by parsing it with py-rattler's MatchSpec and
printing it again; text that does not parse is kept as written.

Exits with status 3 (and says why on stderr) when py-rattler is missing or
py-rattler-build 0.73.0 is not what is installed, so the test can tell "no
peer" from a broken peer.
"""

import json
import os
import sys
import tempfile
import warnings

SECTIONS = ("build", "host", "run", "run_constraints")

PEER_VERSION = "0.73.0"

try:
    import rattler
    import rattler_build
except ImportError as err:
    print(f"missing python module: {err.name} (scripts/prerequisites --with-oracles)", file=sys.stderr)
    sys.exit(3)
if rattler_build.rattler_build_version() != PEER_VERSION:
    print(
        f"py-rattler-build {rattler_build.rattler_build_version()} is installed; "
        f"the comparison is with {PEER_VERSION} (scripts/prerequisites --with-oracles)",
        file=sys.stderr,
    )
    sys.exit(3)


def normalize(spec):
    """A match spec as py-rattler prints it; text it cannot parse unchanged."""
    try:
        return str(rattler.MatchSpec(spec))
    except Exception:  # noqa: BLE001 - any parse error keeps the text
        return spec


def is_pattern(bound):
    return bool(bound) and all(part in ("x", "X") for part in bound.split("."))


def pin_spec(name, version, build, pin):
    """The match spec a pin gives for a package at version/build."""
    if pin.get("exact"):
        return f"{name} =={version} {build}"
    parsed = rattler.Version(version)
    bounds = []
    lower = pin.get("lower_bound")
    if lower is not None:
        if is_pattern(lower):
            n = len(lower.split("."))
            lower = str(parsed.with_segments(0, min(n, parsed.segment_count)))
        bounds.append(f">={lower}")
    upper = pin.get("upper_bound")
    if upper is not None:
        if is_pattern(upper):
            n = len(upper.split("."))
            upper = str(
                parsed.with_segments(0, min(n, parsed.segment_count))
                .bump_segment(n - 1)
                .with_alpha()
                .remove_local()
            )
        bounds.append(f"<{upper}")
    return f"{name} {','.join(bounds)}" if bounds else name


def variant_key(name):
    return name.replace("-", "_").replace(".", "_")


def apply_variant(spec, variant):
    """A bare spec whose name is a variant key, with the variant's value."""
    try:
        parsed = rattler.MatchSpec(spec)
    except Exception:  # noqa: BLE001
        return spec
    if parsed.version is not None or parsed.build is not None or parsed.name is None:
        return spec
    name = parsed.name.normalized
    value = variant.get(variant_key(name))
    if value is None:
        return spec
    value = str(value)
    if all(c.isalnum() or c == "." for c in value):
        return f"{name} ={value}"
    parts = value.split()
    version = parts[0]
    if version[:1].isalnum() and "*" not in version and "," not in version and "|" not in version:
        # A plain version is an exact match for the peer (VersionSpec::from_str).
        version = f"=={version}"
    return " ".join([name, version, *parts[1:2]])


def requirement(dep, section, config):
    """One requirement of the peer's render, pinned and normalised."""
    if isinstance(dep, str):
        if section in ("build", "host"):
            variant = {variant_key(k): v for k, v in config.get("variant", {}).items()}
            dep = apply_variant(dep, variant)
        return normalize(dep)
    if isinstance(dep, dict) and "pin_subpackage" in dep:
        pin = dep["pin_subpackage"]
        sub = config.get("subpackages", {}).get(pin["name"])
        if sub is None:
            return dep
        return normalize(pin_spec(pin["name"], sub["version"], sub["build_string"], pin))
    return dep


def package(output):
    recipe = output["recipe"]
    config = output["build_configuration"]
    reqs = recipe.get("requirements") or {}
    return {
        "name": recipe["package"]["name"],
        "version": str(recipe["package"]["version"]),
        "build_string": recipe.get("build", {}).get("string"),
        "requirements": {
            section: [requirement(d, section, config) for d in reqs.get(section) or []]
            for section in SECTIONS
        },
    }


def peer_render(recipe_dir, variant_config=None, overrides=None):
    """The peer's render of one recipe: (JSON list, None) or (None, error)."""
    recipe = os.path.join(recipe_dir, "recipe.yaml")
    ci_support = variant_config or os.path.join(recipe_dir, "ci_support_linux_64.yaml")
    variants = [ci_support] if os.path.exists(ci_support) else None
    # The peer prints its render on fd 1; catch it in a file per recipe.
    with tempfile.TemporaryFile() as out:
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(out.fileno(), 1)
        error = None
        try:
            rattler_build.build_recipes(
                [recipe],
                variant_config=variants,
                variant_overrides=overrides or None,
                render_only=True,
                target_platform="linux-64",
                build_platform="linux-64",
            )
        except Exception as err:  # noqa: BLE001 - the peer's rejection is data
            error = f"{type(err).__name__}: {err}".strip()
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
        if error is not None:
            return None, error
        out.seek(0)
        text = out.read().decode()
    try:
        return json.loads(text), None
    except json.JSONDecodeError as err:
        return None, f"the peer printed no JSON ({err}): {text[:200]!r}"


def render(recipe_dirs, variant_config=None, overrides=None):
    results = []
    if variant_config is not None:
        variant_config = os.path.abspath(variant_config)
    # The workdir the peer names in its render is never created with
    # render_only, but run it in a scratch directory all the same.
    with tempfile.TemporaryDirectory(prefix="cleave-peer-") as scratch:
        cwd = os.getcwd()
        recipe_dirs = [os.path.abspath(d) for d in recipe_dirs]
        os.chdir(scratch)
        try:
            for recipe_dir in recipe_dirs:
                outputs, error = peer_render(recipe_dir, variant_config, overrides)
                results.append(
                    {
                        "recipe": recipe_dir,
                        "error": error,
                        "packages": [package(o) for o in outputs or []],
                    }
                )
        finally:
            os.chdir(cwd)
    return results


def main():
    # build_recipes is deprecated in 0.73, and still the call that renders.
    warnings.simplefilter("ignore")
    args = sys.argv[1:]
    if args[:1] == ["render"]:
        args = args[1:]
        variant_config = None
        overrides = {}
        while args[:1] in (["--variant-config"], ["--variant"]) and len(args) >= 2:
            if args[0] == "--variant-config":
                variant_config = args[1]
            else:
                key, _, values = args[1].partition("=")
                overrides[key] = [v.strip() for v in values.split(",")]
            args = args[2:]
        json.dump(render(args, variant_config, overrides), sys.stdout)
    elif args == ["normalize"]:
        json.dump([normalize(s) for s in json.load(sys.stdin)], sys.stdout)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
