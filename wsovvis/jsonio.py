"""JSON files at any storage location: parsed fast and checked on request, written as the standard library writes
them."""

from __future__ import annotations

import json
import math
import mmap
import os
from typing import Any

import msgspec

from wsovvis import storage
from wsovvis.errors import InputError


class _NotFiniteError(ValueError):
    pass


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFiniteError(f"{text} overflows to {value}")
    return value


def _no_constant(name: str) -> float:
    raise _NotFiniteError(name)


def read_json(uri: str | os.PathLike[str], *, finite: bool = False) -> Any:
    """Parse a JSON file; with ``finite``, NaN, Infinity and numbers that overflow are an InputError."""
    return parse_json(storage.read_buffer(uri), uri, finite=finite)


def parse_json(data: bytes | mmap.mmap, uri: str | os.PathLike[str], *, finite: bool = False) -> Any:
    """Parse the bytes read from ``uri`` (named in errors), as :func:`read_json` does.

    msgspec parses first: two to three times faster than the standard library on RLE-heavy files, with the
    same values (floats correctly rounded, integers unbounded, the last of duplicate keys). What it refuses
    (NaN, Infinity, numbers out of range, lone surrogates, a byte order mark, malformed JSON) goes to the standard
    library's parser, which decides and words the error as before.
    """
    try:
        return msgspec.json.decode(data)
    except (msgspec.MsgspecError, ValueError, RecursionError):  # invalid UTF-8 is a UnicodeDecodeError
        pass
    strict: dict[str, Any] = {"parse_constant": _no_constant, "parse_float": _finite_float} if finite else {}
    try:
        return json.loads(data if isinstance(data, bytes) else bytes(data), **strict)
    except _NotFiniteError as exc:
        raise InputError(
            f"{os.fspath(uri)}: holds a number that is not finite ({exc}); JSON allows finite numbers only"
        ) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{os.fspath(uri)}: not valid JSON ({exc})") from exc


def dumps_json(obj: Any, *, indent: int | None = 2) -> bytes:
    """``json.dumps(obj, indent=indent)`` as UTF-8 bytes, byte for byte.

    The standard library encodes in C only without indentation; its compact text laid out again by msgspec (which
    copies every number and string as it stands) is the indented text, ten times sooner for a large file. NaN and
    Infinity, which msgspec refuses as JSON, take the standard library's own indenting encoder."""
    compact = json.dumps(obj, sort_keys=False)
    if indent is None:
        return compact.encode("utf-8")
    try:
        return msgspec.json.format(compact.encode("utf-8"), indent=indent)
    except msgspec.DecodeError:
        return json.dumps(obj, indent=indent, sort_keys=False).encode("utf-8")


def write_json(uri: str | os.PathLike[str], obj: Any, *, indent: int | None = 2) -> None:
    """Write ``obj`` atomically as :func:`dumps_json` lays it out, with a final newline."""
    storage.write_bytes(uri, dumps_json(obj, indent=indent) + b"\n")
