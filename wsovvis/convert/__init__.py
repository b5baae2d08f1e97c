"""convert: VideoCutLER-style mask PNGs (folders or one tar per video) to one YTVIS-style tube JSON.

Per video the masks are index maps (``mask_<frame>.png``; 0 background, k = instance k, the same k across the
video) beside frames ``<img_root>/<video_id>/<frame>.jpg``. Every instance becomes one annotation with a
compressed RLE, box and area per frame (null where absent). A video that cannot be converted is left out and
listed, with the file and the reason, in the skip report; the others convert.
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import os
import tarfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from wsovvis import __version__, jsonio, masks, names, rle, storage, ytvis
from wsovvis.convert.linker import link_tracks
from wsovvis.errors import InputError, UsageError
from wsovvis.logs import progress
from wsovvis.resources import available_cpus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConvertOptions:
    """Skip rules and knobs of the conversion (the seed tool's flags)."""

    split_name: str = ""
    skip_list: frozenset[str] = frozenset()
    min_masks: int = 3
    min_coverage: float = 0.2
    link_iou: float | None = None
    workers: int = 0  # 0: one process per CPU this process may use

    def __post_init__(self) -> None:
        if self.min_masks < 0:
            raise UsageError(f"min_masks must be >= 0, got {self.min_masks}")
        if not 0.0 <= self.min_coverage <= 1.0:
            raise UsageError(f"min_coverage must be in [0, 1], got {self.min_coverage}")
        if self.link_iou is not None and not 0.0 < self.link_iou <= 1.0:
            raise UsageError(f"link_iou must be in (0, 1], got {self.link_iou}")
        if self.workers < 0:
            raise UsageError(f"workers must be >= 0, got {self.workers}")


@dataclass(frozen=True)
class Skip:
    video_id: str
    reason: str
    file: str | None = None

    def as_dict(self) -> dict[str, str]:
        record = {"video_id": self.video_id, "reason": self.reason}
        if self.file:
            record["file"] = self.file
        return record


@dataclass(frozen=True)
class ConvertedVideo:
    """One converted video: its dataset entry (without id) and annotations (without ids)."""

    video_id: str
    video: dict[str, Any]
    annotations: list[dict[str, Any]]
    mask_pngs: int


@dataclass(frozen=True)
class ConvertSummary:
    out_json: str
    skip_report: str
    videos_seen: int
    videos_converted: int
    annotations: int
    skipped: list[Skip] = field(default_factory=list)
    seconds: float = 0.0
    frames: int = 0

    def metrics(self) -> dict[str, float]:
        """The counts a run shows in the Kubeflow UI."""
        return {
            "videos_converted": self.videos_converted,
            "videos_skipped": len(self.skipped),
            "tubes": self.annotations,
            "frames": self.frames,
            "frames_per_second": round(self.frames / self.seconds, 2) if self.seconds > 0 else 0.0,
        }

    def line(self) -> str:
        reasons = Counter(_reason_kind(s.reason) for s in self.skipped)
        detail = ", ".join(f"{n} {kind}" for kind, n in sorted(reasons.items()))
        return (
            f"convert: {self.videos_converted}/{self.videos_seen} videos converted, {self.annotations} tubes, "
            f"{len(self.skipped)} skipped{f' ({detail})' if detail else ''} in {self.seconds:.1f}s"
        )


def _reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0]


@dataclass(frozen=True)
class _Task:
    video_id: str
    mask_source: str
    frames_dir: str
    frames_relative: str
    options: ConvertOptions


class _SkipVideo(Exception):
    def __init__(self, reason: str, file: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.file = file


def _frame_size(frames_dir: str, frame_file: str) -> tuple[int, int]:
    path = storage.join(frames_dir, frame_file)
    try:
        with Image.open(io.BytesIO(storage.read_bytes(path))) as image:
            width, height = image.size
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise _SkipVideo(f"unreadable frame: {exc}", path) from exc
    return height, width


def _decode_masks(
    task: _Task, video_masks: masks.VideoMasks, size: tuple[int, int]
) -> dict[str, dict[int, rle.RLE]]:
    encoded = {}
    for frame in names.sorted_names(list(video_masks.pngs)):
        data = video_masks.pngs[frame]
        where = storage.join(task.mask_source, masks.mask_name(frame))
        try:
            index_map = masks.decode_png(data, size)
        except masks.NotAnIndexMapError as exc:
            raise _SkipVideo(f"not an index map: {exc}", where) from exc
        except masks.MaskSizeError as exc:
            raise _SkipVideo(f"size mismatch: {exc}", where) from exc
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise _SkipVideo(f"unreadable mask PNG: {exc}", where) from exc
        encoded[frame] = rle.encode_index_map(index_map)
    return encoded


def _convert_video(task: _Task) -> ConvertedVideo | Skip:
    try:
        return _convert_video_or_raise(task)
    except _SkipVideo as skip:
        return Skip(task.video_id, skip.reason, skip.file)
    except storage.StorageNotFoundError as exc:
        return Skip(task.video_id, f"missing input: {exc}")
    except InputError as exc:
        return Skip(task.video_id, f"unreadable input: {exc}")
    except MemoryError:
        raise
    except Exception as exc:  # one bad video never ends the run; the reason goes to the skip report
        log.debug("video %s", task.video_id, exc_info=True)
        return Skip(task.video_id, f"unexpected error: {type(exc).__name__}: {exc}")


def _convert_video_or_raise(task: _Task) -> ConvertedVideo:
    options = task.options
    try:
        frame_files = masks.list_frames(task.frames_dir)
    except storage.StorageNotFoundError as exc:
        raise _SkipVideo("no frames folder", task.frames_dir) from exc
    if not frame_files:
        raise _SkipVideo("no frames folder: it holds no .jpg/.png frames", task.frames_dir)
    height, width = _frame_size(task.frames_dir, frame_files[0])
    limits = masks.TarLimits.for_video(len(frame_files), height, width)
    try:
        video_masks = masks.read_video_masks(task.video_id, task.mask_source, limits)
    except masks.UnsafeArchiveError as exc:
        raise _SkipVideo(f"unsafe mask archive: {exc}", task.mask_source) from exc
    except (tarfile.TarError, OSError, ValueError, EOFError) as exc:
        raise _SkipVideo(f"unreadable mask archive: {exc}", task.mask_source) from exc
    if not video_masks.pngs:
        if video_masks.sidecar is not None and video_masks.sidecar.get("num_instances") == 0:
            raise _SkipVideo("no instances: mask generation found none", task.mask_source)
        raise _SkipVideo("no masks: no mask_<frame>.png", task.mask_source)
    frame_index = {os.path.splitext(name)[0]: i for i, name in enumerate(frame_files)}
    for frame in sorted(video_masks.pngs):
        if frame not in frame_index:
            raise _SkipVideo(
                f"unknown frame: mask names frame '{frame}', which is not in the frames folder {task.frames_dir}",
                storage.join(task.mask_source, masks.mask_name(frame)),
            )
    num_pngs, num_frames = len(video_masks.pngs), len(frame_files)
    if num_pngs < options.min_masks:
        raise _SkipVideo(
            f"too few masks: {num_pngs} mask PNGs < min_masks {options.min_masks}", task.mask_source
        )
    coverage = num_pngs / num_frames
    if coverage < options.min_coverage:
        raise _SkipVideo(
            f"low coverage: {num_pngs}/{num_frames} = {coverage:.3f} < min_coverage {options.min_coverage}",
            task.mask_source,
        )
    encoded = _decode_masks(task, video_masks, (height, width))

    tracks: dict[int, dict[int, rle.RLE]] = {}
    for frame, instances in encoded.items():
        for instance, mask in instances.items():
            tracks.setdefault(instance, {})[frame_index[frame]] = mask
    if not tracks:
        raise _SkipVideo("no instances: every mask PNG is background", task.mask_source)
    if options.link_iou is not None:
        groups = link_tracks(tracks, options.link_iou)
    else:
        groups = {instance: [instance] for instance in tracks}
    scores = video_masks.scores

    annotations = []
    for head in sorted(groups):
        members = groups[head]
        per_frame = {f: m for member in members for f, m in tracks[member].items()}
        frames_present = sorted(per_frame)
        boxes, areas = rle.boxes_and_areas([per_frame[f] for f in frames_present])
        segmentations: list[Any] = [None] * num_frames
        bboxes: list[Any] = [None] * num_frames
        area_list: list[Any] = [None] * num_frames
        for f, box, area in zip(frames_present, boxes, areas, strict=True):
            segmentations[f], bboxes[f], area_list[f] = per_frame[f], box, area
        annotation: dict[str, Any] = {
            "category_id": ytvis.AGNOSTIC_CATEGORY["id"],
            "iscrowd": 0,
            "segmentations": segmentations,
            "bboxes": bboxes,
            "areas": area_list,
        }
        if scores and all(m in scores for m in members):
            weights = [len(tracks[m]) for m in members]
            annotation["score"] = round(
                sum(scores[m] * w for m, w in zip(members, weights, strict=True)) / sum(weights), 6
            )
        annotations.append(annotation)
    video = {
        "file_names": [f"{task.frames_relative}/{name}" for name in frame_files],
        "height": height,
        "width": width,
        "length": num_frames,
    }
    return ConvertedVideo(task.video_id, video, annotations, num_pngs)


def _unaccounted(sources: dict[str, str], img_root: str) -> list[Skip]:
    """Videos of the frames root that mask generation left no output for: skipped, so every video is accounted."""
    try:
        folders, _ = storage.listdir(img_root)
    except storage.StorageNotFoundError:
        return []
    skips = []
    for video_id in folders:
        if video_id in sources or video_id.startswith("."):
            continue
        problem = names.video_id_problem(video_id)
        reason = (
            f"invalid video id {problem}"
            if problem
            else "no mask output: mask generation made nothing for it"
        )
        skips.append(Skip(video_id, reason, storage.join(img_root, video_id)))
    return skips


def read_skip_list(uri: str | None) -> frozenset[str]:
    """Video ids to skip: one per line, '#' comments and blank lines ignored."""
    if not uri:
        return frozenset()
    lines = storage.read_text(uri).splitlines()
    return frozenset(line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip())


def _outcomes(tasks: list[_Task], workers: int) -> Iterator[ConvertedVideo | Skip]:
    if workers <= 1 or len(tasks) <= 1:
        yield from map(_convert_video, tasks)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from pool.imap(_convert_video, tasks, chunksize=1)


def convert(
    mask_root: str,
    img_root: str,
    out_json: str,
    options: ConvertOptions | None = None,
    skip_report: str | None = None,
) -> ConvertSummary:
    """Convert every video under ``mask_root`` into ``out_json``; write the skip report; return a summary.

    Raises InputError when no video at all could be converted (the skip report is still written).
    """
    options = options or ConvertOptions()
    skip_report = skip_report or f"{out_json}.skipped.json"
    storage.check_outputs(
        {"--out_json": out_json, "--skip_report": skip_report},
        {"--mask_root": mask_root, "--img_root": img_root},
    )
    started = time.monotonic()
    try:
        sources = masks.list_mask_videos(mask_root)
    except storage.StorageNotFoundError as exc:
        raise UsageError(f"--mask_root {mask_root}: not a folder or prefix with masks") from exc
    skipped = _unaccounted(sources, img_root)
    for video_id in list(sources):
        if problem := names.video_id_problem(video_id):
            skipped.append(Skip(video_id, f"invalid video id {problem}", sources.pop(video_id)))
    skipped += [Skip(v, "skip list: listed in --skip_list") for v in sources if v in options.skip_list]
    tasks = [
        _Task(v, source, storage.join(img_root, v), v, options)
        for v, source in sources.items()
        if v not in options.skip_list
    ]
    workers = options.workers or available_cpus()
    log.info(
        "convert: %d videos under %s, %d skipped before conversion, %d workers",
        len(tasks) + len(skipped),
        mask_root,
        len(skipped),
        workers,
    )

    info = {
        "description": "wsovvis pseudo tubes",
        "split_name": options.split_name,
        "wsovvis_version": __version__,
    }
    if options.link_iou is not None:
        info["link_iou"] = options.link_iou
    converted = frames = 0
    with ytvis.dataset_writer(out_json, [dict(ytvis.AGNOSTIC_CATEGORY)], info) as writer:
        for outcome in progress(_outcomes(tasks, workers), total=len(tasks), desc="convert", unit="video"):
            if isinstance(outcome, Skip):
                log.warning(
                    "skip %s: %s%s",
                    outcome.video_id,
                    outcome.reason,
                    f" ({outcome.file})" if outcome.file else "",
                )
                skipped.append(outcome)
                continue
            converted += 1
            frames += outcome.video["length"]
            writer.add_video({"id": converted, **outcome.video})
            for annotation in outcome.annotations:
                writer.add_annotation({"id": writer.num_annotations + 1, "video_id": converted, **annotation})
        num_annotations = writer.num_annotations
        summary = ConvertSummary(
            out_json=out_json,
            skip_report=skip_report,
            videos_seen=converted + len(skipped),
            videos_converted=converted,
            annotations=num_annotations,
            skipped=sorted(skipped, key=lambda s: s.video_id),
            seconds=time.monotonic() - started,
            frames=frames,
        )
        _write_skip_report(summary, mask_root, img_root, options)
        if converted == 0:
            raise InputError(
                f"convert: no video under {mask_root} could be converted ({len(skipped)} skipped); "
                f"see the skip report {skip_report}"
            )
    log.info("%s", summary.line())
    log.info("wrote %s and skip report %s", out_json, skip_report)
    return summary


def _write_skip_report(
    summary: ConvertSummary, mask_root: str, img_root: str, options: ConvertOptions
) -> None:
    jsonio.write_json(
        summary.skip_report,
        {
            "mask_root": mask_root,
            "img_root": img_root,
            "out_json": summary.out_json,
            "split_name": options.split_name,
            "rules": {
                "min_masks": options.min_masks,
                "min_coverage": options.min_coverage,
                "link_iou": options.link_iou,
            },
            "videos_seen": summary.videos_seen,
            "videos_converted": summary.videos_converted,
            "videos_skipped": len(summary.skipped),
            "reasons": dict(sorted(Counter(_reason_kind(s.reason) for s in summary.skipped).items())),
            "skipped": [s.as_dict() for s in summary.skipped],
        },
    )
