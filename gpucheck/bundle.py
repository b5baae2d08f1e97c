"""The GPU check's bundle: trimmed upstream sources and wheels for a machine that reaches no package registry.

Layout of a bundle folder::

    manifest.json            what is inside, with sizes (and the wheels' SHA-256)
    src/CutLER/...           VideoCutLER's python/config/C++/CUDA files (videocutler/ subset)
    src/VNext/...            VNext's detectron2 fork and projects/SeqFormer, with setup.py to build detectron2._C
    src/detectron2/...       detectron2 v0.6's projects/DeepLab and projects/PointRend
    wheels/*.whl             cp312 manylinux x86_64 (or pure-Python) wheels of the packages the machine lacks
                             (``gpucheck.packages.bundle_wheels``: derived from the project's declarations)

``pip download`` fetches the wheels for the target interpreter, never for the one running here; the two packages
whose PyPI releases are source-only (pure Python) are built into wheels here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from gpucheck.packages import ROOT, bundle_wheels
from wsovvis.errors import UsageError, WsovvisError
from wsovvis.prepare.pins import load_pins
from wsovvis.prepare.runtime import RuntimeSources

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MAX_BUNDLE_BYTES = 40 * 2**20
TARGET_PYTHON = "3.12"
TARGET_PLATFORMS = (
    "manylinux_2_35_x86_64",
    "manylinux_2_34_x86_64",
    "manylinux_2_31_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)

SOURCE_ONLY = frozenset({"fvcore", "antlr4-python3-runtime"})
"""Packages PyPI has only as sdists (pure Python): built into ``py3-none-any`` wheels here."""


@dataclass(frozen=True)
class TreeSelection:
    """What of an upstream tree goes into the bundle: folders (filtered by suffix) and single files."""

    folders: tuple[str, ...]
    files: tuple[str, ...]


SOURCE_SUFFIXES = frozenset({".py", ".yaml", ".yml", ".cpp", ".cu", ".cuh", ".h", ".hpp"})
TREES = {
    "CutLER": TreeSelection(
        (
            "videocutler/mask2former",
            "videocutler/mask2former_video",
            "videocutler/demo_video",
            "videocutler/configs",
        ),
        ("LICENSE",),
    ),
    "VNext": TreeSelection(
        ("detectron2", "projects/SeqFormer", "configs"), ("setup.py", "setup.cfg", "LICENSE")
    ),
    "detectron2": TreeSelection(("projects/DeepLab", "projects/PointRend"), ("LICENSE",)),
}
TREE_ATTRS = {"CutLER": "cutler", "VNext": "vnext", "detectron2": "detectron2"}


class BundleError(WsovvisError):
    """A bundle that cannot be made or is incomplete."""


def selected_files(root: Path, selection: TreeSelection) -> list[str]:
    """Relative paths of the files of ``root`` that ``selection`` takes, sorted."""
    chosen = [name for name in selection.files if (root / name).is_file()]
    for folder in selection.folders:
        base = root / folder
        if not base.is_dir():
            raise BundleError(
                f"{base} is missing: is {root} the upstream tree pinned in third_party/pins.json?"
            )
        chosen += [
            path.relative_to(root).as_posix()
            for path in base.rglob("*")
            if path.is_file() and not path.is_symlink() and path.suffix in SOURCE_SUFFIXES
        ]
    return sorted(set(chosen))


def bundle_sources(bundle: Path) -> RuntimeSources:
    return RuntimeSources.from_dirs(
        bundle / "src" / "CutLER", bundle / "src" / "VNext", bundle / "src" / "detectron2"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pip(python: str, *args: str) -> None:
    cmd = [python, "-m", "pip", *args]
    log.debug("%s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BundleError(f"{' '.join(cmd)} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")


def download_wheels(destination: Path, python: str) -> dict[str, str]:
    """Fetch one wheel per distribution of ``bundle_wheels()`` into ``destination``; returns wheel file name ->
    requirement."""
    destination.mkdir(parents=True, exist_ok=True)
    platforms = [arg for platform in TARGET_PLATFORMS for arg in ("--platform", platform)]
    found: dict[str, str] = {}
    for name, version in bundle_wheels().items():
        requirement = f"{name}=={version}"
        log.info("wheel for %s%s", requirement, " (built here from its sdist)" if name in SOURCE_ONLY else "")
        before = set(destination.glob("*.whl"))
        if name in SOURCE_ONLY:
            _pip(
                python,
                "wheel",
                "--quiet",
                "--no-deps",
                "--no-binary",
                name,
                "-w",
                str(destination),
                requirement,
            )
        else:
            _pip(
                python,
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--python-version",
                TARGET_PYTHON,
                "--implementation",
                "cp",
                *platforms,
                "-d",
                str(destination),
                requirement,
            )
        new = sorted(set(destination.glob("*.whl")) - before)
        if len(new) != 1:
            raise BundleError(f"pip gave {len(new)} wheels for {requirement}: {[p.name for p in new]}")
        if name in SOURCE_ONLY and not new[0].name.endswith("-py3-none-any.whl"):
            raise BundleError(f"{new[0].name}: expected a pure-Python wheel for {requirement}")
        found[new[0].name] = requirement
    return found


def make_bundle(out: Path, sources: RuntimeSources, *, python: str = sys.executable) -> dict:
    """Write a complete bundle to ``out`` (replacing it whole); returns the manifest."""
    sources.validate()
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        pins = load_pins()
        manifest: dict = {"format": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        manifest["target"] = {"python": TARGET_PYTHON, "platforms": list(TARGET_PLATFORMS)}
        manifest["sources"] = {}
        for tree, selection in TREES.items():
            root = getattr(sources, TREE_ATTRS[tree])
            files = {}
            for rel in selected_files(root, selection):
                target = staging / "src" / tree / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(root / rel, target)
                files[rel] = target.stat().st_size
            manifest["sources"][tree] = {
                "origin": str(root),
                "pin": pins[tree].commit,
                "bytes": sum(files.values()),
                "files": files,
            }
        missing = bundle_sources(staging).missing_files()
        if missing:
            raise BundleError(f"the trimmed sources lack files the runtime needs: {', '.join(missing)}")
        wheels = download_wheels(staging / "wheels", python)
        manifest["wheels"] = {
            name: {
                "requirement": requirement,
                "bytes": (staging / "wheels" / name).stat().st_size,
                "sha256": _sha256(staging / "wheels" / name),
            }
            for name, requirement in sorted(wheels.items())
        }
        total = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
        manifest["total_bytes"] = total
        if total > MAX_BUNDLE_BYTES:
            raise BundleError(
                f"the bundle would be {total / 2**20:.1f} MiB, over the {MAX_BUNDLE_BYTES // 2**20} MiB limit"
            )
        (staging / MANIFEST).write_text(
            json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8"
        )
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def load_manifest(bundle: Path) -> dict:
    path = bundle / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UsageError(
            f"{path} does not exist: make the bundle first with scripts/gpu-check.sh --bundle {bundle}"
        ) from exc
    except ValueError as exc:
        raise BundleError(f"{path} is not valid JSON: {exc}") from exc


def verify_bundle(bundle: Path) -> list[str]:
    """Problems with the bundle at ``bundle`` (empty when it is complete and matches its manifest)."""
    manifest = load_manifest(bundle)
    problems = []
    for tree, entry in manifest.get("sources", {}).items():
        for rel, size in entry["files"].items():
            path = bundle / "src" / tree / rel
            if not path.is_file():
                problems.append(f"{path} is missing")
            elif path.stat().st_size != size:
                problems.append(f"{path} is {path.stat().st_size} bytes, the manifest says {size}")
    if sorted(manifest.get("sources", {})) != sorted(TREES):
        problems.append(
            f"the manifest lists sources {sorted(manifest.get('sources', {}))}, expected {sorted(TREES)}"
        )
    problems += [f"source file missing: {path}" for path in bundle_sources(bundle).missing_files()]
    wheels = manifest.get("wheels", {})
    for name, entry in wheels.items():
        path = bundle / "wheels" / name
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif _sha256(path) != entry["sha256"]:
            problems.append(f"{path} does not match its SHA-256 in the manifest")
    wanted = {f"{name}=={version}" for name, version in bundle_wheels().items()}
    listed = {entry["requirement"] for entry in wheels.values()}
    if wanted - listed:
        problems.append(f"no wheel for {', '.join(sorted(wanted - listed))}: remake the bundle")
    if listed - wanted:
        problems.append(f"wheels for requirements no longer wanted: {', '.join(sorted(listed - wanted))}")
    total = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    if total > MAX_BUNDLE_BYTES:
        problems.append(f"{bundle} holds {total / 2**20:.1f} MiB, over {MAX_BUNDLE_BYTES // 2**20} MiB")
    return problems


def default_sources() -> RuntimeSources:
    """The source trees from ``WSOVVIS_CUTLER_DIR``/``WSOVVIS_VNEXT_DIR``/``WSOVVIS_DETECTRON2_DIR``, else the
    submodules under ``third_party/``."""
    third_party = ROOT / "third_party"
    return RuntimeSources.from_dirs(
        os.environ.get("WSOVVIS_CUTLER_DIR") or third_party / "CutLER",
        os.environ.get("WSOVVIS_VNEXT_DIR") or third_party / "VNext",
        os.environ.get("WSOVVIS_DETECTRON2_DIR") or third_party / "detectron2",
    )
