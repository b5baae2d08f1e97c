"""Builders of small mask/frame trees for tests: random index maps with known instances."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from wsovvis import masks


@dataclass
class SyntheticVideo:
    video_id: str
    height: int
    width: int
    frames: list[str]
    index_maps: dict[str, np.ndarray] = field(
        default_factory=dict
    )  # frame stem -> index map (masked frames only)
    scores: dict[int, float] | None = None


def random_video(
    rng: np.random.Generator,
    video_id: str,
    *,
    num_frames: int = 8,
    size: tuple[int, int] = (36, 52),
    max_instances: int = 4,
    mask_every: int = 1,
) -> SyntheticVideo:
    """Instances are random ellipses that drift; later instances overwrite earlier ones, as in VideoCutLER."""
    height, width = size
    frames = [f"{i:05d}" for i in range(num_frames)]
    num_instances = int(rng.integers(1, max_instances + 1))
    centres = rng.uniform([0, 0], [height, width], size=(num_instances, 2))
    radii = rng.uniform(3, min(height, width) / 3, size=(num_instances, 2))
    velocity = rng.uniform(-2, 2, size=(num_instances, 2))
    alive = [
        (int(rng.integers(0, num_frames)), int(rng.integers(0, num_frames))) for _ in range(num_instances)
    ]
    yy, xx = np.mgrid[0:height, 0:width]
    video = SyntheticVideo(video_id, height, width, frames)
    for t, frame in enumerate(frames):
        if t % mask_every:
            continue
        index_map = np.zeros(size, np.uint8)
        for k in range(num_instances):
            start, stop = sorted(alive[k])
            if not start <= t <= stop:
                continue
            cy, cx = centres[k] + velocity[k] * t
            inside = ((yy - cy) / radii[k][0]) ** 2 + ((xx - cx) / radii[k][1]) ** 2 <= 1
            index_map[inside] = k + 1
        video.index_maps[frame] = index_map
    video.scores = {k + 1: round(float(rng.uniform(0.5, 1.0)), 4) for k in range(num_instances)}
    return video


def write_frames(video: SyntheticVideo, img_root: Path) -> None:
    folder = img_root / video.video_id
    folder.mkdir(parents=True, exist_ok=True)
    for frame in video.frames:
        Image.new("RGB", (video.width, video.height), (90, 120, 150)).save(folder / f"{frame}.jpg")


def write_masks(video: SyntheticVideo, mask_root: Path, *, as_tar: bool) -> None:
    pngs = {frame: masks.encode_png(m) for frame, m in video.index_maps.items()}
    sidecar = None
    if video.scores is not None:
        sidecar = {
            "video_id": video.video_id,
            "num_instances": len(video.scores),
            "scores": {str(k): v for k, v in video.scores.items()},
        }
    if as_tar:
        mask_root.mkdir(parents=True, exist_ok=True)
        (mask_root / f"{video.video_id}.tar").write_bytes(masks.pack_tar(video.video_id, pngs, sidecar))
        return
    folder = mask_root / video.video_id
    folder.mkdir(parents=True, exist_ok=True)
    for frame, data in pngs.items():
        (folder / masks.mask_name(frame)).write_bytes(data)
    if sidecar is not None:
        (folder / masks.SCORES_NAME).write_text(json.dumps(sidecar))


def expected_instances(video: SyntheticVideo) -> dict[int, dict[int, np.ndarray]]:
    """Instance id -> frame index -> binary mask, from the index maps."""
    out: dict[int, dict[int, np.ndarray]] = {}
    for t, frame in enumerate(video.frames):
        index_map = video.index_maps.get(frame)
        if index_map is None:
            continue
        for k in np.unique(index_map):
            if k:
                out.setdefault(int(k), {})[t] = (index_map == k).astype(np.uint8)
    return out
