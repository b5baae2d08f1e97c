"""Run the pipeline locally with kfp.local: every step as a subprocess (SubprocessRunner), or every step in its
own image (DockerRunner against a Docker-API socket: Docker, or podman's `podman system service`)."""

from __future__ import annotations

import builtins
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsovvis import jsonio, storage
from wsovvis.environ import environ_set
from wsovvis.errors import RuntimeMissingError, WsovvisError
from wsovvis.images import ImageNames, image_names
from wsovvis.maskgen.cli import RANDOM_WEIGHTS
from wsovvis.s3server import local_s3_server

from .local_output import (
    ANSI,
    STEP_LOG,
    StepOutput,
    SubprocessSteps,
    is_debug,
    kfp_output_quieted,
    step_name,
    task_folder,
)
from .wsovvis_pipeline import MASK_GEN_PARALLELISM, build_pipeline

log = logging.getLogger(__name__)

# Parameters that name inputs: in a container run, local paths among them are uploaded to the run's S3 server.
INPUT_PARAMS = (
    "frames_root",
    "train_gt_json",
    "val_frames_root",
    "val_gt_json",
    "videos_list",
    "skip_list",
    "mask_config",
    "mask_weights",
    "train_weights",
)
CONTAINER_BUCKET = "s3://wsovvis-local"
LOG_TAIL_LINES = 20


def run_local(
    params: dict[str, Any], pipeline_root: str | os.PathLike[str], parallelism: int = MASK_GEN_PARALLELISM
) -> None:
    """Run every step as a subprocess of this interpreter (which must have wsovvis installed); raise on failure.

    Kubernetes settings (GPUs, secrets, node selectors) do not apply locally; the steps inherit this process's
    environment, so S3 URIs work when AWS_ENDPOINT_URL and the keys are set here.
    """
    import kfp.local

    check_runtime_here(params)
    Path(pipeline_root).mkdir(parents=True, exist_ok=True)
    kfp.local.init(
        runner=kfp.local.SubprocessRunner(use_venv=False),
        pipeline_root=os.fspath(Path(pipeline_root).resolve()),
        raise_on_error=True,
    )
    log.info("running the pipeline locally (artifacts and each step's %s under %s)", STEP_LOG, pipeline_root)
    steps = SubprocessSteps()
    try:
        _run(build_pipeline(parallelism), params, steps)
    except RuntimeError as exc:  # kfp.local's "Pipeline 'wsovvis' finished with status FAILURE ..."
        raise (steps.error() or WsovvisError(ANSI.sub("", str(exc)))) from exc


def check_runtime_here(params: dict[str, Any]) -> None:
    """Raise RuntimeMissingError, saying which parameters make the run work here, when it needs the CutLER/VNext
    runtime (VideoCutLER masks, or training as a cluster job) and this interpreter lacks it: what prepare, the
    first step, would refuse after kfp.local started."""
    from wsovvis.prepare.step import runtime_status
    from wsovvis.train.step import JOB_LAUNCHERS

    from .params import parameters

    values = {p.name: p.default for p in parameters() if not p.required} | params
    changes = {}
    if values["mask_backend"] == "videocutler":
        changes |= {"mask_backend": "motion", "mask_device": "cpu"}
    if values["train_launcher"] in JOB_LAUNCHERS:
        changes["train_launcher"] = "local"
    if not changes:
        return
    status = runtime_status()
    if status["ok"]:
        return
    needs = " and ".join(
        f"{name}={values[name]}" for name in ("mask_backend", "train_launcher") if name in changes
    )
    flags = " ".join(f"--param {name}={value}" for name, value in changes.items())
    raise RuntimeMissingError(
        f"{needs} need the patched CutLER/VNext runtime, which this interpreter lacks "
        f"({'; '.join(status['problems'])}); to run here without it: {flags} (motion masks on the CPU; training "
        "is skipped without the runtime)"
    )


def _run(pipeline: Callable[..., Any], params: dict[str, Any], steps: SubprocessSteps | None = None) -> None:
    # kfp.local indents task output by swapping builtins.print per task; parallel ParallelFor iterations restore
    # each other's swaps, which can leave every later print of this process indented. Put the real one back.
    print_function = builtins.print
    try:
        with environ_set(_step_env()), kfp_output_quieted(steps):
            pipeline(**params)
    finally:
        builtins.print = print_function


def _step_env() -> dict[str, str]:
    """The steps run ``python -m kfp.dsl.executor_main`` in this process's folder, and ``-m`` puts that folder first
    on sys.path: a folder named ``wsovvis`` there would be imported instead of the package. Keep the folder off
    sys.path (Python >= 3.11) and put this process's wsovvis first on PYTHONPATH."""
    import wsovvis

    package_parent = str(Path(wsovvis.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONSAFEPATH": "1", "PYTHONPATH": path}


@dataclass(frozen=True)
class ContainerRun:
    function: str  # the component's Python function, from kfp's --function_to_execute
    image: str
    exit_code: int
    log_tail: str


class _ContainerRuns:
    """What kfp.local's DockerRunner runs, fixed for podman (kfp 2.17's ``run_docker_container`` replaced).

    kfp starts each container with ``auto_remove=True``; podman deletes it as soon as it exits, before kfp reads
    its logs and exit code, and kfp counts the 404 as exit code 0, so a failing step was reported SUCCESS. Here a
    container is started without auto-remove, its logs are streamed, its real exit code taken, then it is removed.
    Images are never pulled (a missing one fails with the command that builds it), and the runtime image runs as
    its CPU flavour (RUNTIME_CPU_IMAGE; same Dockerfile, no compiled op) on machines without a GPU.
    """

    def __init__(self, image_map: dict[str, str]) -> None:
        self.image_map = image_map
        self.debug = is_debug()  # now: kfp sets the root logger's level to INFO while it runs a task
        self.runs: list[ContainerRun] = []
        self._lock = threading.Lock()

    def __call__(
        self, client: Any, image: str, command: list[str], volumes: dict[str, Any], **run_args: Any
    ) -> int:
        import docker

        image = self.image_map.get(image, image)
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound as exc:
            raise WsovvisError(
                f"image {image} is not built here: run `make images` (scripts/build-images.sh)"
            ) from exc
        container = client.containers.run(
            image=image, command=command, detach=True, volumes=volumes, **{**run_args, "auto_remove": False}
        )
        folder = task_folder(command)
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        output = StepOutput(step_name(folder, command), folder / STEP_LOG if folder else None, self.debug)
        try:
            lines: list[str] = []
            pending = ""
            for chunk in container.logs(stream=True, follow=True):
                *complete, pending = (pending + chunk.decode(errors="replace")).split("\n")
                for line in complete:
                    output.feed(line + "\n")
                lines.extend(complete)
                del lines[:-LOG_TAIL_LINES]
            if pending:
                output.feed(pending + "\n")
                lines.append(pending)
            exit_code = int(container.wait()["StatusCode"])
        finally:
            container.remove(force=True)
        output.finish(exit_code)
        function = (
            command[command.index("--function_to_execute") + 1] if "--function_to_execute" in command else "?"
        )
        if exit_code != 0:
            log.error("%s: its container (image %s) exited with code %d", function, image, exit_code)
        with self._lock:
            self.runs.append(ContainerRun(function, image, exit_code, "\n".join(lines)))
        return exit_code


@contextmanager
def _docker_runs_replaced(runs: _ContainerRuns) -> Iterator[None]:
    from kfp.local import docker_task_handler

    original = docker_task_handler.run_docker_container
    docker_task_handler.run_docker_container = runs
    try:
        yield
    finally:
        docker_task_handler.run_docker_container = original


def _stage_inputs(params: dict[str, Any], bucket: str) -> dict[str, Any]:
    """Upload the local paths among the input parameters; return the parameters with their S3 URIs."""
    staged = dict(params)
    uploaded: dict[Path, str] = {}
    for key in INPUT_PARAMS:
        value = params.get(key)
        if not value or storage.is_remote(value) or (key == "mask_weights" and value == RANDOM_WEIGHTS):
            continue
        path = Path(value).resolve()
        if not path.exists():
            raise WsovvisError(f"--param {key}={value}: no such file or folder")
        if path not in uploaded:
            uri = storage.join(bucket, "inputs", key, path.name)
            if path.is_dir():
                storage.upload_tree(path, uri)
            else:
                storage.upload(path, uri)
            log.info("uploaded %s to %s", path, uri)
            uploaded[path] = uri
        staged[key] = uploaded[path]
    return staged


def run_pipeline_in_containers(
    pipeline: Callable[..., Any],
    params: dict[str, Any],
    out: Path,
    s3_env: dict[str, str],
    images: ImageNames | None = None,
) -> list[ContainerRun]:
    """Run a pipeline function under kfp.local.DockerRunner, every step in its image (``images``' runtime image as
    its CPU flavour; default the images ``make images`` built from this checkout); return the containers run, in
    order. Raise WsovvisError naming the failed step, its image and exit code. The steps get ``s3_env`` and host
    networking; they run as this process's user (the pipeline root under OUT/kfp is bind-mounted at the same
    path)."""
    import docker
    import kfp.local

    try:
        docker.from_env().ping()
    except docker.errors.DockerException as exc:
        raise WsovvisError(
            f"no Docker API at {os.environ.get('DOCKER_HOST') or 'the default socket'} ({exc}); set DOCKER_HOST, "
            "or run under `scripts/containers.sh run ...`, which starts podman's"
        ) from exc
    pipeline_root = out / "kfp"
    pipeline_root.mkdir(parents=True, exist_ok=True)
    kfp.local.init(
        runner=kfp.local.DockerRunner(
            network_mode="host", user=f"{os.getuid()}:{os.getgid()}", environment=s3_env
        ),
        pipeline_root=os.fspath(pipeline_root),
        raise_on_error=True,
    )
    images = images or image_names()
    runs = _ContainerRuns({images.runtime: images.runtime_cpu})
    log.info("running the pipeline in containers (artifacts under %s)", pipeline_root)
    try:
        with _docker_runs_replaced(runs):
            _run(pipeline, params)
    except RuntimeError as exc:
        failed = "; ".join(
            f"{run.function} ran in image {run.image} and exited with code {run.exit_code}: "
            f"{(run.log_tail.splitlines() or [''])[-1]}"
            for run in runs.runs
            if run.exit_code != 0
        )
        raise WsovvisError(f"{ANSI.sub('', str(exc))} {failed}".strip()) from exc
    finally:
        record = [{"function": r.function, "image": r.image, "exit_code": r.exit_code} for r in runs.runs]
        jsonio.write_json(out / "containers.json", record)
    return runs.runs


def run_in_containers(
    params: dict[str, Any], out: str | os.PathLike[str], parallelism: int = MASK_GEN_PARALLELISM
) -> Path:
    """The pipeline with every step in its image, exchanging data through an S3 server started for this run;
    return the local copy of the work root.

    The Docker API is the one ``DOCKER_HOST`` names (``scripts/containers.sh run`` starts podman's). Local input
    paths are uploaded to the S3 server and the work root is made an S3 URI there; at the end (also after a
    failure) the work root is copied to OUT/work and the server stops. Containers reach the server on the host's
    loopback through host networking. OUT/containers.json lists which image each step ran in. The pipeline is
    compiled with the images ``make images`` built from this checkout (:func:`wsovvis.images.image_names`).
    """
    images = image_names()
    out = Path(out).resolve()
    local_work = out / "work"
    with local_s3_server(out / "s3") as server, environ_set(server.env()):
        storage.ensure_bucket(CONTAINER_BUCKET)
        staged = _stage_inputs(params, CONTAINER_BUCKET)
        work_root = staged.get("work_root") or ""
        if not storage.is_remote(work_root):
            staged["work_root"] = work_root = storage.join(CONTAINER_BUCKET, "work")
        try:
            run_pipeline_in_containers(
                build_pipeline(parallelism, images=images), staged, out, server.env(), images
            )
        finally:
            storage.download_tree(work_root, local_work)
    return local_work
