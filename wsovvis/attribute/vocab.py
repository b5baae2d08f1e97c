"""The vocabulary: the categories of a YTVIS/LV-VIS dataset JSON, or a text file of names, one a line."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

from wsovvis import storage, ytvis
from wsovvis.errors import InputError
from wsovvis.evaluate.inputs import Video


@dataclass(frozen=True)
class Vocabulary:
    categories: tuple[dict[str, Any], ...]  # each with 'id' and 'name'; 'partition' and the rest kept
    videos: dict[int, Video] | None  # the dataset's videos, when the vocabulary is a dataset that has them

    @property
    def names(self) -> list[str]:
        return [c["name"] for c in self.categories]

    @property
    def ids(self) -> list[int]:
        return [c["id"] for c in self.categories]


def videos_of(data: dict[str, Any]) -> dict[int, Video]:
    """A validated YTVIS dataset's videos, by id, as evaluate's loader holds them."""
    return {
        v["id"]: Video(v["id"], v["height"], v["width"], v["length"], tuple(v["file_names"]))
        for v in data["videos"]
    }


def prompt_name(name: str) -> str:
    """LVIS-style names ('aerosol_can') as words for the prompts."""
    return " ".join(name.replace("_", " ").split())


def _from_dataset(data: dict[str, Any], source: str) -> Vocabulary:
    categories = data.get("categories")
    if not categories:
        raise InputError(f"{source}: the dataset has no 'categories' to use as the vocabulary (--vocab)")
    for cat in categories:
        if not isinstance(cat, dict) or not isinstance(cat.get("name"), str) or not cat["name"].strip():
            raise InputError(f"{source}: category {cat!r:.80} has no name (--vocab)")
    ytvis.validate_dataset(data, source)
    return Vocabulary(tuple(categories), videos_of(data) if data["videos"] else None)


def load_vocabulary(uri: str | os.PathLike[str]) -> Vocabulary:
    """A dataset JSON's categories (ids, names, partitions kept) and videos, or names from a text file (ids 1..N)."""
    source = os.fspath(uri)
    text = storage.read_text(uri)
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{source}: not valid JSON ({exc}) (--vocab)") from exc
        data.setdefault("videos", [])
        return _from_dataset(data, source)
    names = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not names:
        raise InputError(f"{source}: no category names (one a line) in the vocabulary (--vocab)")
    duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
    if duplicates:
        raise InputError(f"{source}: names listed more than once: {duplicates[:5]} (--vocab)")
    return Vocabulary(tuple({"id": i, "name": n} for i, n in enumerate(names, start=1)), None)
