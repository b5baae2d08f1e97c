"""synth: a small static-camera video dataset with exact ground truth, for demos and tests.

Each video is a textured static background (plus a little sensor noise) with a few textured shapes moving
across it in straight lines; some enter or leave the frame part way. Later objects occlude earlier ones, and
the ground truth holds each object's visible part. The shape is the object's category; categories carry an
LV-VIS ``partition`` (0-1 base, 2-3 novel) so LV-VIS-style evaluation works on it.

Written: ``<root>/frames/<video_id>/<frame:05d>.jpg`` and ``<root>/gt.json`` (YTVIS dataset, file names
relative to ``<root>/frames``). The same seed and arguments give the same bytes.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from wsovvis import rle, storage, ytvis
from wsovvis.cliutil import add_flag, positive_int
from wsovvis.errors import UsageError

log = logging.getLogger(__name__)

CATEGORIES: tuple[dict[str, object], ...] = (
    {"id": 1, "name": "disc", "partition": 0},
    {"id": 2, "name": "box", "partition": 1},
    {"id": 3, "name": "triangle", "partition": 2},
    {"id": 4, "name": "diamond", "partition": 3},
)
FRAME_SIZES = ((96, 128), (120, 160), (180, 240), (240, 320))
JPEG_QUALITY = 92


@dataclass(frozen=True)
class SynthVideo:
    video_id: str  # folder name under frames/
    ytvis_id: int  # id in gt.json
    frame_names: tuple[str, ...]  # file names inside the video folder
    height: int
    width: int
    num_objects: int


@dataclass(frozen=True)
class SynthDataset:
    frames_root: str
    gt_json: str
    videos: tuple[SynthVideo, ...]


@dataclass(frozen=True)
class _MovingObject:
    category_id: int
    center: tuple[float, float]  # (x, y) at frame 0
    velocity: tuple[float, float]  # pixels per frame
    half_size: tuple[float, float]  # (half width, half height)
    color: tuple[int, int, int]
    stripe_period: float
    stripe_angle: float


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    coarse = rng.uniform(70, 180, size=(4, 5, 3)).astype(np.float32)
    smooth = np.asarray(
        Image.fromarray(coarse.astype(np.uint8)).resize((width, height), Image.BICUBIC), np.float32
    )
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    period = rng.uniform(10, 24)
    angle = rng.uniform(0, np.pi)
    stripes = 14 * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
    grain = rng.normal(0, 6, size=(height, width, 1)).astype(np.float32)
    return np.clip(smooth + stripes[..., None] + grain, 0, 255)


def _random_object(rng: np.random.Generator, height: int, width: int, length: int) -> _MovingObject:
    half_w = rng.uniform(0.04, 0.15) * width
    half_h = half_w * rng.uniform(0.7, 1.4)
    # Fast enough to clear its own footprint over the video (a static-camera background model needs that),
    # sometimes starting or ending outside the frame.
    speed = max(rng.uniform(1.5, 5.0), 5.0 * max(half_w, half_h) / length)
    angle = rng.uniform(0, 2 * np.pi)
    velocity = (speed * np.cos(angle), speed * np.sin(angle))
    midpoint = (rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height)
    offset = rng.uniform(0.0, 1.0) * (length - 1)
    center = (midpoint[0] - velocity[0] * offset, midpoint[1] - velocity[1] * offset)
    hue = rng.uniform(0, 1)
    color = tuple(int(c) for c in 255 * np.clip(np.abs((hue * 6 + np.array([0, 4, 2])) % 6 - 3) - 1, 0.1, 1))
    return _MovingObject(
        category_id=int(rng.integers(1, len(CATEGORIES) + 1)),
        center=center,
        velocity=velocity,
        half_size=(half_w, half_h),
        color=color,  # type: ignore[arg-type]
        stripe_period=rng.uniform(5, 12),
        stripe_angle=rng.uniform(0, np.pi),
    )


def _shape_mask(obj: _MovingObject, frame: int, height: int, width: int) -> np.ndarray:
    cx = obj.center[0] + obj.velocity[0] * frame
    cy = obj.center[1] + obj.velocity[1] * frame
    hw, hh = obj.half_size
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    name = CATEGORIES[obj.category_id - 1]["name"]
    if name == "disc":
        draw.ellipse([cx - hw, cy - hh, cx + hw, cy + hh], fill=1)
    elif name == "box":
        draw.rectangle([cx - hw, cy - hh, cx + hw, cy + hh], fill=1)
    elif name == "triangle":
        draw.polygon([(cx, cy - hh), (cx + hw, cy + hh), (cx - hw, cy + hh)], fill=1)
    else:
        draw.polygon([(cx, cy - hh), (cx + hw, cy), (cx, cy + hh), (cx - hw, cy)], fill=1)
    return np.asarray(canvas, dtype=bool)


def _paint_object(image: np.ndarray, obj: _MovingObject, frame: int, shape: np.ndarray) -> None:
    """Paint the object's colour with stripes that move with it (texture in object coordinates)."""
    ys, xs = np.nonzero(shape)
    x = xs.astype(np.float32) - (obj.center[0] + obj.velocity[0] * frame)
    y = ys.astype(np.float32) - (obj.center[1] + obj.velocity[1] * frame)
    phase = x * np.cos(obj.stripe_angle) + y * np.sin(obj.stripe_angle)
    shade = 0.75 + 0.25 * np.sign(np.sin(2 * np.pi * phase / obj.stripe_period))
    image[ys, xs] = np.asarray(obj.color, np.float32)[None, :] * shade[:, None]


def _jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def make_dataset(
    root: str | os.PathLike[str],
    num_videos: int = 6,
    seed: int = 0,
    *,
    min_frames: int = 12,
    max_frames: int = 24,
    min_objects: int = 1,
    max_objects: int = 3,
) -> SynthDataset:
    """Write ``num_videos`` synthetic videos and their GT under ``root`` (local path or s3:// URI)."""
    if num_videos < 1 or not 2 <= min_frames <= max_frames or not 0 <= min_objects <= max_objects:
        raise UsageError(
            "synth: need num_videos >= 1, 2 <= min_frames <= max_frames, 0 <= min_objects <= max_objects"
        )
    root = os.fspath(root)
    frames_root = storage.join(root, "frames")
    gt_json = storage.join(root, "gt.json")
    rng = np.random.default_rng(seed)
    videos: list[SynthVideo] = []
    annotations: list[dict[str, object]] = []
    for index in range(num_videos):
        height, width = FRAME_SIZES[int(rng.integers(len(FRAME_SIZES)))]
        length = int(rng.integers(min_frames, max_frames + 1))
        video = SynthVideo(
            video_id=f"synth{index:03d}",
            ytvis_id=index + 1,
            frame_names=tuple(f"{frame:05d}.jpg" for frame in range(length)),
            height=height,
            width=width,
            num_objects=int(rng.integers(min_objects, max_objects + 1)),
        )
        objects = [_random_object(rng, height, width, length) for _ in range(video.num_objects)]
        background = _background(rng, height, width)
        visible: list[list[np.ndarray]] = [[] for _ in objects]
        for frame, name in enumerate(video.frame_names):
            image = background + rng.normal(0, 2, size=background.shape).astype(np.float32)
            shapes = [_shape_mask(obj, frame, height, width) for obj in objects]
            for obj, shape in zip(objects, shapes, strict=True):
                _paint_object(image, obj, frame, shape)
            covered_later = np.zeros((height, width), dtype=bool)
            for obj_index in reversed(range(len(objects))):
                visible[obj_index].append(shapes[obj_index] & ~covered_later)
                covered_later |= shapes[obj_index]
            pixels = np.clip(image, 0, 255).astype(np.uint8)
            storage.write_bytes(storage.join(frames_root, video.video_id, name), _jpeg(pixels))
        for obj, masks in zip(objects, visible, strict=True):
            segmentations = [rle.encode_mask(m) if m.any() else None for m in masks]
            present = [s for s in segmentations if s is not None]
            if not present:
                continue
            boxes, areas = rle.boxes_and_areas(present)
            box_iter, area_iter = iter(boxes), iter(areas)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "video_id": video.ytvis_id,
                    "category_id": obj.category_id,
                    "iscrowd": 0,
                    "segmentations": segmentations,
                    "bboxes": [next(box_iter) if s is not None else None for s in segmentations],
                    "areas": [next(area_iter) if s is not None else None for s in segmentations],
                }
            )
        videos.append(video)
    ytvis.write_dataset(
        gt_json,
        {
            "info": {"description": "wsovvis synthetic static-camera videos", "seed": seed},
            "categories": [dict(c) for c in CATEGORIES],
            "annotations": annotations,
            "videos": [
                {
                    "id": v.ytvis_id,
                    "file_names": [f"{v.video_id}/{n}" for n in v.frame_names],
                    "height": v.height,
                    "width": v.width,
                    "length": len(v.frame_names),
                }
                for v in videos
            ],
        },
    )
    log.info(
        "synth: wrote %d videos, %d objects to %s (GT %s)",
        len(videos),
        len(annotations),
        frames_root,
        gt_json,
    )
    return SynthDataset(frames_root=frames_root, gt_json=gt_json, videos=tuple(videos))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="write a small synthetic static-camera video dataset with GT",
        description="Write synthetic videos (<out>/frames/<video_id>/<frame>.jpg) and their YTVIS GT (<out>/gt.json).",
    )
    add_flag(parser, "--out", required=True, help="output folder or s3:// prefix")
    add_flag(parser, "--num_videos", type=positive_int, default=6)
    add_flag(parser, "--seed", type=int, default=0)
    add_flag(parser, "--min_frames", type=positive_int, default=12)
    add_flag(parser, "--max_frames", type=positive_int, default=24)
    add_flag(parser, "--min_objects", type=int, default=1)
    add_flag(parser, "--max_objects", type=int, default=3)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    make_dataset(
        args.out,
        args.num_videos,
        args.seed,
        min_frames=args.min_frames,
        max_frames=args.max_frames,
        min_objects=args.min_objects,
        max_objects=args.max_objects,
    )
    return 0
