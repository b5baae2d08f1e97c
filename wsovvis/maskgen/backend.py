"""What a mask-generation backend gives the shard runner, and the index-map encoding shared by the backends."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

MAX_INSTANCES = 255  # index maps are 8-bit


@dataclass
class VideoPrediction:
    """Per-frame index maps at the original frame size (0 background, k = k-th kept instance, same k across the
    video) and the score of each instance: ``scores[k - 1]`` belongs to instance k."""

    index_maps: list[np.ndarray]
    scores: list[float]

    @property
    def num_instances(self) -> int:
        return len(self.scores)


class Backend(Protocol):
    name: str

    def settings(self) -> dict[str, Any]:
        """What determines this backend's output (recorded with each video; a rerun must match it)."""
        ...

    def predict(self, frames: Sequence[np.ndarray]) -> VideoPrediction:
        """Instances of one video, given its frames as H x W x 3 RGB uint8 arrays of one size."""
        ...


def paint(index_map: np.ndarray, masks: Sequence[np.ndarray], ids: Sequence[int]) -> None:
    """Write each mask's id into ``index_map`` in order: later instances overwrite earlier ones where they
    overlap, as VideoCutLER's demo does."""
    for mask, instance_id in zip(masks, ids, strict=True):
        index_map[mask] = instance_id
