"""Per-video pseudo masks as VideoCutLER writes them, and the one-tar-per-video container that travels to S3.

A video's masks are ``mask_<frame>.png`` index maps (8-bit palette or L: 0 background, k = k-th kept instance,
the same k across the video) plus an optional ``scores.json`` sidecar::

    {"video_id": "...", "num_instances": 2, "scores": {"1": 0.93, "2": 0.71}}

They live either in a folder ``<root>/<video_id>/`` or packed as ``<root>/<video_id>.tar`` (members may sit
under a ``<video_id>/`` folder inside the tar). A sidecar with ``num_instances`` 0 and no PNGs records that
mask generation ran and found nothing.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from wsovvis import storage

MASK_PREFIX = "mask_"
MASK_SUFFIX = ".png"
SCORES_NAME = "scores.json"
TAR_SUFFIX = ".tar"
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


def _voc_palette() -> list[int]:
    palette = []
    for index in range(256):
        r = g = b = 0
        c = index
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette += [r, g, b]
    return palette


PALETTE = _voc_palette()


def mask_name(frame: str) -> str:
    return f"{MASK_PREFIX}{frame}{MASK_SUFFIX}"


def frame_of(mask_file: str) -> str | None:
    """The frame stem of ``mask_<frame>.png``, or None for other files."""
    name = os.path.basename(mask_file)
    if name.startswith(MASK_PREFIX) and name.endswith(MASK_SUFFIX):
        return name[len(MASK_PREFIX) : -len(MASK_SUFFIX)]
    return None


def encode_png(index_map: np.ndarray) -> bytes:
    """An 8-bit palette PNG of an index map (values 0..255)."""
    if index_map.ndim != 2 or index_map.max(initial=0) > 255 or index_map.min(initial=0) < 0:
        raise ValueError("an index map is 2-D with values in 0..255")
    image = Image.fromarray(index_map.astype(np.uint8), mode="L").convert("P")
    image.putpalette(PALETTE)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class NotAnIndexMapError(ValueError):
    pass


def decode_png(data: bytes) -> np.ndarray:
    """The index map of a palette or L PNG; other modes raise NotAnIndexMapError."""
    with Image.open(io.BytesIO(data)) as image:
        if image.mode not in ("P", "L"):
            raise NotAnIndexMapError(f"PNG mode {image.mode} is not an index map (8-bit palette or L)")
        return np.asarray(image)


@dataclass
class VideoMasks:
    """The mask PNGs of one video (frame stem -> PNG bytes) and its sidecar, if any."""

    video_id: str
    pngs: dict[str, bytes] = field(default_factory=dict)
    sidecar: dict[str, Any] | None = None

    @property
    def scores(self) -> dict[int, float]:
        if not self.sidecar:
            return {}
        return {int(k): float(v) for k, v in self.sidecar.get("scores", {}).items()}


def pack_tar(video_id: str, pngs: Mapping[str, bytes], sidecar: dict[str, Any] | None) -> bytes:
    """A deterministic tar (sorted members, zero mtimes and owners) of a video's masks and sidecar."""
    buffer = io.BytesIO()
    members: list[tuple[str, bytes]] = [(mask_name(frame), pngs[frame]) for frame in sorted(pngs)]
    if sidecar is not None:
        members.append((SCORES_NAME, (json.dumps(sidecar, sort_keys=True) + "\n").encode()))
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(f"{video_id}/{name}")
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def unpack_tar(video_id: str, data: bytes) -> VideoMasks:
    masks = VideoMasks(video_id)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for member in tar:
            if not member.isfile():
                continue
            name = os.path.basename(member.name)
            handle = tar.extractfile(member)
            assert handle is not None
            if name == SCORES_NAME:
                masks.sidecar = json.loads(handle.read())
            elif (frame := frame_of(name)) is not None:
                masks.pngs[frame] = handle.read()
    return masks


def is_bookkeeping(name: str) -> bool:
    """Entries of a mask root named ``_*`` or ``.*`` (done markers, reports, partial uploads) are not videos."""
    return name.startswith(("_", "."))


def list_mask_videos(mask_root: str) -> dict[str, str]:
    """Video id -> source (a folder or a .tar) under ``mask_root``; a tar wins over a folder of the same id."""
    dirs, files = storage.listdir(mask_root)
    dirs = [d for d in dirs if not is_bookkeeping(d)]
    files = [f for f in files if not is_bookkeeping(f)]
    sources = {d: storage.join(mask_root, d) for d in dirs}
    for name in files:
        if name.endswith(TAR_SUFFIX):
            sources[name[: -len(TAR_SUFFIX)]] = storage.join(mask_root, name)
    return dict(sorted(sources.items()))


def read_video_masks(video_id: str, source: str) -> VideoMasks:
    """Load one video's masks from a folder or a tar, local or S3."""
    if source.endswith(TAR_SUFFIX):
        return unpack_tar(video_id, storage.read_bytes(source))
    masks = VideoMasks(video_id)
    _, files = storage.listdir(source)
    for name in files:
        if name == SCORES_NAME:
            masks.sidecar = storage.read_json(storage.join(source, name))
        elif (frame := frame_of(name)) is not None:
            masks.pngs[frame] = storage.read_bytes(storage.join(source, name))
    return masks


def list_frames(frames_dir: str) -> list[str]:
    """Sorted frame file names (jpg/jpeg/png) of one video folder, local or S3."""
    _, files = storage.listdir(frames_dir)
    return [f for f in files if f.lower().endswith(FRAME_SUFFIXES)]
