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
    from wsovvis.pipeline_steps import evaluate_step

    stats = evaluate_step(
        gt_json,
        results_json,
        img_root,
        work_root,
        class_agnostic,
        lvvis,
        metrics_json.path,
        report.path,
        summary.path,
    )
    for name, value in stats.items():
        metrics.log_metric(name, value)
    return stats["AP"]
