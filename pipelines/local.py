"""Run the pipeline locally with kfp.local.SubprocessRunner: the same pipeline function, a local artifact root."""

from __future__ import annotations

import builtins
import logging
import os
from pathlib import Path
from typing import Any

from pipelines.wsovvis_pipeline import MASK_GEN_PARALLELISM, build_pipeline

log = logging.getLogger(__name__)


def run_local(
    params: dict[str, Any], pipeline_root: str | os.PathLike[str], parallelism: int = MASK_GEN_PARALLELISM
) -> None:
    """Run every step as a subprocess of this interpreter (which must have wsovvis installed); raise on failure.

    Kubernetes settings (GPUs, secrets, node selectors) do not apply locally; the steps inherit this process's
    environment, so S3 URIs work when AWS_ENDPOINT_URL and the keys are set here.
    """
    import kfp.local

    Path(pipeline_root).mkdir(parents=True, exist_ok=True)
    kfp.local.init(
        runner=kfp.local.SubprocessRunner(use_venv=False),
        pipeline_root=os.fspath(Path(pipeline_root).resolve()),
        raise_on_error=True,
    )
    log.info("running the pipeline locally (artifacts under %s)", pipeline_root)
    # kfp.local indents task output by swapping builtins.print per task; parallel ParallelFor iterations restore
    # each other's swaps, which can leave every later print of this process indented. Put the real one back.
    print_function = builtins.print
    saved_env = {key: os.environ.get(key) for key in _STEP_ENV}
    os.environ.update(_step_env())
    try:
        build_pipeline(parallelism)(**params)
    finally:
        builtins.print = print_function
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_STEP_ENV = ("PYTHONSAFEPATH", "PYTHONPATH")


def _step_env() -> dict[str, str]:
    """The steps run ``python -m kfp.dsl.executor_main`` in this process's folder, and ``-m`` puts that folder first
    on sys.path: a folder named ``wsovvis`` there would be imported instead of the package. Keep the folder off
    sys.path (Python >= 3.11) and put this process's wsovvis first on PYTHONPATH."""
    import wsovvis

    package_parent = str(Path(wsovvis.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONSAFEPATH": "1", "PYTHONPATH": path}
