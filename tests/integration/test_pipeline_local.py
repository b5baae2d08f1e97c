"""The whole pipeline under kfp.local on a generated dataset: `wsovvis demo` and `wsovvis pipeline run --local`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.pipeline_cli import parse_params
from wsovvis.errors import UsageError


def test_demo_runs_the_pipeline_end_to_end_and_reports_where_the_metrics_are(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    # Run from a folder holding a folder named wsovvis: the steps must still import the package.
    here = tmp_path / "here"
    (here / "wsovvis").mkdir(parents=True)
    (here / "wsovvis" / "__init__.py").write_text(
        "raise ImportError('the folder wsovvis of the cwd, not the package')\n"
    )
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("wsovvis")),
            "demo",
            "--out",
            str(out),
            "--videos",
            "6",
            "--shards",
            "2",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        cwd=here,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # quiet by default: a line per step, the steps' warnings and the summary; no colours into a pipe, no kfp dumps
    output = proc.stdout + proc.stderr
    assert len(output.splitlines()) <= 40, output
    assert "\x1b[" not in output and "Got executor_input" not in output and "UserWarning" not in output
    for step in ("prepare", "plan-shards", "mask-gen[0]", "mask-gen[1]", "convert", "evaluate"):
        assert re.search(rf"INFO \S+: {re.escape(step)}: done in ", proc.stderr), step
    # each step's whole output is in its log
    step_logs = list((out / "kfp").glob("*/**/step.log"))
    assert len(step_logs) >= 8 and all("Got executor_input" in p.read_text() for p in step_logs)
    (metrics_path,) = [
        Path(m) for m in re.findall(r"^ +metrics: (\S+metrics\.json)$", proc.stdout, re.MULTILINE)
    ]
    metrics = json.loads(metrics_path.read_text())
    assert metrics["mode"] == "class-agnostic" and metrics["num_videos"] == 6
    assert metrics["AP50"] >= 0.5, metrics["AP50"]
    assert f"AP50 {metrics['AP50']:.3f}" in proc.stdout
    assert (metrics_path.parent / "report.html").stat().st_size > 1000
    # both mask-gen shards wrote into one root, resumable per video; the skip report travelled as an artifact
    masks_roots = list((out / "work" / "masks").glob("v*/*"))
    assert len(masks_roots) == 1 and len(list(masks_roots[0].glob("*.tar"))) == 6
    assert sorted(p.name for p in (masks_roots[0] / "_reports").iterdir()) == ["shard-0.json", "shard-1.json"]
    skip_reports = list((out / "kfp").glob("*/convert/skip_report"))
    assert len(skip_reports) == 1 and json.loads(skip_reports[0].read_text())["videos_seen"] == 6


def test_pipeline_run_local_takes_parameters_from_the_command_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    subprocess.run(
        [sys.executable, "-m", "wsovvis", "synth", "--out", str(data), "--num_videos", "3"], check=True
    )
    params = [
        f"frames_root={data / 'frames'}",
        f"work_root={tmp_path / 'work'}",
        "mask_backend=motion",
        "mask_device=cpu",
        "num_shards=1",
        "train_launcher=local",
        "min_masks=1",
    ]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines",
            "pipeline",
            "run",
            "--local",
            "--pipeline_root",
            str(tmp_path / "kfp"),
            *[arg for p in params for arg in ("--param", p)],
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (tubes,) = (tmp_path / "work" / "tubes").glob("v*/*/tubes.json")
    assert len(json.loads(tubes.read_text())["videos"]) >= 1
    assert not (tmp_path / "work" / "evaluate").exists()  # no GT given: nothing to evaluate


def test_params_parse_as_json_or_strings() -> None:
    assert parse_params(["a=1", 'b=["X", 2]', "c=s3://b/k", "d=true", "e="]) == {
        "a": 1,
        "b": ["X", 2],
        "c": "s3://b/k",
        "d": True,
        "e": "",
    }
    with pytest.raises(UsageError, match="key=value"):
        parse_params(["novalue"])


def test_pipeline_labels_pseudo_tubes_with_clip_and_scores_them_lvvis(tmp_path: Path) -> None:
    pytest.importorskip("open_clip", reason="open_clip is not installed (pip install 'wsovvis[attribute]')")
    from tests.clipdata import write_tiny_model
    from wsovvis.attribute.step import OUTPUT_VERSION as ATTRIBUTE_VERSION
    from wsovvis.evaluate.step import OUTPUT_VERSION as EVALUATE_VERSION
    from wsovvis.workspace import stage_root

    data = tmp_path / "data"
    subprocess.run(
        [sys.executable, "-m", "wsovvis", "synth", "--out", str(data), "--num_videos", "3"], check=True
    )
    config, weights = write_tiny_model(tmp_path / "model")
    params = [
        f"frames_root={data / 'frames'}",
        f"work_root={tmp_path / 'work'}",
        f"train_gt_json={data / 'gt.json'}",
        "mask_backend=motion",
        "mask_device=cpu",
        "num_shards=1",
        "train_launcher=local",
        "min_masks=1",
        f"clip_model={config}",
        f"clip_weights={weights}",
        "topk=2",
    ]
    command = [sys.executable, "-m", "pipelines", "pipeline", "run", "--local"]
    command += ["--pipeline_root", str(tmp_path / "kfp")]
    command += [arg for param in params for arg in ("--param", param)]
    proc = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    work = str(tmp_path / "work")
    (labelled,) = Path(stage_root(work, "attribute", ATTRIBUTE_VERSION)).glob("*/results.json")
    results = json.loads(labelled.read_text())
    assert results and {r["category_id"] for r in results} <= {1, 2, 3, 4}
    metrics = [
        json.loads(p.read_text())
        for p in Path(stage_root(work, "evaluate", EVALUATE_VERSION)).glob("*/metrics.json")
    ]
    assert sorted(m["mode"] for m in metrics) == ["class-agnostic", "per-category"]
    (lvvis,) = [m for m in metrics if m["mode"] == "per-category"]
    assert lvvis["num_results"] == len(results) and {"APb", "APn"} <= lvvis.keys()
    reports = list((tmp_path / "kfp").glob("*/evaluate-*/report"))
    assert any("AP base (LV-VIS)" in r.read_text() for r in reports)


def test_a_failed_step_is_one_error_line_naming_it_and_its_log_and_is_not_retried(tmp_path: Path) -> None:
    params = [
        f"frames_root={tmp_path / 'no-such-frames'}",
        f"work_root={tmp_path / 'work'}",
        "mask_backend=motion",
        "mask_device=cpu",
        "train_launcher=local",
    ]
    command = [sys.executable, "-m", "pipelines", "pipeline", "run", "--local"]
    command += ["--pipeline_root", str(tmp_path / "kfp")]
    command += [arg for param in params for arg in ("--param", param)]
    proc = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)

    assert proc.returncode == 1, proc.stderr[-3000:]  # plan-shards' InputError: an unusable input
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output and "\x1b[" not in output and len(output.splitlines()) <= 10, output
    (error,) = [line for line in output.splitlines() if " ERROR " in line]
    (step_log,) = (tmp_path / "kfp").glob("*/plan-shards/step.log")
    assert re.search(
        rf"step plan-shards failed: \S*no-such-frames: .*; its log: {re.escape(str(step_log))}$", error
    )
    assert step_log.read_text().count("Traceback (most recent call last)") == 1  # ran once: no local retries
