"""Benchmark: CLIP image-encoder throughput of `wsovvis attribute`, batched against one crop at a time.

A ViT-B/32-sized open_clip model (ViT-B-32's architecture, 224-pixel crops) with random weights, saved to a
temporary checkpoint and loaded the way `wsovvis attribute` loads real weights. The same crops (cut from random
frames around random masks, as the stage cuts them) are embedded in batches of --batch and then one at a time, in
the same run; both rates and their ratio are printed.

    python benchmarks/attribute.py --crops 128 --batch 64 [--threads N] [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from wsovvis.attribute.clip import ClipEncoder, fetch_weights
from wsovvis.attribute.crops import CropOptions, make_crop

MODEL = "ViT-B-32"


def random_crops(count: int, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    crops = []
    while len(crops) < count:
        frame = rng.integers(0, 255, size=(360, 640, 3), dtype=np.uint8)
        mask = np.zeros(frame.shape[:2], dtype=bool)
        y, x = rng.integers(0, 300), rng.integers(0, 560)
        mask[y : y + rng.integers(10, 60), x : x + rng.integers(10, 80)] = True
        crops.append(make_crop(frame, mask, size, CropOptions()))
    return np.stack(crops)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args(argv)

    import open_clip
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="wsovvis-bench-attribute-") as tmp:
        weights = Path(tmp) / "vit-b-32-random.pt"
        torch.manual_seed(0)
        torch.save(open_clip.create_model(MODEL, pretrained=None).state_dict(), weights)
        encoder = ClipEncoder(MODEL, fetch_weights(str(weights), tmp), args.device, tmp)
    params = sum(p.numel() for p in encoder.net.visual.parameters())
    crops = random_crops(args.crops, encoder.image_size, seed=0)
    encoder.encode_images(crops[: min(args.batch, 8)])  # warm-up: first-call allocations and kernel choice

    started = time.perf_counter()
    batched = [encoder.encode_images(crops[i : i + args.batch]) for i in range(0, len(crops), args.batch)]
    batched_s = time.perf_counter() - started
    started = time.perf_counter()
    single = [encoder.encode_images(crops[i : i + 1]) for i in range(len(crops))]
    single_s = time.perf_counter() - started

    gap = float(np.abs(np.concatenate(batched) - np.concatenate(single)).max())
    print(
        f"model {MODEL} (image tower {params / 1e6:.1f}M parameters, random weights), {encoder.image_size}px crops"
    )
    print(
        f"torch {torch.__version__} on {args.device}, {torch.get_num_threads()} CPU threads, {len(crops)} crops"
    )
    print(f"batched (--batch {args.batch}): {len(crops) / batched_s:8.2f} crops/s  ({batched_s:.2f} s)")
    print(f"one crop at a time:      {len(crops) / single_s:8.2f} crops/s  ({single_s:.2f} s)")
    print(f"batched / one at a time: {single_s / batched_s:.2f}x; largest embedding difference {gap:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
