"""Start-up code of every interpreter the GPU check runs (its generated ``sitecustomize`` calls :func:`install`).

* The check's site folder (the bundle's wheels, the runtime hook) becomes a site directory, so its ``.pth`` files
  run, and the runtime hook that ``wsovvis prepare --site-packages`` wrote there is installed, as in a prepared
  runtime (an interpreter whose environment was prepared before keeps its own hook off: the check sets
  ``WSOVVIS_RUNTIME_HOOK=0``).
* The interpreter's own ``sitecustomize``, which the generated one shadows, still runs.
* In a dry run (``WSOVVIS_GPUCHECK_ALLOWED`` names a JSON file) the machine is made to look like the GPU machine:
  a top-level import from an installed distribution that the GPU machine lacks (and the bundle does not bring)
  raises ``ModuleNotFoundError``, as it would there. Optional imports then fall back as they would there, and a
  required one fails the part that needs it. Refused and imported modules are recorded in
  ``WSOVVIS_GPUCHECK_IMPORT_LOG`` for the audit (``gpucheck.audit``).

Standard library only: it runs before anything else is importable.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.metadata
import importlib.util
import json
import os
import re
import site
import sys
from typing import Any

SITE_ENV = "WSOVVIS_GPUCHECK_SITE"
ALLOWED_ENV = "WSOVVIS_GPUCHECK_ALLOWED"
IMPORT_LOG_ENV = "WSOVVIS_GPUCHECK_IMPORT_LOG"

_refused: set[str] = set()


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def site_package_top(path: str) -> str | None:
    """The top-level name of a file under a ``site-packages``/``dist-packages`` folder (None elsewhere)."""
    parts = os.path.realpath(path).split(os.sep)
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            index = len(parts) - 1 - parts[::-1].index(marker)
            if index + 1 < len(parts):
                return parts[index + 1].split(".")[0]
    return None


class DeviceOnlyFinder(importlib.abc.MetaPathFinder):
    """Refuses top-level imports from installed distributions outside ``allowed``."""

    def __init__(self, allowed: set[str]) -> None:
        self.allowed = allowed
        self._distributions: dict[str, list[str]] | None = None

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if path is not None or name in sys.stdlib_module_names or name in sys.builtin_module_names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name)
        origin = spec and (spec.origin or next(iter(spec.submodule_search_locations or []), None))
        if not origin or origin in ("built-in", "frozen"):
            return None
        top = site_package_top(origin)
        if top is None:  # the standard library, the check's own folders (sources, site folder), the project
            return None
        if self._distributions is None:
            self._distributions = importlib.metadata.packages_distributions()
        if {normalize(d) for d in self._distributions.get(top, [])} & self.allowed:
            return None
        _refused.add(name)
        raise ModuleNotFoundError(
            f"No module named {name!r} (gpu-check dry run: not on the GPU machine)", name=name
        )


def _record_imports(log_dir: str) -> None:
    found = {}
    for name, module in list(sys.modules.items()):
        if "." in name or module is None:
            continue
        path = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", None) or []), None)
        if path:
            found[name] = path
    record = {"imported": found, "refused": sorted(_refused)}
    with open(os.path.join(log_dir, f"{os.getpid()}.json"), "w", encoding="utf-8") as handle:
        json.dump(record, handle)


def _run_shadowed_sitecustomize(here: str) -> None:
    for entry in sys.path:
        folder = os.path.abspath(entry or ".")
        candidate = os.path.join(folder, "sitecustomize.py")
        if folder != here and os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_shadowed_sitecustomize", candidate)
            if spec and spec.loader:
                spec.loader.exec_module(importlib.util.module_from_spec(spec))
            return


def install(sitecustomize_dir: str) -> None:
    site_dir = os.environ.get(SITE_ENV)
    if site_dir:
        site.addsitedir(site_dir)
        # The check's own runtime hook, never one installed into the interpreter's environment earlier: the check
        # runs with WSOVVIS_RUNTIME_HOOK=0, which every hook's .pth line obeys, and installs this one itself.
        if os.path.isfile(os.path.join(site_dir, "wsovvis_runtime", "runtime.json")):
            importlib.import_module("wsovvis_runtime").install()
    _run_shadowed_sitecustomize(os.path.abspath(sitecustomize_dir))
    if os.environ.get(ALLOWED_ENV):
        with open(os.environ[ALLOWED_ENV], encoding="utf-8") as handle:
            config = json.load(handle)
        sys.meta_path.insert(0, DeviceOnlyFinder(set(config["distributions"])))
    if os.environ.get(IMPORT_LOG_ENV):
        import atexit

        atexit.register(_record_imports, os.environ[IMPORT_LOG_ENV])
