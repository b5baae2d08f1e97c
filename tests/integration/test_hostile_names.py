"""Names from inputs never reach outside a stage's folders: manifests, folder listings and tars from many hands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from wsovvis.maskgen import MaskGenConfig, mask_gen
from wsovvis.maskgen.motion import MotionBackend
from wsovvis.synth import make_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("synth"), num_videos=2, seed=5, min_frames=6, max_frames=6)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_manifest_ids_that_climb_or_are_absolute_touch_nothing_outside_the_output(dataset, tmp_path) -> None:
    frames = tmp_path / "frames"
    shutil.copytree(dataset.frames_root, frames)
    good = dataset.videos[0].video_id
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "other-job.txt").write_text("another job's scratch")
    hostile = ["..", str(victim), "../../victim", f"../../frames/{good}", "a/../../victim", "x\0y", ""]
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"shards": [{"index": 0, "videos": [good, *hostile]}]}))
    before = {name: _tree(tmp_path / name) for name in ("frames", "victim", "scratch")}

    report = mask_gen(
        MaskGenConfig(
            str(manifest), 0, str(frames), str(tmp_path / "out"), max_errors=1.0, scratch=str(scratch)
        ),
        MotionBackend(),
    )

    assert {name: _tree(tmp_path / name) for name in ("frames", "victim", "scratch")} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "frames",
        "manifest.json",
        "out",
        "scratch",
        "victim",
    ]
    assert sorted(_tree(tmp_path / "out")) == [f"_done/{good}.json", "_reports/shard-0.json", f"{good}.tar"]
    assert report.ids("done") + report.ids("empty") == [good]
    reasons = {o.video_id: o.reason for o in report.failed}
    assert sorted(reasons) == sorted(hostile)
    assert all(reason.startswith("invalid video id") for reason in reasons.values()), reasons
