"""evaluate: the 12 YouTube-VIS stats (class-agnostic or per category) as KFP Metrics, with an HTML report."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Markdown, Metrics, Output

from wsovvis.images import TOOLS_IMAGE


@dsl.component(base_image=TOOLS_IMAGE, install_kfp_package=False)
def evaluate(
    gt_json: str,
    results_json: str,
    img_root: str,
    work_root: str,
    class_agnostic: bool,
    lvvis: bool,
    metrics: Output[Metrics],
    metrics_json: Output[Artifact],
    report: Output[HTML],
    summary: Output[Markdown],
) -> float:
    """Score the results against the GT; log the stats as Metrics; return AP."""
    from wsovvis.evaluate.step import evaluate_step

    return evaluate_step(
        gt_json=gt_json,
        results_json=results_json,
        img_root=img_root,
        work_root=work_root,
        class_agnostic=class_agnostic,
        lvvis=lvvis,
        metrics_json_path=metrics_json.path,
        report_path=report.path,
        summary_path=summary.path,
        log_metric=metrics.log_metric,
    )
