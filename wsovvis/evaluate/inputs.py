"""Ground truth and results for evaluation: loaded, checked and put into one plain shape.

Results come either as a YTVIS results list or as a YTVIS dataset (such as the tubes of ``wsovvis convert``),
whose annotations become results. Problems a user must fix (missing fields, wrong lengths, masks of the wrong
size, malformed RLE) raise :class:`~wsovvis.errors.InputError` naming the file, result and frame; problems the
official evaluator would silently absorb or crash on (results for videos not in the GT, no results at all)
are counted in :attr:`EvalInputs.warnings` and logged.
"""

from __future__ import annotations

import logging
import math
import mmap
import os
import posixpath
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from wsovvis import jsonio, rle, storage, ytvis
from wsovvis.errors import InputError
from wsovvis.resources import fork_map, slices

log = logging.getLogger(__name__)

RLE = dict[str, Any]
# Characters of COCO's compressed RLE strings: 6-bit groups offset by 48 ('0').
_NOT_RLE_CHAR = re.compile(r"[^0-o]")
# Characters whose continuation bit is set: a number goes on after them (see _rle_string_problem).
_NUMBER_GOES_ON = re.compile(r"[P-o]")
# Strings checked together (see _bad_rle_string): buffers this small reuse freed memory, where one buffer of all
# of them (tens of MB) costs more in page faults than the check itself.
_STRINGS_PER_CHECK = 512


def _rle_string_problem(counts: str) -> str | None:
    """Why ``counts`` is not a compressed RLE string pycocotools can decode safely (None when it is).

    Each number ends with a character whose continuation bit (0x20 above '0') is clear, so a string ends with
    '0'..'O'; one that ends in 'P'..'o' makes pycocotools' decoder read past the end of the string and write past
    the end of its buffer, corrupting the heap of the process that decodes it."""
    if _NOT_RLE_CHAR.search(counts):
        return "expected characters '0'..'o', as pycocotools encodes"
    if _NUMBER_GOES_ON.match(counts[-1:]):
        return f"it ends inside a number, with {counts[-1]!r}"
    return None


def _not_rle_string(source: str, where: str, frame: int, problem: str) -> InputError:
    return InputError(
        f"{source}: {where}: segmentations[{frame}].counts is not a compressed RLE string ({problem})"
    )


@dataclass(frozen=True)
class Video:
    id: int
    height: int
    width: int
    length: int
    file_names: tuple[str, ...]


@dataclass
class GtObject:
    """One GT annotation: compressed RLE (or None where absent) per frame, and its 'areas' field."""

    id: int
    video_id: int
    category_id: int
    iscrowd: bool
    segmentations: list[RLE | None]
    areas: list[Any] | None
    mask_areas: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # from load(): the annotation, while its per-frame values are unchecked (see check_gt)
    annotation: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        """The object as errors name it."""
        return f"annotation {self.id} (video {self.video_id})"


@dataclass
class Detection:
    """One result: ``index`` is its position in the results file (the official's result id minus one)."""

    index: int
    video_id: int
    category_id: int
    score: float
    segmentations: list[RLE | None]
    mask_areas: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def where(self) -> str:
        """The result as errors name it."""
        return f"result {self.index} (video {self.video_id})"


@dataclass
class UncheckedResults:
    """A results list left as the bytes of its file: each process that evaluates videos parses it and checks (and
    measures) the entries of its videos only. Parsing is cheaper than reading another process's parsed objects,
    each of which costs a copy-on-write page copy when touched."""

    raw: bytes | mmap.mmap
    source: str
    _indexed: tuple[list[Any], dict[int, list[int]], list[int]] | None = field(default=None, repr=False)

    def _index(self, videos: dict[int, Video]) -> tuple[list[Any], dict[int, list[int]], list[int]]:
        """(entries, GT video id -> indices of its entries in file order, indices of entries naming no GT video),
        parsed once per process."""
        if self._indexed is None:
            entries = jsonio.parse_json(self.raw, self.source, finite=True)
            by_video: dict[int, list[int]] = defaultdict(list)
            elsewhere = []
            for index, entry in enumerate(entries):
                video_id = entry.get("video_id") if type(entry) is dict else None
                if type(video_id) is int and video_id in videos:
                    by_video[video_id].append(index)
                else:
                    elsewhere.append(index)
            self._indexed = entries, dict(by_video), elsewhere
        return self._indexed

    def detections(self, video_ids: list[int], videos: dict[int, Video]) -> list[Detection]:
        """The checked detections of ``video_ids``, mask areas filled in; InputError for a malformed one."""
        entries, by_video, _ = self._index(videos)
        unused: Counter[str] = Counter()
        found = [
            _result(entries[index], index, videos, self.source, unused)
            for video_id in video_ids
            for index in by_video.get(video_id, ())
        ]
        detections = [det for det in found if det is not None]
        _check_rle_strings(detections, self.source)
        _measure_masks(detections, videos, self.source)
        return detections

    def check_elsewhere(self, videos: dict[int, Video]) -> Counter[str]:
        """Check the entries that name no GT video (counted as unknown, or an error) and warn as a full load does;
        the warnings' counts."""
        entries, by_video, elsewhere = self._index(videos)
        warnings: Counter[str] = Counter()
        for index in elsewhere:
            _result(entries[index], index, videos, self.source, warnings)
        _warn_unknown_videos(warnings, self.source)
        if not by_video:
            _warn_no_results(warnings, self.source)
        return warnings

    def raise_first_error(self, videos: dict[int, Video]) -> None:
        """Raise the error a full check raises (the first malformed result, else the first oversized mask): the
        one to report when checking by video found one, since videos are not in file order."""
        entries, _, _ = self._index(videos)
        _results_from_list(entries, videos, self.source, Counter(), workers=1)


@dataclass
class Deferred:
    """Checks left to whoever evaluates each video: the GT's per-frame values and mask areas (see check_gt) and, for
    a results list, its entries. A worker checks what it evaluates, so no process touches those objects twice."""

    gt_source: str
    gt_data: dict[str, Any]  # the parsed GT
    results: UncheckedResults | None

    def raise_first_error(self, inputs: EvalInputs) -> None:
        """Raise the error a full load raises (the GT's first): the one to report when a worker found one, since
        workers go video by video, not in file order."""
        _gt_objects(self.gt_data, self.gt_source)
        if self.results is not None:
            self.results.raise_first_error(inputs.videos)


@dataclass
class EvalInputs:
    videos: dict[int, Video]
    categories: list[dict[str, Any]]
    gts: list[GtObject]
    detections: list[Detection]
    warnings: Counter[str] = field(default_factory=Counter)
    # from load(): the GT objects' per-frame values not checked nor their mask areas filled yet, and a results
    # list's entries for GT videos not yet in ``detections`` (see checked_videos)
    deferred: Deferred | None = None


def _warn(warnings: Counter[str], key: str, count: int, message: str, *args: Any) -> None:
    warnings[key] += count
    log.warning(message, *args)


def _warn_unknown_videos(warnings: Counter[str], source: str) -> None:
    if warnings["results_for_unknown_videos"]:
        log.warning(
            "%s: %d results are for videos not in the GT; they are left out (the official evaluator refuses them)",
            source,
            warnings["results_for_unknown_videos"],
        )


def _warn_no_results(warnings: Counter[str], source: str) -> None:
    _warn(warnings, "no_results", 1, "%s: no usable results; every AP and AR is 0 where GT exists", source)


# --------------------------------------------------------------------------------------------------- GT


def _gt_rle(seg: Any, video: Video, source: str, where: str, frame: int) -> RLE | None:
    """The official ``annToRLE``: polygons and uncompressed RLE become compressed RLE; falsy means absent.

    RLEs get the checks results get (size, counts), so a GT that does not decode is an error naming it."""
    if not seg:
        return None
    if isinstance(seg, list):
        merged = mask_utils.merge(mask_utils.frPyObjects(seg, video.height, video.width))
        return {"size": merged["size"], "counts": merged["counts"].decode("ascii")}
    return _check_result_rle(seg, video, source, where, frame)


def _gt_objects(data: Any, source: str, deferred: bool = False) -> tuple[dict[int, Video], list[GtObject]]:
    """The videos and GT objects of a parsed GT, validated in place; ``deferred``: each object's per-frame values
    are left unchecked and its mask areas unmeasured, for :func:`check_gt` where its video is evaluated."""
    try:
        ytvis.validate_dataset(data, source, frames=not deferred)
    except InputError:
        if deferred:
            # A frame's value may come before the problem found in the file: the full check says which is first.
            ytvis.validate_dataset(data, source)
        raise
    if not data.get("categories"):
        raise InputError(f"{source}: the GT has no 'categories'; evaluation needs the category list")
    videos = {
        v["id"]: Video(v["id"], v["height"], v["width"], v["length"], tuple(v["file_names"]))
        for v in data["videos"]
    }
    gts = []
    if deferred:
        for ann in data.get("annotations", []):
            gt = _gt_object(ann, ann["segmentations"])
            gt.annotation = ann
            gts.append(gt)
        return videos, gts
    try:
        for ann in data.get("annotations", []):
            gts.append(_gt_object(ann, _gt_segmentations(ann, videos[ann["video_id"]], source)))
    except InputError:
        _check_rle_strings(gts, source)  # an earlier object's bad string comes first
        raise
    _check_rle_strings(gts, source)
    _measure_masks(gts, videos, source)
    return videos, gts


def _gt_segmentations(ann: dict[str, Any], video: Video, source: str) -> list[RLE | None]:
    """An annotation's segmentations as compressed RLE (None where absent), checked but for the characters of
    their strings (see _check_rle_strings)."""
    where = f"annotation {ann['id']} (video {video.id})"
    size = [video.height, video.width]
    try:
        # The common case (a compressed RLE of the right size) inline.
        segmentations = [
            seg
            if type(seg) is dict and type(seg.get("counts")) is str and seg.get("size") == size
            else _gt_rle(seg, video, source, where, frame)
            for frame, seg in enumerate(ann["segmentations"])
        ]
    except (TypeError, ValueError, KeyError) as exc:
        raise InputError(
            f"{source}: annotation {ann['id']} (video {video.id}): a segmentation is not a polygon or RLE ({exc})"
        ) from exc
    return segmentations


def check_gt(gts: list[GtObject], videos: dict[int, Video], source: str) -> None:
    """Finish what :func:`load` left for the GT objects of some videos: check their per-frame
    values, convert their segmentations, measure their masks (InputError for the first problem, in order)."""
    checked = []
    try:
        for gt in gts:
            if gt.annotation is not None:
                video = videos[gt.video_id]
                if ytvis.check_annotation_frames(gt.annotation, video.height, video.width, source):
                    gt.segmentations = list(gt.annotation["segmentations"])
                else:
                    gt.segmentations = _gt_segmentations(gt.annotation, video, source)
                gt.annotation = None
                checked.append(gt)
    except InputError:
        _check_rle_strings(checked, source)  # an earlier object's bad string comes first
        raise
    _check_rle_strings(checked, source)
    _measure_masks(gts, videos, source)


def _gt_object(ann: dict[str, Any], segmentations: list[RLE | None]) -> GtObject:
    return GtObject(
        ann["id"],
        ann["video_id"],
        ann["category_id"],
        bool(ann.get("iscrowd", 0)),
        segmentations,
        ann.get("areas"),
    )


def load_gt(
    uri: str | os.PathLike[str], deferred: bool = False
) -> tuple[dict[int, Video], list[dict[str, Any]], list[GtObject], dict[str, Any]]:
    """The videos, categories and objects of a GT file, and its parsed JSON (``deferred``: see _gt_objects)."""
    data = jsonio.read_json(uri, finite=True)
    videos, gts = _gt_objects(data, os.fspath(uri), deferred)
    return videos, data["categories"], gts, data


# --------------------------------------------------------------------------------------------------- results


def _check_result_rle(seg: Any, video: Video, source: str, where: str, frame: int) -> RLE | None:
    if not seg:
        return None
    if (
        type(seg) is dict
        and type(seg.get("counts")) is str
        and seg.get("size") == [video.height, video.width]
    ):
        return seg
    if not isinstance(seg, dict) or "counts" not in seg or "size" not in seg:
        raise InputError(
            f"{source}: {where}: segmentations[{frame}] is not an RLE dict with 'size' and 'counts'"
        )
    size = seg["size"]
    if not (isinstance(size, list) and len(size) == 2) or size[0] != video.height or size[1] != video.width:
        raise InputError(
            f"{source}: {where}: segmentations[{frame}].size {size!r} differs from video {video.id}'s "
            f"[height, width] [{video.height}, {video.width}]; results must be at the GT resolution"
        )
    counts = seg["counts"]
    if isinstance(counts, list):
        if (
            not all(isinstance(c, int) and c >= 0 for c in counts)
            or sum(counts) != video.height * video.width
        ):
            raise InputError(
                f"{source}: {where}: segmentations[{frame}] is a malformed uncompressed RLE "
                f"(counts must be non-negative integers summing to height*width)"
            )
        seg = mask_utils.frPyObjects(seg, video.height, video.width)
        seg["counts"] = seg["counts"].decode("ascii")
        return seg
    if isinstance(counts, bytes):
        counts = counts.decode("ascii", errors="replace")
    if not isinstance(counts, str):
        raise _not_rle_string(source, where, frame, f"a {type(counts).__name__}, not a string")
    problem = _rle_string_problem(counts)
    if problem:
        raise _not_rle_string(source, where, frame, problem)
    return {"size": size, "counts": counts}


def _bad_rle_string(segmentations: list[list[RLE | None]]) -> tuple[int, int, str] | None:
    """(object, frame, problem) of the first compressed RLE string among some objects' checked segmentations that
    pycocotools cannot decode safely (see :func:`_rle_string_problem`), or None.

    The strings are looked at together, a few hundred at a time, with numpy: characters '0'..'o', and a last
    character '0'..'O'. Only where that fails are they looked at one by one, to name the first."""
    strings = [seg["counts"] for segs in segmentations for seg in segs if seg is not None]
    for start in range(0, len(strings), _STRINGS_PER_CHECK):
        part = strings[start : start + _STRINGS_PER_CHECK]
        joined = "".join(part)
        if not joined.isascii():
            break
        codes = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
        if not codes.size:
            continue
        lengths = np.fromiter(map(len, part), dtype=np.int64, count=len(part))
        last = np.cumsum(lengths)[lengths > 0] - 1
        if codes.min() < ord("0") or codes.max() > ord("o") or codes[last].max() >= ord("P"):
            break
    else:
        return None
    return next(
        (
            (position, frame, problem)
            for position, segs in enumerate(segmentations)
            for frame, seg in enumerate(segs)
            if seg is not None and (problem := _rle_string_problem(seg["counts"]))
        ),
        None,
    )


def _check_rle_strings(objects: list[Detection] | list[GtObject], source: str) -> None:
    """InputError naming the first object and frame whose RLE string pycocotools cannot decode safely."""
    found = _bad_rle_string([obj.segmentations for obj in objects])
    if found is not None:
        position, frame, problem = found
        raise _not_rle_string(source, objects[position].where, frame, problem)


def _measure_masks(objects: list[Detection] | list[GtObject], videos: dict[int, Video], source: str) -> None:
    """Set every object's per-frame mask areas (0 where absent) with as few pycocotools calls as it allows;
    InputError for the first object with a mask larger than its frame (a malformed RLE: its runs do not add up to
    the frame)."""
    present = np.array([seg is not None for obj in objects for seg in obj.segmentations], dtype=bool)
    areas = np.zeros(len(present), dtype=np.int64)
    areas[present] = rle.areas([seg for obj in objects for seg in obj.segmentations if seg is not None])
    lengths = np.array([len(obj.segmentations) for obj in objects], dtype=np.int64)
    frame_pixels = np.array([videos[obj.video_id].height * videos[obj.video_id].width for obj in objects])
    starts = np.cumsum(lengths) - lengths
    for obj, start, stop in zip(objects, starts.tolist(), (starts + lengths).tolist(), strict=True):
        obj.mask_areas = areas[start:stop]
    oversized = np.flatnonzero(areas > np.repeat(frame_pixels, lengths))
    if oversized.size:
        obj = objects[int(np.searchsorted(starts, oversized[0], side="right")) - 1]
        frame = int(np.argmax(obj.mask_areas))
        video = videos[obj.video_id]
        raise InputError(
            f"{source}: {obj.where}: segmentations[{frame}] is a malformed RLE "
            f"(area {int(obj.mask_areas[frame])} exceeds the frame's {video.height * video.width} pixels)"
        )


def _concatenated(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)


def _result(
    entry: Any, index: int, videos: dict[int, Video], source: str, warnings: Counter[str]
) -> Detection | None:
    if not isinstance(entry, dict):
        raise InputError(f"{source}: result {index} is not an object")
    where = f"result {index} (video {entry.get('video_id')!r:.80})"
    for name in ("video_id", "score", "category_id", "segmentations"):
        if name not in entry:
            raise InputError(f"{source}: {where}: missing field '{name}'")
    score = entry["score"]
    if not isinstance(score, (int, float)) or isinstance(score, bool) or not math.isfinite(score):
        raise InputError(f"{source}: {where}: 'score' must be a finite number, got {score!r}")
    category_id = entry["category_id"]
    if not isinstance(category_id, int) or isinstance(category_id, bool):
        raise InputError(f"{source}: {where}: 'category_id' must be an integer, got {category_id!r}")
    if not isinstance(entry["video_id"], int) or isinstance(entry["video_id"], bool):
        raise InputError(f"{source}: {where}: 'video_id' must be an integer, got {entry['video_id']!r:.80}")
    video = videos.get(entry["video_id"])
    if video is None:
        warnings["results_for_unknown_videos"] += 1
        return None
    segs = entry["segmentations"]
    if not isinstance(segs, list) or len(segs) != video.length:
        count = len(segs) if isinstance(segs, list) else type(segs).__name__
        raise InputError(
            f"{source}: {where}: 'segmentations' has {count} entries, the GT video has {video.length} frames"
        )
    size = [video.height, video.width]
    # The common cases (absent, or a compressed RLE of the right size) inline: this runs once per frame.
    checked = [
        None
        if seg is None
        else seg
        if type(seg) is dict and type(seg.get("counts")) is str and seg.get("size") == size
        else _check_result_rle(seg, video, source, where, frame)
        for frame, seg in enumerate(segs)
    ]
    return Detection(index, video.id, category_id, float(score), checked)


@dataclass
class _CheckedSlice:
    """What checking results[start:stop] found; only what the parent lacks travels back from a worker."""

    # index, video id, category id, score, the checked segmentations where they differ from the entry's
    found: list[tuple[int, int, int, float, list[RLE | None] | None]]
    mask_areas: np.ndarray  # theirs, concatenated: one array unpickles much faster than thousands
    unknown_videos: int
    error: InputError | None = None
    area_error: InputError | None = None


def _check_slice(
    results: list[Any], bounds: tuple[int, int], videos: dict[int, Video], source: str
) -> _CheckedSlice:
    warnings: Counter[str] = Counter()
    detections = []
    try:
        try:
            for index in range(*bounds):
                det = _result(results[index], index, videos, source, warnings)
                if det is not None:
                    detections.append(det)
        except InputError:
            _check_rle_strings(detections, source)  # an earlier result's bad string comes first
            raise
        _check_rle_strings(detections, source)
    except InputError as exc:
        return _CheckedSlice([], _concatenated([]), 0, error=exc)
    area_error = None
    try:
        _measure_masks(detections, videos, source)
    except InputError as exc:
        area_error = exc
    entries = [results[det.index]["segmentations"] for det in detections]
    return _CheckedSlice(
        [
            (
                det.index,
                det.video_id,
                det.category_id,
                det.score,
                None
                if all(a is b for a, b in zip(det.segmentations, segs, strict=True))
                else det.segmentations,
            )
            for det, segs in zip(detections, entries, strict=True)
        ],
        _concatenated([det.mask_areas for det in detections]),
        warnings["results_for_unknown_videos"],
        area_error=area_error,
    )


def _results_from_list(
    results: list[Any], videos: dict[int, Video], source: str, warnings: Counter[str], workers: int
) -> list[Detection]:
    # The checks and the mask areas run over slices of the list in parallel; errors are raised as one pass
    # over the whole list would raise them: the first malformed result, else the first oversized mask.
    pieces = slices(len(results), 4 * workers if workers > 1 else 1)
    checked_slices = list(fork_map(lambda b: _check_slice(results, b, videos, source), pieces, workers))
    for checked in checked_slices:
        if checked.error is not None:
            raise checked.error
    for checked in checked_slices:
        if checked.area_error is not None:
            raise checked.area_error
    detections = []
    for checked in checked_slices:
        if checked.unknown_videos:
            warnings["results_for_unknown_videos"] += checked.unknown_videos
        position = 0
        for index, video_id, category_id, score, segs in checked.found:
            if segs is None:
                segs = results[index]["segmentations"]
            length = videos[video_id].length
            areas = checked.mask_areas[position : position + length]
            position += length
            detections.append(Detection(index, video_id, category_id, score, segs, areas))
    _warn_unknown_videos(warnings, source)
    return detections


def _folder(video: Video | dict[str, Any]) -> str:
    names = video.file_names if isinstance(video, Video) else video["file_names"]
    return posixpath.dirname(names[0])


def _stem(name: str) -> str:
    return posixpath.splitext(posixpath.basename(name))[0]


def _match_videos(
    gt_videos: dict[int, Video], res_videos: list[dict[str, Any]], source: str
) -> dict[int, tuple[Video, list[int | None]]]:
    """Results video id -> (GT video, for each GT frame the results frame index or None).

    A results video goes to the GT video with the same frame folder (its last path component, or the whole
    folder where names repeat), else to the GT video with the same id; frames are paired by file name stem.
    """
    by_folder: dict[str, list[Video]] = {}
    for video in gt_videos.values():
        by_folder.setdefault(posixpath.basename(_folder(video)), []).append(video)
    matches = {}
    for res_video in res_videos:
        folder = _folder(res_video)
        candidates = by_folder.get(posixpath.basename(folder), [])
        if len(candidates) > 1:
            candidates = [v for v in candidates if _folder(v) == folder]
        if len(candidates) == 1:
            gt_video = candidates[0]
        elif res_video["id"] in gt_videos and not by_folder.get(posixpath.basename(folder)):
            gt_video = gt_videos[res_video["id"]]
        else:
            continue
        if (res_video["height"], res_video["width"]) != (gt_video.height, gt_video.width):
            raise InputError(
                f"{source}: video {res_video['id']} ({folder}) is {res_video['height']}x{res_video['width']}, "
                f"its GT video {gt_video.id} is {gt_video.height}x{gt_video.width}; masks must be at the GT size"
            )
        frame_of_stem = {_stem(name): index for index, name in enumerate(res_video["file_names"])}
        matches[res_video["id"]] = (
            gt_video,
            [frame_of_stem.get(_stem(name)) for name in gt_video.file_names],
        )
    return matches


def _results_from_dataset(
    data: dict[str, Any], videos: dict[int, Video], source: str, warnings: Counter[str]
) -> list[Detection]:
    ytvis.validate_dataset(data, source)
    matches = _match_videos(videos, data["videos"], source)
    unmatched = [v["id"] for v in data["videos"] if v["id"] not in matches]
    if unmatched:
        _warn(
            warnings,
            "results_videos_not_in_gt",
            len(unmatched),
            "%s: %d videos match no GT video by frame folder or id and are left out (e.g. %s)",
            source,
            len(unmatched),
            unmatched[:5],
        )
    detections = []
    missing_frames = 0
    for index, ann in enumerate(data.get("annotations", [])):
        match = matches.get(ann["video_id"])
        if match is None:
            warnings["results_for_unknown_videos"] += 1
            continue
        gt_video, frames = match
        where = f"annotation {ann['id']} (video {ann['video_id']})"
        segs = []
        for gt_frame, res_frame in enumerate(frames):
            if res_frame is None:
                missing_frames += 1
                segs.append(None)
            else:
                segs.append(
                    _check_result_rle(ann["segmentations"][res_frame], gt_video, source, where, gt_frame)
                )
        score = ann.get("score", 1.0)
        if not isinstance(score, (int, float)) or isinstance(score, bool) or not math.isfinite(score):
            raise InputError(f"{source}: {where}: 'score' must be a finite number, got {score!r}")
        found = _bad_rle_string([segs])
        if found is not None:
            raise _not_rle_string(source, where, found[1], found[2])
        detections.append(Detection(index, gt_video.id, ann["category_id"], float(score), segs))
    _measure_masks(detections, videos, source)
    if missing_frames:
        _warn(
            warnings,
            "gt_frames_missing_in_results",
            missing_frames,
            "%s: %d (annotation, GT frame) pairs have no frame of that name in the results video; "
            "they count as empty",
            source,
            missing_frames,
        )
    return detections


def load_results(
    uri: str | os.PathLike[str],
    videos: dict[int, Video],
    warnings: Counter[str],
    workers: int = 1,
    data: Any = None,
) -> list[Detection]:
    """Detections from a YTVIS results list or a YTVIS dataset JSON, mapped onto the GT videos.

    A results list is checked by ``workers`` processes. ``data``: the file's parsed JSON, if already read.
    """
    source = os.fspath(uri)
    if data is None:
        data = jsonio.read_json(uri, finite=True)
    if isinstance(data, dict) and "videos" in data and "annotations" in data:
        detections = _results_from_dataset(data, videos, source, warnings)
    elif isinstance(data, list):
        detections = _results_from_list(data, videos, source, warnings, workers)
    else:
        raise InputError(
            f"{source}: neither a YTVIS results list nor a YTVIS dataset (an object with 'videos' and 'annotations')"
        )
    if not detections:
        _warn_no_results(warnings, source)
    return detections


_JSON_LIST_START = re.compile(rb"[ \t\n\r]*\[")


def load(gt: str | os.PathLike[str], results: str | os.PathLike[str], workers: int = 1) -> EvalInputs:
    """GT and results, loaded, with the checks that go with each video's masks left to whoever evaluates it
    (:attr:`EvalInputs.deferred`, :func:`checked_videos`): the GT's structure is checked here, its per-frame
    values and mask areas are not; a results list stays the file's bytes (see UncheckedResults), any other results
    file is loaded and checked here. Errors come as a full load gives them: the GT's first."""
    warnings: Counter[str] = Counter()
    videos, categories, gts, gt_data = load_gt(gt, deferred=True)
    deferred = Deferred(os.fspath(gt), gt_data, None)
    try:
        data = storage.read_buffer(results)
        if _JSON_LIST_START.match(data):
            deferred.results = UncheckedResults(data, os.fspath(results))
            return EvalInputs(videos, categories, gts, [], warnings, deferred)
        parsed = jsonio.parse_json(data, results, finite=True)
        detections = load_results(results, videos, warnings, workers, parsed)
    except Exception:
        _gt_objects(gt_data, os.fspath(gt))  # raises the GT's first error, which a full load would meet first
        raise
    return EvalInputs(videos, categories, gts, detections, warnings, deferred)


def checked_videos(inputs: EvalInputs, video_ids: list[int]) -> EvalInputs:
    """``inputs`` narrowed to ``video_ids``, their GT objects and results checked and measured (what
    :attr:`EvalInputs.deferred` left undone, done here for those videos only)."""
    wanted = set(video_ids)
    gts = [gt for gt in inputs.gts if gt.video_id in wanted]
    detections = [det for det in inputs.detections if det.video_id in wanted]
    if inputs.deferred is not None:
        check_gt(gts, inputs.videos, inputs.deferred.gt_source)
        if inputs.deferred.results is not None:
            detections = inputs.deferred.results.detections(sorted(wanted), inputs.videos)
    return EvalInputs(inputs.videos, inputs.categories, gts, detections, inputs.warnings)
