"""LV-VIS base/novel numbers (APb, APn) as haochenheheda/LVVIS ``evaluate/lvviseval.py`` computes them.

The LV-VIS evaluator is the YouTube-VIS one with three changes: GT areas are truncated to int before the
mean, crowd GT are not ignored, and every stat is also averaged over the base categories (``partition`` 0 or
1) and the novel ones (2 or 3). It selects categories by ``id - 1`` on the K axis, which is right for LV-VIS's
ids 1..K; here they are selected by id, which agrees there and stays right for other id sets.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from wsovvis.errors import InputError, UsageError
from wsovvis.evaluate.ytvoseval import Evaluation, summarize

BASE_PARTITIONS = (0, 1)
NOVEL_PARTITIONS = (2, 3)


def partition_indices(
    categories: list[dict[str, Any]], category_ids: list[int], source: str | os.PathLike[str]
) -> tuple[np.ndarray, np.ndarray]:
    """K-axis positions of the base and novel categories, in the GT's category order (as LV-VIS does)."""
    position = {cid: k for k, cid in enumerate(category_ids)}
    base, novel = [], []
    for cat in categories:
        if "partition" not in cat:
            raise InputError(
                f"{os.fspath(source)}: category {cat['id']} ({cat.get('name')!r}) has no 'partition'; "
                "--lvvis needs the LV-VIS partition (0-1 base, 2-3 novel) on every category"
            )
        if cat["partition"] in BASE_PARTITIONS:
            base.append(position[cat["id"]])
        elif cat["partition"] in NOVEL_PARTITIONS:
            novel.append(position[cat["id"]])
    return np.array(base, dtype=np.int64), np.array(novel, dtype=np.int64)


def base_novel(
    evaluation: Evaluation, categories: list[dict[str, Any]], source: str | os.PathLike[str]
) -> dict[str, dict[str, float]]:
    """The 12 stats over the base and over the novel categories; -1 where a side has nothing to average."""
    if evaluation.category_ids == [-1]:
        raise UsageError("--lvvis needs per-category evaluation; it cannot be combined with --class-agnostic")
    base, novel = partition_indices(categories, evaluation.category_ids, source)
    undefined = dict.fromkeys(summarize(evaluation.precision, evaluation.recall), -1.0)
    return {
        "base": summarize(evaluation.precision, evaluation.recall, base) if len(base) else undefined,
        "novel": summarize(evaluation.precision, evaluation.recall, novel) if len(novel) else undefined,
    }
