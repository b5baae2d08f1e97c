"""Masks as COCO run-length encodings: one pass over an index map encodes every instance in it."""

from __future__ import annotations

from typing import Any

import msgspec
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


def decode(rle: RLE | Rle) -> np.ndarray:
    """Binary mask (uint8, H x W) of a compressed or uncompressed RLE."""
    if isinstance(rle, Rle):
        rle = {"size": list(rle.size), "counts": rle.counts}
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


class Rle(msgspec.Struct, gc=False):
    """One frame's mask as a YTVIS file holds it: [height, width] and COCO counts (a compressed string, or a list
    of runs as uncompressed RLE). Decoded straight from JSON by msgspec, which checks the types."""

    size: tuple[int, int]
    counts: str | list[int]


# A compressed RLE string (pycocotools' rleToString) writes each number in 5-bit groups, low first, one character
# per group: the group plus 48 ('0'), plus 32 when more groups follow; the last group's 0x10 bit is the sign.
# From the fourth number on, a number is the difference to the one two before it.
_FIRST, _LAST = ord("0"), ord("o")
_GOES_ON = ord("P")  # characters from here up carry the continuation bit
# Characters of a string, checked a few hundred strings at a time: small buffers reuse freed memory, where one
# buffer of every string (tens of MB) costs more in page faults than the arithmetic.
_CHARS_PER_CHECK = 1 << 18
# pycocotools shifts each group into a C int: a number of more than 6 groups overflows it (undefined behaviour).
_MAX_GROUPS = 6
_NO_MINIMUM = np.iinfo(np.int64).max


def _string_problem(counts: str) -> str:
    """Why a compressed RLE string is refused by the character checks (see :func:`check_strings`)."""
    bad = next((c for c in counts if not _FIRST <= ord(c) <= _LAST), None)
    if bad is not None:
        return f"character {bad!r}: expected '0'..'o', as pycocotools encodes"
    if not counts:
        return "it is empty"
    if ord(counts[-1]) >= _GOES_ON:
        return f"it ends inside a number, with {counts[-1]!r}"
    raise AssertionError(f"{counts!r} passes the character checks")


_TOO_LONG = f"a number of more than {_MAX_GROUPS} characters"


def check_strings(strings: list[str], pixels: np.ndarray) -> tuple[np.ndarray, int | None, str]:
    """Decode COCO compressed RLE strings together with numpy, as pycocotools' ``rleFrString`` does, and check
    that pycocotools can use each one safely: characters '0'..'o', the last one ending a number (else its decoder
    reads past the end of the string and writes past the end of its buffer), numbers of at most 6 characters, and
    runs that are never negative and add up to ``pixels[i]`` (height x width of string i's frame): runs that do
    not cover the frame make pycocotools' IoU and merge loop forever.

    Returns (the foreground area of each string, the index of the first string refused or None, why)."""
    areas = np.zeros(len(strings), dtype=np.int64)
    if not strings:
        return areas, None, ""
    lengths = np.fromiter(map(len, strings), dtype=np.int64, count=len(strings))
    ends = np.cumsum(lengths)
    bounds = np.searchsorted(ends, np.arange(_CHARS_PER_CHECK, int(ends[-1]), _CHARS_PER_CHECK))
    bounds = np.unique(np.concatenate(([0], bounds + 1, [len(strings)]))).tolist()
    scratch = _Scratch(int(np.diff(np.concatenate(([0], ends[np.array(bounds[1:]) - 1]))).max()))
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        found = _check_chunk(
            strings[start:stop], lengths[start:stop], pixels[start:stop], areas[start:stop], scratch
        )
        if found is not None:
            return areas, start + found[0], found[1]
    return areas, None, ""


class _Scratch:
    """Work arrays for the chunks of one check, allocated once: a fresh allocation per chunk costs more in page
    faults than the arithmetic."""

    def __init__(self, chars: int) -> None:
        self.flags = np.empty(chars, dtype=bool)
        self.small = np.empty(chars, dtype=np.uint8)
        self.wide = np.empty(chars, dtype=np.int32)
        self.numbers = np.empty(chars, dtype=np.int32)
        self.sums = np.empty(chars // 2 + 3, dtype=np.int64)


def _check_chunk(
    strings: list[str], lengths: np.ndarray, pixels: np.ndarray, areas: np.ndarray, scratch: _Scratch
) -> tuple[int, str] | None:
    """:func:`check_strings` for a few strings, their areas written into ``areas``: (index, problem) or None."""
    joined = "".join(strings)
    char_end = np.cumsum(lengths)
    if not joined.isascii() or not lengths.all():
        return _first_bad(strings)
    codes = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
    if codes.min() < _FIRST or codes.max() > _LAST or codes[char_end - 1].max() >= _GOES_ON:
        return _first_bad(strings)
    size = codes.size
    # Characters that carry the continuation bit are few (numbers of one character are the rule): each number's
    # value is its last character's, plus the groups before it where there are any.
    goes_on = np.greater_equal(codes, _GOES_ON, out=scratch.flags[:size])
    continued = np.flatnonzero(goes_on)
    # a number of one character: its low 5 bits, sign-extended from the fifth
    single = np.subtract(codes, np.uint8(_FIRST), out=scratch.small[:size])
    single &= 0x1F
    single ^= 0x10
    values = scratch.wide[:size]
    np.copyto(values, single.view(np.int8))
    values -= 0x10
    numbers = lengths
    if continued.size:
        # runs of continuation characters: each starts a number that ends right after it
        first = np.flatnonzero(np.concatenate(([True], continued[1:] != continued[:-1] + 1)))
        run_start = continued[first]
        run_length = np.diff(np.append(first, continued.size))
        if run_length.max() >= _MAX_GROUPS:
            too_long = run_start[np.argmax(run_length >= _MAX_GROUPS)]
            return int(np.searchsorted(char_end, too_long, side="right")), _TOO_LONG
        shift = 5 * (continued - np.repeat(run_start, run_length))
        low = (codes[continued].astype(np.int64) - _FIRST) & 0x1F
        number_end = run_start + run_length
        last = codes[number_end].astype(np.int64) - _FIRST
        value = np.add.reduceat(low << shift, first) | ((last & 0x1F) << (5 * run_length))
        negative = (last & 0x10) != 0
        value[negative] -= np.int64(1) << (5 * (run_length[negative] + 1))
        values[number_end] = value
        np.logical_not(goes_on, out=goes_on)
        values = np.compress(goes_on, values, out=scratch.numbers[: size - continued.size])
        # numbers per string: its characters less its continuation characters
        numbers = lengths - np.diff(np.searchsorted(continued, char_end), prepend=0)
    return _check_runs(values, numbers, pixels, areas, scratch.sums)


def _check_runs(
    values: np.ndarray, numbers: np.ndarray, pixels: np.ndarray, areas: np.ndarray, scratch: np.ndarray
) -> tuple[int, str] | None:
    """Runs from the decoded numbers of some strings laid end to end (``numbers`` each, at least one), checked
    and summed, their foreground areas written into ``areas``; ``scratch``: room for half the numbers and 3.

    Number m of a string is run m itself for m <= 2 and run m - 2 plus it after that: a string's odd runs are the
    running sum of its odd numbers, its even runs from the third on that of its even numbers from the third on.
    Running sums are taken over the buffer's odd and its even positions at once (two columns, position p at row
    p // 2 of column p % 2, shifted by one so that a zero precedes everything), each string's part less the sum
    before it; foreground runs are the odd ones."""
    first = np.cumsum(numbers) - numbers
    start = first + 1  # shifted positions of each string's first number, and past its last
    end = start + numbers
    totals = values[first].astype(np.int64)  # run 0, which no running sum holds
    lowest = np.minimum(totals, 0)
    for column in (0, 1):
        part = values[1::2] if column == 0 else values[0::2]  # shifted positions 2i (i >= 1) or 2i + 1
        offset = 1 - column
        # running sums of the column, then one neutral element (see the reductions below)
        sums = scratch[: offset + part.size + 1]
        sums[:offset] = 0
        np.cumsum(part, dtype=np.int64, out=sums[offset : offset + part.size])
        lo = (start - column + 1) // 2  # the string's rows in this column: lo .. hi - 1
        hi = (end - column + 1) // 2
        present = hi > lo
        count = hi - lo
        # the sum before the string's chain: at its first number where the column holds it (run 0 is in no
        # chain), else at the position before it
        base = sums[np.where(start % 2 == column, start, start - 1) // 2]
        # reduceat runs from each index to the next (the strings' rows are consecutive), the last to the end
        sums[-1] = 0
        chain_sum = np.add.reduceat(sums, lo) - count * base
        sums[-1] = _NO_MINIMUM
        chain_min = np.minimum.reduceat(sums, lo) - base
        chain_sum[~present] = 0
        chain_min[~present] = 0
        totals += chain_sum
        np.minimum(lowest, chain_min, out=lowest)
        # this column holds the string's odd numbers, its foreground runs
        areas += np.where(start % 2 != column, chain_sum, 0)
    bad = (lowest < 0) | (totals != pixels)
    if not bad.any():
        return None
    index = int(np.argmax(bad))
    if lowest[index] < 0:
        return index, "a run is negative"
    return index, f"its runs add up to {int(totals[index])} pixels, not the frame's {int(pixels[index])}"


def _first_bad(strings: list[str]) -> tuple[int, str]:
    """The first string the character checks refuse, and why (the strings looked at one by one)."""
    for index, counts in enumerate(strings):
        if not counts or not counts.isascii() or any(not _FIRST <= ord(c) <= _LAST for c in counts):
            return index, _string_problem(counts)
        if ord(counts[-1]) >= _GOES_ON:
            return index, _string_problem(counts)
    raise AssertionError("no string is refused")
