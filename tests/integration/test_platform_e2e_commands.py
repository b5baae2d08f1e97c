"""The commands kind-e2e.sh runs in its helper pods, run here against the suite's real S3 server.

The dataset command must leave frames and a GT in the bucket; the metrics command must pass when the pseudo tubes
reach the AP50 bar and the model has a finite AP, and fail when either does not, whatever the other scored. (In
the kind run both execute in the tools image with the same S3 settings.)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.unit.evaluate_helpers import perfect_results, random_dataset

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = (ROOT / "scripts" / "kind-e2e.sh").read_text()

pytestmark = pytest.mark.s3
GT = random_dataset(seed=3)


def shell_function(name: str) -> str:
    match = re.search(rf"^{name}\(\) \{{\n.*?^\}}\n", SCRIPT, flags=re.MULTILINE | re.DOTALL)
    assert match, f"kind-e2e.sh has no function {name}"
    return match.group(0)


def run_pod_command(name: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run what the pod would run: `sh -c "$(<name>)"`, with python3 and wsovvis of this checkout on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    # wrappers, not symlinks: a symlinked venv interpreter does not find its venv
    for tool, command in (("python3", sys.executable), ("wsovvis", f"{sys.executable} -m wsovvis")):
        (bin_dir / tool).write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        (bin_dir / tool).chmod(0o755)
    harness = f'{shell_function(name)}\nsh -c "$({name})"\n'
    full_env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", PYTHONPATH=str(ROOT), **env)
    return subprocess.run(["bash", "-c", harness], env=full_env, capture_output=True, text=True, check=False)


def test_dataset_command_writes_frames_and_ground_truth(s3_bucket: str, tmp_path: Path):
    from wsovvis import jsonio, storage

    out = run_pod_command("data_command", tmp_path, BUCKET=s3_bucket)
    assert out.returncode == 0, out.stderr
    gt = jsonio.read_json(f"{s3_bucket}/data/gt.json")
    assert len(gt["videos"]) == 4
    frames = storage.walk_files(f"{s3_bucket}/data/frames")
    assert len(frames) == sum(video["length"] for video in gt["videos"])


def evaluated(bucket: str, results_key: str, results: list[dict]) -> str:
    """Store ``results`` at ``<bucket>/work/<results_key>`` and evaluate them class-agnostically against a small GT
    into a metrics.json under ``<bucket>/work/evaluate/``, as the pipeline's evaluate step does; its URI."""
    from wsovvis import jsonio
    from wsovvis.evaluate import evaluate

    gt_uri, results_uri = f"{bucket}/data/gt.json", f"{bucket}/work/{results_key}"
    jsonio.write_json(gt_uri, GT)
    jsonio.write_json(results_uri, results)
    metrics_uri = f"{bucket}/work/evaluate/{uuid.uuid4().hex[:8]}/metrics.json"
    evaluate(gt_uri, results_uri, class_agnostic=True, out=metrics_uri)
    return metrics_uri


def check_metrics(
    bucket: str, tmp_path: Path, min_ap50: str, expect_model: str
) -> subprocess.CompletedProcess:
    return run_pod_command(
        "metrics_command", tmp_path, BUCKET=bucket, MIN_AP50=min_ap50, EXPECT_MODEL=expect_model
    )


def test_metrics_command_checks_the_pseudo_tubes_and_the_model_separately(s3_bucket: str, tmp_path: Path):
    evaluated(s3_bucket, "convert/abc/tubes.json", perfect_results(GT))
    evaluated(s3_bucket, "train/def/results.json", [])  # a model that found nothing: AP 0, finite
    passed = check_metrics(s3_bucket, tmp_path, "0.5", "1")
    assert passed.returncode == 0, passed.stderr
    assert "kind-e2e: pseudo tubes AP50 1.000 >= 0.5" in passed.stdout
    assert "kind-e2e: model AP 0.000" in passed.stdout
    failed = check_metrics(s3_bucket, tmp_path, "1.01", "1")
    assert failed.returncode != 0 and "pseudo tubes: AP50 1.000 < 1.01" in failed.stderr


def test_a_good_model_does_not_hide_bad_pseudo_tubes(s3_bucket: str, tmp_path: Path):
    evaluated(s3_bucket, "convert/abc/tubes.json", [])
    evaluated(s3_bucket, "train/def/results.json", perfect_results(GT))
    out = check_metrics(s3_bucket, tmp_path, "0.5", "1")
    assert out.returncode != 0 and "pseudo tubes: AP50 0.000 < 0.5" in out.stderr


def test_the_model_evaluation_must_be_there_and_finite(s3_bucket: str, tmp_path: Path):
    from wsovvis import jsonio

    evaluated(s3_bucket, "convert/abc/tubes.json", perfect_results(GT))
    assert check_metrics(s3_bucket, tmp_path, "0.5", "0").returncode == 0, "--quick trains no model"
    missing = check_metrics(s3_bucket, tmp_path, "0.5", "1")
    assert missing.returncode != 0 and "no evaluation of the trained model" in missing.stderr
    model = evaluated(s3_bucket, "train/def/results.json", perfect_results(GT))
    jsonio.write_json(model, {**jsonio.read_json(model), "AP": float("nan")})
    broken = check_metrics(s3_bucket, tmp_path, "0.5", "1")
    assert broken.returncode != 0 and "model: AP nan is not a finite AP" in broken.stderr


def test_metrics_command_fails_without_metrics(s3_bucket: str, tmp_path: Path):
    from wsovvis import storage

    storage.write_bytes(f"{s3_bucket}/work/convert/tubes.json", b"{}")
    out = run_pod_command("metrics_command", tmp_path, BUCKET=s3_bucket, MIN_AP50="0.5")
    assert out.returncode != 0 and "no metrics.json under" in out.stderr
