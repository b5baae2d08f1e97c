"""The videocutler backend with the real CutLER runtime: random weights, CPU, a few tiny frames.

Needs WSOVVIS_CUTLER_DIR (a CutLER checkout) and its runtime (torch, detectron2 v0.6 with projects.deeplab)
importable; run with the runtime venv: ``PYTHONPATH=$PWD /work/rt/venv/bin/python -m pytest tests/runtime``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from wsovvis import masks, shards
from wsovvis.errors import RuntimeMissingError
from wsovvis.maskgen import MaskGenConfig, mask_gen
from wsovvis.maskgen.run import read_frames
from wsovvis.maskgen.videocutler import CUTLER_DIR_ENV, VideoCutlerBackend, VideoCutlerOptions
from wsovvis.synth import make_dataset

pytestmark = pytest.mark.runtime

# Small test size so the random-weight model runs on CPU in seconds.
TINY = ("INPUT.MIN_SIZE_TEST", "128", "INPUT.MAX_SIZE_TEST", "192")


@pytest.fixture(scope="module")
def backend_options() -> VideoCutlerOptions:
    """CPU, random weights, every top-10 instance kept; CutLER from $WSOVVIS_CUTLER_DIR or wherever it imports from."""
    options = VideoCutlerOptions(
        cutler_dir=os.environ.get(CUTLER_DIR_ENV), weights=None, confidence=0.0, device="cpu", opts=TINY
    )
    try:
        VideoCutlerBackend(options)._load()
    except RuntimeMissingError as exc:
        pytest.skip(f"CutLER runtime not importable: {exc}")
    return options


@pytest.fixture(scope="module")
def tiny_video(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("synth"), 1, seed=2, min_frames=6, max_frames=6)


def test_predictor_gives_index_maps_at_frame_size_with_scores(backend_options, tiny_video) -> None:
    video = tiny_video.videos[0]
    frames = read_frames(f"{tiny_video.frames_root}/{video.video_id}", list(video.frame_names))
    prediction = VideoCutlerBackend(backend_options).predict(frames)
    assert 1 <= prediction.num_instances <= 10  # confidence 0 keeps the model's top-10
    assert len(prediction.index_maps) == len(frames)
    assert all(m.shape == (video.height, video.width) and m.dtype == np.uint8 for m in prediction.index_maps)
    assert set(np.unique(np.stack(prediction.index_maps))) <= set(range(prediction.num_instances + 1))
    assert all(0.0 <= s <= 1.0 for s in prediction.scores)


def test_windows_keep_ids_within_the_instance_limit(backend_options, tiny_video) -> None:
    video = tiny_video.videos[0]
    frames = read_frames(f"{tiny_video.frames_root}/{video.video_id}", list(video.frame_names))
    windowed = VideoCutlerOptions(**{**backend_options.__dict__, "window": 4, "overlap": 2})
    prediction = VideoCutlerBackend(windowed).predict(frames)
    assert len(prediction.index_maps) == len(frames)
    assert 1 <= prediction.num_instances <= 20  # two windows, top-10 each, some continued across the overlap


def test_shard_through_the_videocutler_backend(backend_options, tiny_video, tmp_path) -> None:
    manifest = str(tmp_path / "manifest.json")
    shards.plan_shards(tiny_video.frames_root, 1, manifest)
    out = tmp_path / "masks"
    report = mask_gen(
        MaskGenConfig(manifest, 0, tiny_video.frames_root, str(out)), VideoCutlerBackend(backend_options)
    )
    video_id = tiny_video.videos[0].video_id
    assert report.ids("done") == [video_id]
    video = masks.read_video_masks(video_id, str(out / f"{video_id}.tar"))
    assert video.sidecar["num_instances"] == len(video.scores) >= 1
    assert sorted(video.pngs) == [name.removesuffix(".jpg") for name in tiny_video.videos[0].frame_names]


def test_weights_from_a_file_reproduce_the_model(backend_options, tiny_video, tmp_path) -> None:
    import torch

    video = tiny_video.videos[0]
    frames = read_frames(f"{tiny_video.frames_root}/{video.video_id}", list(video.frame_names))
    random_init = VideoCutlerBackend(backend_options)
    first = random_init.predict(frames)
    _, model, _, _ = random_init._predictor
    weights = tmp_path / "model.pth"
    torch.save({"model": model.state_dict()}, weights)
    loaded = VideoCutlerBackend(VideoCutlerOptions(**{**backend_options.__dict__, "weights": str(weights)}))
    second = loaded.predict(frames)
    assert second.scores == first.scores
    assert all(np.array_equal(a, b) for a, b in zip(first.index_maps, second.index_maps, strict=True))
