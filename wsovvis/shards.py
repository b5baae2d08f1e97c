"""plan-shards: spread the videos of a frames root over N shards with equal total frames.

Videos are assigned longest first, each to the shard with the fewest frames so far (LPT; ties by shard
index, videos ordered by frame count then id), then a refinement pass moves or swaps videos out of the
fullest shard while that lowers it. The result depends only on the video ids and frame counts.

The manifest (JSON)::

    {"frames_root": ..., "num_shards": N, "num_videos": V, "total_frames": F,
     "balance": max/mean shard frames, "best_possible_balance": max(longest video, mean)/mean,
     "shards": [{"index": 0, "videos": [...sorted ids...], "frames": n}, ...]}

The shard indices ``[0, ..., N-1]`` are written separately (small, for a KFP ``ParallelFor``: parameters are
capped at 10,000 characters, so the video lists never travel as parameters).
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wsovvis import jsonio, names, storage
from wsovvis.cliutil import add_flag, positive_int
from wsovvis.errors import InputError, UsageError
from wsovvis.masks import FRAME_SUFFIXES
from wsovvis.workspace import stage_uri

log = logging.getLogger(__name__)

OUTPUT_VERSION = 1  # bump when a change makes plan-shards write a different manifest (see wsovvis.workspace)


@dataclass(frozen=True)
class Shard:
    index: int
    videos: tuple[str, ...]
    frames: int


@dataclass(frozen=True)
class ShardPlan:
    shards: tuple[Shard, ...]
    longest_video: int  # frames of the longest video: no plan's fullest shard can hold fewer

    @property
    def total_frames(self) -> int:
        return sum(s.frames for s in self.shards)

    @property
    def num_videos(self) -> int:
        return sum(len(s.videos) for s in self.shards)

    @property
    def balance(self) -> float:
        """Max over mean shard frames (1.0 is perfect)."""
        mean = self.total_frames / len(self.shards)
        return max(s.frames for s in self.shards) / mean if mean else 1.0

    @property
    def best_possible_balance(self) -> float:
        mean = self.total_frames / len(self.shards)
        return max(mean, self.longest_video) / mean if mean else 1.0

    @property
    def indices(self) -> list[int]:
        return [s.index for s in self.shards]


def count_frames(frames_root: str, videos: list[str] | None = None) -> dict[str, int]:
    """Video id -> number of frame files under ``<frames_root>/<video_id>/`` (one recursive listing)."""
    counts: dict[str, int] = {}
    unusable: dict[str, str] = {}
    for rel in storage.walk_files(frames_root):
        video_id, sep, name = rel.partition("/")
        if not (sep and "/" not in name and name.lower().endswith(FRAME_SUFFIXES)) or names.name_problem(
            name
        ):
            continue  # not a frame every stage can use (list_frames says why when the video is read)
        try:
            names.check_video_id(video_id)
        except names.InvalidNameError as exc:
            unusable[video_id] = str(exc)
            continue
        counts[video_id] = counts.get(video_id, 0) + 1
    for reason in unusable.values():
        log.warning("%s: folder skipped: invalid video id %s", frames_root, reason)
    if videos is not None:
        missing = sorted(set(videos) - set(counts))
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise InputError(f"{frames_root}: no frames for {len(missing)} listed video(s): {shown}")
        counts = {v: counts[v] for v in videos}
    if not counts:
        raise InputError(f"{frames_root}: no videos found (expected <video_id>/<frame>.jpg below it)")
    return dict(sorted(counts.items()))


def plan(frame_counts: Mapping[str, int], num_shards: int) -> ShardPlan:
    """Balance videos over ``num_shards`` shards by total frames, deterministically."""
    if num_shards < 1:
        raise UsageError(f"num_shards must be >= 1, got {num_shards}")
    order = sorted(frame_counts, key=lambda v: (-frame_counts[v], v))
    members: list[list[str]] = [[] for _ in range(num_shards)]
    loads = [0] * num_shards
    heap = [(0, index) for index in range(num_shards)]
    for video in order:
        load, index = heapq.heappop(heap)
        members[index].append(video)
        loads[index] = load + frame_counts[video]
        heapq.heappush(heap, (loads[index], index))
    longest = max(frame_counts.values(), default=0)
    if max(loads) > max(longest, math.ceil(sum(loads) / num_shards)):
        _refine(members, loads, frame_counts)
    shards = tuple(Shard(index, tuple(sorted(videos)), loads[index]) for index, videos in enumerate(members))
    return ShardPlan(shards, longest)


def _refine(
    members: list[list[str]], loads: list[int], counts: Mapping[str, int], max_rounds: int = 200
) -> None:
    """Move or swap one video at a time out of the fullest shard while that lowers the fullest shard."""
    for _ in range(max_rounds):
        top = max(range(len(loads)), key=lambda i: (loads[i], -i))
        best: tuple[int, int, str, str | None] | None = None  # (new max of the pair, other shard, out, in)
        for other in range(len(loads)):
            if other == top:
                continue
            for out in sorted(members[top]):
                gap = loads[top] - loads[other]
                for incoming in [None, *sorted(members[other])]:
                    delta = counts[out] - (counts[incoming] if incoming is not None else 0)
                    if not 0 < delta < gap:
                        continue
                    new_max = max(loads[top] - delta, loads[other] + delta)
                    if best is None or new_max < best[0]:
                        best = (new_max, other, out, incoming)
        if best is None:
            return
        _, other, out, incoming = best
        members[top].remove(out)
        members[other].append(out)
        loads[top] -= counts[out]
        loads[other] += counts[out]
        if incoming is not None:
            members[other].remove(incoming)
            members[top].append(incoming)
            loads[other] -= counts[incoming]
            loads[top] += counts[incoming]


def manifest(plan_: ShardPlan, frames_root: str) -> dict[str, Any]:
    return {
        "frames_root": frames_root,
        "num_shards": len(plan_.shards),
        "num_videos": plan_.num_videos,
        "total_frames": plan_.total_frames,
        "balance": round(plan_.balance, 4),
        "best_possible_balance": round(plan_.best_possible_balance, 4),
        "longest_video_frames": plan_.longest_video,
        "shards": [{"index": s.index, "videos": list(s.videos), "frames": s.frames} for s in plan_.shards],
    }


def read_videos_list(uri: str) -> list[str]:
    """Video ids, one a line (blank lines and ``#`` comments ignored)."""
    ids = []
    for number, line in enumerate(storage.read_text(uri).splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if line:
            try:
                ids.append(names.check_video_id(line))
            except names.InvalidNameError as exc:
                raise InputError(f"{uri}: line {number}: invalid video id {exc}") from exc
    if not ids:
        raise InputError(f"{uri}: no video ids (one a line)")
    return list(dict.fromkeys(ids))


def plan_shards(
    frames_root: str,
    num_shards: int,
    out_manifest: str,
    *,
    videos_list: str | None = None,
    out_indices: str | None = None,
) -> ShardPlan:
    """List and count the videos, plan the shards, write the manifest (and the index list)."""
    storage.check_outputs(
        {"--out_manifest": out_manifest, "--out_indices": out_indices},
        {"--frames_root": frames_root, "--videos_list": videos_list},
    )
    videos = read_videos_list(videos_list) if videos_list else None
    counts = count_frames(frames_root, videos)
    result = plan(counts, num_shards)
    jsonio.write_json(out_manifest, manifest(result, frames_root))
    if out_indices:
        jsonio.write_json(out_indices, result.indices, indent=None)
    log.info(
        "plan-shards: %d videos, %d frames over %d shards, max/mean %.3f (longest video %d frames); wrote %s",
        result.num_videos,
        result.total_frames,
        len(result.shards),
        result.balance,
        result.longest_video,
        out_manifest,
    )
    return result


def plan_shards_step(
    *,
    frames_root: str,
    num_shards: int,
    videos_list: str,
    work_root: str,
    manifest_path: str,
    manifest_uri_path: str,
) -> list[dict[str, Any]]:
    """The pipeline step: plan into the manifest artifact; write the manifest's URI to ``manifest_uri_path``;
    return the ParallelFor's items, ``{"index": k, "manifest_uri": URI}`` per shard (never the video lists:
    parameters are capped).

    The step runs on every pipeline run (a frames root that gained videos must be re-planned), so the URI is
    derived from the manifest's content: unchanged data gives the same URI, and the steps keyed by it (mask-gen,
    convert) stay cached; new data gives a new one.
    """
    result = plan_shards(frames_root, num_shards, manifest_path, videos_list=videos_list or None)
    data = storage.read_bytes(manifest_path)
    folder = stage_uri(work_root, "shards", OUTPUT_VERSION, manifest=hashlib.sha256(data).hexdigest())
    manifest_uri = storage.join(folder, "manifest.json")
    if not storage.exists(manifest_uri):
        storage.write_bytes(manifest_uri, data)
    storage.write_text(manifest_uri_path, manifest_uri)
    return [{"index": index, "manifest_uri": manifest_uri} for index in result.indices]


def load_shard(manifest_uri: str, index: int) -> list[str]:
    """The video ids of shard ``index`` of a manifest."""
    data = jsonio.read_json(manifest_uri)
    shards = data.get("shards") if isinstance(data, dict) else None
    if not isinstance(shards, list):
        raise InputError(
            f"{manifest_uri}: not a shard manifest (no 'shards' list); make one with plan-shards"
        )
    for shard in shards:
        if isinstance(shard, dict) and shard.get("index") == index:
            videos = shard.get("videos", [])
            if not isinstance(videos, list) or not all(isinstance(v, str) for v in videos):
                raise InputError(
                    f"{manifest_uri}: shard {index}: 'videos' must be a list of video id strings"
                )
            return list(dict.fromkeys(videos))
    raise UsageError(f"{manifest_uri}: no shard {index} (the manifest has {len(shards)} shards)")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan-shards",
        help="balance the videos of a frames root over N shards by frame count",
        description="List <frames_root>/<video_id>/*.jpg (local or S3), count frames and balance the videos over "
        "N shards (longest first); write the shard manifest and, optionally, the shard index list.",
    )
    add_flag(
        parser, "--frames_root", required=True, help="folder or s3:// prefix holding <video_id>/<frame>.jpg"
    )
    add_flag(parser, "--num_shards", type=positive_int, required=True)
    add_flag(parser, "--out_manifest", required=True, help="manifest JSON to write (path or s3:// URI)")
    add_flag(parser, "--videos_list", help="only these videos: a text file with one video id a line")
    add_flag(parser, "--out_indices", help="write the shard indices as a JSON list (for a KFP ParallelFor)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    plan_shards(
        args.frames_root,
        args.num_shards,
        args.out_manifest,
        videos_list=args.videos_list,
        out_indices=args.out_indices,
    )
    return 0
