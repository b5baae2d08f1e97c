"""Benchmark: `wsovvis convert` against the floor of only decoding the same mask PNGs, both on every CPU this process may use.

Builds an LV-VIS-like workload (720p, 20-40 frames, up to 10 instances per video, tar per video) once under
--workdir, then in the same run times (1) decoding every PNG of every video into an index map with one process
per core, and (2) the whole conversion to a tube JSON. Prints both times and decode/convert (target >= 0.70).

    python benchmarks/convert.py --videos 100 --workdir /tmp/wsovvis-bench-convert
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from wsovvis import masks
from wsovvis.convert import ConvertOptions, convert
from wsovvis.resources import available_cpus

HEIGHT, WIDTH = 720, 1280


def build_workload(root: Path, num_videos: int, seed: int) -> tuple[Path, Path]:
    mask_root, img_root = root / "masks", root / "frames"
    done = root / f"READY-{num_videos}-{seed}"
    if done.exists():
        return mask_root, img_root
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    frame = Image.new("RGB", (WIDTH, HEIGHT), (100, 110, 120))
    for v in range(num_videos):
        video_id = f"video{v:04d}"
        num_frames = int(rng.integers(20, 41))
        num_instances = int(rng.integers(1, 11))
        centre = rng.uniform([0, 0], [HEIGHT, WIDTH], size=(num_instances, 2)).astype(np.float32)
        radius = rng.uniform(20, 250, size=(num_instances, 2)).astype(np.float32)
        velocity = rng.uniform(-8, 8, size=(num_instances, 2)).astype(np.float32)
        (img_root / video_id).mkdir(parents=True, exist_ok=True)
        pngs = {}
        for t in range(num_frames):
            index_map = np.zeros((HEIGHT, WIDTH), np.uint8)
            for k in range(num_instances):
                cy, cx = centre[k] + velocity[k] * t
                ry, rx = radius[k]
                y0, y1 = max(int(cy - ry), 0), min(int(cy + ry) + 1, HEIGHT)
                x0, x1 = max(int(cx - rx), 0), min(int(cx + rx) + 1, WIDTH)
                if y0 >= y1 or x0 >= x1:
                    continue
                inside = ((yy[y0:y1, x0:x1] - cy) / ry) ** 2 + ((xx[y0:y1, x0:x1] - cx) / rx) ** 2 <= 1
                index_map[y0:y1, x0:x1][inside] = k + 1
            pngs[f"{t:05d}"] = masks.encode_png(index_map)
            frame.save(img_root / video_id / f"{t:05d}.jpg", quality=50)
        sidecar = {
            "video_id": video_id,
            "num_instances": num_instances,
            "scores": {str(k + 1): 0.9 for k in range(num_instances)},
        }
        mask_root.mkdir(parents=True, exist_ok=True)
        (mask_root / f"{video_id}.tar").write_bytes(masks.pack_tar(video_id, pngs, sidecar))
        print(f"\rbuilding workload: {v + 1}/{num_videos} videos", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    done.touch()
    return mask_root, img_root


def _decode_video(tar_path: str) -> int:
    """Decode every PNG of one video into index maps, held until the video is done as convert holds them.

    (Dropping each 0.9 MB map at once is ~30% slower: glibc maps and unmaps every such buffer afresh.)
    """
    video = masks.read_video_masks(Path(tar_path).stem, tar_path)
    index_maps = [masks.decode_png(data) for data in video.pngs.values()]
    return len(index_maps)


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the pool workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def decode_only(mask_root: Path, workers: int) -> tuple[float, int]:
    tars = sorted(str(p) for p in mask_root.glob("*.tar"))
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        frames = sum(pool.imap(_decode_video, tars, chunksize=1))
    return time.perf_counter() - started, frames


def timed(action) -> tuple[float, float]:
    """Wall and CPU seconds (this process and its pool workers) of ``action()``."""
    wall, cpu = time.perf_counter(), _cpu_seconds()
    action()
    return time.perf_counter() - wall, _cpu_seconds() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--videos", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/wsovvis-bench-convert"))
    parser.add_argument("--workers", type=int, default=available_cpus())
    parser.add_argument("--repeat", type=int, default=2, help="take the best of this many timings of each")
    args = parser.parse_args()

    mask_root, img_root = build_workload(args.workdir, args.videos, args.seed)
    frames = sum(
        1 for tar in mask_root.glob("*.tar") for _ in masks.read_video_masks(tar.stem, str(tar)).pngs
    )
    decode_runs, convert_runs = [], []
    out = str(args.workdir / "tubes.json")
    for run in range(args.repeat):
        decode_runs.append(timed(lambda: decode_only(mask_root, args.workers)))
        convert_runs.append(
            timed(lambda: convert(str(mask_root), str(img_root), out, ConvertOptions(workers=args.workers)))
        )
        print(
            f"  run {run + 1}: decode only {decode_runs[-1][0]:.2f} s wall / {decode_runs[-1][1]:.2f} s CPU, "
            f"convert {convert_runs[-1][0]:.2f} s wall / {convert_runs[-1][1]:.2f} s CPU",
            file=sys.stderr,
        )
    (decode_s, decode_cpu), (convert_s, convert_cpu) = min(decode_runs), min(convert_runs)
    tubes = sum(1 for _ in json.loads(Path(out).read_text())["annotations"])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out_mb = (args.workdir / "tubes.json").stat().st_size / 2**20
    print(
        f"workload: {args.videos} videos, {frames} mask PNGs at {WIDTH}x{HEIGHT}, {tubes} tubes, "
        f"{args.workers} workers; best of {args.repeat} runs"
    )
    print(f"decode only: {decode_s:.2f} s wall ({frames / decode_s:.0f} PNG/s), {decode_cpu:.2f} s CPU")
    print(f"convert:     {convert_s:.2f} s wall ({frames / convert_s:.0f} PNG/s), {convert_cpu:.2f} s CPU")
    print(
        f"ratio decode/convert: {decode_s / convert_s:.2f} wall, {decode_cpu / convert_cpu:.2f} CPU (target >= 0.70)"
    )
    print(f"main process peak RSS: {peak_mb:.0f} MiB; output JSON {out_mb:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
