"""Masks as COCO run-length encodings: one pass over an index map encodes every instance in it."""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

RLE = dict[str, Any]


def _to_str_counts(rles: list[RLE]) -> list[RLE]:
    for rle in rles:
        if isinstance(rle["counts"], bytes):
            rle["counts"] = rle["counts"].decode("ascii")
    return rles


def encode_index_map(index_map: np.ndarray) -> dict[int, RLE]:
    """Compressed RLE (counts as str) of every nonzero value of a 2-D index map, keyed by value.

    The map is scanned once in COCO's column-major order into runs of equal values; each instance's RLE is then
    derived from that run list (far shorter than the pixel count), not from a full-frame mask of its own. Run
    boundaries are found on the row-major array (vertical neighbours, then column wrap-arounds) to avoid a
    full transposed copy of the map.
    """
    if index_map.ndim != 2:
        raise ValueError(f"index map must be 2-D, got shape {index_map.shape}")
    height, width = index_map.shape
    within_column = np.flatnonzero(index_map[1:, :] != index_map[:-1, :])
    rows, cols = np.divmod(within_column, width)
    column_starts = (np.flatnonzero(index_map[-1, :-1] != index_map[0, 1:]) + 1) * height
    change = np.sort(np.concatenate((cols * height + rows + 1, column_starts)))
    starts = np.concatenate(([0], change))
    lengths = np.diff(np.concatenate((starts, [height * width])))
    values = index_map[starts % height, starts // height]
    uncompressed = []
    ids = [int(v) for v in np.unique(values) if v != 0]
    for value in ids:
        is_value = values == value
        boundaries = np.flatnonzero(is_value[1:] != is_value[:-1]) + 1
        segment_starts = np.concatenate(([0], boundaries))
        counts = np.add.reduceat(lengths, segment_starts).tolist()
        if is_value[0]:
            counts.insert(0, 0)
        uncompressed.append({"size": [height, width], "counts": counts})
    if not ids:
        return {}
    compressed = mask_utils.frPyObjects(uncompressed, height, width)
    return dict(zip(ids, _to_str_counts(compressed), strict=True))


def encode_mask(mask: np.ndarray) -> RLE:
    """Compressed RLE (counts as str) of one binary mask."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return _to_str_counts([rle])[0]


def decode(rle: RLE) -> np.ndarray:
    """Binary mask (uint8, H x W) of a compressed or uncompressed RLE."""
    height, width = rle["size"]
    if isinstance(rle["counts"], list):
        rle = mask_utils.frPyObjects(rle, height, width)
    elif isinstance(rle["counts"], str):
        rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return mask_utils.decode(rle)


def _as_bytes(rles: list[RLE]) -> list[RLE]:
    return [
        {
            "size": r["size"],
            "counts": r["counts"].encode("ascii") if isinstance(r["counts"], str) else r["counts"],
        }
        for r in rles
    ]


# pycocotools' area() sizes a helper array as uint8 from the count: under numpy 2 it fails past 255 masks.
_AREA_CHUNK = 255


def areas(rles: list[RLE]) -> np.ndarray:
    """Pixel areas (int64) of compressed RLEs (counts str or bytes), in as few C calls as pycocotools allows."""
    if not rles:
        return np.zeros(0, dtype=np.int64)
    chunks = [mask_utils.area(rles[i : i + _AREA_CHUNK]) for i in range(0, len(rles), _AREA_CHUNK)]
    return np.concatenate(chunks).astype(np.int64)


def boxes_and_areas(rles: list[RLE]) -> tuple[list[list[float]], list[int]]:
    """[x, y, w, h] boxes and pixel areas of compressed RLEs, in one C call each."""
    if not rles:
        return [], []
    encoded = _as_bytes(rles)
    boxes = mask_utils.toBbox(encoded).tolist()
    return boxes, areas(encoded).tolist()


def iou(a: RLE, b: RLE) -> float:
    """Intersection over union of two compressed RLEs of the same size."""
    return float(mask_utils.iou(_as_bytes([a]), _as_bytes([b]), [0])[0, 0])


def merge(rles: list[RLE]) -> RLE:
    """Union of compressed RLEs of the same size."""
    merged = mask_utils.merge(_as_bytes(rles), intersect=False)
    return _to_str_counts([merged])[0]
