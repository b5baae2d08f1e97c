"""The pipeline's steps as plain typed functions: what each KFP component calls, with one call.

Big data stays on object storage under ``work_root`` at locations derived from each step's inputs
(``wsovvis.workspace``); small outputs (manifests, reports, the tube JSON, metrics) are also copied to the local
artifact paths KFP gives the step, so they show in the UI. Nothing here imports kfp.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from wsovvis import storage
from wsovvis.convert import ConvertOptions, convert, read_skip_list
from wsovvis.errors import RuntimeMissingError, UsageError, WsovvisError
from wsovvis.workspace import stage_uri

log = logging.getLogger(__name__)


def plan_shards_step(frames_root: str, num_shards: int, videos_list: str, manifest_path: str) -> list[int]:
    """Plan the shards into the manifest artifact; return the shard indices for the ParallelFor."""
    from wsovvis.shards import plan_shards

    plan = plan_shards(frames_root, num_shards, manifest_path, videos_list=videos_list or None)
    return plan.indices


def masks_root(
    work_root: str, frames_root: str, backend: str, config: str, weights: str, confidence: float
) -> str:
    """Where mask-gen writes: keyed by what determines the masks, not by the sharding (a re-plan resumes)."""
    return stage_uri(
        work_root,
        "masks",
        frames_root=frames_root,
        backend=backend,
        config=config,
        weights=weights,
        confidence=confidence,
    )


def mask_gen_step(
    manifest_path: str,
    shard: int,
    frames_root: str,
    work_root: str,
    backend: str,
    config: str,
    weights: str,
    confidence: float,
    device: str,
    max_errors: float,
    report_path: str,
) -> str:
    """Masks for one shard under the masks root; the shard report also goes to the artifact. Returns the root."""
    from wsovvis.maskgen.cli import build_backend
    from wsovvis.maskgen.run import MaskGenConfig, mask_gen

    out_root = masks_root(work_root, frames_root, backend, config, weights, confidence)
    mask_backend = build_backend(
        backend, config=config or None, weights=weights or None, confidence=confidence, device=device
    )
    report = mask_gen(
        MaskGenConfig(
            manifest=manifest_path,
            shard=shard,
            frames_root=frames_root,
            out_root=out_root,
            max_errors=max_errors,
        ),
        mask_backend,
    )
    storage.write_json(report_path, report.to_json())
    return out_root


def convert_step(
    mask_roots: list[str],
    img_root: str,
    work_root: str,
    split_name: str,
    skip_list: str,
    min_masks: int,
    min_coverage: float,
    link_iou: float,
    tubes_path: str,
    skip_report_path: str,
) -> str:
    """Fan-in of the mask shards: convert to the tube JSON on storage; return its URI. ``link_iou`` 0 = off."""
    roots = sorted(set(mask_roots))
    if len(roots) != 1:
        raise UsageError(
            f"convert: the mask shards wrote to {len(roots)} different roots {roots}; expected one"
        )
    options = ConvertOptions(
        split_name=split_name,
        skip_list=read_skip_list(skip_list or None),
        min_masks=min_masks,
        min_coverage=min_coverage,
        link_iou=link_iou or None,
    )
    out_dir = stage_uri(
        work_root, "tubes", mask_root=roots[0], img_root=img_root, **_options_key(options, skip_list)
    )
    out_json = storage.join(out_dir, "tubes.json")
    summary = convert(
        roots[0], img_root, out_json, options, skip_report=storage.join(out_dir, "skipped.json")
    )
    storage.download(out_json, tubes_path)
    storage.download(summary.skip_report, skip_report_path)
    return out_json


def _options_key(options: ConvertOptions, skip_list: str) -> dict[str, object]:
    key = {k: v for k, v in asdict(options).items() if k not in ("skip_list", "workers")}
    key["skip_list"] = skip_list
    return key


def make_agnostic_step(gt_json: str, work_root: str, agnostic_path: str) -> str:
    """Class-agnostic GT on storage (and as an artifact); returns its URI."""
    from wsovvis.agnostic import make_agnostic

    out_json = storage.join(stage_uri(work_root, "gt-agnostic", gt_json=gt_json), "gt_agnostic.json")
    make_agnostic(gt_json, out_json)
    storage.download(out_json, agnostic_path)
    return out_json


def runtime_status() -> dict[str, Any]:
    """Whether the patched CutLER/VNext runtime is set up in this interpreter, with ``wsovvis prepare --check``'s lines."""
    from wsovvis.prepare import check
    from wsovvis.prepare.hook import installed_config
    from wsovvis.prepare.runtime import RuntimeSources

    config = installed_config()
    if config is None:
        problem = "the runtime hook is not installed here (the runtime image runs `wsovvis prepare` when it is built)"
        return {"ok": False, "problems": [problem], "lines": []}
    report = check(RuntimeSources.from_dirs(**config["sources"]))
    lines = report.lines()
    return {"ok": report.ok, "problems": [line for line in lines if "MISSING" in line], "lines": lines}


def prepare_step(mask_backend: str, train_launcher: str, report_path: str) -> bool:
    """Verify the prebuilt runtime this step runs in; fail when a stage that will run needs a missing piece.

    Returns whether SeqFormer can train here. Locally without the runtime, motion masks still run and the train
    step skips with one clear line; on a cluster (PyTorchJob training) a broken runtime image fails here, before
    any GPU pod starts.
    """
    status = runtime_status()
    storage.write_json(report_path, status)
    for line in status["lines"]:
        log.info("prepare: %s", line)
    needs = [
        need
        for need, wanted in (
            ("mask_backend videocutler", mask_backend == "videocutler"),
            ("train_launcher pytorchjob", train_launcher == "pytorchjob"),
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


def evaluate_step(
    gt_json: str,
    results_json: str,
    img_root: str,
    work_root: str,
    class_agnostic: bool,
    lvvis: bool,
    metrics_json_path: str,
    report_path: str,
    summary_path: str,
) -> dict[str, float]:
    """Evaluate; keep metrics.json and the report under the work root and as artifacts; return the 12 stats."""
    from wsovvis.evaluate import STAT_NAMES, evaluate
    from wsovvis.evaluate.report import markdown_path

    out_dir = stage_uri(
        work_root, "evaluate", gt=gt_json, results=results_json, class_agnostic=class_agnostic, lvvis=lvvis
    )
    metrics_uri = storage.join(out_dir, "metrics.json")
    report_uri = storage.join(out_dir, "report.html")
    metrics = evaluate(
        gt_json,
        results_json,
        class_agnostic=class_agnostic,
        lvvis=lvvis,
        out=metrics_uri,
        report=report_uri,
        img_root=img_root or None,
    )
    storage.download(metrics_uri, metrics_json_path)
    storage.download(report_uri, report_path)
    storage.download(markdown_path(report_uri), summary_path)
    log.info("evaluate: metrics %s, report %s", metrics_uri, report_uri)
    stats = {name: float(metrics[name]) for name in STAT_NAMES}
    if lvvis:
        stats.update(APb=float(metrics["APb"]), APn=float(metrics["APn"]))
    return stats


TRAIN_LAUNCHERS = ("pytorchjob", "local")
FINAL_CHECKPOINT = "model_final.pth"  # what detectron2 writes when training reaches SOLVER.MAX_ITER


def harness_config(
    output_uri: str,
    train_json: str,
    train_img_root: str,
    val_json: str,
    val_img_root: str,
    d2_cfg_path: str,
    d2_opts: list[Any],
    weights: str,
    *,
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
    from the newest checkpoint instead of starting again, and skips training once the final checkpoint is there. ``launcher`` is ``pytorchjob`` (Master + num_workers
    Workers, created or attached by name from ``run_id``) or ``local`` (the same harness in a subprocess).
    """
    if launcher not in TRAIN_LAUNCHERS:
        raise UsageError(f"train: launcher must be one of {', '.join(TRAIN_LAUNCHERS)}, got {launcher!r}")
    output_uri = stage_uri(
        work_root, "train", train_json=train_json, d2_cfg_path=d2_cfg_path, d2_opts=list(d2_opts), weights=weights,
        num_workers=num_workers, gpus_per_worker=gpus_per_worker,
    )  # fmt: skip
    configs = {
        "train": harness_config(output_uri, train_json, train_img_root, "", "", d2_cfg_path, d2_opts, weights,
                                eval_only=False),
    }  # fmt: skip
    final_checkpoint = storage.join(output_uri, FINAL_CHECKPOINT)
    if storage.exists(final_checkpoint):
        # The step's cache key holds the run id (the job name comes from it), so KFP never reuses it; a finished
        # training for the same inputs is reused here instead.
        log.info("train: %s exists: training for these inputs is done; reusing it", final_checkpoint)
        del configs["train"]
    if val_json:
        configs["eval"] = harness_config(
            output_uri, train_json, train_img_root, val_json, val_img_root, d2_cfg_path, d2_opts, weights,
            eval_only=True,
        )  # fmt: skip
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
                stage, config, run_id, namespace, num_workers if stage == "train" else 0, gpus_per_worker,
                timeout_seconds, s3_secret_name, s3_secret_keys,
            )  # fmt: skip
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
    from wsovvis.k8s.pytorchjob import DEFAULT_JOB_PREFIX, PyTorchJobSettings, S3Settings, render_manifest

    settings = PyTorchJobSettings(
        name=f"{DEFAULT_JOB_PREFIX}-{stage}" if stage != "train" else DEFAULT_JOB_PREFIX,
        image=RUNTIME_IMAGE,
        namespace=namespace,
        num_workers=num_workers,
        gpus_per_worker=gpus_per_worker,
        s3=S3Settings(
            secret_name=s3_secret_name,
            access_key_key=s3_secret_keys[0],
            secret_key_key=s3_secret_keys[1],
            endpoint=os.environ.get("AWS_ENDPOINT_URL", ""),
        ),
        labels={"app.kubernetes.io/part-of": "wsovvis", "wsovvis/stage": stage},
    )
    log.info("train (%s): PyTorchJob in %s, Master + %d Workers, %d GPUs each", stage, namespace, num_workers,
             gpus_per_worker)  # fmt: skip
    docs = render_manifest(settings, yaml.safe_dump(config, sort_keys=False))
    launch_pytorchjob(
        docs, LaunchSettings(namespace=namespace, timeout_s=timeout_seconds or None), run_id=run_id
    )
