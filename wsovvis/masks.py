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
import logging
import os
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from wsovvis import jsonio, names, storage
from wsovvis.errors import InputError

log = logging.getLogger(__name__)

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


class MaskSizeError(ValueError):
    pass


def decode_png(data: bytes, size: tuple[int, int] | None = None) -> np.ndarray:
    """The index map of a palette or L PNG of ``size`` (height, width) when given.

    The format, mode and size are checked from the header before any pixel is decoded, so a file that is no PNG
    (a JPEG named ``.png``) or claims another size (a decompression bomb) costs nothing. Raises
    NotAnIndexMapError or MaskSizeError; Pillow's own errors for damaged files pass through.
    """
    with Image.open(io.BytesIO(data)) as image:
        if image.format != "PNG":
            raise NotAnIndexMapError(
                f"the file is {image.format or 'not an image format Pillow knows'}, not a PNG"
            )
        if image.mode not in ("P", "L"):
            raise NotAnIndexMapError(f"PNG mode {image.mode} is not an index map (8-bit palette or L)")
        if size is not None and image.size != (size[1], size[0]):
            raise MaskSizeError(f"mask is {image.size[0]}x{image.size[1]}, frames are {size[1]}x{size[0]}")
        return np.asarray(image)


class UnsafeArchiveError(ValueError):
    """A mask tar over the limits of its video (too many members, a member too big): the video is skipped."""


@dataclass(frozen=True)
class TarLimits:
    """What one video's mask tar may hold: a little more than one index-map PNG per frame and a sidecar."""

    max_members: int
    max_member_bytes: int

    @classmethod
    def for_video(cls, frames: int, height: int, width: int) -> TarLimits:
        # An 8-bit PNG of the frame stored without compression, plus headers and chunk overhead.
        png_bound = height * (width + 1) + (height * width) // 100 + 65536
        return cls(max_members=2 * frames + 16, max_member_bytes=png_bound)

    @property
    def max_total_bytes(self) -> int:
        return self.max_members * (self.max_member_bytes + 1024)


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
    members = [(mask_name(frame), pngs[frame]) for frame in names.sorted_names(list(pngs))]
    if sidecar is not None:
        members.append((SCORES_NAME, (json.dumps(sidecar, sort_keys=True) + "\n").encode()))
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(f"{video_id}/{name}")
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


_COMPRESSED = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"))


def _member_problem(member: tarfile.TarInfo, video_id: str) -> str | None:
    """Why a tar member is not used (None: it is a mask or sidecar candidate). Folders are not reported."""
    if not member.isfile():
        kinds = {
            tarfile.SYMTYPE: "symbolic link",
            tarfile.LNKTYPE: "hard link",
            tarfile.CHRTYPE: "device",
            tarfile.BLKTYPE: "device",
            tarfile.FIFOTYPE: "FIFO",
        }
        return f"a {kinds.get(member.type, 'special file')}, not a regular file"
    path = PurePosixPath(member.name)
    if path.is_absolute():
        return "an absolute path"
    parts = [p for p in path.parts if p != "."]
    if ".." in parts:
        return "a path that climbs out ('..')"
    if not parts or len(parts) > 2 or (len(parts) == 2 and parts[0] != video_id):
        return f"neither at the top nor under '{video_id}/'"
    try:
        names.check_name(parts[-1])
    except names.InvalidNameError as exc:
        return f"an unusable name ({exc})"
    return None


def unpack_tar(
    video_id: str, data: bytes, limits: TarLimits | None = None, source: str | None = None
) -> VideoMasks:
    """The masks of one video's tar; members that are not plain files where they belong are skipped with a warning.

    A compressed tar, and with ``limits`` a tar with more members or a bigger member than the video can need,
    raise UnsafeArchiveError before anything is decompressed or that member is read.
    """
    source = source or f"{video_id}{TAR_SUFFIX}"
    for magic, kind in _COMPRESSED:
        if data.startswith(magic):
            raise UnsafeArchiveError(
                f"a {kind}-compressed tar; mask tars are plain, and a compressed one could expand without bound"
            )
    masks = VideoMasks(video_id)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for count, member in enumerate(tar, start=1):
            if limits is not None and count > limits.max_members:
                raise UnsafeArchiveError(
                    f"more than {limits.max_members} members, more than this video's masks can need"
                )
            if member.isdir():
                continue
            problem = _member_problem(member, video_id)
            if problem:
                log.warning("%s: member %s skipped: it is %s", source, names.shown(member.name), problem)
                continue
            if limits is not None and member.size > limits.max_member_bytes:
                raise UnsafeArchiveError(
                    f"member {names.shown(member.name)} claims {member.size} bytes, over the "
                    f"{limits.max_member_bytes} a mask of this video's frame size can take"
                )
            name = PurePosixPath(member.name).name
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


def read_video_masks(video_id: str, source: str, limits: TarLimits | None = None) -> VideoMasks:
    """Load one video's masks from a folder or a tar, local or S3 (a tar over ``limits`` is refused unread)."""
    if source.endswith(TAR_SUFFIX):
        if limits is not None and (size := storage.size(source)) > limits.max_total_bytes:
            raise UnsafeArchiveError(
                f"{size} bytes, over the {limits.max_total_bytes} this video's masks can take"
            )
        return unpack_tar(video_id, storage.read_bytes(source), limits, source)
    masks = VideoMasks(video_id)
    _, files = storage.listdir(source)
    if limits is not None and len(files) > limits.max_members:
        raise UnsafeArchiveError(
            f"{len(files)} files, more than the {limits.max_members} this video's masks can need"
        )
    for name in files:
        frame = frame_of(name)
        if name != SCORES_NAME and frame is None:
            continue
        path = storage.join(source, name)
        if limits is not None and (size := storage.size(path)) > limits.max_member_bytes:
            raise UnsafeArchiveError(
                f"{name} has {size} bytes, over the {limits.max_member_bytes} a mask of this video's frame size "
                "can take"
            )
        if frame is None:
            masks.sidecar = jsonio.read_json(path)
        else:
            masks.pngs[frame] = storage.read_bytes(path)
    return masks


def list_frames(frames_dir: str) -> list[str]:
    """Frame file names (jpg/jpeg/png) of one video folder, local or S3, in numeric-aware order.

    Names that cannot travel through every stage (not UTF-8, holding a '\\') are skipped with a warning;
    two files for one frame (``00001.jpg`` and ``00001.png``) raise InputError naming both.
    """
    _, files = storage.listdir(frames_dir)
    frames: dict[str, str] = {}
    for name in files:
        if not name.lower().endswith(FRAME_SUFFIXES):
            continue
        try:
            names.check_name(name)
        except names.InvalidNameError as exc:
            log.warning("%s: frame skipped: %s", frames_dir, exc)
            continue
        stem = os.path.splitext(name)[0]
        if stem in frames:
            raise InputError(
                f"{frames_dir}: {frames[stem]} and {name} are both frame '{stem}'; keep one of them"
            )
        frames[stem] = name
    return [frames[stem] for stem in names.sorted_names(list(frames))]
