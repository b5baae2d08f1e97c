"""IoU linker: joins instance ids of one video that never co-occur and hand over with overlapping masks.

For mask sources whose ids are not stable across frames: when instance B first appears after instance A was
last seen, and A's last mask overlaps B's first mask with IoU >= threshold, B continues A. Tracks are taken
in order of first appearance; each joins the best-overlapping earlier track (ties: the smaller id).
"""

from __future__ import annotations

from wsovvis import rle

Track = dict[int, rle.RLE]  # frame index -> mask


def link_tracks(tracks: dict[int, Track], iou_threshold: float) -> dict[int, list[int]]:
    """Group instance ids into linked tracks; returns surviving id -> member ids (in time order).

    A surviving id is the first member's; the tracks themselves are not modified.
    """
    order = sorted(tracks, key=lambda k: (min(tracks[k]), k))
    groups: dict[int, list[int]] = {}
    last_frame: dict[int, int] = {}
    for instance in order:
        first = min(tracks[instance])
        candidates = [
            (rle.iou(tracks[members[-1]][last_frame[head]], tracks[instance][first]), -head)
            for head, members in groups.items()
            if last_frame[head] < first
        ]
        overlap, negative_head = max(candidates, default=(-1.0, 0))
        best = -negative_head if overlap >= iou_threshold else None
        if best is None:
            groups[instance] = [instance]
            last_frame[instance] = max(tracks[instance])
        else:
            groups[best].append(instance)
            last_frame[best] = max(tracks[instance])
    return groups
