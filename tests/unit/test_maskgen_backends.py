"""The mask backends: the motion baseline finds moving objects; the videocutler backend keeps instance ids
across windows and fails with one clear line without its runtime."""

from __future__ import annotations

import numpy as np
import pytest

from wsovvis import rle, shards, ytvis
from wsovvis.cli import main
from wsovvis.errors import RuntimeMissingError
from wsovvis.maskgen.motion import MotionBackend, MotionOptions
from wsovvis.maskgen.run import read_frames
from wsovvis.maskgen.videocutler import VideoCutlerBackend, VideoCutlerOptions, window_starts
from wsovvis.synth import make_dataset


def _video_iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def one_object_videos(tmp_path_factory):
    dataset = make_dataset(tmp_path_factory.mktemp("synth"), 3, seed=5, min_objects=1, max_objects=1)
    data = ytvis.load_dataset(dataset.gt_json)
    return dataset, data


def test_motion_backend_finds_a_moving_object(one_object_videos) -> None:
    dataset, data = one_object_videos
    backend = MotionBackend()
    for video, ann in zip(dataset.videos, data["annotations"], strict=True):
        frames = read_frames(f"{dataset.frames_root}/{video.video_id}", list(video.frame_names))
        prediction = backend.predict(frames)
        gt = np.stack(
            [
                rle.decode(s) if s else np.zeros((video.height, video.width), np.uint8)
                for s in ann["segmentations"]
            ]
        ).astype(bool)
        best = max(
            _video_iou(np.stack(prediction.index_maps) == k, gt)
            for k in range(1, prediction.num_instances + 1)
        )
        assert best >= 0.5, video.video_id
        assert all(0.6 <= s <= 1 for s in prediction.scores)


def test_motion_backend_returns_masks_at_the_original_size(one_object_videos) -> None:
    dataset, _ = one_object_videos
    video = dataset.videos[0]
    frames = read_frames(f"{dataset.frames_root}/{video.video_id}", list(video.frame_names))
    prediction = MotionBackend(MotionOptions(working_size=64)).predict(frames)
    assert prediction.num_instances >= 1
    assert all(m.shape == (video.height, video.width) for m in prediction.index_maps)


@pytest.mark.parametrize("length", [2, 10])
def test_motion_backend_finds_nothing_in_a_static_video(length: int) -> None:
    rng = np.random.default_rng(0)
    still = rng.integers(0, 255, size=(48, 64, 3), dtype=np.uint8)
    prediction = MotionBackend().predict([still.copy() for _ in range(length)])
    assert prediction.num_instances == 0
    assert len(prediction.index_maps) == length and not any(m.any() for m in prediction.index_maps)


@pytest.mark.parametrize(
    ("length", "window", "overlap"), [(5, 10, 2), (30, 12, 4), (100, 80, 8), (81, 80, 8)]
)
def test_windows_cover_the_video_and_overlap(length: int, window: int, overlap: int) -> None:
    starts = window_starts(length, window, overlap)
    assert starts[0] == 0 and min(starts[-1] + window, length) == length
    for a, b in zip(starts, starts[1:], strict=False):
        assert a + window - b >= overlap


class _ScriptedVideoCutler(VideoCutlerBackend):
    """The real windowing and stitching around a fake model that 'sees' the scripted objects of each clip, in an
    order that changes from window to window (as the unsorted top-k of the real model does)."""

    def __init__(self, objects: dict[str, np.ndarray], scores: dict[str, float], **options) -> None:
        super().__init__(VideoCutlerOptions(**options))
        self.objects, self.scores, self.calls = objects, scores, []

    def _run_clip(self, frames):
        start = next(i for i, f in enumerate(self.frames) if f is frames[0])
        self.calls.append((start, len(frames)))
        names = sorted(self.objects, reverse=len(self.calls) % 2 == 0)
        visible = [n for n in names if self.objects[n][start : start + len(frames)].any()]
        return [self.scores[n] for n in visible], [
            self.objects[n][start : start + len(frames)] for n in visible
        ]


def test_videocutler_ids_stay_consistent_across_windows() -> None:
    length, height, width = 30, 20, 40
    objects = {name: np.zeros((length, height, width), bool) for name in ("walker", "sitter", "latecomer")}
    for t in range(length):
        objects["walker"][t, 2:8, t : t + 6] = True
        objects["sitter"][t, 12:18, 30:36] = True
        if t >= 20:
            objects["latecomer"][t, 12:18, 2:8] = True
    backend = _ScriptedVideoCutler(
        objects, {"walker": 0.9, "sitter": 0.7, "latecomer": 0.8}, window=12, overlap=4
    )
    backend.frames = [np.zeros((height, width, 3), np.uint8) for _ in range(length)]
    prediction = backend.predict(backend.frames)
    assert len(backend.calls) > 2
    maps = np.stack(prediction.index_maps)
    ids = {name: set(np.unique(maps[mask])) for name, mask in objects.items()}
    assert all(len(found) == 1 for found in ids.values()), ids
    assert len(set.union(*ids.values())) == 3 == prediction.num_instances
    score_of = {name: prediction.scores[next(iter(found)) - 1] for name, found in ids.items()}
    assert score_of == pytest.approx({"walker": 0.9, "sitter": 0.7, "latecomer": 0.8})


def test_videocutler_without_its_runtime_fails_with_one_clear_line(tmp_path, caplog) -> None:
    frames_root = tmp_path / "frames" / "v1"
    frames_root.mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (16, 16)).save(frames_root / "00000.jpg")
    shards.plan_shards(str(tmp_path / "frames"), 1, str(tmp_path / "manifest.json"))
    with pytest.raises(RuntimeMissingError, match="not a CutLER checkout"):
        VideoCutlerBackend(VideoCutlerOptions(cutler_dir=str(tmp_path))).predict(
            [np.zeros((16, 16, 3), np.uint8)]
        )
    code = main(
        [
            "mask-gen",
            "--manifest",
            str(tmp_path / "manifest.json"),
            "--shard",
            "0",
            "--frames_root",
            str(tmp_path / "frames"),
            "--out_root",
            str(tmp_path / "out"),
            "--backend",
            "videocutler",
            "--weights",
            "w.pth",
            "--cutler_dir",
            str(tmp_path),
        ]
    )
    assert code == RuntimeMissingError.exit_code
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "CutLER" in errors[0].getMessage() and "\n" not in errors[0].getMessage()
    assert not (tmp_path / "out" / "v1.tar").exists()
