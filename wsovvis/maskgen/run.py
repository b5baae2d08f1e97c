"""The shard runner: every video of one shard through a backend into ``<out_root>``, resumable per video.

Output layout (local folder or S3 prefix)::

    <out_root>/<video_id>.tar              index-map PNGs + scores.json (wsovvis.masks.pack_tar, deterministic)
    <out_root>/_done/<video_id>.json       the video's marker: status done|empty, num_instances, frames, settings
    <out_root>/_reports/shard-<K>.json     what this shard's last run did: done / empty / failed with reasons, fps

Order per video: the tar is written atomically, then the marker. A kill at any moment leaves either nothing,
a whole tar without a marker (the rerun makes it again, byte for byte), or both. A rerun skips videos with a
marker; it refuses an ``out_root`` whose markers were made with other backend settings. A video with no
instances is a normal outcome: its tar holds only ``scores.json`` with ``num_instances`` 0 (status empty).
A failing video is tried twice, recorded with its reason and gets no marker (so a rerun tries it again);
the shard fails only when more than ``max_errors`` of its videos failed.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from wsovvis import masks, shards, storage
from wsovvis.errors import InputError, RuntimeMissingError, UsageError, WsovvisError
from wsovvis.logs import progress
from wsovvis.maskgen.backend import Backend, VideoPrediction

log = logging.getLogger(__name__)

DONE_DIR = "_done"
REPORTS_DIR = "_reports"
ATTEMPTS = 2


class ShardFailedError(WsovvisError):
    """More than ``max_errors`` of a shard's videos failed."""


@dataclass(frozen=True)
class MaskGenConfig:
    manifest: str
    shard: int
    frames_root: str
    out_root: str
    max_errors: float = 0.05  # fraction of the shard's videos allowed to fail
    scratch: str | None = None  # local folder for downloaded frames (default: the system temp dir)
    log_every_seconds: float = 30.0


@dataclass
class VideoOutcome:
    video_id: str
    status: str  # done | empty | failed
    frames: int = 0
    num_instances: int = 0
    seconds: float = 0.0
    reason: str | None = None
    earlier_run: bool = False  # done by an earlier run of the shard (resumed)


@dataclass
class ShardReport:
    shard: int
    settings: dict[str, Any]
    outcomes: list[VideoOutcome] = field(default_factory=list)
    seconds: float = 0.0

    def ids(self, status: str) -> list[str]:
        return [o.video_id for o in self.outcomes if o.status == status]

    @property
    def failed(self) -> list[VideoOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def frames_processed(self) -> int:
        return sum(o.frames for o in self.outcomes)

    @property
    def frames_per_second(self) -> float:
        timed = [o for o in self.outcomes if o.seconds > 0]
        busy = sum(o.seconds for o in timed)
        return sum(o.frames for o in timed) / busy if busy else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "shard": self.shard,
            "settings": self.settings,
            "videos": len(self.outcomes),
            "counts": {s: len(self.ids(s)) for s in ("done", "empty", "failed")},
            "done": self.ids("done"),
            "empty": self.ids("empty"),
            "resumed": [o.video_id for o in self.outcomes if o.earlier_run],
            "failed": [{"video_id": o.video_id, "reason": o.reason} for o in self.failed],
            "frames_processed": self.frames_processed,
            "seconds": round(self.seconds, 3),
            "frames_per_second": round(self.frames_per_second, 2),
            "per_video": [asdict(o) for o in self.outcomes],
        }


def frame_stem(name: str) -> str:
    return os.path.splitext(name)[0]


def read_frames(folder: str | os.PathLike[str], names: list[str]) -> list[np.ndarray]:
    """Decode a video's frames (local folder) as RGB arrays of one size; a bad frame raises InputError naming it."""
    frames = []
    for name in names:
        path = os.path.join(folder, name)
        try:
            with Image.open(path) as image:
                frames.append(np.asarray(image.convert("RGB")))
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: cannot read frame ({exc})") from exc
        if frames[-1].shape != frames[0].shape:
            raise InputError(
                f"{path}: frame size {frames[-1].shape[:2]} differs from the first frame's {frames[0].shape[:2]}"
            )
    return frames


def _fetch_frames(frames_root: str, video_id: str, scratch: Path) -> tuple[str, list[str]]:
    source = storage.join(frames_root, video_id)
    names = masks.list_frames(source)
    if not names:
        raise InputError(f"{source}: no frames (.jpg/.jpeg/.png)")
    if not storage.is_remote(source):
        return str(storage.local_path(source)), names
    local = scratch / video_id
    for name in names:
        storage.download(storage.join(source, name), local / name)
    return str(local), names


def _pack(
    video_id: str, names: list[str], prediction: VideoPrediction, frame_shape: tuple[int, int]
) -> bytes:
    if len(prediction.index_maps) != len(names):
        raise RuntimeError(
            f"backend returned {len(prediction.index_maps)} index maps for {len(names)} frames"
        )
    pngs = {}
    if prediction.num_instances:
        for name, index_map in zip(names, prediction.index_maps, strict=True):
            if index_map.shape != frame_shape:
                raise RuntimeError(f"backend returned a {index_map.shape} index map for {frame_shape} frames")
            pngs[frame_stem(name)] = masks.encode_png(index_map)
    sidecar = {
        "video_id": video_id,
        "num_instances": prediction.num_instances,
        "scores": {str(k): float(s) for k, s in enumerate(prediction.scores, start=1)},
    }
    return masks.pack_tar(video_id, pngs, sidecar)


def _process_video(video_id: str, config: MaskGenConfig, backend: Backend, scratch: Path) -> VideoOutcome:
    start = time.perf_counter()
    try:
        folder, names = _fetch_frames(config.frames_root, video_id, scratch)
        frames = read_frames(folder, names)
        prediction = backend.predict(frames)
        data = _pack(video_id, names, prediction, frames[0].shape[:2])
    finally:
        shutil.rmtree(scratch / video_id, ignore_errors=True)
    status = "done" if prediction.num_instances else "empty"
    storage.write_bytes(storage.join(config.out_root, f"{video_id}{masks.TAR_SUFFIX}"), data)
    marker = {
        "video_id": video_id,
        "status": status,
        "num_instances": prediction.num_instances,
        "frames": len(names),
        "settings": backend.settings(),
    }
    storage.write_json(storage.join(config.out_root, DONE_DIR, f"{video_id}.json"), marker)
    return VideoOutcome(video_id, status, len(names), prediction.num_instances, time.perf_counter() - start)


def _done_markers(out_root: str) -> dict[str, str]:
    try:
        _, files = storage.listdir(storage.join(out_root, DONE_DIR))
    except storage.StorageNotFoundError:
        return {}
    return {
        name[: -len(".json")]: storage.join(out_root, DONE_DIR, name)
        for name in files
        if name.endswith(".json")
    }


def _resumed(
    video_id: str, marker_uri: str, settings: dict[str, Any], earlier: dict[str, Any]
) -> VideoOutcome:
    """A video done by an earlier run, as that run's report (if any) or its marker recorded it."""
    marker = storage.read_json(marker_uri)
    made_with = marker.get("settings") or {}
    if made_with != settings:
        differences = ", ".join(
            f"{key} {made_with.get(key)!r} there, {settings.get(key)!r} now"
            for key in sorted(set(made_with) | set(settings))
            if made_with.get(key) != settings.get(key)
        )
        raise UsageError(
            f"{marker_uri}: video {video_id} was made with other settings ({differences}); "
            "use a new --out_root, or delete the old output to regenerate it"
        )
    seconds = earlier.get(video_id, {}).get("seconds", 0.0)
    return VideoOutcome(
        video_id, marker["status"], marker["frames"], marker["num_instances"], seconds, earlier_run=True
    )


def _earlier_report(report_uri: str) -> dict[str, Any]:
    """Per-video entries of the shard's previous report (video id -> entry); empty when there is none."""
    if not storage.exists(report_uri):
        return {}
    return {entry["video_id"]: entry for entry in storage.read_json(report_uri).get("per_video", [])}


def mask_gen(config: MaskGenConfig, backend: Backend) -> ShardReport:
    """Generate masks for every video of shard ``config.shard``; returns (and writes) the shard report.

    Raises ShardFailedError (after writing the report) when more than ``config.max_errors`` of the videos failed.
    """
    if not 0.0 <= config.max_errors <= 1.0:
        raise UsageError(f"max_errors must be a fraction in [0, 1], got {config.max_errors}")
    videos = shards.load_shard(config.manifest, config.shard)
    settings = backend.settings()
    report = ShardReport(config.shard, settings)
    done = _done_markers(config.out_root)
    todo = [v for v in videos if v not in done]
    log.info(
        "mask-gen shard %d (%s): %d videos, %d done earlier, %d to do -> %s",
        config.shard,
        settings["backend"],
        len(videos),
        len(videos) - len(todo),
        len(todo),
        config.out_root,
    )
    removed = storage.remove_partial_writes(config.out_root, [f"{v}{masks.TAR_SUFFIX}" for v in videos])
    removed += storage.remove_partial_writes(
        storage.join(config.out_root, DONE_DIR), [f"{v}.json" for v in videos]
    )
    if removed:
        log.info("removed %d partial file(s) left by an interrupted run", removed)
    report_uri = storage.join(config.out_root, REPORTS_DIR, f"shard-{config.shard}.json")
    earlier = _earlier_report(report_uri) if done else {}
    for video_id in videos:
        if video_id in done:
            report.outcomes.append(_resumed(video_id, done[video_id], settings, earlier))
    if not todo and earlier:
        log.info(
            "mask-gen shard %d: every video was done earlier; nothing to do (report %s)",
            config.shard,
            report_uri,
        )
        return report
    started = time.perf_counter()
    last_log = started
    with tempfile.TemporaryDirectory(dir=config.scratch, prefix="wsovvis-maskgen-") as tmp:
        for video_id in progress(todo, total=len(todo), desc=f"shard {config.shard}", unit="video"):
            report.outcomes.append(_attempt(video_id, config, backend, Path(tmp)))
            now = time.perf_counter()
            if now - last_log >= config.log_every_seconds or video_id == todo[-1]:
                last_log = now
                _log_progress(report, len(videos))
    report.seconds = time.perf_counter() - started
    position = {video_id: index for index, video_id in enumerate(videos)}
    report.outcomes.sort(key=lambda o: position[o.video_id])
    storage.write_json(report_uri, report.to_json())
    failed = len(report.failed)
    if videos and failed / len(videos) > config.max_errors:
        raise ShardFailedError(
            f"shard {config.shard}: {failed} of {len(videos)} videos failed "
            f"({failed / len(videos):.1%} > max_errors {config.max_errors:.1%}); reasons in {report_uri}"
        )
    log.info(
        "mask-gen shard %d finished: %d done, %d empty, %d failed (%d videos by earlier runs); %.1f frames/s; report %s",
        config.shard,
        len(report.ids("done")),
        len(report.ids("empty")),
        failed,
        sum(o.earlier_run for o in report.outcomes),
        report.frames_per_second,
        report_uri,
    )
    return report


def _attempt(video_id: str, config: MaskGenConfig, backend: Backend, scratch: Path) -> VideoOutcome:
    reason = ""
    start = time.perf_counter()
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return _process_video(video_id, config, backend, scratch)
        except (RuntimeMissingError, UsageError):
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            log.warning("video %s failed (attempt %d/%d): %s", video_id, attempt, ATTEMPTS, reason)
    return VideoOutcome(video_id, "failed", 0, 0, time.perf_counter() - start, reason)


def _log_progress(report: ShardReport, total: int) -> None:
    log.info(
        "shard %d: %d/%d videos (%d empty, %d failed), %.1f frames/s",
        report.shard,
        len(report.outcomes),
        total,
        len(report.ids("empty")),
        len(report.failed),
        report.frames_per_second,
    )
