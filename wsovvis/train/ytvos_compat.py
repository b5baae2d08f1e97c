"""A small ``pycocotools.ytvos.YTVOS`` for runtimes whose pycocotools lacks it.

PyPI's pycocotools has no ``ytvos`` module (it lives in the youtubevos/cocoapi fork, which breaks under
numpy 2), yet VNext's SeqFormer imports ``YTVOS`` when its package is imported (``seqformer/data/ytvis_eval.py``).
The harness reads YTVIS data through :mod:`wsovvis.ytvis` and never evaluates through VNext, so all that is
needed is an importable ``YTVOS`` with the index VNext's loader and evaluator read: ``dataset``, ``vids``,
``anns``, ``cats``, ``vidToAnns``, ``getCatIds``, ``getVidIds``, ``loadCats``, ``loadVids``, ``loadAnns``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections import defaultdict
from typing import Any

from wsovvis import ytvis

MODULE = "pycocotools.ytvos"


class YTVOS:
    """The index of one YTVIS dataset JSON, keyed by id (the subset of the cocoapi fork's API VNext uses)."""

    def __init__(self, annotation_file: str | os.PathLike[str] | None = None) -> None:
        self.dataset: dict[str, Any] = {}
        self.anns: dict[int, dict[str, Any]] = {}
        self.cats: dict[int, dict[str, Any]] = {}
        self.vids: dict[int, dict[str, Any]] = {}
        self.vidToAnns: dict[int, list[dict[str, Any]]] = defaultdict(list)
        self.catToVids: dict[int, list[int]] = defaultdict(list)
        if annotation_file is not None:
            self.dataset = ytvis.load_dataset(annotation_file)
            self.createIndex()

    def createIndex(self) -> None:
        for video in self.dataset.get("videos", []):
            self.vids[video["id"]] = video
        for ann in self.dataset.get("annotations", []):
            self.anns[ann["id"]] = ann
            self.vidToAnns[ann["video_id"]].append(ann)
            self.catToVids[ann["category_id"]].append(ann["video_id"])
        for cat in self.dataset.get("categories", []):
            self.cats[cat["id"]] = cat

    def getCatIds(self) -> list[int]:
        return list(self.cats)

    def getVidIds(self) -> list[int]:
        return list(self.vids)

    def loadCats(self, ids: list[int] | int) -> list[dict[str, Any]]:
        return [self.cats[i] for i in _as_list(ids)]

    def loadVids(self, ids: list[int] | int) -> list[dict[str, Any]]:
        return [self.vids[i] for i in _as_list(ids)]

    def loadAnns(self, ids: list[int] | int) -> list[dict[str, Any]]:
        return [self.anns[i] for i in _as_list(ids)]


def _as_list(ids: list[int] | int) -> list[int]:
    return list(ids) if isinstance(ids, (list, tuple)) else [ids]


def install() -> bool:
    """Make ``import pycocotools.ytvos`` work when the installed pycocotools lacks it; True if installed here."""
    import pycocotools

    if MODULE in sys.modules or importlib.util.find_spec(MODULE) is not None:
        return False
    module = sys.modules[__name__]
    sys.modules[MODULE] = module
    pycocotools.ytvos = module  # type: ignore[attr-defined]
    return True
