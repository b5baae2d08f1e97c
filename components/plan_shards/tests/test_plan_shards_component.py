"""plan-shards component body on a small generated dataset."""

import json

from kfp import dsl

from components.plan_shards.component import plan_shards
from wsovvis.synth import make_dataset


def test_writes_the_manifest_artifact_and_returns_the_indices(tmp_path) -> None:
    dataset = make_dataset(tmp_path / "data", num_videos=5, seed=3)
    manifest = dsl.Artifact(name="manifest", uri=str(tmp_path / "out" / "manifest"))
    indices = plan_shards.python_func(
        frames_root=dataset.frames_root, num_shards=3, videos_list="", manifest=manifest
    )
    assert indices == [0, 1, 2]
    shards = json.loads((tmp_path / "out" / "manifest").read_text())["shards"]
    assert sorted(v for s in shards for v in s["videos"]) == sorted(v.video_id for v in dataset.videos)
