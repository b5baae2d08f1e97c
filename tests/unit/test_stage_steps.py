"""The pipeline steps' orchestration: where outputs go (keyed by inputs and code version), what train launches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wsovvis.errors import RuntimeMissingError
from wsovvis.k8s.placement import Placement
from wsovvis.maskgen import step as maskgen_step
from wsovvis.prepare.step import prepare_step
from wsovvis.train import step as train_step_module
from wsovvis.train.step import train_step


class FakeHarness:
    """Stands in for `wsovvis train` (SeqFormer needs the runtime): records each config, leaves its outputs."""

    def __init__(self) -> None:
        self.configs: list[dict[str, Any]] = []

    def __call__(self, stage: str, config: dict[str, Any], output_uri: str) -> None:
        self.configs.append(config)
        out = Path(output_uri)
        out.mkdir(parents=True, exist_ok=True)
        if config["eval_only"]:
            (out / "results.json").write_text("[]")
            return
        (out / "model_final.pth").write_bytes(b"weights")
        (out / "last_checkpoint").write_text("model_final.pth")
        run = out / "sacred" / "1"
        run.mkdir(parents=True)
        metrics = {
            "total_loss": {"steps": [0, 19, 39], "values": [3.0, 2.0, 1.5]},
            "lr": {"steps": [39], "values": [0.1]},
        }
        (run / "metrics.json").write_text(json.dumps(metrics))


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch) -> FakeHarness:
    fake = FakeHarness()
    monkeypatch.setattr(train_step_module, "_run_harness_locally", fake)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return fake


def _train(tmp_path: Path, **overrides: Any) -> tuple[tuple[str, str], dict[str, float]]:
    """(results URI, checkpoint URI) and the metrics logged."""
    metrics: dict[str, float] = {}
    results_path = tmp_path / "results_json"
    kwargs = {
        "run_id": "run-1",
        "launcher": "local",
        "train_json": "s3://data/tubes.json",
        "train_img_root": "s3://data/frames",
        "val_json": "s3://work/gt-agnostic/v1/abc/gt_agnostic.json",
        "val_img_root": "s3://data/val",
        "work_root": str(tmp_path / "work"),
        "d2_cfg_path": "/opt/src/VNext/projects/SeqFormer/configs/base_ytvis.yaml",
        "d2_opts": ["SOLVER.MAX_ITER", 40],
        "weights": "",
        "placement": Placement(image="registry.example.com/runtime:x", namespace="kubeflow"),
        "timeout_seconds": 60,
        "runtime_available": True,
        "log_metric": metrics.__setitem__,
        "results_json_path": str(results_path),
        **overrides,
    }
    checkpoint = train_step(**kwargs)
    return (results_path.read_text(), checkpoint), metrics


def test_train_then_predict_with_the_checkpoint_on_the_val_gt_given(
    tmp_path: Path, harness: FakeHarness
) -> None:
    (results, checkpoint), metrics = _train(tmp_path)

    train, predict = harness.configs
    assert train["eval_only"] is False and "val_json" not in train["data"]
    assert checkpoint == f"{train['output_uri']}/model_final.pth"
    assert predict["eval_only"] is True
    assert predict["data"]["val_json"] == "s3://work/gt-agnostic/v1/abc/gt_agnostic.json"
    assert predict["d2_opts"][-2:] == ["MODEL.WEIGHTS", checkpoint]
    # Its own folder: the training run's config and checkpoints stay as they are.
    assert predict["output_uri"] == str(Path(results).parent) != train["output_uri"]
    assert metrics == {"total_loss": 1.5, "lr": 0.1, "iterations": 40}


def test_results_are_keyed_by_the_val_data_never_rewritten_in_place(
    tmp_path: Path, harness: FakeHarness
) -> None:
    (first, checkpoint), _ = _train(tmp_path)
    (again, _), _ = _train(tmp_path, run_id="run-2")
    (other, _), _ = _train(tmp_path, run_id="run-3", val_json="s3://work/gt-agnostic/v1/def/gt_agnostic.json")

    assert again == first and other != first
    assert [c["eval_only"] for c in harness.configs] == [False, True, True]  # trained once, predicted twice
    assert all(c["d2_opts"][-1] == checkpoint for c in harness.configs[1:])


def test_a_fixed_training_code_version_does_not_reuse_the_old_model_final(
    tmp_path: Path, harness: FakeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    (_, old_checkpoint), _ = _train(tmp_path)
    monkeypatch.setattr(train_step_module, "OUTPUT_VERSION", train_step_module.OUTPUT_VERSION + 1)

    (_, new_checkpoint), _ = _train(tmp_path, run_id="run-2")

    assert new_checkpoint != old_checkpoint
    assert [c["eval_only"] for c in harness.configs] == [False, True, False, True]


def test_a_fixed_mask_gen_code_version_starts_a_new_masks_root(monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = {
        "work_root": "s3://w",
        "frames_root": "s3://f",
        "backend": "motion",
        "config": "",
        "weights": "",
    }
    before = maskgen_step.masks_root(**inputs, confidence=0.5)
    monkeypatch.setattr(maskgen_step, "OUTPUT_VERSION", maskgen_step.OUTPUT_VERSION + 1)
    assert maskgen_step.masks_root(**inputs, confidence=0.5) != before


def test_local_launcher_without_the_runtime_skips_here_and_is_refused_in_a_pod(
    tmp_path: Path, harness: FakeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _train(tmp_path, runtime_available=False)[0] == ("", "")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    with pytest.raises(RuntimeMissingError, match="train_launcher=local runs the harness in this step's pod"):
        _train(tmp_path, runtime_available=False)
    assert harness.configs == []


def test_prepare_refuses_the_local_launcher_in_a_pod_without_the_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = str(tmp_path / "report.json")
    monkeypatch.setattr(
        "wsovvis.prepare.step.runtime_status", lambda: {"ok": False, "problems": ["no VNext"], "lines": []}
    )
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert prepare_step(mask_backend="motion", train_launcher="local", report_path=report) is False
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    with pytest.raises(RuntimeMissingError, match="train_launcher local in a Kubernetes pod"):
        prepare_step(mask_backend="motion", train_launcher="local", report_path=report)
