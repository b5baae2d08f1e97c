"""convert component body: fan-in of shard roots, tube JSON on storage and as artifacts."""

import json
from pathlib import Path

import numpy as np
import pytest
from kfp import dsl

from components.convert.component import convert
from tests.maskdata import random_video, write_frames, write_masks
from wsovvis.errors import UsageError


def _call(
    tmp_path: Path,
    mask_roots: list[str],
    link_iou: float = 0.0,
    manifest_uri: str = "s3://b/shards/1/manifest.json",
) -> str:
    metrics = dsl.Metrics(name="metrics", uri=str(tmp_path / "art" / "metrics"))
    uri = convert.python_func(
        mask_roots=mask_roots,
        manifest_uri=manifest_uri,
        img_root=str(tmp_path / "frames"),
        work_root=str(tmp_path / "work"),
        split_name="train",
        skip_list="",
        min_masks=1,
        min_coverage=0.0,
        link_iou=link_iou,
        tubes=dsl.Dataset(name="tubes", uri=str(tmp_path / "art" / "tubes")),
        skip_report=dsl.Artifact(name="skip_report", uri=str(tmp_path / "art" / "skip_report")),
        metrics=metrics,
    )
    (tmp_path / "art" / "metrics.json").write_text(json.dumps(metrics.metadata))
    return uri


def test_converts_the_collected_root_and_copies_small_outputs_to_artifacts(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(3):
        video = random_video(rng, f"v{i}")
        write_frames(video, tmp_path / "frames")
        write_masks(video, tmp_path / "masks", as_tar=True)
    root = str(tmp_path / "masks")
    uri = _call(tmp_path, [root, root])
    assert uri.startswith(str(tmp_path / "work" / "tubes")) and uri.endswith("tubes.json")
    assert Path(uri).read_bytes() == (tmp_path / "art" / "tubes").read_bytes()
    assert json.loads((tmp_path / "art" / "skip_report").read_text())["videos_converted"] == 3
    counts = json.loads((tmp_path / "art" / "metrics.json").read_text())
    assert (counts["videos_converted"], counts["videos_skipped"]) == (3, 0)
    assert counts["frames"] > 0 and counts["frames_per_second"] > 0
    assert _call(tmp_path, [root], link_iou=0.5) != uri
    # Other planned videos (a new manifest) give tubes at a new URI, never a rewrite of the old one.
    assert _call(tmp_path, [root], manifest_uri="s3://b/shards/2/manifest.json") != uri
    with pytest.raises(UsageError, match="2 different roots"):
        _call(tmp_path, [root, str(tmp_path / "other")])
