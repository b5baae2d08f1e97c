"""The training harness end to end, with a tiny test-only trainer under 2 gloo processes on CPU.

Each test runs ``python -m wsovvis train with CONFIG.yaml`` as a real subprocess (so SIGTERM, spawned
workers and exit codes are the real ones) with ``trainer`` pointing at tests/integration/train_toy_trainer.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from wsovvis import jsonio, storage, ytvis

pytest.importorskip("torch", reason="the training harness needs torch (pip install 'wsovvis[train]')")
pytest.importorskip("sacred", reason="the training harness needs sacred (pip install 'wsovvis[train]')")

import torch  # noqa: E402

from tests.integration.train_dataset import make_dataset  # noqa: E402
from tests.integration.train_toy_trainer import build_model, read_params  # noqa: E402
from tests.unit.evaluate_helpers import checked_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

TOY_TRAINER = "tests.integration.train_toy_trainer:ToyTrainer"
RUN_TIMEOUT = 120


def write_config(path: Path, **values: Any) -> Path:
    config = {"trainer": TOY_TRAINER, "num_gpus": 2, "device": "cpu", **values}
    config = {key: value for key, value in config.items() if value is not None}
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_train(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, env=train_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
    )


def sacred_run(runs_uri: str, run_id: str) -> dict[str, Any]:
    return {
        name: jsonio.read_json(storage.join(runs_uri, run_id, f"{name}.json"))
        for name in ("run", "config", "metrics", "info")
    }


@pytest.mark.s3
def test_two_processes_train_on_s3_data_and_record_one_sacred_run(s3_bucket: str, tmp_path: Path) -> None:
    make_dataset(tmp_path / "data")
    storage.upload_tree(tmp_path / "data", storage.join(s3_bucket, "data"))
    output_uri = storage.join(s3_bucket, "train")
    params_dir = tmp_path / "params"
    torch.save(build_model().state_dict(), tmp_path / "init.pth")
    weights_uri = storage.join(s3_bucket, "weights/init.pth")
    storage.upload(tmp_path / "init.pth", weights_uri)
    config = write_config(
        tmp_path / "train.yaml",
        output_uri=output_uri,
        scratch_dir=str(tmp_path / "scratch"),
        data={
            "train_json": storage.join(s3_bucket, "data/train.json"),
            "train_img_root": storage.join(s3_bucket, "data/frames"),
        },
        d2_opts=[
            *("SOLVER.MAX_ITER", 6, "SOLVER.CHECKPOINT_PERIOD", 3),
            *("MODEL.WEIGHTS", weights_uri, "TOY.PARAMS_DIR", str(params_dir)),
        ],
    )

    done = run_train(train_command(config))

    assert done.returncode == 0, done.stderr
    # Data and weights were staged from S3 once into the node's scratch folder, and the workers read them there.
    staged = tmp_path / "scratch" / "data"
    assert len(list(staged.glob("*frames.complete"))) == 1
    assert len(list(staged.glob("*train.json/train.json.complete"))) == 1
    assert len(list(staged.glob("*init.pth/init.pth.complete"))) == 1
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
    assert storage.listdir(runs_uri)[0] == ["1", "_sources"]
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


def test_two_machines_from_the_pytorchjob_environment_form_one_job(tmp_path: Path) -> None:
    make_dataset(tmp_path / "data")
    output_uri = str(tmp_path / "out")
    params_dir = tmp_path / "params"
    config = write_config(
        tmp_path / "train.yaml",
        output_uri=output_uri,
        num_gpus=None,
        data={
            "train_json": str(tmp_path / "data/train.json"),
            "train_img_root": str(tmp_path / "data/frames"),
        },
        d2_opts=["SOLVER.MAX_ITER", 4, "SOLVER.CHECKPOINT_PERIOD", 2, "TOY.PARAMS_DIR", str(params_dir)],
    )
    # What the Training Operator sets in the Master pod (index 0) and the Worker pod (index 1).
    job = {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
        "PET_NNODES": "2",
        "PET_NPROC_PER_NODE": "1",
    }
    pods = [
        subprocess.Popen(
            train_command(config, f"scratch_dir={tmp_path / f'pod{index}'}"),
            env=train_env(**job, PET_NODE_RANK=str(index), RANK=str(index), WORLD_SIZE="2"),
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in (0, 1)
    ]
    logs = [pod.communicate(timeout=RUN_TIMEOUT)[1] for pod in pods]

    assert [pod.returncode for pod in pods] == [0, 0], "\n".join(logs)
    assert "machine 1 of 2, 1 process(es) on cpu, world size 2, tcp://127.0.0.1:" in logs[1]
    params = read_params(params_dir)
    assert sorted(params) == ["rank0", "rank1"] and params["rank0"] == params["rank1"]
    runs_uri = str(Path(output_uri, "sacred"))
    assert storage.listdir(runs_uri)[0] == ["1", "_sources"]
    info = sacred_run(runs_uri, "1")["info"]
    assert (info["distributed"]["num_machines"], info["distributed"]["machine_rank"]) == (2, 0)


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

    # A new pod (empty scratch), here with one process, resumes from what output_uri holds.
    done = run_train(
        train_command(
            config,
            "resume=True",
            "num_gpus=1",
            f"scratch_dir={tmp_path / 'scratch-pod2'}",
            f"d2_opts=['SOLVER.MAX_ITER', {stopped_at + 4}, 'SOLVER.CHECKPOINT_PERIOD', 2]",
        )
    )

    assert done.returncode == 0, done.stderr
    assert f"resumed from iteration {stopped_at}" in done.stderr
    assert storage.listdir(str(Path(output_uri, "sacred")))[0] == ["1", "2", "_sources"]
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
    results = checked_results(tmp_path / "data/train.json", Path(output_uri, "results.json"))
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


def test_training_records_its_classes_and_eval_only_refuses_a_val_json_with_other_categories(
    tmp_path: Path,
) -> None:
    data = make_dataset(tmp_path / "data")
    output_uri = str(tmp_path / "out")
    frames = str(tmp_path / "data/frames")
    train = write_config(
        tmp_path / "train.yaml",
        output_uri=output_uri,
        num_gpus=1,
        scratch_dir=str(tmp_path / "scratch-train"),
        data={"train_json": str(tmp_path / "data/train.json"), "train_img_root": frames},
        d2_opts=["SOLVER.MAX_ITER", 2, "SOLVER.CHECKPOINT_PERIOD", 2],
    )
    assert (done := run_train(train_command(train))).returncode == 0, done.stderr
    record = json.loads(Path(output_uri, "classes.json").read_text())
    assert record["num_classes"] == 1 and record["categories"] == [{"id": 1, "name": "object"}]
    # The val GT as given (several categories), and its class-agnostic form.
    names = ("cat", "dog", "bird")
    multi = {**data, "categories": [{"id": i, "name": n} for i, n in enumerate(names, 1)]}
    ytvis.write_dataset(tmp_path / "val.json", multi)

    def eval_only(val_json: Path, scratch: str) -> subprocess.CompletedProcess[str]:
        config = write_config(
            tmp_path / f"eval-{scratch}.yaml",
            output_uri=output_uri,
            eval_only=True,
            resume=True,
            num_gpus=1,
            scratch_dir=str(tmp_path / scratch),
            data={"val_json": str(val_json), "val_img_root": frames},
        )
        return run_train(train_command(config))

    refused = eval_only(tmp_path / "val.json", "scratch-multi")

    assert refused.returncode == 1
    assert "has 3 categories, but the model was trained on 1" in refused.stderr
    assert str(tmp_path / "val.json") in refused.stderr
    assert not (tmp_path / "scratch-multi").exists()
    assert not Path(output_uri, "results.json").exists()
    # Class-agnostic val GT: the same number of categories as training, so it runs.
    assert (done := eval_only(tmp_path / "data/train.json", "scratch-agnostic")).returncode == 0, done.stderr
    assert Path(output_uri, "results.json").is_file()
