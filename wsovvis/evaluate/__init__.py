"""evaluate: results vs GT as the official YouTube-VIS (and LV-VIS) evaluators score them, plus a report.

``evaluate(gt, results)`` returns the 12 YouTube-VIS stats as fractions (AP, AP50, AP75, APs, APm, APl,
AR1, AR10, AR100, ARs, ARm, ARl; -1 where undefined), per-category and per-size breakdowns, per-video
counts, APb/APn with ``lvvis=True``, and the warnings counted on the way. See docs/dev/evaluation.md.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from wsovvis import jsonio, storage
from wsovvis.errors import UsageError
from wsovvis.evaluate import inputs as eval_inputs
from wsovvis.evaluate.lvvis import base_novel
from wsovvis.evaluate.ytvoseval import (
    AREA_LABELS,
    IOU_THRESHOLDS,
    MAX_DETS,
    STAT_NAMES,
    EvalOptions,
    Evaluation,
    run,
    summarize,
    summarize_one,
)
from wsovvis.resources import available_cpus, gc_paused

log = logging.getLogger(__name__)

__all__ = ["STAT_NAMES", "EvalOptions", "evaluate", "metrics_of", "stat_text", "stats_line"]


def stat_text(value: float | None, digits: int = 4) -> str:
    """A stat (a fraction) as the terminal shows it: ``digits`` decimals; an em dash where it is undefined (-1 or
    None), as the report shows it."""
    return "—" if value is None or value < 0 else f"{value:.{digits}f}"


def stats_line(metrics: dict[str, Any], names: tuple[str, ...] = STAT_NAMES, digits: int = 4) -> str:
    """``AP 0.4310  AP50 0.6120  ...  ARl —``: the named stats of a metrics dict on one line."""
    return "  ".join(f"{name} {stat_text(metrics[name], digits)}" for name in names)


def _mean_defined(values: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Mean over ``axes`` of the entries > -1; -1 where there are none (the official's rule, per category)."""
    defined = values > -1
    counts = defined.sum(axes)
    sums = np.where(defined, values, 0.0).sum(axes)
    return np.where(counts > 0, sums / np.maximum(counts, 1), -1.0)


def _per_category(evaluation: Evaluation, categories: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id = {c["id"]: c for c in categories}
    all_area, max100 = AREA_LABELS.index("all"), MAX_DETS.index(100)
    at_50 = int(np.flatnonzero(IOU_THRESHOLDS == 0.5)[0])
    ap = _mean_defined(evaluation.precision[:, :, :, all_area], (0, 1))
    ap50 = _mean_defined(evaluation.precision[at_50, :, :, all_area], (0,))
    ar100 = _mean_defined(evaluation.recall[:, :, all_area, max100], (0,))
    rows = []
    for k, cid in enumerate(evaluation.category_ids):
        cat = by_id.get(cid, {"name": "object (class-agnostic)"})
        row = {
            "id": cid,
            "name": cat.get("name", str(cid)),
            "AP": float(ap[k]),
            "AP50": float(ap50[k]),
            "AR100": float(ar100[k]),
            "num_gt": int(evaluation.gt_counts[k, 0]),
            "num_results": int(evaluation.result_counts[k]),
        }
        if "partition" in cat:
            row["partition"] = cat["partition"]
        rows.append(row)
    return rows


def _per_size(evaluation: Evaluation) -> dict[str, dict[str, float | int]]:
    sizes = {}
    for a, label in enumerate(AREA_LABELS[1:], start=1):
        sizes[label] = {
            "AP": summarize_one(evaluation.precision, evaluation.recall, True, None, label, MAX_DETS[-1]),
            "AP50": summarize_one(evaluation.precision, evaluation.recall, True, 0.5, label, MAX_DETS[-1]),
            "AR100": summarize_one(evaluation.precision, evaluation.recall, False, None, label, MAX_DETS[-1]),
            "num_gt": int(evaluation.gt_counts[:, a].sum()),
        }
    return sizes


def metrics_of(
    evaluation: Evaluation,
    categories: list[dict[str, Any]],
    options: EvalOptions,
    gt: str | os.PathLike[str],
) -> dict[str, Any]:
    """The metrics dict: the 12 stats first, then breakdowns, counts and warnings."""
    metrics: dict[str, Any] = dict(summarize(evaluation.precision, evaluation.recall))
    if options.lvvis:
        sides = base_novel(evaluation, categories, gt)
        metrics["APb"] = sides["base"]["AP"]
        metrics["APn"] = sides["novel"]["AP"]
        metrics["lvvis"] = sides
    metrics["mode"] = "class-agnostic" if options.class_agnostic else "per-category"
    metrics["num_videos"] = len(evaluation.per_video)
    metrics["num_gt"] = int(sum(v["num_gt"] for v in evaluation.per_video))
    metrics["num_results"] = int(sum(v["num_results"] for v in evaluation.per_video))
    metrics["per_size"] = _per_size(evaluation)
    metrics["per_category"] = _per_category(evaluation, categories)
    metrics["per_video"] = evaluation.per_video
    metrics["warnings"] = dict(sorted(evaluation.warnings.items()))
    return metrics


def evaluate(
    gt: str | os.PathLike[str],
    results: str | os.PathLike[str],
    *,
    class_agnostic: bool = False,
    lvvis: bool = False,
    allow_category_mismatch: bool = False,
    out: str | os.PathLike[str] | None = None,
    report: str | os.PathLike[str] | None = None,
    img_root: str | os.PathLike[str] | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Score ``results`` (a YTVIS results list or dataset JSON) against the ``gt`` dataset; paths or s3:// URIs.

    Writes ``out`` (metrics JSON) and ``report`` (self-contained HTML, with ``report.md`` beside it) when given;
    ``img_root`` (frames as ``<img_root>/<file_name>``) adds frame strips with masks to the report. ``workers``
    processes share the work (default: the CPUs the container may use); the numbers do not depend on it.

    Per category, results that would silently score near 0 (every category one the GT lacks, or one category for
    all against the GT's several, as class-agnostic tubes) are an InputError naming ``--class-agnostic``, unless
    ``allow_category_mismatch`` (:func:`wsovvis.evaluate.inputs.check_categories`).
    """
    if lvvis and class_agnostic:
        raise UsageError("--lvvis needs per-category evaluation; it cannot be combined with --class-agnostic")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    workers = workers or available_cpus()
    options = EvalOptions(class_agnostic=class_agnostic, lvvis=lvvis)
    if report is not None:
        from wsovvis.evaluate.report import markdown_path

        report_md: str | None = markdown_path(report)
    else:
        report_md = None
    storage.check_outputs(
        {"--out": out, "--report": report, "report.md": report_md},
        {"--gt": gt, "--results": results, "--img_root": img_root},
    )
    with gc_paused():
        loaded = eval_inputs.load(
            gt,
            results,
            workers,
            match_categories=not (class_agnostic or allow_category_mismatch),
            lvvis=lvvis,
        )
        evaluation = run(loaded, options, workers)
        metrics = metrics_of(evaluation, loaded.categories, options, gt)
    metrics["gt"] = os.fspath(gt)
    metrics["results"] = os.fspath(results)
    log.info("%s", stats_line(metrics, STAT_NAMES + (("APb", "APn") if lvvis else ())))
    if out is not None:
        jsonio.write_json(out, metrics)
        log.info("wrote %s", os.fspath(out))
    if report is not None:
        from wsovvis.evaluate.report import write_report

        write_report(report, metrics, loaded, img_root=img_root)
    return metrics
