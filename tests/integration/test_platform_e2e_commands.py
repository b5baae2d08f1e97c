"""The commands kind-e2e.sh runs in its helper pods, run here against the suite's real S3 server.

The dataset command must leave frames and a GT in the bucket; the metrics command must pass on a good AP50 and fail
on a low one or on no metrics at all. (In the kind run both execute in the tools image with the same S3 settings.)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = (ROOT / "scripts" / "kind-e2e.sh").read_text()

pytestmark = pytest.mark.s3


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
    from wsovvis import storage

    help_out = subprocess.run(
        [sys.executable, "-m", "wsovvis", "synth", "--help"],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        check=False,
    )
    if help_out.returncode != 0:
        pytest.skip("`wsovvis synth` is not in this checkout yet")
    out = run_pod_command("data_command", tmp_path, BUCKET=s3_bucket)
    assert out.returncode == 0, out.stderr
    gt = storage.read_json(f"{s3_bucket}/data/gt.json")
    assert len(gt["videos"]) == 4
    frames = storage.walk_files(f"{s3_bucket}/data/frames")
    assert len(frames) == sum(video["length"] for video in gt["videos"])


def write_metrics(bucket: str, key: str, ap50: float) -> None:
    from wsovvis import storage

    stats = {"AP": ap50 / 2, "AP50": ap50, "AP75": ap50 / 3, "AR10": ap50}
    storage.write_bytes(f"{bucket}/work/{key}/metrics.json", json.dumps(stats).encode())


def test_metrics_command_takes_the_best_ap50_over_every_evaluation(s3_bucket: str, tmp_path: Path):
    write_metrics(s3_bucket, "evaluate/model", 0.05)
    write_metrics(s3_bucket, "evaluate/pseudo-tubes", 0.8)
    passed = run_pod_command("metrics_command", tmp_path, BUCKET=s3_bucket, MIN_AP50="0.5")
    assert passed.returncode == 0, passed.stderr
    assert "kind-e2e: AP50 0.800 >= 0.5" in passed.stdout
    failed = run_pod_command("metrics_command", tmp_path, BUCKET=s3_bucket, MIN_AP50="0.9")
    assert failed.returncode != 0 and "AP50 0.800 < 0.9" in failed.stderr


def test_metrics_command_fails_without_metrics(s3_bucket: str, tmp_path: Path):
    from wsovvis import storage

    storage.write_bytes(f"{s3_bucket}/work/convert/tubes.json", b"{}")
    out = run_pod_command("metrics_command", tmp_path, BUCKET=s3_bucket, MIN_AP50="0.5")
    assert out.returncode != 0 and "no metrics.json under" in out.stderr
