"""plan-shards: every video in exactly one shard, deterministic, balanced by frames, small index list."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from wsovvis import shards
from wsovvis.cli import main
from wsovvis.errors import InputError, UsageError


def lvvis_like_lengths(num_videos: int, seed: int) -> dict[str, int]:
    """Frame counts shaped like LV-VIS videos: long-tailed around ~25 frames, from 5 to 150."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.round(rng.lognormal(np.log(25), 0.6, num_videos)), 5, 150).astype(int)
    return {f"{index:05d}": int(n) for index, n in enumerate(lengths)}


def test_every_video_lands_in_exactly_one_shard() -> None:
    counts = lvvis_like_lengths(137, seed=1)
    plan = shards.plan(counts, 7)
    assigned = [v for shard in plan.shards for v in shard.videos]
    assert sorted(assigned) == sorted(counts)
    assert len(assigned) == len(set(assigned))
    for shard in plan.shards:
        assert shard.frames == sum(counts[v] for v in shard.videos)


def test_plan_depends_only_on_ids_and_counts() -> None:
    counts = lvvis_like_lengths(80, seed=2)
    shuffled = list(counts.items())
    random.Random(0).shuffle(shuffled)
    assert shards.plan(counts, 5) == shards.plan(dict(shuffled), 5)


@pytest.mark.parametrize("seed", range(5))
def test_balance_on_300_lvvis_like_videos_over_8_shards(seed: int) -> None:
    plan = shards.plan(lvvis_like_lengths(300, seed), 8)
    assert plan.balance <= 1.05


def test_a_video_longer_than_the_mean_shard_gets_a_shard_of_its_own() -> None:
    counts = {"long": 300, **{f"short{i}": 10 for i in range(20)}}
    plan = shards.plan(counts, 4)
    (alone,) = [s for s in plan.shards if "long" in s.videos]
    assert alone.videos == ("long",)
    assert plan.balance == pytest.approx(plan.best_possible_balance)


def test_more_shards_than_videos_leaves_empty_shards() -> None:
    plan = shards.plan({"a": 3, "b": 2}, 4)
    assert [len(s.videos) for s in plan.shards].count(0) == 2
    assert plan.indices == [0, 1, 2, 3]


def _frames_tree(root, counts: dict[str, int]) -> None:
    for video, n in counts.items():
        (root / video).mkdir(parents=True)
        for frame in range(n):
            (root / video / f"{frame:05d}.jpg").write_bytes(b"jpg")
        (root / video / "notes.txt").write_text("not a frame")


def test_cli_writes_manifest_and_index_list(tmp_path) -> None:
    counts = {"v1": 5, "v2": 9, "v3": 2, "v4": 7}
    _frames_tree(tmp_path / "frames", counts)
    code = main(
        [
            "plan-shards",
            "--frames_root",
            str(tmp_path / "frames"),
            "--num-shards",
            "2",
            "--out_manifest",
            str(tmp_path / "manifest.json"),
            "--out_indices",
            str(tmp_path / "indices.json"),
        ]
    )
    assert code == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["num_videos"] == 4 and manifest["total_frames"] == 23
    assert {v for s in manifest["shards"] for v in s["videos"]} == set(counts)
    assert sorted(s["frames"] for s in manifest["shards"]) == [11, 12]
    assert json.loads((tmp_path / "indices.json").read_text()) == [0, 1]
    assert shards.load_shard(str(tmp_path / "manifest.json"), 1) == manifest["shards"][1]["videos"]


def test_index_list_for_many_shards_stays_small(tmp_path) -> None:
    _frames_tree(tmp_path / "frames", {"v1": 1})
    shards.plan_shards(
        str(tmp_path / "frames"), 1000, str(tmp_path / "m.json"), out_indices=str(tmp_path / "i.json")
    )
    assert len((tmp_path / "i.json").read_text()) < 10_000


def test_videos_list_restricts_and_checks(tmp_path) -> None:
    _frames_tree(tmp_path / "frames", {"v1": 5, "v2": 9, "v3": 2})
    (tmp_path / "list.txt").write_text("# train split\nv3\nv1\n\n")
    plan = shards.plan_shards(
        str(tmp_path / "frames"), 2, str(tmp_path / "m.json"), videos_list=str(tmp_path / "list.txt")
    )
    assert sorted(v for s in plan.shards for v in s.videos) == ["v1", "v3"]
    (tmp_path / "bad.txt").write_text("v1\nmissing\n")
    with pytest.raises(InputError, match="missing"):
        shards.plan_shards(
            str(tmp_path / "frames"), 2, str(tmp_path / "m.json"), videos_list=str(tmp_path / "bad.txt")
        )


def test_unknown_shard_index_is_a_usage_error(tmp_path) -> None:
    _frames_tree(tmp_path / "frames", {"v1": 3})
    shards.plan_shards(str(tmp_path / "frames"), 2, str(tmp_path / "m.json"))
    with pytest.raises(UsageError, match="no shard 5"):
        shards.load_shard(str(tmp_path / "m.json"), 5)


def test_empty_frames_root_is_an_input_error(tmp_path) -> None:
    (tmp_path / "frames").mkdir()
    with pytest.raises(InputError, match="no videos"):
        shards.count_frames(str(tmp_path / "frames"))
