"""`wsovvis prepare` against the real CutLER / VNext / detectron2 v0.6 trees, in the runtime's Python.

Run with the runtime venv: ``PYTHONPATH=$PWD /work/rt/venv/bin/python -m pytest tests/runtime``. The hook is
installed into a temporary site-packages, so the runtime's own environment is not touched.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runtime_trees import source_dirs
from wsovvis.prepare import check, prepare
from wsovvis.prepare.runtime import RuntimeSources, default_site_packages, hook_files

pytestmark = [pytest.mark.runtime, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = source_dirs()  # $WSOVVIS_<NAME>_DIR, else third_party/ or the prepared runtime's trees


def _skip_reason() -> str | None:
    for module in ("torch", "detectron2"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not importable in {sys.executable} (run with the runtime venv's python)"
    for name, path in SOURCE_DIRS.items():
        if not Path(path).is_dir():
            return f"{name} source tree {path} is absent (set WSOVVIS_{name.upper()}_DIR)"
    missing = RuntimeSources.from_dirs(**SOURCE_DIRS).missing_files()
    if missing:
        return f"source trees incomplete: {missing[0]}"
    return None


if reason := _skip_reason():
    pytest.skip(reason, allow_module_level=True)

SOURCES = RuntimeSources.from_dirs(**SOURCE_DIRS)


def _snapshot(site: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(site)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(site.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("site-packages")


@pytest.fixture(scope="module")
def check_before(site: Path):
    return check(SOURCES, site_packages=site), _snapshot(site)


@pytest.fixture(scope="module")
def first_run(site: Path, check_before):
    return prepare(SOURCES, site_packages=site)


def test_check_before_reports_missing_hook_and_changes_nothing(check_before):
    report, snapshot = check_before
    assert not report.ok
    hook_item = next(item for item in report.items if item.name == "hook files")
    assert not hook_item.ok and "wsovvis_runtime.pth" in hook_item.detail
    assert snapshot == {}


def test_first_run_installs_the_hook(first_run, site):
    assert sorted(first_run.changed) == sorted(hook_files(SOURCES))
    assert (site / "wsovvis_runtime.pth").is_file()


@pytest.mark.parametrize("part", ["videocutler", "seqformer"])
def test_smoke_builds_and_runs_each_model(first_run, part):
    report = first_run.smoke[part]
    assert report["smoke"]["ok"], report["smoke"]
    probe = report["probe"]
    assert probe["pil_linear"]
    assert all(result["ok"] for result in probe["imports"].values()), probe["imports"]
    assert len(probe["msda_patched"]) == 1
    if probe["torch"]["cuda_available"]:
        assert report["msda_fast_path_used"]
        assert all(result["ok"] for result in report["msda_cuda"].values()), report["msda_cuda"]
    else:
        # the forward pass ran its deformable attention through the project's PyTorch op
        assert report["msda_calls"].get("pytorch", 0) > 0


def test_videocutler_predictor_returns_per_frame_masks_at_input_size(first_run):
    smoke = first_run.smoke["videocutler"]["smoke"]
    assert smoke["image_size"] == [64, 64]
    if smoke["num_predictions"]:
        assert smoke["mask_shape"] == [2, 64, 64]


def test_second_run_changes_nothing(first_run, site):
    before = _snapshot(site)
    second = prepare(SOURCES, site_packages=site, smoke=False)
    assert second.changed == []
    assert _snapshot(site) == before


def test_check_after_reports_ready_and_changes_nothing(first_run, site):
    before = _snapshot(site)
    report = check(SOURCES, site_packages=site)
    assert report.ok, "\n".join(report.lines())
    assert _snapshot(site) == before


def test_cli_check_exit_code_says_whether_ready(first_run, site, tmp_path):
    args = [sys.executable, "-m", "wsovvis", "prepare", "--check"]
    args += [
        "--cutler",
        SOURCE_DIRS["cutler"],
        "--vnext",
        SOURCE_DIRS["vnext"],
        "--detectron2",
        SOURCE_DIRS["detectron2"],
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    empty = subprocess.run([*args, "--site-packages", str(tmp_path)], env=env, capture_output=True, text=True)
    assert empty.returncode == 1, empty.stdout + empty.stderr
    assert "NOT ready" in empty.stdout
    ready = subprocess.run([*args, "--site-packages", str(site)], env=env, capture_output=True, text=True)
    assert ready.returncode == 0, ready.stdout + ready.stderr
    assert list(tmp_path.iterdir()) == []


def test_prepared_environment_is_active_at_startup():
    site = default_site_packages()
    if not (site / "wsovvis_runtime.pth").is_file():
        pytest.skip(f"`wsovvis prepare` has not been applied to {site}")
    code = "import detectron2.projects.deeplab, detectron2.projects.point_rend, mask2former, predictor; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr[-2000:]
