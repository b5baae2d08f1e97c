"""Ground truth and results for evaluation: one loader that reads each file once and checks each object once.

Results come either as a YTVIS results list or as a YTVIS dataset (such as the tubes of ``wsovvis convert``),
whose annotations become results. A results list is decoded by msgspec straight into typed records, which checks
every field's type where it is read; each result is then checked against its video where it is met (frames,
sizes, uncompressed RLE), and every compressed RLE string of a file in one batch with numpy
(:func:`wsovvis.rle.check_strings`), which also gives each mask's area. The first problem met is an
:class:`~wsovvis.errors.InputError` naming the file, the result or annotation (and its video), the frame and what
is wrong. What the official evaluator would silently absorb or crash on (results for videos not in the GT, no
results at all) is counted in :attr:`EvalInputs.warnings` and logged; results that per-category scoring would
silently score near 0 (class-agnostic tubes against a GT of several categories) are refused once both files are
read (:func:`check_categories`). What comes out is checked: the metric
(:mod:`wsovvis.evaluate.ytvoseval`) and the report check nothing.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
from pycocotools import mask as mask_utils

from wsovvis import jsonio, storage, ytvis
from wsovvis.errors import InputError
from wsovvis.resources import fork_map
from wsovvis.rle import Rle, check_strings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Video:
    id: int
    height: int
    width: int
    length: int
    file_names: tuple[str, ...]


@dataclass
class GtObject:
    """One GT annotation: its compressed RLE (None where absent), mask areas and 'areas' field, per frame."""

    id: int
    video_id: int
    category_id: int
    iscrowd: bool
    segmentations: list[Rle | None]
    areas: list[Any] | None
    mask_areas: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

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
    segmentations: list[Rle | None]
    mask_areas: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def where(self) -> str:
        """The result as errors name it."""
        return f"result {self.index} (video {self.video_id})"


@dataclass
class EvalInputs:
    videos: dict[int, Video]
    categories: list[dict[str, Any]]
    gts: list[GtObject]
    detections: list[Detection]
    warnings: Counter[str] = field(default_factory=Counter)


class _Result(msgspec.Struct, gc=False):
    """One entry of a results list as decoded (fields other than these are ignored)."""

    video_id: int
    category_id: int
    score: float
    segmentations: list[Rle | None]


_RESULTS = msgspec.json.Decoder(list[_Result])
_AT = re.compile(r"^(?P<what>.*) - at `\$(?:\[(?P<index>\d+)\])?\.?(?P<path>[^`]*)`$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]*)`$")
_WRONG_TYPE = re.compile(r"^Expected `(?P<want>[^`]*)`, got `(?P<got>[^`]*)`$")
# msgspec's names of JSON types, as errors name them
_KINDS = {
    "int": "an integer",
    "float": "a finite number",
    "str": "a string",
    "array": "a list",
    "object": "an object",
    "null": "null",
    "bool": "a boolean",
    "str | array": "a string or a list",
    "object | null": "an RLE object or null",
}
# Frames per process below which checking their masks in one process is quicker than forking for them.
_FRAMES_PER_WORKER = 8192
_JSON_LIST_START = re.compile(rb"[ \t\n\r]*\[")


def _warn(warnings: Counter[str], key: str, count: int, message: str, *args: Any) -> None:
    warnings[key] += count
    log.warning(message, *args)


# --------------------------------------------------------------------------------------------------- masks


def _frame_rle(seg: Any, video: Video, source: str, where: str, frame: int) -> Rle | None:
    """A segmentation as a compressed RLE of its video's size (None where absent); an uncompressed RLE (runs as a
    list) is checked and compressed. The string's characters and runs are checked later, in one batch."""
    if seg is None:
        return None
    if isinstance(seg, dict):  # a YTVIS dataset's, whose structure ytvis.validate_dataset checked
        seg = Rle(tuple(seg["size"]), seg["counts"])
    if seg.size != (video.height, video.width):
        raise InputError(
            f"{source}: {where}: segmentations[{frame}].size {list(seg.size)} differs from video {video.id}'s "
            f"[height, width] [{video.height}, {video.width}]; masks must be at the GT resolution"
        )
    if isinstance(seg.counts, str):
        return seg
    if (
        not all(type(c) is int and c >= 0 for c in seg.counts)
        or sum(seg.counts) != video.height * video.width
    ):
        raise InputError(
            f"{source}: {where}: segmentations[{frame}] is a malformed uncompressed RLE "
            "(counts must be non-negative integers summing to height*width)"
        )
    compressed = mask_utils.frPyObjects({"size": list(seg.size), "counts": seg.counts}, *seg.size)
    return Rle(seg.size, compressed["counts"].decode("ascii"))


def _check_masks(
    groups: list[tuple[list[Detection] | list[GtObject], str]], videos: dict[int, Video], workers: int
) -> None:
    """Check every compressed RLE string of some objects in one batch (characters, and runs that cover the frame,
    see :func:`wsovvis.rle.check_strings`) and set each object's per-frame mask areas (0 where absent); an
    InputError names the first object (of the first group that has one: (objects, their file)) and frame whose
    string is refused. ``workers`` processes take a slice of the objects each."""
    objects: list[Detection | GtObject] = [obj for group, _ in groups for obj in group]
    group_ends = np.cumsum([len(group) for group, _ in groups])
    lengths = np.fromiter((len(obj.segmentations) for obj in objects), dtype=np.int64, count=len(objects))
    ends = np.cumsum(lengths)
    # slices of about equal frame counts, none smaller than it is worth forking for
    pieces = min(workers, max(1, int(ends[-1]) // _FRAMES_PER_WORKER)) if len(objects) else 1
    bounds = np.searchsorted(ends, np.arange(1, pieces) * ends[-1] / pieces).tolist() if pieces > 1 else []
    parts = list(zip([0, *bounds], [*bounds, len(objects)], strict=True))
    areas = []
    for (start, _), (part_areas, bad) in zip(
        parts,
        fork_map(lambda part: _check_part(objects[part[0] : part[1]], videos), parts, workers),
        strict=True,
    ):
        if bad is not None:
            index, frame, problem = bad
            obj = objects[start + index]
            source = groups[int(np.searchsorted(group_ends, start + index, side="right"))][1]
            video = videos[obj.video_id]
            raise InputError(
                f"{source}: {obj.where}: segmentations[{frame}].counts is not a compressed RLE string for a "
                f"{video.height}x{video.width} frame ({problem})"
            )
        areas.append(part_areas)
    all_areas = np.concatenate(areas) if areas else np.zeros(0, dtype=np.int64)
    for obj, start, stop in zip(objects, (ends - lengths).tolist(), ends.tolist(), strict=True):
        obj.mask_areas = all_areas[start:stop]


def _check_part(
    objects: list[Detection | GtObject], videos: dict[int, Video]
) -> tuple[np.ndarray, tuple[int, int, str] | None]:
    """The per-frame mask areas of some objects, concatenated (0 where absent), and the first refused string as
    (object, frame, why) or None."""
    flat = [seg for obj in objects for seg in obj.segmentations]
    present = np.fromiter((seg is not None for seg in flat), dtype=bool, count=len(flat))
    lengths = np.fromiter((len(obj.segmentations) for obj in objects), dtype=np.int64, count=len(objects))
    frame_pixels = np.fromiter(
        (videos[obj.video_id].height * videos[obj.video_id].width for obj in objects),
        dtype=np.int64,
        count=len(objects),
    )
    areas, bad, problem = check_strings(
        [seg.counts for seg in flat if seg is not None], np.repeat(frame_pixels, lengths)[present]
    )
    all_areas = np.zeros(len(flat), dtype=np.int64)
    all_areas[present] = areas
    if bad is None:
        return all_areas, None
    position = int(np.flatnonzero(present)[bad])
    starts = np.cumsum(lengths) - lengths
    owner = int(np.searchsorted(starts, position, side="right")) - 1
    return all_areas, (owner, position - int(starts[owner]), problem)


# --------------------------------------------------------------------------------------------------- GT


def load_gt(
    uri: str | os.PathLike[str], workers: int = 1
) -> tuple[dict[int, Video], list[dict[str, Any]], list[GtObject]]:
    """The videos, categories and checked objects (mask areas measured) of a GT dataset file; ``workers``
    processes check the masks."""
    videos, categories, gts = _read_gt(uri)
    _check_masks([(gts, os.fspath(uri))], videos, workers)
    return videos, categories, gts


def _read_gt(uri: str | os.PathLike[str]) -> tuple[dict[int, Video], list[dict[str, Any]], list[GtObject]]:
    """:func:`load_gt` but for the masks' strings."""
    source = os.fspath(uri)
    data = ytvis.validate_dataset(jsonio.read_json(uri, finite=True), source)
    if not data.get("categories"):
        raise InputError(f"{source}: the GT has no 'categories'; evaluation needs the category list")
    videos = {
        v["id"]: Video(v["id"], v["height"], v["width"], v["length"], tuple(v["file_names"]))
        for v in data["videos"]
    }
    gts = []
    for ann in data.get("annotations", []):
        video = videos[ann["video_id"]]
        where = f"annotation {ann['id']} (video {video.id})"
        segmentations = [
            _frame_rle(seg or None, video, source, where, frame)
            for frame, seg in enumerate(ann["segmentations"])
        ]
        gts.append(
            GtObject(
                ann["id"],
                ann["video_id"],
                ann["category_id"],
                bool(ann.get("iscrowd", 0)),
                segmentations,
                ann.get("areas"),
            )
        )
    return videos, data["categories"], gts


# --------------------------------------------------------------------------------------------------- results


def _decode_results(data: bytes | Any, source: str) -> list[_Result]:
    """A results list's entries, typed; a field of the wrong type or a missing one is an InputError naming the
    result (and its video) and the field."""
    try:
        return _RESULTS.decode(data)
    except msgspec.ValidationError as exc:
        error = exc
        if str(exc).startswith("Number out of range"):
            jsonio.parse_json(data, source, finite=True)  # a number that overflows: the error every file gets
    except msgspec.DecodeError:
        # Malformed JSON, NaN and the like: the standard library's parser decides and words it (jsonio).
        parsed = jsonio.parse_json(data, source, finite=True)
        try:
            return msgspec.convert(parsed, list[_Result])
        except msgspec.ValidationError as exc:
            error = exc
    raise _field_error(error, data, source) from error


def _field_error(error: msgspec.ValidationError, data: bytes | Any, source: str) -> InputError:
    """msgspec's message (``Expected `float`, got `str` - at `$[3].score```) as the project words errors."""
    match = _AT.match(str(error))
    if match is None or match["index"] is None:
        return InputError(f"{source}: not a YTVIS results list ({error})")
    index = int(match["index"])
    where = f"result {index} (video {_video_id(data, index)!r:.80})"
    what = match["what"]
    missing = _MISSING.match(what)
    if missing is not None:
        prefix = f"{match['path']}: " if match["path"] else ""
        return InputError(f"{source}: {where}: {prefix}missing field '{missing['name']}'")
    wrong = _WRONG_TYPE.match(what)
    if wrong is not None:
        wanted = _KINDS.get(wrong["want"], f"`{wrong['want']}`")
        what = f"must be {wanted}, got {_KINDS.get(wrong['got'], wrong['got'])}"
    else:
        what = what[0].lower() + what[1:]
    return InputError(
        f"{source}: {where}: '{match['path']}' {what}" if match["path"] else f"{source}: {where}: {what}"
    )


def _video_id(data: bytes | Any, index: int) -> Any:
    """The video_id of entry ``index`` of a results list that failed its typed decode, only to name it."""
    try:
        entry = msgspec.json.decode(msgspec.json.decode(data, type=list[msgspec.Raw])[index])
    except (msgspec.MsgspecError, ValueError):
        return None
    return entry.get("video_id") if isinstance(entry, dict) else None


def _results_from_list(
    entries: list[_Result], videos: dict[int, Video], source: str, warnings: Counter[str]
) -> list[Detection]:
    detections = []
    unknown = 0
    for index, entry in enumerate(entries):
        video = videos.get(entry.video_id)
        if video is None:
            unknown += 1
            continue
        segs = entry.segmentations
        if len(segs) != video.length:
            raise InputError(
                f"{source}: result {index} (video {video.id}): 'segmentations' has {len(segs)} entries, the GT "
                f"video has {video.length} frames"
            )
        size = (video.height, video.width)
        # The common case (every frame absent, or a compressed RLE of the video's size) in one scan.
        if not all(seg is None or (seg.size == size and type(seg.counts) is str) for seg in segs):
            where = f"result {index} (video {video.id})"
            segs = [_frame_rle(seg, video, source, where, frame) for frame, seg in enumerate(segs)]
        detections.append(Detection(index, video.id, entry.category_id, entry.score, segs))
    if unknown:
        _warn(
            warnings,
            "results_for_unknown_videos",
            unknown,
            "%s: %d results are for videos not in the GT; they are left out (the official evaluator refuses them)",
            source,
            unknown,
        )
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
    unknown = 0
    for index, ann in enumerate(data.get("annotations", [])):
        match = matches.get(ann["video_id"])
        if match is None:
            unknown += 1
            continue
        gt_video, frames = match
        where = f"annotation {ann['id']} (video {ann['video_id']})"
        score = ann.get("score", 1.0)
        if type(score) not in (int, float) or not np.isfinite(score):
            raise InputError(f"{source}: {where}: 'score' must be a finite number, got {score!r}")
        segs = []
        for gt_frame, res_frame in enumerate(frames):
            if res_frame is None:
                missing_frames += 1
                segs.append(None)
            else:
                segs.append(_frame_rle(ann["segmentations"][res_frame], gt_video, source, where, gt_frame))
        detections.append(Detection(index, gt_video.id, ann["category_id"], float(score), segs))
    warnings["results_for_unknown_videos"] += unknown
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
    uri: str | os.PathLike[str], videos: dict[int, Video], warnings: Counter[str], workers: int = 1
) -> list[Detection]:
    """The checked detections (mask areas measured) of a YTVIS results list or a YTVIS dataset JSON, mapped onto
    ``videos``; what is left out is counted in ``warnings``; ``workers`` processes check the masks. The project's
    one results checker."""
    detections = _read_results(uri, videos, warnings)
    _check_masks([(detections, os.fspath(uri))], videos, workers)
    return detections


def _read_results(
    uri: str | os.PathLike[str], videos: dict[int, Video], warnings: Counter[str]
) -> list[Detection]:
    """:func:`load_results` but for the masks' strings."""
    source = os.fspath(uri)
    data = storage.read_buffer(uri)
    if _JSON_LIST_START.match(data):
        detections = _results_from_list(_decode_results(data, source), videos, source, warnings)
    else:
        parsed = jsonio.parse_json(data, source, finite=True)
        if not (isinstance(parsed, dict) and "videos" in parsed and "annotations" in parsed):
            raise InputError(
                f"{source}: neither a YTVIS results list nor a YTVIS dataset (an object with 'videos' and "
                "'annotations')"
            )
        detections = _results_from_dataset(parsed, videos, source, warnings)
    if not detections:
        _warn(
            warnings, "no_results", 1, "%s: no usable results; every AP and AR is 0 where GT exists", source
        )
    return detections


def _ids_text(ids: list[int]) -> str:
    """Category ids as a message names them: ``1-25`` where they run without a gap, else the first few."""
    ids = sorted(ids)
    if len(ids) > 2 and ids == list(range(ids[0], ids[-1] + 1)):
        return f"{ids[0]}-{ids[-1]}"
    return ", ".join(map(str, ids[:5])) + (", ..." if len(ids) > 5 else "")


def check_categories(
    detections: list[Detection],
    categories: list[dict[str, Any]],
    source: str,
    *,
    lvvis: bool = False,
) -> None:
    """Refuse results that per-category scoring would silently score near 0: every result's category is one the
    GT does not have, or (but with ``lvvis``) every result has one category and the GT several, as class-agnostic
    tubes (all category 1) have. An :class:`InputError` naming ``source``, what is wrong and the flags that say
    what was meant (``--class-agnostic``, ``--allow-category-mismatch``). Results where only some categories are
    unknown pass (those are left out, as the official evaluator leaves them out), as do no results at all.

    With ``lvvis`` (labels from ``wsovvis attribute``, whose top-1 may be one category for every tube of a small
    set) only results none of whose categories the GT has are refused."""
    if not detections:
        return
    result_ids = sorted({det.category_id for det in detections})
    names = {cat["id"]: cat.get("name", cat["id"]) for cat in categories}
    count = f"{len(names)} categor{'y' if len(names) == 1 else 'ies'}, ids {_ids_text(list(names))}"
    anyway = "--allow-category-mismatch to score them per category as they are"
    if not any(cid in names for cid in result_ids):
        which = (
            f"every result has category {result_ids[0]}, which the GT does not have (it has {count})"
            if len(result_ids) == 1
            else f"every result has a category the GT does not have (results: {_ids_text(result_ids)}; GT: "
            f"{count})"
        )
        if lvvis:
            advice = f"label them with the GT's categories (wsovvis attribute --vocab GT), or pass {anyway}"
        else:
            advice = f"pass --class-agnostic to score them class-agnostically, or {anyway}"
        raise InputError(f"{source}: {which}; {advice}")
    if len(result_ids) == 1 and len(names) > 1 and not lvvis:
        only = result_ids[0]
        raise InputError(
            f"{source}: every result has category {only} ({names[only]!r}), the GT has {count}; class-agnostic "
            f"results? Pass --class-agnostic to score them class-agnostically, or {anyway}"
        )


def load(
    gt: str | os.PathLike[str],
    results: str | os.PathLike[str],
    workers: int = 1,
    *,
    match_categories: bool = False,
    lvvis: bool = False,
) -> EvalInputs:
    """GT and results, read and checked: the GT, then the results, then the strings of all their masks in one batch
    (``workers`` processes), then with ``match_categories`` the results' categories against the GT's
    (:func:`check_categories`, ``lvvis`` as there)."""
    videos, gt_categories, gts = _read_gt(gt)
    warnings: Counter[str] = Counter()
    detections = _read_results(results, videos, warnings)
    _check_masks([(gts, os.fspath(gt)), (detections, os.fspath(results))], videos, workers)
    if match_categories:
        check_categories(detections, gt_categories, os.fspath(results), lvvis=lvvis)
    return EvalInputs(videos, gt_categories, gts, detections, warnings)
