"""SeqFormer under the harness on CPU: one training iteration, then an eval-only pass, random weights, tiny data.

Runs where VNext's detectron2 is importable (the runtime venv: ``/work/rt/venv/bin/python -m pytest``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.train_dataset import make_dataset
from tests.unit.evaluate_helpers import checked_results
from wsovvis import jsonio, ytvis
from wsovvis.errors import RuntimeMissingError
from wsovvis.train.config import CPU_SEQFORMER_OPTS

pytestmark = pytest.mark.runtime

ROOT = Path(__file__).resolve().parents[2]
# The demo's CPU SeqFormer (ResNet-18, one encoder and one decoder layer, 2-frame clips), smaller still: 64 px, one
# iteration. The 300 queries stay: SeqFormer's inference hard-codes that number (segmentation_condInst.py).
TINY_SEQFORMER = {
    **CPU_SEQFORMER_OPTS,
    "INPUT.MIN_SIZE_TRAIN": "(64,)",
    "INPUT.MAX_SIZE_TRAIN": 96,
    "INPUT.MIN_SIZE_TEST": 64,
    "INPUT.MAX_SIZE_TEST": 96,
    "SOLVER.MAX_ITER": 1,
    "SOLVER.CHECKPOINT_PERIOD": 1,
}


@pytest.fixture(scope="module")
def vnext_config() -> Path:
    from wsovvis.train import seqformer

    try:
        package = seqformer.import_seqformer()
    except RuntimeMissingError as exc:  # any other error is a broken runtime: it fails, it is not a skip
        pytest.skip(f"VNext's SeqFormer is not importable here: {exc}")
    config = Path(package.__file__).resolve().parents[1] / "configs" / "base_ytvis.yaml"
    if not config.is_file():
        pytest.skip(f"VNext's SeqFormer config is not at {config}")
    return config


def flat_opts(overrides: dict[str, Any]) -> list[Any]:
    return [item for pair in {**TINY_SEQFORMER, **overrides}.items() for item in pair]


def train_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PET_", "MASTER_"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


def train_command(config: Path, *updates: str) -> list[str]:
    return [sys.executable, "-m", "wsovvis", "train", "with", str(config), *updates]


def run_train(config: Path, *updates: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        train_command(config, *updates),
        env=train_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def write_config(path: Path, vnext_config: Path, data_root: Path, **opts: Any) -> Path:
    frames = str(data_root / "frames")
    path.write_text(
        yaml.safe_dump(
            {
                "d2_cfg_path": str(vnext_config),
                "d2_opts": flat_opts(opts),
                "device": "cpu",
                "output_uri": str(path.parent / "out"),
                "scratch_dir": str(path.parent / "scratch"),
                "data": {
                    "train_json": str(data_root / "train.json"),
                    "train_img_root": frames,
                    "val_json": str(data_root / "train.json"),
                    "val_img_root": frames,
                },
            }
        )
    )
    return path


def test_seqformer_trains_one_iteration_then_evaluates_on_cpu(vnext_config: Path, tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", videos=2, frames=3, size=(48, 64))
    output_uri = str(tmp_path / "out")
    config = write_config(tmp_path / "seqformer.yaml", vnext_config, tmp_path / "data")

    trained = run_train(config)

    assert trained.returncode == 0, trained.stderr[-5000:]
    assert Path(output_uri, "last_checkpoint").read_text().strip() == "model_final.pth"
    metrics = jsonio.read_json(str(Path(output_uri, "sacred", "1", "metrics.json")))
    losses = metrics["total_loss"]["values"]
    print("SeqFormer CPU iteration 0:", {name: metrics[name]["values"] for name in sorted(metrics)})
    assert metrics["total_loss"]["steps"] == [0]
    assert all(value > 0 for value in losses)
    training_config = Path(output_uri, "config.yaml").read_text()
    d2_config = yaml.safe_load(training_config)
    assert d2_config["MODEL"]["SeqFormer"]["NUM_CLASSES"] == 1
    assert d2_config["DATASETS"]["TEST"] == ["ytvis_wsovvis_val"]
    assert jsonio.read_json(str(Path(output_uri, "classes.json")))["num_classes"] == 1

    # Eval-only on the val GT as given (several categories, as LV-VIS val): refused before any model work,
    # instead of a class head of another size that detectron2 would drop with a warning.
    names = ("cat", "dog", "bird", "fish")
    ytvis.write_dataset(
        tmp_path / "val-multi.json",
        {**data, "categories": [{"id": i, "name": n} for i, n in enumerate(names, 1)]},
    )
    refused = run_train(
        config,
        "eval_only=True",
        "resume=True",
        f"data.val_json={tmp_path / 'val-multi.json'}",
        f"scratch_dir={tmp_path / 'scratch-refused'}",
    )

    assert refused.returncode == 1, refused.stderr[-5000:]
    assert "has 4 categories, but the model was trained on 1" in refused.stderr
    assert not (tmp_path / "scratch-refused").exists()

    # Eval-only on another "pod" with class-agnostic val GT: the trained checkpoint comes from output_uri.
    evaluated = run_train(config, "eval_only=True", "resume=True", f"scratch_dir={tmp_path / 'scratch-eval'}")

    assert evaluated.returncode == 0, evaluated.stderr[-5000:]
    log = evaluated.stdout + evaluated.stderr
    assert "Skip loading parameter" not in log, log[-5000:]  # the trained class head was loaded
    # The training run's config stays; the eval-only run's own went under eval/.
    assert Path(output_uri, "config.yaml").read_text() == training_config
    assert Path(output_uri, "eval", "config.yaml").is_file()
    videos = {v["id"]: v for v in data["videos"]}
    results = checked_results(tmp_path / "data/train.json", Path(output_uri, "results.json"))
    assert {r["video_id"] for r in results} == set(videos)
    assert all(r["category_id"] == 1 for r in results)
    print(f"SeqFormer CPU eval-only: {len(results)} results for {len(videos)} videos")


def test_seqformer_stops_on_sigterm_with_a_checkpoint_and_resumes_from_it(
    vnext_config: Path, tmp_path: Path
) -> None:
    make_dataset(tmp_path / "data", videos=2, frames=3, size=(48, 64))
    output_uri = tmp_path / "out"
    config = write_config(
        tmp_path / "seqformer.yaml",
        vnext_config,
        tmp_path / "data",
        **{"SOLVER.MAX_ITER": 100000, "SOLVER.CHECKPOINT_PERIOD": 100000},
    )
    process = subprocess.Popen(
        train_command(config), env=train_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 600
    while not any("Starting training from iteration 0" in line for line in lines):
        assert process.poll() is None and time.monotonic() < deadline, "".join(lines)[-5000:]
        time.sleep(0.2)
    time.sleep(3)

    process.send_signal(signal.SIGTERM)
    returncode = process.wait(timeout=600)
    reader.join(timeout=10)

    log = "".join(lines)
    assert returncode == 143, log[-5000:]
    checkpoint = (output_uri / "last_checkpoint").read_text().strip()
    stopped_at = int(checkpoint.removeprefix("model_").removesuffix(".pth"))
    assert (output_uri / checkpoint).is_file()
    assert jsonio.read_json(str(output_uri / "sacred" / "1" / "run.json"))["status"] == "PREEMPTED"

    resumed = run_train(
        config,
        f"scratch_dir={tmp_path / 'scratch-2'}",
        "resume=True",
        f"d2_opts={flat_opts({'SOLVER.MAX_ITER': stopped_at + 3})}",
    )

    assert resumed.returncode == 0, resumed.stderr[-5000:]
    assert f"Starting training from iteration {stopped_at + 1}" in resumed.stdout + resumed.stderr
    assert jsonio.read_json(str(output_uri / "sacred" / "2" / "run.json"))["status"] == "COMPLETED"
    assert (output_uri / "last_checkpoint").read_text().strip() == "model_final.pth"
    print(f"SeqFormer CPU: SIGTERM after iteration {stopped_at}, resumed at {stopped_at + 1}")
