"""The training harness end to end, with a tiny test-only trainer under 2 gloo processes on CPU.

Each test runs ``python -m wsovvis train with CONFIG.yaml`` as a real subprocess (so SIGTERM, spawned
workers and exit codes are the real ones) with ``trainer`` pointing at tests/integration/train_toy_trainer.py.
"""

from __future__ import annotations

import json
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

from wsovvis import storage, ytvis

pytest.importorskip("torch", reason="the training harness needs torch (pip install 'wsovvis[train]')")
pytest.importorskip("sacred", reason="the training harness needs sacred (pip install 'wsovvis[train]')")

from tests.integration.train_dataset import make_dataset  # noqa: E402
from tests.integration.train_toy_trainer import build_model, read_params  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

TOY_TRAINER = "tests.integration.train_toy_trainer:ToyTrainer"
RUN_TIMEOUT = 120


def write_config(path: Path, **values: Any) -> Path:
    config = {"trainer": TOY_TRAINER, "num_gpus": 2, "device": "cpu", **values}
    path.write_text(yaml.safe_dump(config))
    return path


def train_command(config: Path, *updates: str, runs_uri: str | None = None) -> list[str]:
    command = [sys.executable, "-m", "wsovvis", "train", "with", str(config), *updates]
    return [*command, "-F", runs_uri] if runs_uri else command


def train_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PET_", "MASTER_"))}
    env.update(
        PYTHONPATH=str(ROOT), WSOVVIS_GIT_COMMIT="0123abcd", WSOVVIS_IMAGE="wsovvis-runtime:test", **extra
    )
    return env


def run_train(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, env=train_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
    )


def sacred_run(runs_uri: str, run_id: str) -> dict[str, Any]:
    return {
        name: storage.read_json(storage.join(runs_uri, run_id, f"{name}.json"))
        for name in ("run", "config", "metrics", "info")
    }


@pytest.mark.s3
def test_two_processes_train_on_s3_data_and_record_one_sacred_run(s3_bucket: str, tmp_path: Path) -> None:
    make_dataset(tmp_path / "data")
    storage.upload_tree(tmp_path / "data", storage.join(s3_bucket, "data"))
    output_uri = storage.join(s3_bucket, "train")
    params_dir = tmp_path / "params"
    config = write_config(
        tmp_path / "train.yaml",
        output_uri=output_uri,
        scratch_dir=str(tmp_path / "scratch"),
        data={
            "train_json": storage.join(s3_bucket, "data/train.json"),
            "train_img_root": storage.join(s3_bucket, "data/frames"),
        },
        d2_opts=["SOLVER.MAX_ITER", 6, "SOLVER.CHECKPOINT_PERIOD", 3, "TOY.PARAMS_DIR", str(params_dir)],
    )

    done = run_train(train_command(config))

    assert done.returncode == 0, done.stderr
    # Data was staged from S3 once into the node's scratch folder, and the workers read it there.
    assert len(list((tmp_path / "scratch" / "data").glob("*frames.complete"))) == 1
    # Gradients were averaged: both ranks, fed different frames, end with the same parameters,
    # which moved away from the shared initial ones.
    params = read_params(params_dir)
    assert sorted(params) == ["rank0", "rank1"]
    assert params["rank0"] == params["rank1"]
    initial = {name: value.tolist() for name, value in build_model().state_dict().items()}
    assert params["rank0"] != initial
    # Checkpoints reached S3, last_checkpoint naming the final one.
    assert storage.read_text(storage.join(output_uri, "last_checkpoint")).strip() == "model_0000005.pth"
    assert storage.exists(storage.join(output_uri, "model_0000002.pth"))
    # One Sacred run, written by the main process only, with the provenance of the code.
    runs_uri = storage.join(output_uri, "sacred")
    assert storage.listdir(runs_uri)[0] == ["1"]
    run = sacred_run(runs_uri, "1")
    assert run["run"]["status"] == "COMPLETED"
    assert run["run"]["meta"]["options"]["--capture"] == "sys"
    info = run["info"]
    assert info["git_commit"] == "0123abcd"
    assert info["image"] == "wsovvis-runtime:test"
    assert "third_party_pins" in info
    assert info["distributed"]["procs_per_machine"] == 2
    assert run["config"]["data"]["train_json"] == storage.join(s3_bucket, "data/train.json")
    assert run["metrics"]["loss"]["steps"] == list(range(6))


def _wait_for(stream_lines: list[str], needle: str, process: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(needle in line for line in stream_lines):
            return
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"{needle!r} did not appear in the training log:\n{''.join(stream_lines)}")


def test_sigterm_leaves_a_checkpoint_and_resume_continues_from_it(tmp_path: Path) -> None:
    make_dataset(tmp_path / "data")
    output_uri = str(tmp_path / "out")
    data = {"train_json": str(tmp_path / "data/train.json"), "train_img_root": str(tmp_path / "data/frames")}
    config = write_config(
        tmp_path / "train.yaml",
        output_uri=output_uri,
        scratch_dir=str(tmp_path / "scratch-pod1"),
        data=data,
        d2_opts=["SOLVER.MAX_ITER", 100000, "SOLVER.CHECKPOINT_PERIOD", 100000, "TOY.STEP_SECONDS", 0.05],
    )
    process = subprocess.Popen(train_command(config), env=train_env(), stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stderr.readline, "")), daemon=True)
    reader.start()
    _wait_for(lines, "iteration 5 loss", process, RUN_TIMEOUT)

    process.send_signal(signal.SIGTERM)
    returncode = process.wait(timeout=RUN_TIMEOUT)
    reader.join(timeout=10)

    log = "".join(lines)
    assert returncode == 143, log
    assert "rerun with resume=True" in log
    checkpoint = Path(output_uri, "last_checkpoint").read_text().strip()
    stopped_at = int(checkpoint.removeprefix("model_").removesuffix(".pth"))
    assert stopped_at >= 5
    assert Path(output_uri, checkpoint).is_file()
    first = sacred_run(str(Path(output_uri, "sacred")), "1")
    assert first["run"]["status"] == "PREEMPTED"
    assert first["metrics"]["loss"]["steps"][-1] == stopped_at

    # A new pod (empty scratch) resumes from what output_uri holds.
    done = run_train(
        train_command(
            config,
            "resume=True",
            f"scratch_dir={tmp_path / 'scratch-pod2'}",
            f"d2_opts=['SOLVER.MAX_ITER', {stopped_at + 4}, 'SOLVER.CHECKPOINT_PERIOD', 2]",
        )
    )

    assert done.returncode == 0, done.stderr
    assert f"resumed from iteration {stopped_at}" in done.stderr
    assert storage.listdir(str(Path(output_uri, "sacred")))[0] == ["1", "2"]
    second = sacred_run(str(Path(output_uri, "sacred")), "2")
    assert second["run"]["status"] == "COMPLETED"
    assert second["metrics"]["loss"]["steps"] == list(range(stopped_at + 1, stopped_at + 4))
    assert Path(output_uri, "last_checkpoint").read_text().strip() == f"model_{stopped_at + 3:07d}.pth"


def test_eval_only_writes_ytvis_results_for_every_video(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", videos=3)
    output_uri = str(tmp_path / "out")
    config = write_config(
        tmp_path / "eval.yaml",
        output_uri=output_uri,
        eval_only=True,
        scratch_dir=str(tmp_path / "scratch"),
        data={"val_json": str(tmp_path / "data/train.json"), "val_img_root": str(tmp_path / "data/frames")},
    )

    done = run_train(train_command(config, runs_uri=str(tmp_path / "runs")))

    assert done.returncode == 0, done.stderr
    videos = {v["id"]: v for v in data["videos"]}
    results = ytvis.load_results(str(Path(output_uri, "results.json")), videos)
    assert sorted(r["video_id"] for r in results) == sorted(videos)
    assert json.loads(Path(tmp_path, "runs", "1", "run.json").read_text())["status"] == "COMPLETED"


def test_missing_weights_fail_before_any_process_starts(tmp_path: Path) -> None:
    make_dataset(tmp_path / "data")
    config = write_config(
        tmp_path / "train.yaml",
        output_uri=str(tmp_path / "out"),
        scratch_dir=str(tmp_path / "scratch"),
        data={
            "train_json": str(tmp_path / "data/train.json"),
            "train_img_root": str(tmp_path / "data/frames"),
        },
        d2_opts=["MODEL.WEIGHTS", str(tmp_path / "absent.pth")],
    )

    done = run_train(train_command(config))

    assert done.returncode == 1
    assert f"MODEL.WEIGHTS: file {tmp_path / 'absent.pth'} does not exist" in done.stderr
    assert not (tmp_path / "scratch").exists()
    assert not (tmp_path / "out").exists()
