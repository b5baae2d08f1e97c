"""prepare's pipeline step: verify the prebuilt runtime this step runs in before any GPU work starts."""

from __future__ import annotations

import logging
from typing import Any

from wsovvis import jsonio
from wsovvis.errors import RuntimeMissingError
from wsovvis.k8s import in_kubernetes_pod
from wsovvis.prepare import check
from wsovvis.prepare.hook import installed_config
from wsovvis.prepare.runtime import RuntimeSources

log = logging.getLogger(__name__)


def runtime_status() -> dict[str, Any]:
    """Whether the patched CutLER/VNext runtime is set up in this interpreter, with ``wsovvis prepare --check``'s lines."""
    config = installed_config()
    if config is None:
        problem = "the runtime hook is not installed here (the runtime image runs `wsovvis prepare` when it is built)"
        return {"ok": False, "problems": [problem], "lines": []}
    report = check(RuntimeSources.from_dirs(**config["sources"]))
    lines = report.lines()
    return {"ok": report.ok, "problems": [line for line in lines if "MISSING" in line], "lines": lines}


def prepare_step(*, mask_backend: str, train_launcher: str, report_path: str) -> bool:
    """Fail when a stage that will run needs a missing piece of the runtime; write the check to the report.

    Returns whether SeqFormer can train here. Locally without the runtime, motion masks still run and the train
    step skips with one clear line; on a cluster (PyTorchJob or TrainJob training, or ``train_launcher=local``,
    which trains in the train step's pod: the same runtime image as this one) a broken runtime image fails here,
    before any GPU pod starts.
    """
    status = runtime_status()
    jsonio.write_json(report_path, status)
    for line in status["lines"]:
        log.info("prepare: %s", line)
    needs = [
        need
        for need, wanted in (
            ("mask_backend videocutler", mask_backend == "videocutler"),
            (f"train_launcher {train_launcher}", train_launcher in ("pytorchjob", "trainjob")),
            ("train_launcher local in a Kubernetes pod", train_launcher == "local" and in_kubernetes_pod()),
        )
        if wanted
    ]
    if needs and not status["ok"]:
        raise RuntimeMissingError(
            f"prepare: {' and '.join(needs)} need the patched CutLER/VNext runtime, which is not usable here: "
            f"{'; '.join(status['problems'])}. Run the pipeline in the runtime image, or use mask_backend=motion "
            "and train_launcher=local"
        )
    if not status["ok"]:
        log.warning("prepare: the CutLER/VNext runtime is not usable here: %s", "; ".join(status["problems"]))
    return bool(status["ok"])
