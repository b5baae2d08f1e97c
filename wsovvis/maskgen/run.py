"""The shard runner: every video of one shard through a backend into ``<out_root>``, resumable per video.

Output layout (local folder or S3 prefix)::

    <out_root>/<video_id>.tar              index-map PNGs + scores.json (wsovvis.masks.pack_tar, deterministic)
    <out_root>/_done/<video_id>.json       the video's marker: status done|empty, num_instances, frames, settings,
                                           the tar's size and SHA-256
    <out_root>/_reports/shard-<K>.json     what this shard's last run did: done / empty / failed with reasons, fps

Order per video: the tar is written atomically, then the marker. A kill at any moment leaves either nothing,
a whole tar without a marker (the rerun makes it again, byte for byte), or both. A rerun skips videos whose
marker vouches for the tar there (size and SHA-256: a deleted or damaged tar is made again); it refuses an
``out_root`` whose markers were made with other backend settings. A video with no instances is a normal
outcome: its tar holds only ``scores.json`` with ``num_instances`` 0 (status empty). A failing video is tried
twice, recorded with its reason and gets no marker (so a rerun tries it again); the shard fails only when more
than ``max_errors`` of its videos failed.

The loop is a pipeline that keeps the backend (the GPU) busy: while video i is predicted, the frames of the
next ``prefetch`` videos are downloaded and decoded by background threads, and the masks of video i-1 are
encoded, packed and written by another (one video at a time, tar before marker). Memory holds at most
``prefetch`` + 2 videos (frames ahead, the frames being predicted, the index maps being written). A failure in
the background counts as that video's first attempt; its retry runs in the foreground. On SIGTERM no new video
starts, the write in flight finishes (or, killed, leaves only a temporary that the next run removes) and the
command exits 143. ``prefetch`` 0 runs the videos one after another.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from wsovvis import jsonio, masks, shards, storage
from wsovvis.errors import InputError, RuntimeMissingError, StorageError, UsageError, WsovvisError
from wsovvis.logs import progress
from wsovvis.maskgen.backend import Backend, VideoPrediction
from wsovvis.names import video_id_problem

log = logging.getLogger(__name__)
T = TypeVar("T")

DONE_DIR = "_done"
REPORTS_DIR = "_reports"
ATTEMPTS = 2


class ShardFailedError(WsovvisError):
    """More than ``max_errors`` of a shard's videos failed."""


class ShardInterruptedError(WsovvisError):
    """SIGTERM (a pod being stopped): the shard stopped between videos; a rerun resumes it."""

    exit_code = 128 + signal.SIGTERM


@dataclass(frozen=True)
class MaskGenConfig:
    manifest: str
    shard: int
    frames_root: str
    out_root: str
    max_errors: float = 0.05  # fraction of the shard's videos allowed to fail
    scratch: str | None = None  # local folder for downloaded frames (default: the system temp dir)
    log_every_seconds: float = 30.0
    prefetch: int = 2  # videos fetched and decoded ahead of the one being predicted; 0: no overlap


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
    for name, frame in zip(
        names, _in_order(lambda name: _decode(os.path.join(folder, name)), names), strict=True
    ):
        frames.append(frame)
        if frame.shape != frames[0].shape:
            raise InputError(
                f"{os.path.join(folder, name)}: frame size {frame.shape[:2]} differs from the first frame's "
                f"{frames[0].shape[:2]}"
            )
    return frames


def _decode(path: str) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read frame ({exc})") from exc


# Threads per video for downloading, decoding and encoding frames: the work is I/O and C code that releases the
# GIL, so a video's frames go through several cores, and the pipeline fills and drains faster.
_FRAME_THREADS = 4


def _in_order(func: Callable[[str], T], items: list[str]) -> Iterator[T]:
    """``func`` over ``items`` on a few threads, results (and the first error) in the items' order."""
    with ThreadPoolExecutor(max_workers=_FRAME_THREADS, thread_name_prefix="mask-gen-frames") as pool:
        yield from pool.map(func, items)


def _fetch_frames(frames_root: str, video_id: str, scratch: Path) -> tuple[str, list[str]]:
    source = storage.join(frames_root, video_id)
    names = masks.list_frames(source)
    if not names:
        raise InputError(f"{source}: no frames (.jpg/.jpeg/.png)")
    if not storage.is_remote(source):
        return str(storage.local_path(source)), names
    local = scratch / video_id
    for _ in _in_order(lambda name: storage.download(storage.join(source, name), local / name), names):
        pass
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
        for index_map in prediction.index_maps:
            if index_map.shape != frame_shape:
                raise RuntimeError(f"backend returned a {index_map.shape} index map for {frame_shape} frames")
        encoded = _in_order(masks.encode_png, prediction.index_maps)
        pngs = {frame_stem(name): png for name, png in zip(names, encoded, strict=True)}
    sidecar = {
        "video_id": video_id,
        "num_instances": prediction.num_instances,
        "scores": {str(k): float(s) for k, s in enumerate(prediction.scores, start=1)},
    }
    return masks.pack_tar(video_id, pngs, sidecar)


def _load_video(video_id: str, config: MaskGenConfig, scratch: Path) -> tuple[list[str], list[np.ndarray]]:
    """Frame names and decoded frames of one video (downloaded into ``scratch`` and removed again)."""
    try:
        folder, names = _fetch_frames(config.frames_root, video_id, scratch)
        return names, read_frames(folder, names)
    finally:
        shutil.rmtree(scratch / video_id, ignore_errors=True)


def _store_video(
    video_id: str,
    names: list[str],
    prediction: VideoPrediction,
    frame_shape: tuple[int, int],
    config: MaskGenConfig,
    settings: dict[str, Any],
) -> str:
    """Pack and write the video's tar, then its marker; returns the status (done or empty)."""
    data = _pack(video_id, names, prediction, frame_shape)
    status = "done" if prediction.num_instances else "empty"
    tar_uri = storage.join(config.out_root, f"{video_id}{masks.TAR_SUFFIX}")
    etag = storage.write_bytes(tar_uri, data)
    tar = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    if etag is not None:
        tar["etag"] = etag
    marker = {
        "video_id": video_id,
        "status": status,
        "num_instances": prediction.num_instances,
        "frames": len(names),
        "settings": settings,
        "tar": tar,
    }
    jsonio.write_json(storage.join(config.out_root, DONE_DIR, f"{video_id}.json"), marker)
    return status


def _process_video(video_id: str, config: MaskGenConfig, backend: Backend, scratch: Path) -> VideoOutcome:
    start = time.perf_counter()
    names, frames = _load_video(video_id, config, scratch)
    prediction = backend.predict(frames)
    status = _store_video(video_id, names, prediction, frames[0].shape[:2], config, backend.settings())
    return VideoOutcome(video_id, status, len(names), prediction.num_instances, time.perf_counter() - start)


def _done_markers(out_root: str, videos: list[str]) -> dict[str, str]:
    """Video id -> marker URI of the shard's videos whose marker vouches for the tar that is there now."""
    try:
        _, files = storage.listdir(storage.join(out_root, DONE_DIR))
    except storage.StorageNotFoundError:
        return {}
    listed = set(files)
    done = {}
    for video_id in videos:
        marker_uri = storage.join(out_root, DONE_DIR, f"{video_id}.json")
        if f"{video_id}.json" not in listed:
            continue
        problem = _tar_problem(marker_uri, storage.join(out_root, f"{video_id}{masks.TAR_SUFFIX}"))
        if problem:
            log.warning("video %s was marked done but %s; making it again", video_id, problem)
        else:
            done[video_id] = marker_uri
    return done


def _tar_problem(marker_uri: str, tar_uri: str) -> str | None:
    """Why the marker does not vouch for the tar (None: it does): size and SHA-256 as the marker recorded. On S3
    an ETag that is still the one recorded at the write vouches for the content without reading the tar back
    (a resume would otherwise download every finished tar of the shard)."""
    try:
        marker = jsonio.read_json(marker_uri)
        recorded = marker["tar"]
        size, digest = int(recorded["bytes"]), str(recorded["sha256"])
    except (InputError, KeyError, TypeError, ValueError) as exc:
        return f"its marker {marker_uri} is unreadable or records no tar size and digest ({exc})"
    try:
        actual = storage.stat(tar_uri)
    except storage.StorageNotFoundError:
        return f"its tar {tar_uri} is missing"
    if actual.size != size:
        return f"its tar {tar_uri} has {actual.size} bytes, the marker recorded {size}"
    if actual.etag is not None and actual.etag == recorded.get("etag"):
        return None
    if storage.sha256(tar_uri) != digest:
        return f"its tar {tar_uri} differs from what the marker recorded (SHA-256)"
    return None


def _resumed(
    video_id: str, marker_uri: str, settings: dict[str, Any], earlier: dict[str, Any]
) -> VideoOutcome:
    """A video done by an earlier run, as that run's report (if any) or its marker recorded it."""
    marker = jsonio.read_json(marker_uri)
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
    return {entry["video_id"]: entry for entry in jsonio.read_json(report_uri).get("per_video", [])}


def mask_gen(config: MaskGenConfig, backend: Backend) -> ShardReport:
    """Generate masks for every video of shard ``config.shard``; returns (and writes) the shard report.

    Raises ShardFailedError (after writing the report) when more than ``config.max_errors`` of the videos failed.
    """
    if not 0.0 <= config.max_errors <= 1.0:
        raise UsageError(f"max_errors must be a fraction in [0, 1], got {config.max_errors}")
    if config.prefetch < 0:
        raise UsageError(f"prefetch must be >= 0, got {config.prefetch}")
    storage.check_outputs(
        {"--out_root": config.out_root}, {"--frames_root": config.frames_root, "--manifest": config.manifest}
    )
    if config.scratch is not None and not os.path.isdir(config.scratch):
        raise UsageError(f"--scratch {config.scratch}: no such folder; create it or leave --scratch out")
    videos = shards.load_shard(config.manifest, config.shard)
    settings = backend.settings()
    report = ShardReport(config.shard, settings)
    done = _done_markers(config.out_root, [v for v in videos if not video_id_problem(v)])
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
    with (
        tempfile.TemporaryDirectory(dir=config.scratch, prefix="wsovvis-maskgen-") as tmp,
        _sigterm_stops_the_shard(config.shard),
        contextlib.closing(
            _pipelined(todo, config, backend, Path(tmp))
            if config.prefetch > 0
            else (_attempt(video_id, config, backend, Path(tmp)) for video_id in todo)
        ) as outcomes,
    ):
        for outcome in progress(outcomes, total=len(todo), desc=f"shard {config.shard}", unit="video"):
            report.outcomes.append(outcome)
            now = time.perf_counter()
            if now - last_log >= config.log_every_seconds or outcome.video_id == todo[-1]:
                last_log = now
                _log_progress(report, len(videos))
    report.seconds = time.perf_counter() - started
    position = {video_id: index for index, video_id in enumerate(videos)}
    report.outcomes.sort(key=lambda o: position[o.video_id])
    jsonio.write_json(report_uri, report.to_json())
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


def _attempt(
    video_id: str, config: MaskGenConfig, backend: Backend, scratch: Path, first_attempt: int = 1
) -> VideoOutcome:
    reason = ""
    start = time.perf_counter()
    if problem := video_id_problem(video_id):
        log.warning("video skipped: invalid video id %s", problem)
        return VideoOutcome(video_id, "failed", reason=f"invalid video id {problem}")
    for attempt in range(first_attempt, ATTEMPTS + 1):
        try:
            return _process_video(video_id, config, backend, scratch)
        except _FATAL:
            raise
        except Exception as exc:
            reason = _failed_attempt(video_id, attempt, exc)
    return VideoOutcome(video_id, "failed", 0, 0, time.perf_counter() - start, reason)


# What no retry can fix, and SIGTERM: they stop the shard.
_FATAL = (RuntimeMissingError, UsageError, StorageError, ShardInterruptedError)


def _failed_attempt(video_id: str, attempt: int, exc: BaseException) -> str:
    reason = f"{type(exc).__name__}: {exc}"
    log.warning("video %s failed (attempt %d/%d): %s", video_id, attempt, ATTEMPTS, reason)
    return reason


@dataclass
class _Stored:
    """A video whose masks are being written in the background."""

    video_id: str
    frames: int
    num_instances: int
    seconds: float  # foreground time so far: waiting for its frames, and predicting
    write: Future[str]


def _pipelined(
    todo: list[str], config: MaskGenConfig, backend: Backend, scratch: Path
) -> Iterator[VideoOutcome]:
    """The outcome of every video of ``todo``, in order, with fetching and writing overlapping prediction.

    Each video's first attempt is pipelined; when any part of it fails (in whichever thread), the retries run
    in the foreground through :func:`_attempt`, after the video before it is written.
    """
    settings = backend.settings()
    fetcher = ThreadPoolExecutor(max_workers=config.prefetch, thread_name_prefix="mask-gen-fetch")
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mask-gen-write")
    fetches: deque[Future[tuple[list[str], list[np.ndarray]]]] = deque()
    # An invalid id is never fetched: _attempt records it as failed without touching storage.
    upcoming = iter([v for v in todo if not video_id_problem(v)])
    writing: _Stored | None = None
    try:
        for video_id in todo:
            if video_id_problem(video_id):
                if writing is not None:
                    yield _written(writing, config, backend, scratch)
                    writing = None
                yield _attempt(video_id, config, backend, scratch)
                continue
            for ahead in upcoming:
                fetches.append(fetcher.submit(_load_video, ahead, config, scratch))
                if len(fetches) > config.prefetch:
                    break
            start = time.perf_counter()
            try:
                names, frames = fetches.popleft().result()
                prediction = backend.predict(frames)
            except _FATAL:
                raise
            except Exception as exc:
                failure: BaseException | None = exc
            else:
                failure = None
                frame_shape = frames[0].shape[:2]
                del frames
            predicted = time.perf_counter() - start
            if writing is not None:
                yield _written(writing, config, backend, scratch)
                writing = None
            if failure is not None:
                _failed_attempt(video_id, 1, failure)
                yield _attempt(video_id, config, backend, scratch, first_attempt=2)
                continue
            write = writer.submit(_store_video, video_id, names, prediction, frame_shape, config, settings)
            writing = _Stored(video_id, len(names), prediction.num_instances, predicted, write)
        if writing is not None:
            yield _written(writing, config, backend, scratch)
    finally:
        # On an error or SIGTERM: start no new fetch, let the write in flight finish (tar, then marker).
        fetcher.shutdown(wait=False, cancel_futures=True)
        writer.shutdown(wait=True)
        fetcher.shutdown(wait=True)


def _written(stored: _Stored, config: MaskGenConfig, backend: Backend, scratch: Path) -> VideoOutcome:
    """Wait for a background write; its failure was the video's first attempt, and the retry runs here."""
    start = time.perf_counter()
    try:
        status = stored.write.result()
    except _FATAL:
        raise
    except Exception as exc:
        _failed_attempt(stored.video_id, 1, exc)
        return _attempt(stored.video_id, config, backend, scratch, first_attempt=2)
    seconds = stored.seconds + time.perf_counter() - start
    return VideoOutcome(stored.video_id, status, stored.frames, stored.num_instances, seconds)


@contextlib.contextmanager
def _sigterm_stops_the_shard(shard: int) -> Iterator[None]:
    """Turn SIGTERM into ShardInterruptedError in the main thread, so that the loop winds down in order."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise ShardInterruptedError(
            f"shard {shard}: stopped by SIGTERM; videos without a done marker are made by the next run"
        )

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
