"""YouTube-VIS-style dataset and results JSON, as VNext's SeqFormer loader and the official evaluator read them.

Dataset: ``videos[]`` {id, file_names (relative to the image root, '/'-separated), height, width, length};
``annotations[]`` {id, video_id, category_id, iscrowd, segmentations, bboxes, areas}, the last three lists of
length ``length`` with null where the object is absent; ``categories[]`` {id, name, ...}.
Results: a list of {video_id, score, category_id, segmentations (compressed RLE for every frame)}.

LV-VIS ships ``file_names`` with backslashes; loading normalises them to '/'.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from typing import IO, Any

from wsovvis import jsonio, storage
from wsovvis.errors import InputError
from wsovvis.names import NAME_MAX, name_problem

AGNOSTIC_CATEGORY: dict[str, Any] = {"id": 1, "name": "object"}

_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def normalise_file_name(name: str) -> str:
    return name.replace("\\", "/")


def _fail(source: str, where: str, message: str) -> InputError:
    return InputError(f"{source}: {where}: {message}")


def _check_int(value: Any, source: str, where: str, field: str, *, minimum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(source, where, f"field '{field}' must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise _fail(source, where, f"field '{field}' must be >= {minimum}, got {value}")
    return value


def _check_rle(
    rle: Any, source: str, where: str, field: str, frame: int, size: tuple[int, int] | None
) -> None:
    if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
        raise _fail(source, where, f"{field}[{frame}] is not an RLE dict with 'size' and 'counts'")
    if not isinstance(rle["counts"], (str, list)):
        raise _fail(source, where, f"{field}[{frame}].counts must be a string or a list")
    rle_size = rle["size"]
    if not (isinstance(rle_size, list) and len(rle_size) == 2 and all(isinstance(v, int) for v in rle_size)):
        raise _fail(source, where, f"{field}[{frame}].size must be [height, width], got {rle_size!r}")
    if size is not None and tuple(rle_size) != size:
        raise _fail(
            source,
            where,
            f"{field}[{frame}].size {rle_size} differs from the video's [height, width] {list(size)}",
        )


# Where a path component might be empty, '.' or '..' (a boundary, up to two dots, a boundary), contain NUL, or
# exceed 255 bytes (ASCII: one byte a character), in names joined by newlines. No match: every component is a
# usable name; a match sends the video's names through the per-component check, which says what is wrong.
_SUSPECT_COMPONENT = re.compile(r"(?:^|[/\n])\.{0,2}(?=[/\n]|$)|\x00|[^/\n]{" + str(NAME_MAX + 1) + "}")


def _plain_names(names: list[str]) -> bool:
    """True when every component of every name is a usable file name (one scan for the common case)."""
    joined = "\n".join(names)
    return joined.isascii() and _SUSPECT_COMPONENT.search(joined) is None


def validate_video(video: Any, source: str) -> dict[str, Any]:
    if not isinstance(video, dict):
        raise _fail(source, "videos[]", f"entry is not an object: {video!r:.80}")
    where = f"video {video.get('id')!r}"
    for field in ("id", "file_names", "height", "width"):
        if field not in video:
            raise _fail(source, where, f"missing field '{field}'")
    _check_int(video["id"], source, where, "id")
    _check_int(video["height"], source, where, "height", minimum=1)
    _check_int(video["width"], source, where, "width", minimum=1)
    names = video["file_names"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise _fail(source, where, "field 'file_names' must be a non-empty list of strings")
    length = video.setdefault("length", len(names))
    _check_int(length, source, where, "length", minimum=1)
    if length != len(names):
        raise _fail(source, where, f"field 'length' is {length} but 'file_names' has {len(names)} entries")
    video["file_names"] = names = [normalise_file_name(n) for n in names]
    if _plain_names(names):
        return video
    for index, name in enumerate(names):
        problem = next(filter(None, (name_problem(part) for part in name.split("/"))), None)
        if problem:
            raise _fail(
                source,
                where,
                f"file_names[{index}] {name!r} is not a plain relative path below the image root ({problem})",
            )
    return video


def _plain_values(field: str, values: list[Any], size: tuple[int, int]) -> bool:
    """True when every entry has the common well-formed shape (absent, a compressed RLE of the video's size
    with integer dimensions, a list of four, a number); otherwise the per-frame checks find what is wrong."""
    if field == "segmentations":
        expected = list(size)
        return all(
            value is None
            or (
                type(value) is dict
                and type(value.get("counts")) is str
                and (rle_size := value.get("size")) == expected
                and type(rle_size[0]) is int
                and type(rle_size[1]) is int
            )
            for value in values
        )
    if field == "bboxes":
        return all(value is None or (type(value) is list and len(value) == 4) for value in values)
    return all(value is None or type(value) is int or type(value) is float for value in values)


def validate_annotation(
    ann: Any,
    videos: dict[int, dict[str, Any]],
    category_ids: set[int] | None,
    source: str,
) -> None:
    """Check one annotation against its video and the categories, with its per-frame values."""
    if not isinstance(ann, dict):
        raise _fail(source, "annotations[]", f"entry is not an object: {ann!r:.80}")
    where = f"annotation {ann.get('id')!r} (video {ann.get('video_id')!r})"
    for field in ("id", "video_id", "category_id", "segmentations"):
        if field not in ann:
            raise _fail(source, where, f"missing field '{field}'")
    _check_int(ann["id"], source, where, "id")
    video = videos.get(ann["video_id"])
    if video is None:
        raise _fail(source, where, f"video_id {ann['video_id']!r} is not in videos[]")
    _check_int(ann["category_id"], source, where, "category_id")
    if category_ids is not None and ann["category_id"] not in category_ids:
        raise _fail(source, where, f"category_id {ann['category_id']} is not in categories[]")
    for field in ("segmentations", "bboxes", "areas"):
        if field not in ann:
            continue
        values = ann[field]
        if not isinstance(values, list) or len(values) != video["length"]:
            count = len(values) if isinstance(values, list) else type(values).__name__
            raise _fail(
                source, where, f"'{field}' has {count} entries, the video has length {video['length']}"
            )
    size = (video["height"], video["width"])
    for field in ("segmentations", "bboxes", "areas"):
        if field not in ann or _plain_values(field, ann[field], size):
            continue
        for frame, value in enumerate(ann[field]):
            if value is None:
                continue
            if field == "segmentations":
                _check_rle(value, source, where, field, frame, size)
            elif field == "bboxes" and not (isinstance(value, list) and len(value) == 4):
                raise _fail(source, where, f"bboxes[{frame}] must be [x, y, w, h], got {value!r}")
            elif field == "areas" and not isinstance(value, (int, float)):
                raise _fail(source, where, f"areas[{frame}] must be a number, got {value!r}")


def validate_dataset(data: Any, source: str) -> dict[str, Any]:
    """Check a YTVIS dataset in place (normalising file names); errors name the video/annotation and field."""
    if not isinstance(data, dict):
        raise InputError(
            f"{source}: a YTVIS dataset is a JSON object with 'videos', got {type(data).__name__}"
        )
    for key in ("videos", "annotations", "categories"):
        if key in data and not isinstance(data[key], list):
            raise InputError(f"{source}: '{key}' must be a list")
    if "videos" not in data:
        raise InputError(f"{source}: missing 'videos'")
    videos: dict[int, dict[str, Any]] = {}
    for video in data["videos"]:
        validate_video(video, source)
        if video["id"] in videos:
            raise _fail(source, f"video {video['id']!r}", "duplicate id")
        videos[video["id"]] = video
    category_ids = None
    if "categories" in data:
        category_ids = set()
        for cat in data["categories"]:
            if not isinstance(cat, dict) or "id" not in cat:
                raise InputError(f"{source}: categories[]: entry without 'id': {cat!r:.80}")
            category_ids.add(_check_int(cat["id"], source, f"category {cat.get('name')!r}", "id"))
    seen: set[int] = set()
    for ann in data.get("annotations", []):
        validate_annotation(ann, videos, category_ids, source)
        if ann["id"] in seen:
            raise _fail(source, f"annotation {ann['id']!r}", "duplicate id")
        seen.add(ann["id"])
    return data


def load_dataset(uri: str | os.PathLike[str], *, validate: bool = True) -> dict[str, Any]:
    data = jsonio.read_json(uri, finite=True)
    source = os.fspath(uri)
    if validate:
        return validate_dataset(data, source)
    if isinstance(data, dict):
        for video in data.get("videos", []):
            video["file_names"] = [normalise_file_name(n) for n in video.get("file_names", [])]
    return data


def _write_list(handle: IO[str], items: Iterable[Any]) -> int:
    handle.write("[")
    count = 0
    for item in items:
        handle.write(",\n" if count else "\n")
        handle.write(_JSON.encode(item))
        count += 1
    handle.write("\n]" if count else "]")
    return count


class DatasetWriter:
    """Streams a dataset JSON: annotations go to disk as they come, videos (small) are written at the end.

    Key order is info, categories, annotations, videos; output bytes depend only on what was added.
    """

    def __init__(
        self, handle: IO[str], categories: list[dict[str, Any]], info: dict[str, Any] | None
    ) -> None:
        self._handle = handle
        self._videos: list[dict[str, Any]] = []
        self.num_annotations = 0
        handle.write("{")
        if info is not None:
            handle.write(f'"info":{_JSON.encode(info)},\n')
        handle.write('"categories":')
        _write_list(handle, categories)
        handle.write(',\n"annotations":[')

    def add_video(self, video: dict[str, Any]) -> None:
        self._videos.append(video)

    def add_annotation(self, annotation: dict[str, Any]) -> None:
        self._handle.write(",\n" if self.num_annotations else "\n")
        self._handle.write(_JSON.encode(annotation))
        self.num_annotations += 1

    @property
    def num_videos(self) -> int:
        return len(self._videos)

    def _finish(self) -> None:
        self._handle.write("\n]," if self.num_annotations else "],")
        self._handle.write('\n"videos":')
        _write_list(self._handle, self._videos)
        self._handle.write("}\n")


@contextlib.contextmanager
def dataset_writer(
    uri: str | os.PathLike[str], categories: list[dict[str, Any]], info: dict[str, Any] | None = None
) -> Iterator[DatasetWriter]:
    """Write a dataset JSON atomically: it appears whole when the block exits without error, else not at all."""
    with storage.open_atomic(uri, "w") as handle:
        writer = DatasetWriter(handle, categories, info)
        yield writer
        writer._finish()


def write_dataset(uri: str | os.PathLike[str], data: dict[str, Any]) -> None:
    with dataset_writer(uri, data.get("categories", []), data.get("info")) as writer:
        for ann in data.get("annotations", []):
            writer.add_annotation(ann)
        for video in data.get("videos", []):
            writer.add_video(video)


def write_results(uri: str | os.PathLike[str], results: Iterable[dict[str, Any]]) -> int:
    """Stream a results list to ``uri`` atomically; returns the number of results written."""
    with storage.open_atomic(uri, "w") as handle:
        count = _write_list(handle, results)
        handle.write("\n")
    return count
