"""``scripts/gpu-check.sh --dry-run``: every part of the GPU check that needs no GPU, on the CPU.

Runs with the runtime python (``make test-runtime RUNTIME_PY=...``) and the three upstream trees
(``WSOVVIS_CUTLER_DIR``/``WSOVVIS_VNEXT_DIR``/``WSOVVIS_DETECTRON2_DIR``, else as ``tests/runtime_trees.py``
says). The bundle comes from ``$WSOVVIS_GPU_BUNDLE`` or is made by the test (that needs PyPI). Takes several
minutes on 2 cores (it builds detectron2 from the bundle's copy).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gpu_check_summary import assert_dry_run_passed
from tests.runtime_trees import env_var, source_dirs
from wsovvis.prepare.runtime import RuntimeSources

pytestmark = [pytest.mark.runtime, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu-check.sh"


@pytest.fixture(scope="module")
def gpu_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch", reason="the dry run needs the runtime python (torch)")
    given = os.environ.get("WSOVVIS_GPU_BUNDLE")
    if given:
        return Path(given)
    if importlib.util.find_spec("detectron2") is None:
        pytest.skip(
            f"detectron2 is not importable in {sys.executable}: run with the runtime python (docs/dev/runtime.md)"
        )
    trees = source_dirs()
    missing = RuntimeSources.from_dirs(**trees).missing_files()
    if missing:
        names = ", ".join(env_var(name) for name in trees)
        pytest.skip(
            f"the bundle needs the upstream trees ({names}; docs/dev/runtime.md): {missing[0]} is absent"
        )
    out = tmp_path_factory.mktemp("bundle") / "gpu-bundle"
    made = subprocess.run(
        [str(SCRIPT), "--bundle", str(out)],
        env={**os.environ, **{env_var(name): path for name, path in trees.items()}, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert made.returncode == 0, made.stderr[-3000:]
    return out


def test_dry_run_passes_every_part_on_the_cpu(gpu_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    ran = subprocess.run(
        [str(SCRIPT), "--dry-run", "--bundle-dir", str(gpu_bundle), "--out", str(out), "--iterations", "2"],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=3900,
        check=False,
    )
    seconds = assert_dry_run_passed(out, ran.returncode, ran.stdout, iterations=2)
    print("gpu-check dry run:", seconds)
