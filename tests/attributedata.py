"""Hand-made videos for the attribution tests: flat-coloured rectangles on PNG frames, with a YTVIS GT.

Each tube is a rectangle of one colour moving right; its GT category and its colour go together, so an encoder
that embeds crops by colour knows which tube a crop shows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from wsovvis import rle

HEIGHT, WIDTH = 48, 64
BACKGROUND = (40, 40, 40)


def tube_masks(length: int, top: int, size: tuple[int, int], areas_grow: bool = False) -> list[np.ndarray]:
    """A rectangle moving right one pixel a frame; with ``areas_grow``, its width grows too."""
    height, width = size
    masks = []
    for frame in range(length):
        mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
        grow = frame if areas_grow else 0
        mask[top : top + height, 2 + frame : 2 + frame + width + grow] = True
        masks.append(mask)
    return masks


Colour = tuple[int, int, int]


def write_video(
    root: Path, folder: str, length: int, tubes: list[tuple[Colour | list[Colour], list[np.ndarray]]]
) -> list[str]:
    """Frames ``<root>/<folder>/<frame>.png`` with each tube's colour (one, or one per frame) under its masks."""
    names = []
    for frame in range(length):
        image = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
        image[...] = BACKGROUND
        for colour, masks in tubes:
            image[masks[frame]] = colour[frame] if isinstance(colour, list) else colour
        name = f"{folder}/{frame:05d}.png"
        (root / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / name)
        names.append(name)
    return names


def gt_dataset(
    videos: list[tuple[int, list[str]]],
    annotations: list[tuple[int, int, list[np.ndarray]]],
    categories: list[dict[str, Any]],
) -> dict[str, Any]:
    """A YTVIS GT from (video id, file names) and (video id, category id, masks)."""
    anns = []
    for index, (video_id, category_id, masks) in enumerate(annotations, start=1):
        segs = [rle.encode_mask(m) if m.any() else None for m in masks]
        boxes, areas = rle.boxes_and_areas([s for s in segs if s is not None])
        box_iter, area_iter = iter(boxes), iter(areas)
        anns.append(
            {
                "id": index,
                "video_id": video_id,
                "category_id": category_id,
                "iscrowd": 0,
                "segmentations": segs,
                "bboxes": [next(box_iter) if s else None for s in segs],
                "areas": [next(area_iter) if s else None for s in segs],
            }
        )
    return {
        "categories": categories,
        "videos": [
            {"id": vid, "height": HEIGHT, "width": WIDTH, "length": len(names), "file_names": names}
            for vid, names in videos
        ],
        "annotations": anns,
    }


def agnostic_results(gt: dict[str, Any], scores: list[float]) -> list[dict[str, Any]]:
    """The GT's annotations as class-agnostic results (category 1) with the given objectness scores."""
    return [
        {"video_id": ann["video_id"], "score": score, "category_id": 1, "segmentations": ann["segmentations"]}
        for ann, score in zip(gt["annotations"], scores, strict=True)
    ]


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path
