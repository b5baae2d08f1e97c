"""What the dry run may import, and the audit of what it did import.

The GPU machine's python has ``packages.DEVICE_PACKAGES`` (and, being a consistent environment, whatever those
require); the bundle brings ``packages.bundle_wheels()``. ``allowed_distributions`` turns that into the set of distribution names the
dry run's import guard (``guard.py``) lets through: the device packages installed here and their requirements as
installed here, plus the bundle's. After the dry run, ``main`` reads every interpreter's record of its top-level
modules and fails when one came from anywhere else (the guard should have refused it), and lists the optional
imports the guard refused, as they would fail on the GPU machine.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
import sysconfig
from pathlib import Path

from gpucheck.guard import normalize, site_package_top
from gpucheck.packages import DEVICE_PACKAGES, bundle_wheels, requirement_name


def allowed_distributions() -> set[str]:
    """Normalized names of the distributions the GPU machine has or the bundle brings (see the module doc)."""
    installed = {
        normalize(d.metadata["Name"]): d for d in importlib.metadata.distributions() if d.metadata["Name"]
    }
    allowed = {normalize(name) for name in DEVICE_PACKAGES}
    todo = [name for name in allowed if name in installed]
    while todo:
        for requirement in installed[todo.pop()].requires or []:
            if "extra" in requirement.partition(";")[2]:
                continue
            name = requirement_name(requirement)
            if name not in allowed:
                allowed.add(name)
                if name in installed:
                    todo.append(name)
    return allowed | set(bundle_wheels())


def classify(imports: dict[str, str], allowed: set[str], own_roots: list[Path]) -> dict[str, list[str]]:
    """Top-level module -> ``own``, ``stdlib``, ``allowed``, ``host`` (this machine's tooling) or ``missing``."""
    distributions = importlib.metadata.packages_distributions()
    paths = sysconfig.get_paths()
    stdlib_dirs = {Path(paths["stdlib"]).resolve(), Path(paths["platstdlib"]).resolve()}
    found: dict[str, list[str]] = {"own": [], "stdlib": [], "allowed": [], "host": [], "missing": []}
    for name, file in sorted(imports.items()):
        path = Path(file).resolve()
        top = site_package_top(file)
        if top is None and any(path.is_relative_to(root) for root in own_roots):
            found["own"].append(name)
        elif name in sys.stdlib_module_names or (
            top is None and any(path.is_relative_to(d) for d in stdlib_dirs)
        ):
            found["stdlib"].append(name)
        elif name.startswith("__editable__"):  # the finder of an editable install here, not imported code
            found["host"].append(name)
        elif top is None:
            found["missing"].append(f"{name} (outside every environment: {path})")
        else:
            dists = {normalize(d) for d in distributions.get(name) or distributions.get(top) or []}
            if dists & allowed:
                found["allowed"].append(name)
            else:
                found["missing"].append(f"{name} ({', '.join(sorted(dists)) or 'no distribution'}: {path})")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imports", required=True, help="folder of the per-process import records")
    parser.add_argument("--allowed", required=True, help="the JSON file the guard was given")
    parser.add_argument("--result", required=True, help="where to write the JSON result")
    args = parser.parse_args(argv)
    config = json.loads(Path(args.allowed).read_text(encoding="utf-8"))
    imports: dict[str, str] = {}
    refused: set[str] = set()
    records = sorted(Path(args.imports).glob("*.json"))
    for record in records:
        data = json.loads(record.read_text(encoding="utf-8"))
        imports.update(data["imported"])
        refused.update(data["refused"])
    own_roots = [Path(root).resolve() for root in config["own_roots"]]
    found = classify(imports, set(config["distributions"]), own_roots)
    result = {
        "processes": len(records),
        "modules": len(imports),
        "refused_optional_imports": sorted(refused),
        **{key: value for key, value in found.items() if key != "stdlib"},
    }
    result["ok"] = bool(records) and not found["missing"]
    if not records:
        result["error"] = f"no import records in {args.imports}"
    elif found["missing"]:
        result["error"] = "imported, but neither on the GPU machine nor in the bundle: " + "; ".join(
            found["missing"]
        )
    print(f"audit: {json.dumps(result)}", flush=True)
    Path(args.result).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
