"""Names read from inputs (video ids, frame names, tar members, S3 keys): validated in one place, sorted one way.

Every name a stage takes from data it did not write (a manifest, a folder listing, an S3 listing, a tar) becomes
one path component of a file it reads, writes or deletes. A name is usable only when it cannot leave its folder
and the filesystem can hold every file made from it: not empty, not ``.``/``..``, no ``/``, ``\\`` or NUL, valid
UTF-8, and short enough that the longest name derived from it (``<video_id>.json``) fits in 255 bytes.
"""

from __future__ import annotations

import re
from typing import Any

NAME_MAX = 255  # bytes in one path component on Linux filesystems (and the limit of S3-compatible tools)
# The longest suffix a stage appends to a video id: ``<id>.json`` (done markers), ``<id>.tar`` (mask tars).
VIDEO_ID_MAX = NAME_MAX - len(".json")
_DIGITS = re.compile(r"([0-9]+)")


class InvalidNameError(ValueError):
    """A name from an input that cannot be used as one path component; the message says why."""


def name_problem(name: Any, max_bytes: int = NAME_MAX) -> str | None:
    """Why ``name`` cannot be one path component (None when it can)."""
    if not isinstance(name, str):
        return f"not a string but {type(name).__name__}"
    if not name:
        return "empty"
    if name in (".", ".."):
        return f"'{name}' names a folder, not an entry of one"
    for char, what in (("/", "a '/'"), ("\\", "a '\\'"), ("\0", "a NUL byte")):
        if char in name:
            return f"contains {what}, so it is a path, not a name"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "not valid UTF-8"
    if size > max_bytes:
        return f"{size} bytes long, over the {max_bytes} a file name may have here"
    return None


def check_name(name: Any, max_bytes: int = NAME_MAX) -> str:
    """``name`` when it is a safe single path component, else raise InvalidNameError saying why."""
    problem = name_problem(name, max_bytes)
    if problem:
        raise InvalidNameError(f"{shown(name)}: {problem}")
    return name


def video_id_problem(video_id: Any) -> str | None:
    """Why ``video_id`` cannot name a folder, a ``<id>.tar`` and a ``<id>.json`` (None when it can)."""
    problem = name_problem(video_id, VIDEO_ID_MAX)
    if problem is None and video_id.startswith(("_", ".")):
        problem = (
            f"starts with '{video_id[0]}', which marks bookkeeping entries (markers, reports, temporaries)"
        )
    return f"{shown(video_id)}: {problem}" if problem else None


def check_video_id(video_id: Any) -> str:
    """``video_id`` when it is usable (see video_id_problem), else raise InvalidNameError saying why."""
    problem = video_id_problem(video_id)
    if problem:
        raise InvalidNameError(problem)
    return video_id


def shown(name: Any) -> str:
    """A name as a log line can carry it: quoted, control characters and undecodable bytes escaped."""
    if isinstance(name, str):
        return ascii(name) if not name.isprintable() or _has_surrogates(name) else repr(name)
    return repr(name)[:80]


def _has_surrogates(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def sort_key(name: str) -> tuple[tuple[Any, ...], str]:
    """Numeric-aware order: ``frame_2`` before ``frame_10``; names equal as numbers ordered by their text."""
    parts = _DIGITS.split(name)
    return tuple(int(part) if index % 2 else part for index, part in enumerate(parts)), name


def sorted_names(names: list[str]) -> list[str]:
    return sorted(names, key=sort_key)


def truncate_bytes(name: str, max_bytes: int) -> str:
    """The longest prefix of ``name`` whose UTF-8 form fits in ``max_bytes`` (temporary names of long names)."""
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) <= max_bytes:
        return name
    return encoded[:max_bytes].decode("utf-8", "ignore")
