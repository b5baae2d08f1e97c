"""train's pipeline step: train SeqFormer on the tubes, then predict on val, as cluster jobs or in a local process.

The step owns the whole orchestration: the output location (derived from the inputs, so every run resumes), the
``wsovvis train`` configs of the training and eval-only runs, and their launch: a cluster job each, a PyTorchJob
(Training Operator v1, built by ``wsovvis.k8s.pytorchjob``) or a TrainJob (Trainer v2, ``wsovvis.k8s.trainjob``),
created or attached and watched by ``wsovvis.k8s.launcher``; or a subprocess.
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from wsovvis import storage
from wsovvis.errors import InputError, RuntimeMissingError, UsageError, WsovvisError
from wsovvis.k8s import in_kubernetes_pod
from wsovvis.k8s.placement import Placement
from wsovvis.k8s.trainjob import DEFAULT_RUNTIME
from wsovvis.train import tracking
from wsovvis.train.harness import RESULTS_FILE
from wsovvis.train.staging import LAST_CHECKPOINT
from wsovvis.workspace import stage_uri

log = logging.getLogger(__name__)

# The cluster job kinds, then the local process.
JOB_LAUNCHERS = ("pytorchjob", "trainjob")
TRAIN_LAUNCHERS = (*JOB_LAUNCHERS, "local")
FINAL_CHECKPOINT = "model_final.pth"  # what detectron2 writes when training reaches SOLVER.MAX_ITER
# Bump when a change makes training (OUTPUT_VERSION) or the eval-only prediction (PREDICT_VERSION) write
# different outputs: the rerun then trains or predicts afresh in a new location (see wsovvis.workspace).
OUTPUT_VERSION = 1
PREDICT_VERSION = 1


def harness_config(
    *,
    output_uri: str,
    train_json: str,
    train_img_root: str,
    val_json: str,
    val_img_root: str,
    d2_cfg_path: str,
    d2_opts: list[Any],
    weights: str,
    eval_only: bool,
) -> dict[str, Any]:
    """The ``wsovvis train`` config of the pipeline's training (or eval-only) run; always resumes."""
    opts = [str(item) for item in d2_opts] + (["MODEL.WEIGHTS", weights] if weights else [])
    data = {"train_json": train_json, "train_img_root": train_img_root}
    if val_json:
        data.update(val_json=val_json, val_img_root=val_img_root)
    return {
        "output_uri": output_uri,
        "d2_cfg_path": d2_cfg_path,
        "d2_opts": opts,
        "data": data,
        "eval_only": eval_only,
        "resume": True,
    }


def predictions_uri(output_uri: str, checkpoint: str, val_json: str, val_img_root: str) -> str:
    """Where the eval-only run of ``checkpoint`` on the val data writes ``results.json``.

    Keyed by the checkpoint's name and the val data, so the results evaluate is cached on are never rewritten
    in place by a later prediction with another model or other data.
    """
    folder = stage_uri(
        output_uri,
        "eval",
        PREDICT_VERSION,
        checkpoint=checkpoint,
        val_json=val_json,
        val_img_root=val_img_root,
    )
    return storage.join(folder, RESULTS_FILE)


def train_step(
    *,
    run_id: str,
    launcher: str,
    train_json: str,
    train_img_root: str,
    val_json: str,
    val_img_root: str,
    work_root: str,
    d2_cfg_path: str,
    d2_opts: list[Any],
    weights: str,
    placement: Placement,
    timeout_seconds: int,
    trainjob_runtime: str = DEFAULT_RUNTIME,
    runtime_available: bool,
    log_metric: Callable[[str, float], object],
    results_json_path: str,
) -> str:
    """Train SeqFormer on the tubes, then predict on val; return the checkpoint's URI and write the results JSON's
    URI to ``results_json_path`` ('' for what was skipped).

    The output location is derived from the inputs and every run resumes, so a retried or rerun step continues
    from the newest checkpoint instead of starting again, and skips training once the final checkpoint is there.
    ``launcher`` is ``pytorchjob`` or ``trainjob`` (PyTorchJobs, or TrainJobs referencing the torch runtime
    ``trainjob_runtime``, placed by ``placement``, created or attached by a name derived from ``run_id``, each waited
    for up to ``timeout_seconds``, 0: no limit) or ``local`` (the same harness in a subprocess of this step, which
    must then run in the runtime image). ``val_json`` is the GT the model is
    evaluated on: class-agnostic like the tubes (make-agnostic's output), else the harness refuses it. The final
    training loss and the iterations go to ``log_metric(name, value)``.
    """
    if launcher not in TRAIN_LAUNCHERS:
        raise UsageError(f"train: launcher must be one of {', '.join(TRAIN_LAUNCHERS)}, got {launcher!r}")
    if launcher == "local" and not runtime_available:
        if in_kubernetes_pod():
            raise RuntimeMissingError(
                "train: train_launcher=local runs the harness in this step's pod, but the SeqFormer runtime is not "
                "usable in its image; run the pipeline with the runtime image or use train_launcher=pytorchjob "
                "(or trainjob)"
            )
        log.warning(
            "train: skipped: the SeqFormer runtime (VNext's detectron2, set up by `wsovvis prepare`) is not "
            "importable here; the pipeline goes on without a model"
        )
        storage.write_text(results_json_path, "")
        return ""
    output_uri = stage_uri(
        work_root,
        "train",
        OUTPUT_VERSION,
        train_json=train_json,
        d2_cfg_path=d2_cfg_path,
        d2_opts=list(d2_opts),
        weights=weights,
        num_workers=placement.num_workers,
        gpus_per_worker=placement.gpus_per_worker,
    )

    def run_harness(stage: str, config: dict[str, Any]) -> None:
        if launcher == "local":
            _run_harness_locally(stage, config, config["output_uri"])
        else:
            # eval-only prediction runs on the first pod alone
            pods = placement if stage == "train" else dataclasses.replace(placement, num_workers=0)
            _run_harness_as_job(
                launcher,
                stage,
                config,
                pods,
                trainjob_runtime=trainjob_runtime,
                run_id=run_id,
                timeout_seconds=timeout_seconds,
            )

    common = {"train_json": train_json, "train_img_root": train_img_root, "d2_cfg_path": d2_cfg_path}
    final_checkpoint = storage.join(output_uri, FINAL_CHECKPOINT)
    if storage.exists(final_checkpoint):
        # The step's cache key holds the run id (the job name comes from it), so KFP never reuses it; a finished
        # training for the same inputs is reused here instead.
        log.info("train: %s exists: training for these inputs is done; reusing it", final_checkpoint)
    else:
        config = harness_config(
            **common,
            output_uri=output_uri,
            val_json="",
            val_img_root="",
            d2_opts=d2_opts,
            weights=weights,
            eval_only=False,
        )
        run_harness("train", config)
    checkpoint_uri = storage.join(output_uri, _last_checkpoint(output_uri))
    for name, value in tracking.final_scalars(storage.join(output_uri, "sacred")).items():
        log_metric(name, value)
    if not val_json:
        storage.write_text(results_json_path, "")
        return checkpoint_uri
    results_uri = predictions_uri(output_uri, storage.basename(checkpoint_uri), val_json, val_img_root)
    if storage.exists(results_uri):
        log.info(
            "train: %s exists: this model's predictions on these val data are done; reusing them", results_uri
        )
    else:
        config = harness_config(
            **common,
            output_uri=results_uri.rsplit("/", 1)[0],
            val_json=val_json,
            val_img_root=val_img_root,
            d2_opts=d2_opts,
            weights=checkpoint_uri,
            eval_only=True,
        )
        run_harness("eval", config)
    storage.write_text(results_json_path, results_uri)
    return checkpoint_uri


def _last_checkpoint(output_uri: str) -> str:
    marker = storage.join(output_uri, LAST_CHECKPOINT)
    if not storage.exists(marker):
        raise InputError(
            f"train: {output_uri} holds no checkpoint ({LAST_CHECKPOINT} is missing) after training"
        )
    return storage.read_text(marker).strip()


def _run_harness_locally(stage: str, config: dict[str, Any], output_uri: str) -> None:
    with tempfile.TemporaryDirectory(prefix="wsovvis-train-") as tmp:
        config_path = Path(tmp) / f"{stage}.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        log.info("train (%s, local process): output %s", stage, output_uri)
        completed = subprocess.run(
            [sys.executable, "-m", "wsovvis", "train", "with", str(config_path)], check=False
        )
    if completed.returncode != 0:
        raise WsovvisError(
            f"train ({stage}): `wsovvis train` exited with {completed.returncode}; see its log above"
        )


def _run_harness_as_job(
    launcher: str,
    stage: str,
    config: dict[str, Any],
    placement: Placement,
    *,
    trainjob_runtime: str,
    run_id: str,
    timeout_seconds: int,
) -> None:
    """Run the harness as a PyTorchJob (``launcher`` pytorchjob) or a TrainJob (trainjob) and wait for it."""
    from wsovvis.k8s import pytorchjob, trainjob
    from wsovvis.k8s.jobspec import DEFAULT_JOB_PREFIX
    from wsovvis.k8s.launcher import LaunchSettings, launch_job

    common = {
        "name": f"{DEFAULT_JOB_PREFIX}-{stage}" if stage != "train" else DEFAULT_JOB_PREFIX,
        "placement": placement,
        "labels": {"app.kubernetes.io/part-of": "wsovvis", "wsovvis/stage": stage},
    }
    if launcher == "trainjob":
        settings = trainjob.TrainJobSettings(**common, runtime=trainjob_runtime)
        docs = trainjob.render_manifest(settings, yaml.safe_dump(config, sort_keys=False))
        shape = f"{1 + placement.num_workers} nodes of runtime {trainjob_runtime}"
    else:
        settings = pytorchjob.PyTorchJobSettings(**common)
        docs = pytorchjob.render_manifest(settings, yaml.safe_dump(config, sort_keys=False))
        shape = f"Master + {placement.num_workers} Workers"
    log.info(
        "train (%s): %s in %s, %s, %d GPUs each",
        stage,
        settings.KIND.kind,
        placement.namespace,
        shape,
        placement.gpus_per_worker,
    )
    launch_job(
        docs, LaunchSettings(namespace=placement.namespace, timeout_s=timeout_seconds or None), run_id=run_id
    )
