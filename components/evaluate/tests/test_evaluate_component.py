"""evaluate component body: the stats as KFP Metrics, metrics.json and the reports as artifacts."""

import json
from pathlib import Path

from kfp import dsl

from components.evaluate.component import evaluate
from tests.unit.evaluate_helpers import perfect_results, random_dataset, write


def test_logs_every_stat_as_a_metric_and_returns_ap(tmp_path: Path) -> None:
    gt = random_dataset(seed=3)
    results = perfect_results(gt)[1:]  # one object missed: AP below 1
    gt_path, results_path = write(tmp_path, gt, results)
    metrics = dsl.Metrics(name="metrics", uri=str(tmp_path / "art" / "metrics"))
    artifacts = {name: str(tmp_path / "art" / name) for name in ("metrics_json", "report", "summary")}

    ap = evaluate.python_func(
        gt_json=str(gt_path),
        results_json=str(results_path),
        img_root="",
        work_root=str(tmp_path / "work"),
        class_agnostic=False,
        lvvis=False,
        metrics=metrics,
        metrics_json=dsl.Artifact(name="metrics_json", uri=artifacts["metrics_json"]),
        report=dsl.HTML(name="report", uri=artifacts["report"]),
        summary=dsl.Markdown(name="summary", uri=artifacts["summary"]),
    )

    written = json.loads(Path(artifacts["metrics_json"]).read_text())
    stats = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
    assert metrics.metadata == {name: written[name] for name in stats}
    assert ap == written["AP"] < 1
    assert Path(artifacts["report"]).read_text().startswith("<!DOCTYPE html>")
    assert (tmp_path / "work" / "evaluate").is_dir()
