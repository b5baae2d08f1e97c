"""The harness's ``launch`` on CPU (detectron2's semantics on gloo): ranks, a failing worker ending the launch, and
machines placed from a TrainJob's variables alone."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="launch needs torch (pip install 'wsovvis[train]')")

from tests.integration.train_toy_trainer import record_rank_or_crash  # noqa: E402
from wsovvis.train.distributed import DistPlan, WorkerFailedError, launch  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

TWO_CPU_PROCESSES = DistPlan(
    num_machines=1, machine_rank=0, procs_per_machine=2, dist_url="auto", device="cpu"
)


def test_a_failing_worker_ends_the_launch_with_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(WorkerFailedError, match=r"wsovvis-train-1 \(exit code 1\)"):
        launch(TWO_CPU_PROCESSES, record_rank_or_crash, args=(1, str(tmp_path)))

    ranks = sorted(json.loads(p.read_text())["rank"] for p in tmp_path.glob("rank*.json"))
    assert ranks == [0, 1]
    assert json.loads((tmp_path / "rank1.json").read_text())["local_rank"] == 1


# One machine of a job: plan from the environment alone (as the harness does), then launch the toy target.
NODE = """
import sys
from tests.integration.train_toy_trainer import record_rank_or_crash
from wsovvis.train.distributed import launch, plan_distributed

plan = plan_distributed(cuda_count=0)
print(plan.machine_rank, plan.num_machines, plan.dist_url, flush=True)
launch(plan, record_rank_or_crash, args=(-1, sys.argv[1]))
"""


def test_two_machines_rendezvous_from_only_what_a_trainjobs_torch_plugin_sets(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # the job's variables are only these: no MASTER_ADDR, MASTER_PORT, RANK or WORLD_SIZE (a PyTorchJob's)
    base = {k: v for k, v in os.environ.items() if not k.startswith("PET_") and "MASTER_" not in k}
    base = {k: v for k, v in base.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    trainjob = {
        "PET_NNODES": "2",
        "PET_NPROC_PER_NODE": "1",
        "PET_MASTER_ADDR": "127.0.0.1",
        "PET_MASTER_PORT": str(port),
        "PYTHONPATH": str(ROOT),
    }
    nodes = [
        subprocess.Popen(
            [sys.executable, "-c", NODE, str(tmp_path)],
            env={**base, **trainjob, "PET_NODE_RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=120) for node in nodes]
    for node, (_, err) in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, err
    assert [out.split() for out, _ in outputs] == [
        ["0", "2", f"tcp://127.0.0.1:{port}"],
        ["1", "2", f"tcp://127.0.0.1:{port}"],
    ]
    recorded = sorted(
        (json.loads(p.read_text()) for p in tmp_path.glob("rank*.json")), key=lambda r: r["rank"]
    )
    assert recorded == [{"rank": 0, "local_rank": 0}, {"rank": 1, "local_rank": 0}]
