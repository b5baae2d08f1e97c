"""The GPU check's dry run in the runtime image's CPU flavour, from a bundle made there of the image's own trees.

The image holds the pinned CutLER/VNext/detectron2 trees and the locked packages, so this is the dry run of
``docs/dev/gpu-check.md`` on a known environment, in every ``make test-containers``: a change that breaks the check
(an import the bundle does not bring, a part that no longer runs) fails here instead of on the GPU machine. The
working tree is mounted read-only and the check runs from it (``scripts/gpu-check.sh``), as it would there; making
the bundle needs PyPI (host network), the dry run builds detectron2 from the bundle's copy (minutes on 2 cores).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.gpu_check_summary import assert_dry_run_passed
from wsovvis.images import RUNTIME_SOURCES, image_names

pytestmark = [pytest.mark.containers, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ITERATIONS = 2


def test_gpu_check_dry_run_passes_in_the_runtime_image(docker_api: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    trees = " ".join(f"--{name} {path}" for name, path in RUNTIME_SOURCES.items())
    script = (
        f"scripts/gpu-check.sh --bundle /tmp/gpu-bundle {trees} && "
        f"scripts/gpu-check.sh --dry-run --bundle-dir /tmp/gpu-bundle --out /out --iterations {ITERATIONS}"
    )
    image = image_names().runtime_cpu  # the one `make images` built from this checkout
    began = time.monotonic()
    container = docker_api.containers.run(
        image,
        ["bash", "-c", script],
        working_dir="/repo",
        volumes={str(ROOT): {"bind": "/repo", "mode": "ro"}, str(out): {"bind": "/out", "mode": "rw"}},
        environment={"PYTHONDONTWRITEBYTECODE": "1"},
        network_mode="host",  # the bundle's wheels come from PyPI
        user="root",  # as the GPU machine runs it; the out folder is the host's
        detach=True,
    )
    try:
        status = container.wait(timeout=3900)["StatusCode"]
        output = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    seconds = assert_dry_run_passed(out, status, output, iterations=ITERATIONS)
    print(f"gpu-check dry run in {image}: {time.monotonic() - began:.0f} s in all, parts {seconds}")
