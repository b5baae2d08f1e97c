"""Backend ``motion``: a classical baseline for static-camera footage, on CPU, with no weights.

Per video: the background is, per pixel, the value most (blurred) frames agree on (see
``_consensus_background``; sturdier than a temporal median where object paths cross); a pixel is foreground
where some channel differs from it by more than ``threshold``; morphology (open, close, hole filling) cleans
the mask; connected components above ``min_area_fraction`` of the frame are detections. Detections are linked
into tracks greedily by mask IoU against each track's last mask shifted by its last velocity (a track may
miss up to ``max_gap`` frames). A track's score grows with its length and with the stability of its area:
``(1 - exp(-frames / 4)) * (0.5 + 0.5 * stability)``. The ``max_instances`` best tracks above ``confidence``
are kept, numbered by first appearance.

It only sees what moves against a static background: a still object, a moving camera or a lighting change
defeat it, and objects that touch merge into one. It is a baseline for demos, CPU clusters and tests, not a
substitute for VideoCutLER.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from wsovvis.errors import RuntimeMissingError
from wsovvis.maskgen.backend import MAX_INSTANCES, VideoPrediction, paint


@dataclass(frozen=True)
class MotionOptions:
    confidence: float = 0.6
    threshold: float = 30.0  # foreground: max channel difference to the background, in 0..255
    min_area_fraction: float = 0.001
    link_iou: float = 0.2
    max_gap: int = 2
    min_track_frames: int = 2
    max_instances: int = 10
    working_size: int = 480  # longest side frames are processed at (masks return at the original size)
    background_tolerance: float = 12.0  # frames agreeing within this are the same background value
    merge_coverage: float = (
        0.5  # a blob holding this much of 2+ tracks' predicted masks is split between them
    )
    background_frames: int = 40  # at most this many frames (evenly spaced) build the background


@dataclass
class _Detection:
    frame: int
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
    crop: np.ndarray  # bool mask inside box
    centroid: tuple[float, float]

    @property
    def area(self) -> int:
        return int(self.crop.sum())


@dataclass
class _Track:
    detections: list[_Detection] = field(default_factory=list)

    @property
    def last(self) -> _Detection:
        return self.detections[-1]

    def velocity(self) -> tuple[float, float]:
        if len(self.detections) < 2:
            return 0.0, 0.0
        a, b = self.detections[-2], self.detections[-1]
        steps = b.frame - a.frame
        return (b.centroid[0] - a.centroid[0]) / steps, (b.centroid[1] - a.centroid[1]) / steps

    def score(self) -> float:
        areas = np.array([d.area for d in self.detections], dtype=np.float64)
        stability = max(0.0, 1.0 - float(areas.std() / areas.mean()))
        return (1.0 - math.exp(-len(self.detections) / 4.0)) * (0.5 + 0.5 * stability)


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise RuntimeMissingError(
            "motion backend needs OpenCV: pip install 'wsovvis[motion]' (opencv-python-headless)"
        ) from exc
    return cv2


def _predicted(track: _Track, frame: int) -> _Detection:
    """The track's last mask moved on by its last velocity to ``frame``."""
    prev = track.last
    vx, vy = track.velocity()
    steps = frame - prev.frame
    dx, dy = round(vx * steps), round(vy * steps)
    box = (prev.box[0] + dx, prev.box[1] + dy, prev.box[2] + dx, prev.box[3] + dy)
    return _Detection(frame, box, prev.crop, (prev.centroid[0] + dx, prev.centroid[1] + dy))


def _intersection(a: _Detection, b: _Detection) -> int:
    ix0, iy0 = max(a.box[0], b.box[0]), max(a.box[1], b.box[1])
    ix1, iy1 = min(a.box[2], b.box[2]), min(a.box[3], b.box[3])
    if ix0 >= ix1 or iy0 >= iy1:
        return 0
    crop_a = a.crop[iy0 - a.box[1] : iy1 - a.box[1], ix0 - a.box[0] : ix1 - a.box[0]]
    crop_b = b.crop[iy0 - b.box[1] : iy1 - b.box[1], ix0 - b.box[0] : ix1 - b.box[0]]
    return int((crop_a & crop_b).sum())


def _iou(a: _Detection, b: _Detection) -> float:
    inter = _intersection(a, b)
    return inter / (a.area + b.area - inter) if inter else 0.0


def _split(det: _Detection, predictions: list[_Detection]) -> list[_Detection]:
    """Divide a blob that swallowed several tracked objects: each pixel goes to the object whose predicted mask
    holds it (the nearest predicted centre among several, or when none does)."""
    ys, xs = np.nonzero(det.crop)
    xs_abs, ys_abs = xs + det.box[0], ys + det.box[1]
    costs = []
    for p in predictions:
        px, py = xs_abs - p.box[0], ys_abs - p.box[1]
        inside = (px >= 0) & (py >= 0) & (px < p.crop.shape[1]) & (py < p.crop.shape[0])
        covered = np.zeros(len(xs), bool)
        covered[inside] = p.crop[py[inside], px[inside]]
        distance = np.hypot(xs_abs - p.centroid[0], ys_abs - p.centroid[1])
        costs.append(distance + np.where(covered, 0.0, 1e6))
    owner = np.argmin(np.stack(costs), axis=0)
    parts = []
    for index in range(len(predictions)):
        mine = owner == index
        if not mine.any():
            continue
        x0, x1 = int(xs_abs[mine].min()), int(xs_abs[mine].max()) + 1
        y0, y1 = int(ys_abs[mine].min()), int(ys_abs[mine].max()) + 1
        crop = np.zeros((y1 - y0, x1 - x0), bool)
        crop[ys_abs[mine] - y0, xs_abs[mine] - x0] = True
        centroid = (float(xs_abs[mine].mean()), float(ys_abs[mine].mean()))
        parts.append(_Detection(det.frame, (x0, y0, x1, y1), crop, centroid))
    return parts


class MotionBackend:
    name = "motion"

    def __init__(self, options: MotionOptions | None = None) -> None:
        self.options = options or MotionOptions()
        self._cv2 = _cv2()

    def settings(self) -> dict[str, Any]:
        return {"backend": self.name, **asdict(self.options)}

    def predict(self, frames: Sequence[np.ndarray]) -> VideoPrediction:
        cv2 = self._cv2
        height, width = frames[0].shape[:2]
        scale = min(1.0, self.options.working_size / max(height, width))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = np.stack(
            [
                cv2.GaussianBlur(
                    cv2.resize(f, size, interpolation=cv2.INTER_AREA) if scale < 1 else f, (5, 5), 0
                )
                for f in frames
            ]
        )
        if len(frames) < 3:
            return VideoPrediction([np.zeros((height, width), np.uint8) for _ in frames], [])
        background = _consensus_background(
            small, self.options.background_tolerance, self.options.background_frames
        )
        tracks = self._link([self._detect(frame, index, background) for index, frame in enumerate(small)])
        scored = [(t.score(), t) for t in tracks if len(t.detections) >= self.options.min_track_frames]
        kept = [(s, t) for s, t in scored if s >= self.options.confidence]
        kept.sort(key=lambda st: (-st[0], st[1].detections[0].frame))
        kept = kept[: min(self.options.max_instances, MAX_INSTANCES)]
        kept.sort(key=lambda st: (st[1].detections[0].frame, st[1].detections[0].box))
        index_maps = []
        for index in range(len(frames)):
            small_map = np.zeros((size[1], size[0]), np.uint8)
            masks, ids = [], []
            for k, (_, track) in enumerate(kept, start=1):
                for det in track.detections:
                    if det.frame == index:
                        full = np.zeros_like(small_map, dtype=bool)
                        x0, y0, x1, y1 = det.box
                        full[y0:y1, x0:x1] = det.crop
                        masks.append(full)
                        ids.append(k)
            paint(small_map, masks, ids)
            if scale < 1:
                small_map = cv2.resize(small_map, (width, height), interpolation=cv2.INTER_NEAREST)
            index_maps.append(small_map)
        return VideoPrediction(index_maps, [round(s, 4) for s, _ in kept])

    def _detect(self, frame: np.ndarray, index: int, background: np.ndarray) -> list[_Detection]:
        cv2 = self._cv2
        diff = np.abs(frame.astype(np.int16) - background).max(axis=2)
        foreground = (diff > self.options.threshold).astype(np.uint8)
        foreground = cv2.morphologyEx(foreground, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        foreground = cv2.morphologyEx(foreground, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
        foreground = _fill_holes(cv2, foreground)
        count, labels, stats, centroids = cv2.connectedComponentsWithStats(foreground, connectivity=8)
        min_area = max(16, self.options.min_area_fraction * frame.shape[0] * frame.shape[1])
        detections = []
        for label in range(1, count):
            x, y, w, h, area = (int(v) for v in stats[label])
            if area < min_area:
                continue
            crop = labels[y : y + h, x : x + w] == label
            detections.append(_Detection(index, (x, y, x + w, y + h), crop, tuple(centroids[label])))
        return detections

    def _split_merged(self, detections: list[_Detection], predictions: list[_Detection]) -> list[_Detection]:
        """Detections, with every blob that covers most of two or more tracks' predicted masks split up."""
        result = []
        for det in detections:
            swallowed = [
                p for p in predictions if _intersection(p, det) >= self.options.merge_coverage * p.area
            ]
            result.extend(_split(det, swallowed) if len(swallowed) > 1 else [det])
        return result

    def _link(self, per_frame: list[list[_Detection]]) -> list[_Track]:
        tracks: list[_Track] = []
        for frame, detections in enumerate(per_frame):
            active = [t for t in tracks if frame - t.last.frame <= self.options.max_gap + 1]
            predictions = [_predicted(t, frame) for t in active]
            detections = self._split_merged(
                detections, [p for t, p in zip(active, predictions, strict=True) if len(t.detections) > 1]
            )
            pairs = sorted(
                (
                    (_iou(predictions[ti], det), ti, di)
                    for ti, track in enumerate(active)
                    for di, det in enumerate(detections)
                ),
                key=lambda p: (-p[0], p[1], p[2]),
            )
            used_tracks: set[int] = set()
            used_dets: set[int] = set()
            for overlap, ti, di in pairs:
                if overlap < self.options.link_iou:
                    break
                if ti in used_tracks or di in used_dets:
                    continue
                active[ti].detections.append(detections[di])
                used_tracks.add(ti)
                used_dets.add(di)
            for di, det in enumerate(detections):
                if di not in used_dets:
                    tracks.append(_Track([det]))
        return tracks


def _consensus_background(frames: np.ndarray, tolerance: float, max_frames: int) -> np.ndarray:
    """Per pixel, the mean of the largest set of frames that agree with one of them within ``tolerance``.

    A plain temporal median breaks where moving objects together cover a pixel in more than half of the
    frames (their paths cross); the static background is the one value that recurs unchanged, so the densest
    cluster of values finds it even when it shows in only a third of the frames.
    """
    picked = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), max_frames)).round().astype(int))
    planes = np.ascontiguousarray(frames[picked].transpose(3, 0, 1, 2), dtype=np.int16)  # (C, T, H, W)

    def distance_to(reference: np.ndarray) -> np.ndarray:
        """Max over channels of |frame - reference|, for every sampled frame: (T, H, W)."""
        distance = np.abs(planes[0] - reference[0])
        for channel in range(1, planes.shape[0]):
            np.maximum(distance, np.abs(planes[channel] - reference[channel]), out=distance)
        return distance

    best_count = np.zeros(planes.shape[2:], np.int32)
    best_index = np.zeros(planes.shape[2:], np.int64)
    for index in range(planes.shape[1]):
        agree = (distance_to(planes[:, index]) <= tolerance).sum(axis=0, dtype=np.int32)
        better = agree > best_count
        best_count[better] = agree[better]
        best_index[better] = index
    reference = np.take_along_axis(planes, best_index[None, None], axis=1)[:, 0]
    members = distance_to(reference) <= tolerance
    background = (planes * members).sum(axis=1) / members.sum(axis=0)
    return np.ascontiguousarray(background.transpose(1, 2, 0)).astype(np.int16)


def _fill_holes(cv2: Any, mask: np.ndarray) -> np.ndarray:
    """Foreground plus every background region not connected to the border."""
    padded = np.pad(mask, 1)
    flood = padded.copy()
    fill_mask = np.zeros((padded.shape[0] + 2, padded.shape[1] + 2), np.uint8)
    cv2.floodFill(flood, fill_mask, (0, 0), 1)
    holes = flood[1:-1, 1:-1] == 0
    return (mask.astype(bool) | holes).astype(np.uint8)
