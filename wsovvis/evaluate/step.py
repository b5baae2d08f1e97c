"""evaluate's pipeline step: score under the work root, copy metrics and report to the artifacts, log the stats."""

from __future__ import annotations

import logging
from collections.abc import Callable

from wsovvis import storage
from wsovvis.evaluate import STAT_NAMES, evaluate
from wsovvis.evaluate.report import markdown_path
from wsovvis.workspace import stage_uri

log = logging.getLogger(__name__)

OUTPUT_VERSION = 2  # bump when a change makes evaluate write different metrics or reports (wsovvis.workspace)


def evaluate_step(
    *,
    gt_json: str,
    results_json: str,
    img_root: str,
    work_root: str,
    class_agnostic: bool,
    lvvis: bool,
    metrics_json_path: str,
    report_path: str,
    summary_path: str,
    log_metric: Callable[[str, float], object],
) -> float:
    """Evaluate; keep metrics.json and the report under the work root and as artifacts; return AP.

    Each of the 12 stats (and APb/APn with ``lvvis``) goes to ``log_metric(name, value)`` (KFP's
    ``Metrics.log_metric`` in the component).
    """
    out_dir = stage_uri(
        work_root,
        "evaluate",
        OUTPUT_VERSION,
        gt=gt_json,
        results=results_json,
        class_agnostic=class_agnostic,
        lvvis=lvvis,
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
    names = STAT_NAMES + (("APb", "APn") if lvvis else ())
    for name in names:
        log_metric(name, float(metrics[name]))
    return float(metrics["AP"])
