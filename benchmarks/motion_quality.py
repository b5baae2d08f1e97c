"""Measure the motion backend on synthetic static-camera videos: class-agnostic AP50 and AP (video IoU).

Usage: python benchmarks/motion_quality.py [--videos 24] [--seed 0] [--out /tmp/motion-quality]

The score is a compact re-implementation of YouTube-VIS AP at one IoU threshold (greedy matching by score,
101-point interpolated precision, video IoU = sum of intersections / sum of unions over frames), so this
script needs nothing but wsovvis; `wsovvis evaluate` gives the official numbers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsovvis import rle, ytvis  # noqa: E402
from wsovvis.maskgen.motion import MotionBackend, MotionOptions  # noqa: E402
from wsovvis.maskgen.run import read_frames  # noqa: E402
from wsovvis.synth import make_dataset  # noqa: E402


def video_iou(a: list[np.ndarray | None], b: list[np.ndarray | None]) -> float:
    inter = union = 0
    for x, y in zip(a, b, strict=True):
        if x is None and y is None:
            continue
        if x is None or y is None:
            union += int((x if x is not None else y).sum())
            continue
        inter += int((x & y).sum())
        union += int((x | y).sum())
    return inter / union if union else 0.0


def average_precision(gt, dets, threshold: float) -> float:
    """gt: video -> list of tubes; dets: list of (score, video, tube)."""
    num_gt = sum(len(t) for t in gt.values())
    matched = {v: [False] * len(t) for v, t in gt.items()}
    tp = []
    for _, video, tube in sorted(dets, key=lambda d: -d[0]):
        ious = [video_iou(tube, g) if not matched[video][i] else -1 for i, g in enumerate(gt[video])]
        best = int(np.argmax(ious)) if ious else -1
        if best >= 0 and ious[best] >= threshold:
            matched[video][best] = True
            tp.append(1)
        else:
            tp.append(0)
    tp = np.array(tp, dtype=float)
    recall = np.cumsum(tp) / max(num_gt, 1)
    precision = np.cumsum(tp) / np.arange(1, len(tp) + 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1] if len(tp) else precision
    points = np.linspace(0, 1, 101)
    return float(np.mean([precision[recall >= r].max() if (recall >= r).any() else 0.0 for r in points]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="/tmp/motion-quality")
    args = parser.parse_args()
    dataset = make_dataset(args.out, args.videos, args.seed)
    data = ytvis.load_dataset(dataset.gt_json)
    gt = {v["id"]: [] for v in data["videos"]}
    for ann in data["annotations"]:
        gt[ann["video_id"]].append([rle.decode(s).astype(bool) if s else None for s in ann["segmentations"]])
    backend = MotionBackend(MotionOptions())
    dets = []
    frames_total, start = 0, time.perf_counter()
    for video in dataset.videos:
        frames = read_frames(os.path.join(dataset.frames_root, video.video_id), list(video.frame_names))
        prediction = backend.predict(frames)
        frames_total += len(frames)
        for k, score in enumerate(prediction.scores, start=1):
            tube = [(m == k) if (m == k).any() else None for m in prediction.index_maps]
            dets.append((score, video.ytvis_id, tube))
    seconds = time.perf_counter() - start
    ap = np.mean([average_precision(gt, dets, t) for t in np.arange(0.5, 0.96, 0.05)])
    print(
        f"motion backend on {args.videos} synthetic videos (seed {args.seed}): "
        f"{sum(len(t) for t in gt.values())} GT objects, {len(dets)} tracks; "
        f"AP50 {average_precision(gt, dets, 0.5):.3f}, AP75 {average_precision(gt, dets, 0.75):.3f}, AP {ap:.3f}; "
        f"{frames_total / seconds:.1f} frames/s"
    )


if __name__ == "__main__":
    main()
