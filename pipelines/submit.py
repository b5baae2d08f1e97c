"""Submit the compiled pipeline to a KFP endpoint (the same as `kfp run create`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from wsovvis.errors import UsageError

log = logging.getLogger(__name__)


def submit(
    host: str,
    params: dict[str, Any],
    *,
    namespace: str | None = None,
    experiment: str | None = None,
    run_name: str | None = None,
    enable_caching: bool | None = None,
    spec_path: str,
) -> str:
    """Create a run from the compiled spec at ``spec_path``; returns the run id.

    ``enable_caching`` None keeps each task's caching as compiled (prepare never cached); True or False
    overrides every task, which is what the kfp client does with any value but None.
    """
    import kfp
    import yaml

    from .wsovvis_pipeline import check_run_params

    if not Path(spec_path).is_file():
        raise UsageError(
            f"{spec_path}: no compiled spec there; write one with `wsovvis pipeline compile` (or pass --spec)"
        )
    spec = next(yaml.safe_load_all(Path(spec_path).read_text()))
    check_run_params(params, spec["root"].get("inputDefinitions", {}).get("parameters", {}), spec_path)
    client = kfp.Client(host=host, namespace=namespace)
    run = client.create_run_from_pipeline_package(
        spec_path,
        arguments=params,
        run_name=run_name,
        experiment_name=experiment,
        namespace=namespace,
        enable_caching=enable_caching,
    )
    log.info("submitted run %s to %s (experiment %s)", run.run_id, host, experiment or "Default")
    return run.run_id
