"""plan-shards component body on a small generated dataset."""

import json
import shutil
from pathlib import Path

from kfp import dsl

from components.plan_shards.component import plan_shards
from wsovvis.synth import make_dataset


def _plan(tmp_path, frames_root: str) -> tuple[list, str]:
    manifest = dsl.Artifact(name="manifest", uri=str(tmp_path / "out" / "manifest"))
    indices = plan_shards.python_func(
        frames_root=frames_root,
        num_shards=3,
        videos_list="",
        work_root=str(tmp_path / "work"),
        manifest=manifest,
        manifest_uri=str(tmp_path / "out" / "manifest_uri"),
    )
    uri = (tmp_path / "out" / "manifest_uri").read_text()
    assert all(item["manifest_uri"] == uri for item in indices)
    return [item["index"] for item in indices], uri


def test_writes_the_manifest_artifact_and_returns_the_indices(tmp_path) -> None:
    dataset = make_dataset(tmp_path / "data", num_videos=5, seed=3)
    indices, manifest_uri = _plan(tmp_path, dataset.frames_root)
    assert indices == [0, 1, 2]
    shards = json.loads((tmp_path / "out" / "manifest").read_text())["shards"]
    assert sorted(v for s in shards for v in s["videos"]) == sorted(v.video_id for v in dataset.videos)
    assert Path(manifest_uri).read_bytes() == (tmp_path / "out" / "manifest").read_bytes()


def test_the_manifest_uri_follows_the_planned_videos_not_the_frames_root_string(tmp_path) -> None:
    dataset = make_dataset(tmp_path / "data", num_videos=4, seed=3)
    _, first = _plan(tmp_path, dataset.frames_root)
    assert _plan(tmp_path, dataset.frames_root)[1] == first  # same videos: same URI, downstream stays cached
    extra = Path(dataset.frames_root) / "new_video"
    extra.mkdir()
    shutil.copy(next((Path(dataset.frames_root) / dataset.videos[0].video_id).iterdir()), extra / "00000.jpg")

    _, second = _plan(tmp_path, dataset.frames_root)

    assert second != first
    assert "new_video" in Path(second).read_text()
