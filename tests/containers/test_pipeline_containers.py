"""The pipeline with every step in its image (kfp.local.DockerRunner on a Docker API), data through a real S3 server.

Needs the images built (`make images`) and DOCKER_HOST naming a Docker API (`scripts/containers.sh run` starts
podman's); `make test-containers` does all of it. Skips with the reason otherwise.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from wsovvis.images import image_names
from wsovvis.maskgen.step import OUTPUT_VERSION as MASKGEN_OUTPUT_VERSION

pytestmark = [pytest.mark.containers, pytest.mark.slow]
# The images `make images` built from this checkout: what a local container run compiles with.
BUILT = image_names()
TOOLS_IMAGE, RUNTIME_IMAGE, RUNTIME_CPU_IMAGE = BUILT.tools, BUILT.runtime, BUILT.runtime_cpu


def test_demo_runs_every_step_in_its_image_and_reports_metrics(docker_api, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines",  # the installed `wsovvis` command, in a checkout
            "demo",
            "--containers",
            "--out",
            str(out),
            "--videos",
            "3",
            "--shards",
            "2",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=3000,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    printed = dict(
        re.findall(
            r"^wsovvis demo: (pseudo tubes|model) vs ground truth.*\n.*\n +metrics: (\S+)$",
            proc.stdout,
            re.MULTILINE,
        )
    )
    assert set(printed) == {"pseudo tubes", "model"}, proc.stdout[-3000:]
    for metrics_path in printed.values():
        metrics = json.loads(Path(metrics_path).read_text())
        assert metrics["mode"] == "class-agnostic" and metrics["num_videos"] == 3
        assert (Path(metrics_path).parent / "report.html").stat().st_size > 1000
    # VideoCutLER masks for every video, written through S3 by the mask-gen containers under the masks root of
    # mask-gen's output version (masks/v<OUTPUT_VERSION>/<key of what determines the masks>)
    (masks_root,) = (out / "work" / "masks" / f"v{MASKGEN_OUTPUT_VERSION}").iterdir()
    assert len(list(masks_root.glob("*.tar"))) == 3
    # each step ran in the image it is compiled with (the runtime image as its CPU flavour), and exited 0
    runtime = {"prepare", "mask_gen", "train"}
    runs = json.loads((out / "containers.json").read_text())
    functions = sorted(run["function"] for run in runs)
    assert functions == sorted(
        [
            "prepare",
            "plan_shards",
            "mask_gen",
            "mask_gen",
            "convert",
            "evaluate",
            "train",
            "make_agnostic",
            "evaluate",
        ]
    )
    for run in runs:
        assert run["exit_code"] == 0
        assert run["image"] == (RUNTIME_CPU_IMAGE if run["function"] in runtime else TOOLS_IMAGE), run


def test_a_step_exiting_non_zero_fails_the_run_naming_the_step_and_image(docker_api, tmp_path: Path) -> None:
    """kfp 2.17 reported such a step SUCCESS under podman (auto-removed container, lost exit code)."""
    from kfp import dsl

    from pipelines.local import run_pipeline_in_containers
    from wsovvis.errors import WsovvisError

    @dsl.component(base_image=TOOLS_IMAGE, install_kfp_package=False)
    def exit_three():
        import sys

        print("exiting with code 3")
        sys.exit(3)

    @dsl.component(base_image=TOOLS_IMAGE, install_kfp_package=False)
    def after_it():
        print("must not run")

    @dsl.pipeline(name="failing-step")
    def failing():
        after_it().after(exit_three())

    with pytest.raises(WsovvisError) as caught:
        run_pipeline_in_containers(failing, {}, tmp_path, {})
    message = str(caught.value)
    assert "'exit-three'" in message and f"image {TOOLS_IMAGE}" in message and "code 3" in message
    runs = json.loads((tmp_path / "containers.json").read_text())
    assert [(run["function"], run["exit_code"]) for run in runs] == [("exit_three", 3)]


def test_a_step_that_cannot_import_what_it_needs_fails_naming_its_image(docker_api, tmp_path: Path) -> None:
    from kfp import dsl

    from pipelines.local import run_pipeline_in_containers
    from wsovvis.errors import WsovvisError

    @dsl.component(base_image=TOOLS_IMAGE, install_kfp_package=False)
    def needs_the_runtime():
        import detectron2  # noqa: F401 - only the runtime image has it

    @dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
    def has_the_runtime():
        import detectron2  # noqa: F401

    @dsl.pipeline(name="import-check")
    def imports():
        needs_the_runtime().after(has_the_runtime())

    with pytest.raises(WsovvisError, match=rf"image {re.escape(TOOLS_IMAGE)} .*No module named 'detectron2'"):
        run_pipeline_in_containers(imports, {}, tmp_path, {})
    runs = json.loads((tmp_path / "containers.json").read_text())
    assert [(run["image"], run["exit_code"]) for run in runs] == [(RUNTIME_CPU_IMAGE, 0), (TOOLS_IMAGE, 1)]
