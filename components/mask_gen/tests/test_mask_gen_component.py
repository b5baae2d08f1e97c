"""mask-gen component body: the motion backend over one shard, outputs under a root derived from the inputs."""

import json
from pathlib import Path

from kfp import dsl

from components.mask_gen.component import mask_gen
from wsovvis import shards
from wsovvis.synth import make_dataset


def test_runs_a_shard_and_reports(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data", num_videos=3, seed=4)
    manifest = tmp_path / "manifest.json"
    shards.plan_shards(dataset.frames_root, 1, str(manifest))
    report = dsl.Artifact(name="report", uri=str(tmp_path / "out" / "report"))
    kwargs = dict(
        shard={"index": 0, "manifest_uri": str(manifest)},
        frames_root=dataset.frames_root,
        work_root=str(tmp_path / "work"),
        backend="motion",
        config="",
        weights="",
        confidence=0.5,
        device="cpu",
        max_errors=0.0,
        report=report,
        metrics=dsl.Metrics(name="metrics", uri=str(tmp_path / "out" / "metrics")),
    )
    root = mask_gen.python_func(**kwargs)
    assert root.startswith(str(tmp_path / "work" / "masks"))
    assert sorted(p.stem for p in Path(root).glob("*.tar")) == sorted(v.video_id for v in dataset.videos)
    outcomes = json.loads((tmp_path / "out" / "report").read_text())
    assert outcomes["shard"] == 0
    counts = kwargs["metrics"].metadata
    assert counts["videos_done"] + counts["videos_empty"] == 3 and counts["videos_failed"] == 0
    assert counts["videos_skipped"] == 0 and counts["frames_per_second"] > 0
    mask_gen.python_func(**kwargs)  # a rerun: every video was done by the first run
    assert kwargs["metrics"].metadata["videos_skipped"] == 3
    assert mask_gen.python_func(**dict(kwargs, confidence=0.7)) != root  # another setting, another root
