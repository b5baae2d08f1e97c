"""The YouTube-VIS video AP/AR of youtubevos/cocoapi ``ytvoseval.py``, computed in bulk.

Same semantics as the official ``evaluate``/``accumulate``/``summarize`` (segm, default parameters):

- video IoU = sum over frames of |D∩G| / sum over frames of |D∪G| (frames where neither is present add
  nothing, a zero union gives 0); the union is |D| + |G| - |D∩G| summed over the frames, so only the
  intersections need RLE work: one pycocotools ``iou`` call per frame with the GT marked crowd gives
  |D∩G| / |D| for every pair at once.
- per (video, category) the results sorted by score (stable), the first 100 kept; greedy matching at the
  10 IoU thresholds, for all area ranges and thresholds at once (the loop runs over result ranks, over
  every (video, category) group together); ties go to the last GT in the official's order.
- object size = mean of the nonzero per-frame areas (GT: its ``areas`` field; results: mask areas).
- precision at 101 recall points with the right-to-left maximum envelope, recall at maxDets 1/10/100,
  -1 where a category has no GT in an area range; the 12 stats are means over the entries > -1.

Differences, all opt-in: ``class_agnostic`` counts every result whatever its category (the official with
``useCats=0`` silently drops results whose category is not a GT category); ``lvvis`` follows the LV-VIS
evaluator (areas truncated to int before averaging, crowd GT not ignored).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from wsovvis.evaluate.inputs import Detection, EvalInputs, GtObject
from wsovvis.logs import progress
from wsovvis.resources import fork_map, guided_slices
from wsovvis.rle import Rle

log = logging.getLogger(__name__)

IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETS = (1, 10, 100)
AREA_RANGES = ((0.0**2, 1e5**2), (0.0**2, 128.0**2), (128.0**2, 256.0**2), (256.0**2, 1e5**2))
AREA_LABELS = ("all", "small", "medium", "large")
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
# (average precision?, IoU threshold, area label, maxDets) of each stat, in the official's order.
STAT_SPECS = (
    (True, None, "all", 100),
    (True, 0.5, "all", 100),
    (True, 0.75, "all", 100),
    (True, None, "small", 100),
    (True, None, "medium", 100),
    (True, None, "large", 100),
    (False, None, "all", 1),
    (False, None, "all", 10),
    (False, None, "all", 100),
    (False, None, "small", 100),
    (False, None, "medium", 100),
    (False, None, "large", 100),
)
# Videos in the last, smallest pieces of the work (see guided_slices): about 10-20 ms of it each.
_SMALLEST_PIECE = 12


@dataclass(frozen=True)
class EvalOptions:
    class_agnostic: bool = False
    lvvis: bool = False


@dataclass
class Evaluation:
    """Accumulated arrays (the official's axis order) and what the report needs per video, category and object."""

    precision: np.ndarray  # [T, R, K, A] at maxDets 100, the only one the official's stats read
    recall: np.ndarray  # [T, K, A, M]
    category_ids: list[int]  # the K axis; [-1] when class-agnostic
    gt_counts: np.ndarray  # [K, A] GT objects that count (not ignored) per category and area range
    result_counts: np.ndarray  # [K] results kept (top 100 per video and category)
    per_video: list[dict[str, Any]]
    warnings: Counter[str]


# --------------------------------------------------------------------------------------------------- IoU


def _mean_nonzero(values: list[Any], truncate: bool) -> float:
    """The official's ``avg_area``: mean of the truthy entries (LV-VIS: after int()), 0 if none."""
    kept = [int(a) if truncate else a for a in values if a]
    if not kept:
        return 0.0
    if all(type(a) is int for a in kept):
        # Integer sums below 2**53 are exact in any order, so numpy's float sum is this one and the quotient is
        # rounded once, as here; a numpy call per object cost more than the rest of its bookkeeping.
        return sum(kept) / len(kept)
    return float(np.array(kept).mean())


@dataclass
class _Masks:
    """The per-frame masks of some objects, flattened: object i's frames are entries ``start[i]`` to
    ``start[i] + length[i] - 1`` of ``areas``. Objects come video by video (``video``: the video's position among
    those evaluated together); only objects of the same video and ``group`` (say, category) are compared."""

    segmentations: list[list[Rle | None]]
    areas: np.ndarray  # mask areas, 0 where absent or empty
    start: np.ndarray
    length: np.ndarray
    video: np.ndarray
    group: np.ndarray

    @classmethod
    def of(cls, objects: list[Detection] | list[GtObject], video: np.ndarray, group: np.ndarray) -> _Masks:
        length = np.array([len(obj.segmentations) for obj in objects], dtype=np.int64)
        areas = (
            np.concatenate([obj.mask_areas for obj in objects]) if objects else np.zeros(0, dtype=np.int64)
        )
        return cls(
            [obj.segmentations for obj in objects], areas, np.cumsum(length) - length, length, video, group
        )

    def totals(self) -> np.ndarray:
        """Each object's mask areas summed over its frames."""
        return np.add.reduceat(self.areas, self.start) if len(self.start) else np.zeros(0, dtype=np.int64)


# Upper bound on the [results x GT] matrix of one pycocotools iou call (a video's frames are split up to it).
_MAX_IOU_CELLS = 1 << 20


def _present_masks(masks: _Masks, tags: np.ndarray, span: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """(flat index, object, frame, key) of the masks with pixels; the key names (video, tag, frame)."""
    flat = np.flatnonzero(masks.areas > 0)
    obj = np.repeat(np.arange(len(masks.start)), masks.length)[flat]
    frame = flat - masks.start[obj]
    return flat, obj, frame, (masks.video[obj] * span[0] + tags[obj]) * span[1] + frame


def _intersections(dets: _Masks, gts: _Masks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(result, GT, |D∩G| summed over frames) for every pair of the same video and group whose masks meet.

    Only frames where both have pixels need RLE work: a mask takes part on a frame where a mask of its video and
    group on the other side has pixels. A video's masks go to pycocotools ``iou`` in one call, each with its size
    given as [height, width + frame + tag * length], the tag being its group's: pycocotools compares sizes before
    any pixel work and returns -1 for pairs that differ, so pairs from different frames or groups cost one
    bounding box test, and pairs within a frame and group are computed as usual (the width is used nowhere else
    for a valid RLE). With every GT marked crowd, the value is |D∩G| / |D| (0 when there is no overlap): times
    |D| it is the intersection, exactly, after rounding.
    """
    empty = np.zeros(0, dtype=np.int64)
    if not len(dets.start) or not len(gts.start):
        return empty, empty, empty
    _, tags = np.unique(np.concatenate([dets.group, gts.group]), return_inverse=True)
    span = (int(tags.max()) + 1, int(max(dets.length.max(), gts.length.max())))
    det_flat, det_obj, det_frame, det_key = _present_masks(dets, tags[: len(dets.start)], span)
    _, gt_obj, gt_frame, gt_key = _present_masks(gts, tags[len(dets.start) :], span)
    det_on, gt_on = np.isin(det_key, gt_key), np.isin(gt_key, det_key)
    # Ordered by video, then frame (then object), to split a video's call by frames where it is too large.
    det_order = np.lexsort((det_frame[det_on], dets.video[det_obj[det_on]]))
    gt_order = np.lexsort((gt_frame[gt_on], gts.video[gt_obj[gt_on]]))
    rows, row_obj, row_frame = (values[det_on][det_order] for values in (det_flat, det_obj, det_frame))
    col_obj, col_frame = (values[gt_on][gt_order] for values in (gt_obj, gt_frame))
    num_videos = int(max(dets.video.max(), gts.video.max())) + 1
    row_bounds = np.searchsorted(dets.video[row_obj], np.arange(num_videos + 1)).tolist()
    col_bounds = np.searchsorted(gts.video[col_obj], np.arange(num_videos + 1)).tolist()
    row_shift = (row_frame + tags[row_obj] * dets.length[row_obj]).tolist()
    col_shift = (col_frame + tags[len(dets.start) + col_obj] * gts.length[col_obj]).tolist()
    pair_det, pair_gt, pair_count = [], [], []
    for video in range(num_videos):
        r0, r1, c0, c1 = row_bounds[video], row_bounds[video + 1], col_bounds[video], col_bounds[video + 1]
        if r0 == r1:
            continue
        height, width = dets.segmentations[row_obj[r0]][row_frame[r0]].size
        for (ra, rb), (ca, cb) in _frame_chunks(row_frame[r0:r1], col_frame[c0:c1]):
            ra, rb, ca, cb = r0 + ra, r0 + rb, c0 + ca, c0 + cb
            ratio = mask_utils.iou(
                _tagged(dets, row_obj[ra:rb], row_frame[ra:rb], row_shift[ra:rb], height, width),
                _tagged(gts, col_obj[ca:cb], col_frame[ca:cb], col_shift[ca:cb], height, width),
                [1] * (cb - ca),
            )
            ratio = np.asarray(ratio, dtype=np.float64).reshape(rb - ra, cb - ca)
            r, c = np.nonzero(ratio > 0)  # pairs of different sizes (frame or group) are -1
            pair_det.append(row_obj[ra + r])
            pair_gt.append(col_obj[ca + c])
            pair_count.append(np.rint(ratio[r, c] * dets.areas[rows[ra + r]]).astype(np.int64))
    key = np.concatenate(pair_det + [empty]) * len(gts.start) + np.concatenate(pair_gt + [empty])
    if not key.size:
        return empty, empty, empty
    # Sum each pair's intersections over its frames.
    order = np.argsort(key, kind="stable")
    key, count = key[order], np.concatenate(pair_count + [empty])[order]
    first = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    key = key[first]
    return key // len(gts.start), key % len(gts.start), np.add.reduceat(count, first)


def _tagged(
    masks: _Masks, obj: np.ndarray, frame: np.ndarray, shift: list[int], height: int, width: int
) -> list[dict[str, Any]]:
    """The masks of ``obj`` at ``frame``, their widths widened by ``shift`` (see _intersections)."""
    return [
        {"size": [height, width + tag], "counts": masks.segmentations[o][f].counts}
        for o, f, tag in zip(obj.tolist(), frame.tolist(), shift, strict=True)
    ]


def _frame_chunks(
    row_frame: np.ndarray, col_frame: np.ndarray
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """[start, stop) ranges of a video's rows and columns (ordered by frame, both on the same frames) for calls of
    at most _MAX_IOU_CELLS cells, whole frames each."""
    if len(row_frame) * len(col_frame) <= _MAX_IOU_CELLS:
        return [((0, len(row_frame)), (0, len(col_frame)))]
    frames = np.unique(row_frame)
    row_starts = np.searchsorted(row_frame, frames).tolist() + [len(row_frame)]
    col_starts = np.searchsorted(col_frame, frames).tolist() + [len(col_frame)]
    chunks: list[tuple[tuple[int, int], tuple[int, int]]] = []
    first = 0
    for last in range(len(frames)):
        rows = row_starts[last + 1] - row_starts[first]
        cols = col_starts[last + 1] - col_starts[first]
        if last > first and rows * cols > _MAX_IOU_CELLS:
            chunks.append(((row_starts[first], row_starts[last]), (col_starts[first], col_starts[last])))
            first = last
    chunks.append(((row_starts[first], row_starts[-1]), (col_starts[first], col_starts[-1])))
    return chunks


def video_ious(
    dets: list[Detection],
    gts: list[GtObject],
    det_areas: np.ndarray,
    gt_areas: np.ndarray,
    det_group: np.ndarray | None = None,
    gt_group: np.ndarray | None = None,
) -> np.ndarray:
    """[D, G] video IoUs of one video as the official ``computeIoU`` defines them, given [objects, frames] mask
    areas: sum over frames of |D∩G| / sum over frames of |D∪G|; with ``det_group`` [D] and ``gt_group`` [G] (say,
    category ids) only pairs of equal groups are computed, the others' IoU is left 0."""
    ious = np.zeros((len(dets), len(gts)))
    if not dets or not gts:
        return ious
    det_video, gt_video = np.zeros(len(dets), dtype=np.int64), np.zeros(len(gts), dtype=np.int64)
    if det_group is None or gt_group is None:
        det_group, gt_group = det_video, gt_video
    det_masks = _Masks.of(dets, det_video, det_group)
    gt_masks = _Masks.of(gts, gt_video, gt_group)
    pair_det, pair_gt, inter = _intersections(det_masks, gt_masks)
    ious[pair_det, pair_gt] = inter / (det_areas.sum(1)[pair_det] + gt_areas.sum(1)[pair_gt] - inter)
    return ious


# --------------------------------------------------------------------------------------------------- matching


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _match_bucket(ious: np.ndarray, gt_ignore: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """Greedy matching of the official ``evaluateVid`` for B groups, all area ranges and thresholds at once.

    ious [B, D, G] (padding -1), gt_ignore [B, A, G], crowd [B, G] -> matched GT index [B, A, T, D] or -1.
    A result takes, among the GT still free (crowd GT stay free) with IoU >= the threshold, the best
    non-ignored one, else the best ignored one; ties go to the later GT, as the official's ``>=`` scan does.
    """
    groups, num_dets, num_gts = ious.shape
    best0 = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)
    taken = np.zeros((groups, len(AREA_RANGES), len(best0), num_gts), dtype=bool)
    matched = np.full((groups, len(AREA_RANGES), len(best0), num_dets), -1, dtype=np.int64)
    reusable = crowd[:, None, None, :]
    counted = ~gt_ignore[:, :, None, :]
    for rank in range(num_dets):
        row = ious[:, rank, :]
        if not (row >= best0.min()).any():
            continue
        candidate = (row[:, None, None, :] >= best0[None, None, :, None]) & ~(taken & ~reusable)
        preferred = candidate & counted
        section = np.where(preferred.any(-1, keepdims=True), preferred, candidate)
        found = section.any(-1)
        values = np.where(section, row[:, None, None, :], -np.inf)
        choice = num_gts - 1 - np.argmax(values[..., ::-1], axis=-1)
        matched[..., rank] = np.where(found, choice, -1)
        b, a, t = np.nonzero(found)
        taken[b, a, t, choice[b, a, t]] = True
    return matched


@dataclass
class _Group:
    dets: np.ndarray  # global result indices, in rank order
    gts: np.ndarray  # global GT indices, in the official's order
    ious: np.ndarray  # [D, G]


def _match_all(
    groups: list[_Group], gt_ignore: np.ndarray, gt_crowd: np.ndarray, num_dets: int
) -> np.ndarray:
    """Matched GT index [A, T, num_dets] (or -1) over groups that each have results and GT, batched by padded
    size."""
    matched = np.full((len(AREA_RANGES), len(IOU_THRESHOLDS), num_dets), -1, dtype=np.int64)
    buckets: dict[tuple[int, int], list[_Group]] = defaultdict(list)
    for group in groups:
        buckets[_pow2(len(group.dets)), _pow2(len(group.gts))].append(group)
    for (dpad, gpad), members in buckets.items():
        # Bounded memory: at most ~4M IoU cells per batch.
        step = max(1, (1 << 22) // (dpad * gpad))
        for start in range(0, len(members), step):
            batch = members[start : start + step]
            ious = np.full((len(batch), dpad, gpad), -1.0)
            ignore = np.ones((len(batch), len(AREA_RANGES), gpad), dtype=bool)
            crowd = np.zeros((len(batch), gpad), dtype=bool)
            for b, group in enumerate(batch):
                nd, ng = group.ious.shape
                ious[b, :nd, :ng] = group.ious
                ignore[b, :, :ng] = gt_ignore[:, group.gts]
                crowd[b, :ng] = gt_crowd[group.gts]
            local = _match_bucket(ious, ignore, crowd)
            for b, group in enumerate(batch):
                nd = len(group.dets)
                chosen = local[b, :, :, :nd]
                matched[:, :, group.dets] = np.where(chosen >= 0, group.gts[np.maximum(chosen, 0)], -1)
    return matched


# --------------------------------------------------------------------------------------------------- accumulate


def _segments(keys: np.ndarray, num_keys: int) -> tuple[np.ndarray, np.ndarray]:
    starts = np.searchsorted(keys, np.arange(num_keys), side="left")
    ends = np.searchsorted(keys, np.arange(num_keys), side="right")
    return starts, ends - starts


def _suffix_max_within(values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Running maximum from the right along axis 1, restarting where ``keys`` (sorted) changes.

    A doubling scan: after the step of width w every entry holds the maximum of the next 2w entries of its own
    segment; only max operations, so the values are exactly the official's loop's.
    """
    out = values.copy()
    width = 1
    while width < out.shape[1]:
        same = keys[width:] == keys[:-width]
        if not same.any():
            break
        np.maximum(out[:, :-width], np.where(same, out[:, width:], out[:, :-width]), out=out[:, :-width])
        width *= 2
    return out


def accumulate(
    det_cat: np.ndarray,
    det_video: np.ndarray,
    det_rank: np.ndarray,
    det_score: np.ndarray,
    dt_matched: np.ndarray,
    dt_ignore: np.ndarray,
    gt_counts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The official ``accumulate``, vectorised over categories: precision [T,R,K,A] (at maxDets 100: the official
    fills it for every maxDets, but its stats read only this one), recall [T,K,A,M].

    Per maxDet the results are ordered by (category, -score, video, rank) - the official's stable sort of
    the per-video lists concatenated in video order - and per-category running sums come from one cumsum.
    The precision envelope is a segmented scan and the recall-point lookup a scatter, both over all categories
    at once and with no arithmetic on the precision values, so they are the official's exactly.
    """
    num_t, num_r, num_a, num_m = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(AREA_RANGES), len(MAX_DETS)
    num_k = gt_counts.shape[0]
    # Filled per area (precision) and per (area, maxDets) block (recall), returned as views in the official's
    # axis order: the values, and the order in which indexing the views yields them, are the same as the
    # official's arrays'. Every block is written below.
    precision = np.empty((num_a, num_t, num_r, num_k))
    recall = np.empty((num_a, num_m, num_t, num_k))
    for m, max_det in enumerate(MAX_DETS):
        kept = np.flatnonzero(det_rank < max_det)
        order = kept[np.lexsort((det_rank[kept], det_video[kept], -det_score[kept], det_cat[kept]))]
        for a in range(num_a):
            valid = gt_counts[:, a] > 0
            rows = order[valid[det_cat[order]]]
            if len(rows) == 0:
                recall[a, m] = np.where(valid, 0.0, -1.0)
                if max_det == MAX_DETS[-1]:
                    precision[a] = np.where(valid, 0.0, -1.0)
                continue
            cats = det_cat[rows]
            starts, counts = _segments(cats, num_k)
            matched = dt_matched[a][:, rows]
            ignored = dt_ignore[a][:, rows]
            tp_cum = np.cumsum(matched & ~ignored, axis=1)
            fp_cum = np.cumsum(~matched & ~ignored, axis=1)
            pad = np.zeros((num_t, 1), dtype=tp_cum.dtype)
            tp = (tp_cum - np.concatenate([pad, tp_cum], axis=1)[:, starts[cats]]).astype(np.float64)
            fp = (fp_cum - np.concatenate([pad, fp_cum], axis=1)[:, starts[cats]]).astype(np.float64)
            rc = tp / gt_counts[cats, a]
            pr = tp / (fp + tp + np.spacing(1))

            last = np.maximum(starts + counts - 1, 0)
            recall[a, m] = np.where(valid, np.where(counts > 0, rc[:, last], 0.0), -1.0)
            if max_det != MAX_DETS[-1]:
                continue

            envelope = _suffix_max_within(pr, cats)

            # The official reads precision at the first position whose recall reaches each threshold (0 past
            # the end). covered[i] = number of thresholds <= rc[i] (exact float comparisons), so position i
            # serves the thresholds from covered[i-1] (0 at a category's start) up to covered[i] - 1. Laid out
            # category after category, each position repeated for the thresholds it serves and each category
            # closed by the thresholds it never reaches (0; -1 without GT), the [K, R] table is one np.repeat.
            covered = np.searchsorted(RECALL_THRESHOLDS, rc, side="right")
            first = np.zeros(len(rows), dtype=bool)
            first[starts[counts > 0]] = True
            previous = np.concatenate([np.zeros((num_t, 1), dtype=covered.dtype), covered[:, :-1]], axis=1)
            previous[:, first] = 0
            slot = np.arange(len(rows)) + cats  # after one closing slot per earlier category
            closing = starts + counts + np.arange(num_k)
            values = np.empty((num_t, len(rows) + num_k))
            repeats = np.empty((num_t, len(rows) + num_k), dtype=np.int64)
            values[:, slot] = envelope
            repeats[:, slot] = covered - previous
            values[:, closing] = np.where(valid, 0.0, -1.0)
            repeats[:, closing] = num_r - np.where(counts > 0, covered[:, last], 0)
            table = np.repeat(values.ravel(), repeats.ravel()).reshape(num_t, num_k, num_r)
            precision[a] = table.transpose(0, 2, 1)
    return precision.transpose(1, 2, 3, 0), recall.transpose(2, 3, 0, 1)


# --------------------------------------------------------------------------------------------------- summarize


def summarize_one(
    precision: np.ndarray,
    recall: np.ndarray,
    ap: bool,
    iou_thr: float | None,
    area: str,
    max_dets: int,
    categories: np.ndarray | None = None,
) -> float:
    """The official ``_summarize``, optionally over a subset of the K axis (LV-VIS base/novel).

    Plain indexing of the area and maxDets axes (the official indexes them with lists): the selected values come
    in the same order, so their mean is the same, and no 1.2M-value copy is made. Precision exists at maxDets
    100 only, as every AP stat of the official reads it.
    """
    a, m = AREA_LABELS.index(area), MAX_DETS.index(max_dets)
    if ap and max_dets != MAX_DETS[-1]:
        raise ValueError(f"precision is kept at maxDets {MAX_DETS[-1]} only, not {max_dets}")
    s = precision[..., a] if ap else recall[..., a, m]
    if iou_thr is not None:
        s = s[np.where(iou_thr == IOU_THRESHOLDS)[0]]
    if categories is not None:
        s = s[..., categories]
    defined = s[s > -1]
    if len(defined) == 0:
        return -1.0
    return float(np.mean(defined))


def summarize(
    precision: np.ndarray, recall: np.ndarray, categories: np.ndarray | None = None
) -> dict[str, float]:
    """The 12 stats (fractions; -1 where undefined), optionally over a subset of the K axis."""
    return {
        name: summarize_one(precision, recall, *spec, categories=categories)
        for name, spec in zip(STAT_NAMES, STAT_SPECS, strict=True)
    }


# --------------------------------------------------------------------------------------------------- evaluate


def _official_gt_order(gts: list[GtObject], class_agnostic: bool) -> list[GtObject]:
    # useCats=0 concatenates the per-category lists in category id order.
    return sorted(gts, key=lambda g: g.category_id) if class_agnostic else gts


def _top_results(
    dets: list[Detection], cat_index: dict[int, int], class_agnostic: bool
) -> tuple[list[Detection], list[tuple[int, int]]]:
    """One video's results that take part, category by category (in index order), with (category index, rank)
    each: per category, sorted by score (stable), the first 100 (the official's computeIoU/evaluateVid);
    class-agnostic, one group in which equal scores keep the official's order (category id, then file order)."""
    if class_agnostic:
        dets = sorted(dets, key=lambda d: d.category_id)
    by_group: dict[int, list[Detection]] = defaultdict(list)
    for det in dets:
        by_group[0 if class_agnostic else cat_index[det.category_id]].append(det)
    kept: list[Detection] = []
    group_of_det: list[tuple[int, int]] = []
    for k, members in sorted(by_group.items()):
        # Python's sort is stable, like the official's mergesort on -score.
        order = sorted(range(len(members)), key=lambda i: -members[i].score)[: MAX_DETS[-1]]
        for rank, i in enumerate(order):
            kept.append(members[i])
            group_of_det.append((k, rank))
    return kept, group_of_det


@dataclass
class _Part:
    """The per-video work of a run of consecutive videos, matched: one entry per kept result and per GT object."""

    det_cat: np.ndarray  # [D] category index
    det_video: np.ndarray  # [D] video number in the evaluation's order
    det_rank: np.ndarray  # [D] rank within its video and category
    det_score: np.ndarray  # [D]
    dt_matched: np.ndarray  # [A, T, D] matched, as the official counts a match
    dt_ignore: np.ndarray  # [A, T, D]
    gt_cat: np.ndarray  # [G] category index
    gt_ignore: np.ndarray  # [A, G]
    per_video: list[dict[str, Any]]
    # results left out (past the 100 per video and category; per-category mode, of a category not in the GT)
    warnings: Counter[str]


def _match(
    groups: list[_Group],
    gt_area: np.ndarray,
    gt_flag: np.ndarray,
    gt_crowd: np.ndarray,
    gt_id: np.ndarray,
    det_area: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy matching of results and GT objects whose groups index them: (dt_matched [A, T, D], dt_ignore
    [A, T, D], gt_ignore [A, G]), as the official counts them."""
    low = np.array([lo for lo, _ in AREA_RANGES])[:, None]
    high = np.array([hi for _, hi in AREA_RANGES])[:, None]
    gt_ignore = gt_flag[None, :] | (gt_area[None, :] < low) | (gt_area[None, :] > high)  # [A, G]
    det_outside = (det_area[None, :] < low) | (det_area[None, :] > high)  # [A, D]

    matched = _match_all(groups, gt_ignore, gt_crowd, len(det_area))  # [A, T, D]
    has_match = matched >= 0
    safe = np.maximum(matched, 0)
    # The official stores the matched GT's id and tests it for truth: a match to GT id 0 counts as none.
    dt_matched = has_match & (gt_id[safe] != 0) if len(gt_id) else np.zeros_like(has_match)
    area_index = np.arange(len(AREA_RANGES))[:, None, None]
    dt_ignore = (has_match & gt_ignore[area_index, safe]) if len(gt_id) else np.zeros_like(has_match)
    dt_ignore |= ~dt_matched & det_outside[:, None, :]
    return dt_matched, dt_ignore, gt_ignore


def _groups(
    det_key: np.ndarray, gt_key: np.ndarray, pair_det: np.ndarray, pair_gt: np.ndarray, pair_iou: np.ndarray
) -> list[_Group]:
    """The (video, category) groups that have both results and GT, with their IoU matrices.

    ``det_key`` (sorted; a group's results in rank order) and ``gt_key`` (in the official's order) name each
    object's group; the pairs of objects that meet carry their IoU, every other pair of a group has IoU 0."""
    shared = np.intersect1d(det_key, gt_key)
    det_start = np.searchsorted(det_key, shared)
    det_stop = np.searchsorted(det_key, shared, side="right")
    gt_order = np.argsort(gt_key, kind="stable")
    gt_sorted = gt_key[gt_order]
    gt_start = np.searchsorted(gt_sorted, shared)
    gt_stop = np.searchsorted(gt_sorted, shared, side="right")
    gt_column = np.empty(len(gt_key), dtype=np.int64)
    gt_column[gt_order] = np.arange(len(gt_key)) - np.searchsorted(gt_sorted, gt_sorted)
    pair_group = np.searchsorted(shared, det_key[pair_det])
    order = np.argsort(pair_group, kind="stable")
    pair_group, pair_det, pair_gt, pair_iou = (
        pair_group[order],
        pair_det[order],
        pair_gt[order],
        pair_iou[order],
    )
    pair_row = pair_det - det_start[pair_group]
    pair_col = gt_column[pair_gt]
    pair_bounds = np.searchsorted(pair_group, np.arange(len(shared) + 1)).tolist()
    groups = []
    for g, (d0, d1, g0, g1) in enumerate(
        zip(det_start.tolist(), det_stop.tolist(), gt_start.tolist(), gt_stop.tolist(), strict=True)
    ):
        ious = np.zeros((d1 - d0, g1 - g0))
        p0, p1 = pair_bounds[g], pair_bounds[g + 1]
        ious[pair_row[p0:p1], pair_col[p0:p1]] = pair_iou[p0:p1]
        groups.append(_Group(np.arange(d0, d1), gt_order[g0:g1], ious))
    return groups


def _evaluate_videos(
    options: EvalOptions,
    cat_index: dict[int, int],
    gts_by_video: dict[int, list[GtObject]],
    dets_by_video: dict[int, list[Detection]],
    first: int,
    video_ids: list[int],
) -> _Part:
    """IoUs and matching of ``video_ids``, the videos numbered from ``first`` in the evaluation's order. The
    bookkeeping runs over all of them at once, the RLE work video by video."""
    warnings: Counter[str] = Counter()
    detections = [det for video_id in video_ids for det in dets_by_video.get(video_id, [])]
    if not options.class_agnostic:
        known = [det for det in detections if det.category_id in cat_index]
        warnings["results_with_unknown_category"] += len(detections) - len(known)
        detections = known
    dets_by_video: dict[int, list[Detection]] = defaultdict(list)
    for det in detections:
        dets_by_video[det.video_id].append(det)

    dets: list[Detection] = []  # kept, video by video, category by category, in rank order
    det_cat: list[int] = []
    det_rank: list[int] = []
    det_video: list[int] = []  # position in video_ids
    gts: list[GtObject] = []  # video by video, in the official's order
    gt_video: list[int] = []
    for position, video_id in enumerate(video_ids):
        video_dets = dets_by_video.get(video_id, [])
        kept, group_of_det = _top_results(video_dets, cat_index, options.class_agnostic)
        warnings["results_left_out_over_100_per_video_and_category"] += len(video_dets) - len(kept)
        dets += kept
        det_cat += [k for k, _ in group_of_det]
        det_rank += [rank for _, rank in group_of_det]
        det_video += [position] * len(kept)
        video_gts = _official_gt_order(gts_by_video.get(video_id, []), options.class_agnostic)
        gts += video_gts
        gt_video += [position] * len(video_gts)
    gt_cat = [0 if options.class_agnostic else cat_index[gt.category_id] for gt in gts]
    det_masks = _Masks.of(dets, np.array(det_video, dtype=np.int64), np.array(det_cat, dtype=np.int64))
    gt_masks = _Masks.of(gts, np.array(gt_video, dtype=np.int64), np.array(gt_cat, dtype=np.int64))
    pair_det, pair_gt, inter = _intersections(det_masks, gt_masks)
    det_total, gt_total = det_masks.totals(), gt_masks.totals()
    pair_iou = inter / (det_total[pair_det] + gt_total[pair_gt] - inter)

    # A result's size: the mean of its nonzero mask areas (0 if none); integer sums, so the value np.mean gives.
    if dets:
        frames_with_pixels = np.add.reduceat((det_masks.areas > 0).astype(np.int64), det_masks.start)
        det_area = np.where(frames_with_pixels > 0, det_total / np.maximum(frames_with_pixels, 1), 0.0)
    else:
        det_area = np.zeros(0)
    # The official averages the GT's 'areas' field; without one, the mask areas stand in.
    gt_area = np.array(
        [
            _mean_nonzero(gt.areas if gt.areas is not None else gt.mask_areas.tolist(), options.lvvis)
            for gt in gts
        ],
        dtype=np.float64,
    )
    num_categories = 1 if options.class_agnostic else len(cat_index)
    groups = _groups(
        det_masks.video * num_categories + det_masks.group,
        gt_masks.video * num_categories + gt_masks.group,
        pair_det,
        pair_gt,
        pair_iou,
    )
    dt_matched, dt_ignore, gt_ignore = _match(
        groups,
        gt_area,
        np.array([gt.iscrowd and not options.lvvis for gt in gts], dtype=bool),
        np.array([gt.iscrowd for gt in gts], dtype=bool),
        np.array([gt.id for gt in gts], dtype=np.int64),
        det_area,
    )

    best = np.zeros(len(gts))  # each GT object's best IoU with a result
    np.maximum.at(best, pair_gt, pair_iou)
    gt_bounds = np.searchsorted(gt_masks.video, np.arange(len(video_ids) + 1)).tolist()
    results_per_video = np.bincount(det_masks.video, minlength=len(video_ids)).tolist()
    per_video = []
    for position, video_id in enumerate(video_ids):
        video_best = best[gt_bounds[position] : gt_bounds[position + 1]]
        per_video.append(
            {
                "video_id": video_id,
                "num_gt": len(video_best),
                "num_results": results_per_video[position],
                "mean_best_iou": float(video_best.mean()) if len(video_best) else None,
                "gt_found_at_50": int((video_best >= 0.5).sum()),
            }
        )
    return _Part(
        det_cat=det_masks.group,
        det_video=det_masks.video + first,
        det_rank=np.array(det_rank, dtype=np.int64),
        det_score=np.array([det.score for det in dets], dtype=np.float64),
        dt_matched=dt_matched,
        dt_ignore=dt_ignore,
        gt_cat=gt_masks.group,
        gt_ignore=gt_ignore,
        per_video=per_video,
        warnings=warnings,
    )


def run(inputs: EvalInputs, options: EvalOptions, workers: int = 1) -> Evaluation:
    """Evaluate loaded (checked) inputs; returns the accumulated arrays and per-video details.

    The per-video work (IoUs, ranks, areas, matching) is spread over ``workers`` forked processes; the result
    does not depend on their number.
    """
    started = time.monotonic()
    warnings = Counter(inputs.warnings)
    category_ids = sorted({c["id"] for c in inputs.categories})
    cat_index = {cid: k for k, cid in enumerate(category_ids)}
    num_k = 1 if options.class_agnostic else len(category_ids)
    gts_by_video: dict[int, list[GtObject]] = defaultdict(list)
    for gt in inputs.gts:
        gts_by_video[gt.video_id].append(gt)
    dets_by_video: dict[int, list[Detection]] = defaultdict(list)
    for det in inputs.detections:
        dets_by_video[det.video_id].append(det)

    video_ids = sorted(inputs.videos)
    pieces = guided_slices(len(video_ids), workers, _SMALLEST_PIECE)

    def evaluate_slice(bounds: tuple[int, int]) -> _Part:
        first, stop = bounds
        return _evaluate_videos(options, cat_index, gts_by_video, dets_by_video, first, video_ids[first:stop])

    parts: list[_Part] = []
    done = 0
    for part in progress(
        fork_map(evaluate_slice, pieces, workers), total=len(pieces), desc="evaluate", unit="part"
    ):
        parts.append(part)
        done += len(part.per_video)
        warnings += part.warnings  # counts of 0 are dropped
        log.info("evaluate: %d/%d videos", done, len(video_ids))

    if warnings["results_with_unknown_category"]:
        log.warning(
            "%d results have a category_id that is not a GT category; they are left out, as the official "
            "evaluator does",
            warnings["results_with_unknown_category"],
        )

    if warnings["results_left_out_over_100_per_video_and_category"]:
        log.warning(
            "%d results are left out: the official evaluator keeps the 100 best-scoring per video and category",
            warnings["results_left_out_over_100_per_video_and_category"],
        )
    gt_cat = np.concatenate([p.gt_cat for p in parts])
    gt_ignore = np.concatenate([p.gt_ignore for p in parts], axis=1)
    det_cat = np.concatenate([p.det_cat for p in parts])
    gt_counts = np.zeros((num_k, len(AREA_RANGES)), dtype=np.int64)
    for a in range(len(AREA_RANGES)):
        gt_counts[:, a] = np.bincount(gt_cat[~gt_ignore[a]], minlength=num_k)
    precision, recall = accumulate(
        det_cat,
        np.concatenate([p.det_video for p in parts]),
        np.concatenate([p.det_rank for p in parts]),
        np.concatenate([p.det_score for p in parts]),
        np.concatenate([p.dt_matched for p in parts], axis=2),
        np.concatenate([p.dt_ignore for p in parts], axis=2),
        gt_counts,
    )
    log.info(
        "evaluated %d videos, %d GT objects, %d results in %.2fs",
        len(video_ids),
        len(gt_cat),
        len(det_cat),
        time.monotonic() - started,
    )
    return Evaluation(
        precision=precision,
        recall=recall,
        category_ids=[-1] if options.class_agnostic else category_ids,
        gt_counts=gt_counts,
        result_counts=np.bincount(det_cat, minlength=num_k),
        per_video=[video for p in parts for video in p.per_video],
        warnings=warnings,
    )
