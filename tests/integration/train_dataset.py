"""A tiny generated YTVIS dataset (random frames, one moving box per video) for the training tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from wsovvis import rle, ytvis


def make_dataset(
    root: Path, *, videos: int = 2, frames: int = 3, size: tuple[int, int] = (16, 20)
) -> dict[str, Any]:
    """A tiny YTVIS dataset: frames under ``root/frames``, JSON at ``root/train.json``; returns the JSON."""
    height, width = size
    rng = np.random.default_rng(0)
    data: dict[str, Any] = {"categories": [{"id": 1, "name": "object"}], "videos": [], "annotations": []}
    for video_id in range(1, videos + 1):
        names = []
        for frame in range(frames):
            name = f"v{video_id}/{frame:05d}.jpg"
            path = root / "frames" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)
            names.append(name)
        data["videos"].append(
            {"id": video_id, "file_names": names, "height": height, "width": width, "length": frames}
        )
        segs, boxes, areas = [], [], []
        for frame in range(frames):
            mask = np.zeros((height, width), dtype=np.uint8)
            top, left = 2 + frame, 3 + video_id
            mask[top : top + 6, left : left + 8] = 1
            segs.append(rle.encode_mask(mask))
            boxes.append([float(left), float(top), 8.0, 6.0])
            areas.append(48)
        data["annotations"].append(
            {
                "id": video_id,
                "video_id": video_id,
                "category_id": 1,
                "iscrowd": 0,
                "segmentations": segs,
                "bboxes": boxes,
                "areas": areas,
            }
        )
    ytvis.write_dataset(root / "train.json", data)
    return data
