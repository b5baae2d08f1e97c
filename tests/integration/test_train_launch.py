"""The harness's ``launch`` on CPU (detectron2's semantics on gloo): ranks, and a failing worker ending the launch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="launch needs torch (pip install 'wsovvis[train]')")

from tests.integration.train_toy_trainer import record_rank_or_crash  # noqa: E402
from wsovvis.train.distributed import DistPlan, WorkerFailedError, launch  # noqa: E402

TWO_CPU_PROCESSES = DistPlan(
    num_machines=1, machine_rank=0, procs_per_machine=2, dist_url="auto", device="cpu"
)


def test_a_failing_worker_ends_the_launch_with_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(WorkerFailedError, match=r"wsovvis-train-1 \(exit code 1\)"):
        launch(TWO_CPU_PROCESSES, record_rank_or_crash, args=(1, str(tmp_path)))

    ranks = sorted(json.loads(p.read_text())["rank"] for p in tmp_path.glob("rank*.json"))
    assert ranks == [0, 1]
    assert json.loads((tmp_path / "rank1.json").read_text())["local_rank"] == 1
