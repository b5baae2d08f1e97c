"""`wsovvis prepare --build-ops`: compiles the deformable-attention op once for both models, and the hook uses it.

Compiling takes minutes on a small machine, so it runs only when asked: ``WSOVVIS_BUILD_OPS_ARCH=8.0`` (a
TORCH_CUDA_ARCH_LIST). It needs torch built with CUDA and nvcc, not a GPU; with a GPU the smoke check also compares
the compiled op with the PyTorch op and confirms the models' forward passes use it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from tests.runtime_trees import source_dirs

pytestmark = [pytest.mark.runtime, pytest.mark.slow]

ARCH = os.environ.get("WSOVVIS_BUILD_OPS_ARCH")
SOURCE_DIRS = source_dirs()  # $WSOVVIS_<NAME>_DIR, else third_party/ or the prepared runtime's trees

if not ARCH:
    pytest.skip(
        "compiling the CUDA op takes minutes: set WSOVVIS_BUILD_OPS_ARCH (e.g. 8.0) to run",
        allow_module_level=True,
    )
if importlib.util.find_spec("torch") is None or importlib.util.find_spec("detectron2") is None:
    pytest.skip(f"torch/detectron2 not importable in {sys.executable}", allow_module_level=True)
if not all(Path(p).is_dir() for p in SOURCE_DIRS.values()):
    pytest.skip(f"source trees absent: {SOURCE_DIRS}", allow_module_level=True)

from wsovvis.prepare import check, prepare  # noqa: E402
from wsovvis.prepare.ops import build_plan, cuda_build_blocker, extension_path  # noqa: E402
from wsovvis.prepare.runtime import RuntimeSources  # noqa: E402

if blocker := cuda_build_blocker():
    pytest.skip(f"cannot compile CUDA extensions here: {blocker}", allow_module_level=True)

SOURCES = RuntimeSources.from_dirs(**SOURCE_DIRS)


def test_build_once_then_reuse_and_route_both_models_to_it(tmp_path):
    site = tmp_path / "site"
    first = prepare(SOURCES, site_packages=site, build_ops=True, cuda_arch_list=ARCH, smoke=False)
    plan = build_plan(SOURCES)
    assert len(first.ops) == len(plan)
    assert all(line.startswith("built ") for line in first.ops), first.ops
    built = {op.name: extension_path(site, op.name).read_bytes() for op in plan}

    second = prepare(SOURCES, site_packages=site, build_ops=True, cuda_arch_list=ARCH)
    assert all("already built" in line for line in second.ops), second.ops
    assert {op.name: extension_path(site, op.name).read_bytes() for op in plan} == built
    for part, report in second.smoke.items():
        assert report["smoke"]["ok"], (part, report["smoke"])
        assert set(report["probe"]["msda_patched"].values()) <= set(built), report["probe"]["msda_patched"]

    report = check(SOURCES, site_packages=site)
    compiled = [item for item in report.items if item.name.endswith("compiled CUDA op")]
    assert compiled and all(item.ok for item in compiled), "\n".join(report.lines())
