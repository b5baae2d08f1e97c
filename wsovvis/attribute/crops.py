"""What CLIP sees of a tube: which frames, which square around the mask, and what happens to the background.

Frames: the frames where the mask is present are split into ``count`` runs of consecutive present frames (equal
lengths, in time order) and each run gives its largest-area frame, so the choice prefers large views of the object
and still covers the whole tube. Crop: the mask's box widened by a context margin on each side, then grown to a
square about the box's centre (never stretched: CLIP sees the object at its true aspect ratio), parts outside the
frame filled with CLIP's mean colour; outside the mask the crop is blurred (or filled), inside it is left as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

BACKGROUNDS = ("blur", "fill")


@dataclass(frozen=True)
class CropOptions:
    margin: float = 0.1  # context on each side of the box, as a fraction of the box's longer side
    background: str = "blur"  # outside the mask: 'blur' (Gaussian) or 'fill' (the fill colour)
    blur_radius: float = 0.05  # Gaussian radius as a fraction of the crop size
    fill: tuple[int, int, int] = (122, 116, 104)  # CLIP's mean colour (0.481, 0.458, 0.408) in 8 bits

    def __post_init__(self) -> None:
        if self.background not in BACKGROUNDS:
            raise ValueError(f"background must be one of {BACKGROUNDS}, got {self.background!r}")
        if self.margin < 0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")


def select_frames(areas: np.ndarray, count: int) -> list[int]:
    """Up to ``count`` frame indices (in time order) among those with a positive mask area.

    The present frames are split into ``count`` runs of nearly equal length; each run gives its largest-area
    frame (the earliest on ties).
    """
    present = np.flatnonzero(np.asarray(areas) > 0)
    if len(present) <= count:
        return present.tolist()
    return [int(run[np.argmax(np.asarray(areas)[run])]) for run in np.array_split(present, count)]


def area_weights(areas: np.ndarray, frames: list[int]) -> np.ndarray:
    """Mask-area weights (summing to 1) of the chosen frames."""
    chosen = np.asarray(areas, dtype=np.float64)[frames]
    return chosen / chosen.sum()


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1), exclusive ends, of a binary mask's pixels; None for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def square_region(box: tuple[int, int, int, int], margin: float) -> tuple[int, int, int]:
    """(x0, y0, side): the square centred on ``box`` whose side is its longer side plus ``margin`` on each end.

    The square may reach outside the frame; the crop pads those parts.
    """
    x0, y0, x1, y1 = box
    side = max(1, math.ceil(max(x1 - x0, y1 - y0) * (1 + 2 * margin)))
    left = math.floor((x0 + x1) / 2 - side / 2)
    top = math.floor((y0 + y1) / 2 - side / 2)
    return left, top, side


def _cut(array: np.ndarray, left: int, top: int, side: int, fill: np.ndarray) -> np.ndarray:
    """The ``side`` x ``side`` window of ``array`` at (left, top), padded with ``fill`` where it leaves the array."""
    height, width = array.shape[:2]
    out = np.empty((side, side, *array.shape[2:]), dtype=array.dtype)
    out[...] = fill
    sx0, sy0 = max(left, 0), max(top, 0)
    sx1, sy1 = min(left + side, width), min(top + side, height)
    if sx0 < sx1 and sy0 < sy1:
        out[sy0 - top : sy1 - top, sx0 - left : sx1 - left] = array[sy0:sy1, sx0:sx1]
    return out


def make_crop(frame: np.ndarray, mask: np.ndarray, size: int, options: CropOptions) -> np.ndarray | None:
    """The ``size`` x ``size`` RGB crop (uint8) of ``frame`` around ``mask``; None when the mask is empty."""
    box = mask_box(mask)
    if box is None:
        return None
    left, top, side = square_region(box, options.margin)
    fill = np.array(options.fill, dtype=np.uint8)
    image = Image.fromarray(_cut(frame, left, top, side, fill)).resize((size, size), Image.Resampling.BICUBIC)
    alpha = Image.fromarray(_cut(mask.astype(np.float32), left, top, side, np.float32(0)), mode="F")
    alpha_values = np.clip(np.asarray(alpha.resize((size, size), Image.Resampling.BILINEAR)), 0.0, 1.0)[
        ..., None
    ]
    if options.background == "blur":
        background = np.asarray(
            image.filter(ImageFilter.GaussianBlur(options.blur_radius * size)), np.float32
        )
    else:
        background = np.broadcast_to(fill.astype(np.float32), (size, size, 3))
    blended = alpha_values * np.asarray(image, np.float32) + (1.0 - alpha_values) * background
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
