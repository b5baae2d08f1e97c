"""Benchmark: how long `mask-gen` keeps its backend (the GPU) waiting, serial loop against the pipelined one.

    PYTHONPATH=$PWD python benchmarks/maskgen_overlap.py [--videos 24] [--frames 30] [--ms-per-frame 60] [--prefetch 2]

Starts a real S3 server (wsovvis.s3server, as the tests do), uploads generated 1280x720 JPEG videos to it,
then runs the same shard twice in the same run, reading frames from and writing tars to that server: once with
``prefetch=0`` (fetch, decode, predict, encode, pack, upload one after another) and once pipelined (the
default ``prefetch``). The backend does no work but holds the foreground for a fixed time per frame, as a GPU
forward pass does (``time.sleep`` releases the GIL like a CUDA call), and returns index maps with several
instances, which are PNG-encoded and packed as usual. Prints, per loop, the shard's wall time, the summed
backend time, their ratio minus one (the overhead: what a GPU would idle), the process CPU time and the load.
Goal: overhead <= 5% pipelined.

Default compute time: 60 ms per 720p frame. Mask2Former R50 (VideoCutLER's model, here run per video clip) runs
at 8.6 frames/s on one V100 at COCO resolution (short side 800, about 1 Mpx; a 720p frame is 0.92 Mpx):
Cheng et al., "Masked-attention Mask Transformer for Universal Image Segmentation", CVPR 2022, Table 1
(arXiv:2112.01527), i.e. about 116 ms per frame. An A100/H100-class GPU runs such models 2-3x faster than a
V100, hence about 40-60 ms; the shorter the compute time, the harder it is to hide the I/O behind it.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from wsovvis import shards, storage  # noqa: E402
from wsovvis.maskgen import MaskGenConfig, mask_gen  # noqa: E402
from wsovvis.maskgen.backend import VideoPrediction  # noqa: E402
from wsovvis.s3server import local_s3_server  # noqa: E402

HEIGHT, WIDTH = 720, 1280


class FixedTimeBackend:
    """Holds the caller for ``seconds_per_frame`` per frame and returns precomputed index maps."""

    name = "fixed-time"

    def __init__(self, seconds_per_frame: float, instances: int = 6, seed: int = 0) -> None:
        self.seconds_per_frame = seconds_per_frame
        self.busy = 0.0
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
        self.maps = []
        for _ in range(8):  # a few distinct frames, cycled, so the PNGs are not all alike
            index_map = np.zeros((HEIGHT, WIDTH), np.uint8)
            for k in range(1, instances + 1):
                cy, cx = rng.uniform([0, 0], [HEIGHT, WIDTH])
                ry, rx = rng.uniform(30, 220, size=2)
                index_map[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = k
            self.maps.append(index_map)
        self.scores = [round(0.9 - 0.05 * k, 2) for k in range(instances)]

    def settings(self) -> dict[str, Any]:
        return {"backend": self.name, "seconds_per_frame": self.seconds_per_frame}

    def predict(self, frames: Sequence[np.ndarray]) -> VideoPrediction:
        started = time.perf_counter()
        time.sleep(self.seconds_per_frame * len(frames))
        maps = [self.maps[i % len(self.maps)] for i in range(len(frames))]
        self.busy += time.perf_counter() - started
        return VideoPrediction(maps, list(self.scores))


def _jpeg(rng: np.random.Generator, base: np.ndarray, shift: int) -> bytes:
    frame = np.roll(base, shift, axis=1)
    frame = np.clip(frame + rng.normal(0, 6, size=frame.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def upload_videos(frames_root: str, num_videos: int, num_frames: int, seed: int) -> int:
    """Generated 1280x720 videos as <frames_root>/<video>/<frame>.jpg; returns the bytes uploaded."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    jobs = []
    for v in range(num_videos):
        phase = rng.uniform(0, 6.28, size=3)
        base = np.stack(
            [127 + 90 * np.sin(xx / (40 + 20 * c) + yy / (70 + 10 * c) + phase[c]) for c in range(3)], axis=-1
        )
        for f in range(num_frames):
            jobs.append((f"{frames_root}/video{v:03d}/{f:05d}.jpg", _jpeg(rng, base, 6 * f)))
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda job: storage.write_bytes(*job), jobs))
    return sum(len(data) for _, data in jobs)


def _load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def run_loop(bucket: str, manifest: str, frames_root: str, prefetch: int, ms_per_frame: float) -> float:
    backend = FixedTimeBackend(ms_per_frame / 1000)
    out_root = f"{bucket}/masks-prefetch-{prefetch}"
    load_before = _load()
    cpu_started, started = time.process_time(), time.perf_counter()
    report = mask_gen(MaskGenConfig(manifest, 0, frames_root, out_root, prefetch=prefetch), backend)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    assert not report.failed, report.failed
    overhead = wall / backend.busy - 1
    label = "serial loop (prefetch 0)" if prefetch == 0 else f"pipelined (prefetch {prefetch})"
    print(
        f"{label}: {report.frames_processed} frames, wall {wall:.2f}s, backend {backend.busy:.2f}s, "
        f"overhead {overhead:.1%}; process CPU {cpu:.2f}s; {load_before} before, {_load()} after"
    )
    return overhead


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--videos", type=int, default=24, help="a real shard holds hundreds")
    parser.add_argument("--frames", type=int, default=30, help="frames per video")
    parser.add_argument("--ms-per-frame", type=float, default=60.0, help="backend compute time per frame")
    parser.add_argument("--prefetch", type=int, default=MaskGenConfig.prefetch, help="for the pipelined loop")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="wsovvis-bench-overlap-", ignore_cleanup_errors=True) as tmp,
        local_s3_server(Path(tmp) / "s3") as server,
    ):
        os.environ.update(server.env())
        bucket = "s3://bench-overlap"
        storage.ensure_bucket(bucket)
        frames_root = f"{bucket}/frames"
        size = upload_videos(frames_root, args.videos, args.frames, args.seed)
        print(
            f"case: {args.videos} videos x {args.frames} frames of {WIDTH}x{HEIGHT} JPEG "
            f"({size / args.videos / args.frames / 1024:.0f} KiB a frame) on S3 at {server.endpoint}; "
            f"backend {args.ms_per_frame:.0f} ms a frame"
        )
        manifest = f"{bucket}/plan/manifest.json"
        shards.plan_shards(frames_root, 1, manifest)
        serial = run_loop(bucket, manifest, frames_root, 0, args.ms_per_frame)
        pipelined = run_loop(bucket, manifest, frames_root, args.prefetch, args.ms_per_frame)
        same = all(
            storage.read_bytes(f"{bucket}/masks-prefetch-0/video{v:03d}.tar")
            == storage.read_bytes(f"{bucket}/masks-prefetch-{args.prefetch}/video{v:03d}.tar")
            for v in range(args.videos)
        )
        print(
            f"overhead: serial {serial:.1%}, pipelined {pipelined:.1%} (goal <= 5%); tars identical: {same}"
        )
        return 0 if pipelined <= 0.05 and same else 1


if __name__ == "__main__":
    sys.exit(main())
