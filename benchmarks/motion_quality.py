"""Measure the motion backend on synthetic static-camera videos: class-agnostic AP, AP50, AP75 and frames/s.

Usage: python benchmarks/motion_quality.py [--videos 24] [--seed 0] [--out /tmp/motion-quality]

Each kept instance of the backend becomes one result (its index map's k-th mask per frame, the backend's score);
the project's evaluator (``wsovvis.evaluate``, the official YouTube-VIS metric) scores them against the generated
GT class-agnostically. ``<out>/results.json`` and ``<out>/metrics.json`` stay for a closer look.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsovvis import rle, ytvis  # noqa: E402
from wsovvis.evaluate import evaluate  # noqa: E402
from wsovvis.maskgen.motion import MotionBackend, MotionOptions  # noqa: E402
from wsovvis.maskgen.run import read_frames  # noqa: E402
from wsovvis.synth import make_dataset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="/tmp/motion-quality")
    args = parser.parse_args()
    dataset = make_dataset(args.out, args.videos, args.seed)
    backend = MotionBackend(MotionOptions())
    results = []
    frames_total, start = 0, time.perf_counter()
    for video in dataset.videos:
        frames = read_frames(os.path.join(dataset.frames_root, video.video_id), list(video.frame_names))
        prediction = backend.predict(frames)
        frames_total += len(frames)
        for k, score in enumerate(prediction.scores, start=1):
            segmentations = [rle.encode_mask(index_map == k) for index_map in prediction.index_maps]
            results.append(
                {
                    "video_id": video.ytvis_id,
                    "score": float(score),
                    "category_id": 1,
                    "segmentations": segmentations,
                }
            )
    seconds = time.perf_counter() - start
    results_json = os.path.join(args.out, "results.json")
    ytvis.write_results(results_json, results)
    metrics = evaluate(
        dataset.gt_json, results_json, class_agnostic=True, out=os.path.join(args.out, "metrics.json")
    )
    print(
        f"motion backend on {args.videos} synthetic videos (seed {args.seed}): "
        f"{metrics['num_gt']} GT objects, {len(results)} tracks; "
        f"AP50 {metrics['AP50']:.3f}, AP75 {metrics['AP75']:.3f}, AP {metrics['AP']:.3f}; "
        f"{frames_total / seconds:.1f} frames/s"
    )


if __name__ == "__main__":
    main()
