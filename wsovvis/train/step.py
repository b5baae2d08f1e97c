"""train's pipeline step: train SeqFormer on the tubes, then predict on val, as PyTorchJobs or in a local process.

The step owns the whole orchestration: the output location (derived from the inputs, so every run resumes), the
``wsovvis train`` configs of the training and eval-only runs, and their launch: a PyTorchJob each (built by
``wsovvis.k8s.pytorchjob``, created or attached and watched by ``wsovvis.k8s.launcher``) or a subprocess.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from wsovvis import storage
from wsovvis.errors import UsageError, WsovvisError
from wsovvis.workspace import stage_uri

log = logging.getLogger(__name__)

TRAIN_LAUNCHERS = ("pytorchjob", "local")
FINAL_CHECKPOINT = "model_final.pth"  # what detectron2 writes when training reaches SOLVER.MAX_ITER


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
    namespace: str,
    num_workers: int,
    gpus_per_worker: int,
    timeout_seconds: int,
    s3_secret_name: str,
    s3_secret_keys: list[str],
    runtime_available: bool,
) -> str:
    """Train SeqFormer on the tubes, then predict on val; return the results JSON URI ('' when skipped).

    The output location is derived from the inputs and every run resumes, so a retried or rerun step continues
    from the newest checkpoint instead of starting again, and skips training once the final checkpoint is there.
    ``launcher`` is ``pytorchjob`` (Master + num_workers Workers, created or attached by name from ``run_id``) or
    ``local`` (the same harness in a subprocess).
    """
    if launcher not in TRAIN_LAUNCHERS:
        raise UsageError(f"train: launcher must be one of {', '.join(TRAIN_LAUNCHERS)}, got {launcher!r}")
    output_uri = stage_uri(
        work_root,
        "train",
        train_json=train_json,
        d2_cfg_path=d2_cfg_path,
        d2_opts=list(d2_opts),
        weights=weights,
        num_workers=num_workers,
        gpus_per_worker=gpus_per_worker,
    )
    common = {
        "output_uri": output_uri,
        "train_json": train_json,
        "train_img_root": train_img_root,
        "d2_cfg_path": d2_cfg_path,
        "d2_opts": d2_opts,
        "weights": weights,
    }
    configs = {"train": harness_config(**common, val_json="", val_img_root="", eval_only=False)}
    final_checkpoint = storage.join(output_uri, FINAL_CHECKPOINT)
    if storage.exists(final_checkpoint):
        # The step's cache key holds the run id (the job name comes from it), so KFP never reuses it; a finished
        # training for the same inputs is reused here instead.
        log.info("train: %s exists: training for these inputs is done; reusing it", final_checkpoint)
        del configs["train"]
    if val_json:
        configs["eval"] = harness_config(
            **common, val_json=val_json, val_img_root=val_img_root, eval_only=True
        )
    if launcher == "local":
        if not runtime_available:
            log.warning(
                "train: skipped: the SeqFormer runtime (VNext's detectron2, set up by `wsovvis prepare`) is not "
                "importable here; the pipeline goes on without a model"
            )
            return ""
        for stage, config in configs.items():
            _run_harness_locally(stage, config, output_uri)
    else:
        for stage, config in configs.items():
            _run_harness_as_pytorchjob(
                stage,
                config,
                run_id=run_id,
                namespace=namespace,
                num_workers=num_workers if stage == "train" else 0,
                gpus_per_worker=gpus_per_worker,
                timeout_seconds=timeout_seconds,
                s3_secret_name=s3_secret_name,
                s3_secret_keys=s3_secret_keys,
            )
    return storage.join(output_uri, "results.json") if val_json else ""


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


def _run_harness_as_pytorchjob(
    stage: str,
    config: dict[str, Any],
    *,
    run_id: str,
    namespace: str,
    num_workers: int,
    gpus_per_worker: int,
    timeout_seconds: int,
    s3_secret_name: str,
    s3_secret_keys: list[str],
) -> None:
    from wsovvis.images import RUNTIME_IMAGE
    from wsovvis.k8s.launcher import LaunchSettings, launch_pytorchjob
    from wsovvis.k8s.pytorchjob import DEFAULT_JOB_PREFIX, PyTorchJobSettings, render_manifest

    settings = PyTorchJobSettings(
        name=f"{DEFAULT_JOB_PREFIX}-{stage}" if stage != "train" else DEFAULT_JOB_PREFIX,
        image=RUNTIME_IMAGE,
        namespace=namespace,
        num_workers=num_workers,
        gpus_per_worker=gpus_per_worker,
        s3=storage.S3Settings(
            secret_name=s3_secret_name,
            access_key_key=s3_secret_keys[0],
            secret_key_key=s3_secret_keys[1],
            endpoint=os.environ.get(storage.ENDPOINT_ENV, ""),
        ),
        labels={"app.kubernetes.io/part-of": "wsovvis", "wsovvis/stage": stage},
    )
    log.info(
        "train (%s): PyTorchJob in %s, Master + %d Workers, %d GPUs each",
        stage,
        namespace,
        num_workers,
        gpus_per_worker,
    )
    docs = render_manifest(settings, yaml.safe_dump(config, sort_keys=False))
    launch_pytorchjob(
        docs, LaunchSettings(namespace=namespace, timeout_s=timeout_seconds or None), run_id=run_id
    )
