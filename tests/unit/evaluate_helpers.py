"""Small hand-made YTVIS GT/results for the evaluation tests: rectangles on tiny frames."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from wsovvis import rle
from wsovvis.evaluate.inputs import load_gt, load_results


def rect(height: int, width: int, rows: tuple[int, int], cols: tuple[int, int]) -> dict[str, Any]:
    """Compressed RLE of the rectangle rows[0]:rows[1] x cols[0]:cols[1]."""
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[rows[0] : rows[1], cols[0] : cols[1]] = 1
    return rle.encode_mask(mask)


def area_of(seg: dict[str, Any] | None) -> int | None:
    return None if seg is None else int(rle.decode(seg).sum())


def video(video_id: int, length: int, height: int = 10, width: int = 10, folder: str | None = None) -> dict:
    folder = folder or f"video{video_id}"
    return {
        "id": video_id,
        "height": height,
        "width": width,
        "length": length,
        "file_names": [f"{folder}/{f:05d}.jpg" for f in range(length)],
    }


def annotation(ann_id: int, video_id: int, category_id: int, segs: list, iscrowd: int = 0) -> dict:
    return {
        "id": ann_id,
        "video_id": video_id,
        "category_id": category_id,
        "iscrowd": iscrowd,
        "segmentations": segs,
        "areas": [area_of(s) for s in segs],
        "bboxes": [None if s is None else [0, 0, 1, 1] for s in segs],
    }


def result(video_id: int, category_id: int, score: float, segs: list) -> dict:
    return {"video_id": video_id, "category_id": category_id, "score": score, "segmentations": segs}


def categories(count: int, partitions: list[int] | None = None) -> list[dict]:
    cats = [{"id": c + 1, "name": f"cat{c + 1}"} for c in range(count)]
    if partitions is not None:
        for cat, partition in zip(cats, partitions, strict=True):
            cat["partition"] = partition
    return cats


def write(tmp_path: Path, gt: dict, results: Any, name: str = "results.json") -> tuple[Path, Path]:
    gt_path = tmp_path / "gt.json"
    results_path = tmp_path / name
    gt_path.write_text(json.dumps(gt))
    results_path.write_text(json.dumps(results))
    return gt_path, results_path


def random_dataset(seed: int, num_videos: int = 5, num_categories: int = 3, size: int = 40) -> dict:
    """A GT with rectangles of random size and position, present in random frames, in several categories."""
    rng = np.random.default_rng(seed)
    videos, anns = [], []
    for v in range(1, num_videos + 1):
        length = int(rng.integers(2, 6))
        videos.append(video(v, length, size, size))
        for _ in range(int(rng.integers(0, 4))):
            r0, c0 = rng.integers(0, size - 5, size=2)
            h, w = rng.integers(3, size // 2, size=2)
            present = rng.random(length) < 0.7
            present[rng.integers(length)] = True
            segs = [
                rect(size, size, (int(r0), int(min(size, r0 + h))), (int(c0), int(min(size, c0 + w))))
                if p
                else None
                for p in present
            ]
            anns.append(annotation(len(anns) + 1, v, int(rng.integers(1, num_categories + 1)), segs))
    return {
        "videos": videos,
        "annotations": anns,
        "categories": categories(num_categories, [0, 2, 1][:num_categories]),
    }


def perfect_results(gt: dict, seed: int = 0) -> list[dict]:
    """Every GT object as a result with its own category and masks, distinct scores."""
    rng = np.random.default_rng(seed)
    scores = rng.permutation(len(gt["annotations"])) / max(1, len(gt["annotations"])) + 0.01
    return [
        result(ann["video_id"], ann["category_id"], float(score), ann["segmentations"])
        for ann, score in zip(gt["annotations"], scores, strict=True)
    ]


def checked_results(gt: str | Path, results: str | Path) -> list[dict]:
    """A results file as JSON, once the project's one results checker (evaluate's loader) has accepted every
    entry against the GT's videos: each names a GT video, with one mask (or null) per frame at its size."""
    videos = load_gt(gt)[0]
    warnings: Counter[str] = Counter()
    detections = load_results(results, videos, warnings)
    entries = json.loads(Path(results).read_text())
    assert not warnings["results_for_unknown_videos"], warnings
    assert len(detections) == len(entries)
    return entries
