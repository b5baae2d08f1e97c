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
    try:
        build_pipeline(parallelism)(**params)
    finally:
        builtins.print = print_function
