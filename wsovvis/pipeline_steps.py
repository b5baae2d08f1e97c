"""The pipeline's steps as plain typed functions: what each KFP component calls, with one call.

Big data stays on object storage under ``work_root`` at locations derived from each step's inputs
(``wsovvis.workspace``); small outputs (manifests, reports, the tube JSON, metrics) are also copied to the local
artifact paths KFP gives the step, so they show in the UI. Nothing here imports kfp.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

from wsovvis import storage
from wsovvis.convert import ConvertOptions, convert, read_skip_list
from wsovvis.errors import RuntimeMissingError, UsageError
from wsovvis.workspace import stage_uri

log = logging.getLogger(__name__)


def _copy_to_artifact(uri: str, artifact_path: str) -> None:
    Path(artifact_path).parent.mkdir(parents=True, exist_ok=True)
    storage.download(uri, artifact_path)


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
    _copy_to_artifact(out_json, tubes_path)
    _copy_to_artifact(summary.skip_report, skip_report_path)
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
    _copy_to_artifact(out_json, agnostic_path)
    return out_json


def prepare_step(mask_backend: str, train_launcher: str, report_path: str) -> bool:
    """Check the runtime this step runs in; fail when the mask backend needs a missing piece.

    Returns whether SeqFormer can train here (the train step skips with one clear line when it cannot and the
    training runs locally; a PyTorchJob runs in the runtime image this step verified).
    """
    from wsovvis.prepare import runtime_status

    status = runtime_status()
    storage.write_json(report_path, status)
    if mask_backend == "videocutler" and not status["videocutler"]:
        raise RuntimeMissingError(
            f"prepare: mask_backend videocutler needs the CutLER runtime, which is not usable here: "
            f"{status['problems']}; use the runtime image or mask_backend=motion"
        )
    if train_launcher == "pytorchjob" and not status["seqformer"]:
        raise RuntimeMissingError(f"prepare: the runtime image cannot train SeqFormer: {status['problems']}")
    return bool(status["seqformer"])


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
    _copy_to_artifact(metrics_uri, metrics_json_path)
    _copy_to_artifact(report_uri, report_path)
    _copy_to_artifact(storage.join(out_dir, "report.md"), summary_path)
    log.info("evaluate: metrics %s, report %s", metrics_uri, report_uri)
    stats = {name: float(metrics[name]) for name in STAT_NAMES}
    if lvvis:
        stats.update(APb=float(metrics["APb"]), APn=float(metrics["APn"]))
    return stats
