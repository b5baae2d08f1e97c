"""Pieces of the training harness that need no processes: distributed plan, output sync, dataset dicts,
provenance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from wsovvis import rle
from wsovvis.errors import InputError, UsageError
from wsovvis.train import tracking
from wsovvis.train.datasets import dataset_dicts
from wsovvis.train.distributed import plan_distributed
from wsovvis.train.staging import (
    LAST_CHECKPOINT,
    OutputSync,
    check_weights,
    fetch_last_checkpoint,
    stage_weights,
)

PYTORCHJOB_WORKER_1 = {
    "MASTER_ADDR": "train-master-0",
    "MASTER_PORT": "23456",
    "PET_NNODES": "3",
    "PET_NODE_RANK": "1",
    "PET_NPROC_PER_NODE": "4",
    "RANK": "1",
}


def test_pytorchjob_environment_gives_machines_ranks_and_the_master_url() -> None:
    plan = plan_distributed(env=PYTORCHJOB_WORKER_1, cuda_count=4)

    assert (plan.num_machines, plan.machine_rank, plan.procs_per_machine) == (3, 1, 4)
    assert plan.dist_url == "tcp://train-master-0:23456"
    assert (plan.device, plan.backend, plan.world_size) == ("cuda", "nccl", 12)
    assert [plan.global_rank(local) for local in range(4)] == [4, 5, 6, 7]


def test_every_process_of_the_master_pod_has_its_own_global_rank() -> None:
    plan = plan_distributed(env={**PYTORCHJOB_WORKER_1, "PET_NODE_RANK": "0", "RANK": "0"}, cuda_count=4)

    assert [plan.global_rank(local) for local in range(4)] == [0, 1, 2, 3]


# What a TrainJob's torch plugin (Trainer v2) sets in node 2 of 3, and nothing else: no MASTER_ADDR, no RANK.
TRAINJOB_NODE_2 = {
    "PET_NNODES": "3",
    "PET_NPROC_PER_NODE": "4",
    "PET_NODE_RANK": "2",
    "PET_MASTER_ADDR": "wsovvis-train-node-0-0.wsovvis-train",
    "PET_MASTER_PORT": "29500",
}


def test_trainjob_environment_alone_gives_machines_ranks_and_the_master_url() -> None:
    plan = plan_distributed(env=TRAINJOB_NODE_2, cuda_count=4)

    assert (plan.num_machines, plan.machine_rank, plan.procs_per_machine) == (3, 2, 4)
    assert plan.dist_url == "tcp://wsovvis-train-node-0-0.wsovvis-train:29500"
    assert [plan.global_rank(local) for local in range(4)] == [8, 9, 10, 11]


def test_a_pytorchjobs_master_variables_win_over_the_pet_ones() -> None:
    plan = plan_distributed(env={**TRAINJOB_NODE_2, "MASTER_ADDR": "m", "MASTER_PORT": "1"}, cuda_count=4)
    assert plan.dist_url == "tcp://m:1"


def test_without_job_variables_one_machine_runs_one_process_per_gpu_or_one_on_cpu() -> None:
    assert plan_distributed(env={}, cuda_count=2).procs_per_machine == 2
    cpu = plan_distributed(env={}, cuda_count=0)
    assert (cpu.num_machines, cpu.machine_rank, cpu.procs_per_machine, cpu.dist_url) == (1, 0, 1, "auto")
    assert cpu.backend == "gloo"
    assert plan_distributed(env={}, cuda_count=0, num_gpus=3).procs_per_machine == 3


def test_torchrun_auto_nproc_counts_the_gpus() -> None:
    assert (
        plan_distributed(
            env={**PYTORCHJOB_WORKER_1, "PET_NPROC_PER_NODE": "auto"}, cuda_count=2
        ).procs_per_machine
        == 2
    )


@pytest.mark.parametrize(
    ("env", "kwargs", "message"),
    [
        ({"PET_NNODES": "2"}, {}, "need MASTER_ADDR and MASTER_PORT .*PET_MASTER_ADDR and PET_MASTER_PORT"),
        ({"PET_NNODES": "2", "PET_MASTER_ADDR": "m"}, {}, "need MASTER_ADDR"),
        ({"PET_NNODES": "1:4"}, {}, "elastic range"),
        (
            {"PET_NNODES": "2", "PET_NODE_RANK": "2", "MASTER_ADDR": "m", "MASTER_PORT": "1"},
            {},
            "outside 0..1",
        ),
        ({}, {"device": "cuda"}, "sees no GPU"),
        ({}, {"num_gpus": 3, "device": "cuda", "cuda_count": 2}, "has 2 GPU"),
    ],
)
def test_impossible_layouts_are_usage_errors(env: dict[str, str], kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        plan_distributed(env=env, **{"cuda_count": 0, **kwargs})


def test_output_sync_uploads_changes_only_and_last_checkpoint_after_its_checkpoint(tmp_path: Path) -> None:
    local, remote = tmp_path / "local", tmp_path / "remote"
    local.mkdir()
    (local / "model_0000004.pth").write_bytes(b"weights-4")
    (local / LAST_CHECKPOINT).write_text("model_0000004.pth")
    (local / "log.txt").write_text("a")
    sync = OutputSync(local, str(remote))

    first = sync.sync()
    (local / "log.txt").write_text("ab")
    second = sync.sync()

    assert first[-1] == LAST_CHECKPOINT
    assert sorted(first) == [LAST_CHECKPOINT, "log.txt", "model_0000004.pth"]
    assert second == ["log.txt"]
    assert (remote / "log.txt").read_text() == "ab"


def test_resume_fetches_the_checkpoint_last_checkpoint_names(tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    assert fetch_last_checkpoint(str(remote), tmp_path / "pod") is None
    (remote / "model_0000009.pth").write_bytes(b"weights-9")
    (remote / "model_0000004.pth").write_bytes(b"weights-4")
    (remote / LAST_CHECKPOINT).write_text("model_0000009.pth\n")

    assert fetch_last_checkpoint(str(remote), tmp_path / "pod") == "model_0000009.pth"
    assert (tmp_path / "pod" / "model_0000009.pth").read_bytes() == b"weights-9"
    assert (tmp_path / "pod" / LAST_CHECKPOINT).read_text() == "model_0000009.pth"

    (remote / LAST_CHECKPOINT).write_text("model_0000012.pth")
    with pytest.raises(InputError, match="names model_0000012.pth, which is not in"):
        fetch_last_checkpoint(str(remote), tmp_path / "pod2")


def test_weights_may_be_empty_a_url_or_an_existing_file(tmp_path: Path) -> None:
    check_weights("")
    check_weights("detectron2://ImageNetPretrained/torchvision/R-50.pkl")
    (tmp_path / "w.pth").write_bytes(b"w")
    check_weights(str(tmp_path / "w.pth"))
    assert stage_weights(str(tmp_path / "w.pth"), tmp_path / "scratch", download=True) == str(
        tmp_path / "w.pth"
    )
    with pytest.raises(InputError, match=r"MODEL.WEIGHTS: file .*absent.pth does not exist"):
        check_weights(str(tmp_path / "absent.pth"))


def _dataset() -> dict:
    box = np.zeros((4, 6), dtype=np.uint8)
    box[1:3, 2:5] = 1
    mask = rle.encode_mask(box)
    return {
        "categories": [{"id": 7, "name": "b"}, {"id": 3, "name": "a"}],
        "videos": [
            {"id": 20, "file_names": ["v20/0.jpg", "v20/1.jpg"], "height": 4, "width": 6, "length": 2},
            {"id": 10, "file_names": ["v10/0.jpg"], "height": 4, "width": 6, "length": 1},
        ],
        "annotations": [
            # Frame 1 has a mask but no box: VNext's loader leaves the object out of that frame.
            {
                "id": 5,
                "video_id": 20,
                "category_id": 7,
                "iscrowd": 0,
                "segmentations": [mask, mask],
                "bboxes": [[2, 1, 3, 2], None],
                "areas": [6, 6],
            },
            {
                "id": 6,
                "video_id": 10,
                "category_id": 3,
                "iscrowd": 0,
                "segmentations": [mask],
                "bboxes": [[2, 1, 3, 2]],
                "areas": [6],
            },
        ],
    }


def test_dataset_dicts_are_vnexts_per_video_records() -> None:
    records = dataset_dicts(_dataset(), "/frames")

    assert [r["video_id"] for r in records] == [10, 20]
    video = records[1]
    assert video["file_names"] == ["/frames/v20/0.jpg", "/frames/v20/1.jpg"]
    assert (video["height"], video["width"], video["length"]) == (4, 6, 2)
    assert len(video["annotations"]) == 2
    (obj,) = video["annotations"][0]
    assert obj["bbox"] == [2, 1, 3, 2]
    assert obj["bbox_mode"] == 1  # BoxMode.XYWH_ABS
    assert obj["id"] == 5 and obj["iscrowd"] == 0
    assert obj["category_id"] == 1  # categories sorted by id: 3 -> 0, 7 -> 1
    assert rle.decode(obj["segmentation"]).sum() == 6
    assert video["annotations"][1] == []
    assert records[0]["annotations"][0][0]["category_id"] == 0


def test_provenance_prefers_the_image_build_commit(tmp_path: Path) -> None:
    assert tracking.git_commit({"WSOVVIS_GIT_COMMIT": "feedbeef"}) == "feedbeef"
    commit = tracking.git_commit({})
    assert commit == "unknown" or len(commit) == 40
    assert tracking.third_party_pins(tmp_path / "absent.json") is None
    (tmp_path / "pins.json").write_text('{"VNext": {"commit": "db33833"}}')
    assert tracking.third_party_pins(tmp_path / "pins.json") == {"VNext": {"commit": "db33833"}}
    assert tracking.provenance({"WSOVVIS_IMAGE": "img:1"})["image"] == "img:1"


def test_run_ids_continue_after_the_largest_existing_one(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    assert tracking.next_run_id(str(runs)) == 1
    for name in ("1", "3", "_sources"):
        (runs / name).mkdir(parents=True)
    assert tracking.next_run_id(str(runs)) == 4


def test_eval_only_checks_the_classes_recorded_beside_the_weights_it_loads(tmp_path: Path) -> None:
    from wsovvis.train.classes import check_eval_classes, write_record

    three = {"videos": [], "annotations": [], "categories": [{"id": i, "name": f"c{i}"} for i in (3, 1, 2)]}
    (tmp_path / "val.json").write_text(json.dumps(three))
    (tmp_path / "model").mkdir()
    write_record(tmp_path / "model", tmp_path / "val.json", "s3://b/train.json")
    assert json.loads((tmp_path / "model" / "classes.json").read_text())["categories"][0] == {
        "id": 1,
        "name": "c1",
    }
    agnostic = {**three, "categories": [{"id": 1, "name": "object"}]}
    (tmp_path / "agnostic.json").write_text(json.dumps(agnostic))
    weights = str(tmp_path / "model" / "model_final.pth")

    check_eval_classes(str(tmp_path / "val.json"), str(tmp_path / "out"), weights, resume=True)
    with pytest.raises(InputError, match="has 1 categories, but the model was trained on 3"):
        check_eval_classes(str(tmp_path / "agnostic.json"), str(tmp_path / "out"), weights, resume=True)
