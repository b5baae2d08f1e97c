"""CPUs this process may use, and a way to spread work over them.

``os.cpu_count()`` reports the host's cores; in a pod limited to 2 CPUs on a 64-core node a pool of 64 workers
would be throttled into running slower than one. The quota lives in the cgroup (v2 ``cpu.max``, v1
``cpu.cfs_quota_us``/``cpu.cfs_period_us``) and the allowed cores in the affinity mask; the smallest wins.
"""

from __future__ import annotations

import gc
import math
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _own_cgroup_dirs(root: Path) -> list[Path]:
    """Folders of this process's cgroup (v2 unified and v1 cpu controller) and their parents, innermost first."""
    candidates: list[Path] = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            base = root
        elif "cpu" in controllers.split(","):
            base = root / controllers if (root / controllers).is_dir() else root / "cpu"
        else:
            continue
        folder = base / path.lstrip("/")
        # Inside a container's cgroup namespace the recorded path may not exist; its root is the own cgroup.
        while True:
            candidates.append(folder)
            if folder == base:
                break
            folder = folder.parent
    candidates += [root, root / "cpu", root / "cpu,cpuacct"]
    return candidates


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _ratio(quota: str, period: str) -> float | None:
    """CPUs of a quota/period pair; None for no limit (v2 ``max``, v1 ``-1``) or unparsable contents."""
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """The tightest CPU quota (in CPUs) on this process's cgroup path, or None when unlimited or unreadable."""
    limits: list[float] = []
    for folder in _own_cgroup_dirs(root):
        v2 = _read(folder / "cpu.max")
        if v2 is not None:
            quota, _, period = v2.partition(" ")
            limit = _ratio(quota, period)
        else:
            quota_v1, period_v1 = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
            limit = _ratio(quota_v1, period_v1) if quota_v1 is not None and period_v1 is not None else None
        if limit is not None:
            limits.append(limit)
    return min(limits) if limits else None


def available_cpus(root: Path = CGROUP_ROOT) -> int:
    """CPUs this process may use: min(affinity mask, cgroup quota rounded up), at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        cpus = min(cpus, math.ceil(limit))
    return max(1, cpus)


def slices(count: int, pieces: int) -> list[tuple[int, int]]:
    """``pieces`` (at most ``count``, at least 1) [start, stop) ranges of nearly equal size covering range(count)."""
    pieces = max(1, min(count, pieces))
    bounds = [round(i * count / pieces) for i in range(pieces + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def guided_slices(count: int, workers: int, smallest: int = 1) -> list[tuple[int, int]]:
    """[start, stop) ranges covering range(count), for ``workers`` processes that take them in turn: each about
    the remainder over twice the workers, none under ``smallest`` but the last. The first are large (little
    overhead per range), the last small, so the workers finish together."""
    bounds = []
    start = 0
    while start < count:
        stop = min(count, start + max(smallest, (count - start) // (2 * max(1, workers)), 1))
        bounds.append((start, stop))
        start = stop
    return bounds


_forked_func: Callable[[Any], Any] | None = None


def _call_forked(item: Any) -> Any:
    assert _forked_func is not None
    return _forked_func(item)


def fork_map(func: Callable[[T], R], items: Sequence[T], workers: int) -> Iterator[R]:
    """``func(item)`` for every item, yielded in order, computed by ``workers`` forked processes.

    ``func`` reaches the workers through fork, not pickle, so it may be a closure over large data (shared
    copy-on-write); only the items and the results are pickled. With ``workers <= 1`` or a single item it runs
    inline. An exception in ``func`` is raised here when its item's turn comes.
    """
    global _forked_func
    if workers <= 1 or len(items) <= 1:
        yield from map(func, items)
        return
    _forked_func = func
    # Objects that exist before the fork stay out of the workers' garbage collections, whose traversals would
    # otherwise touch (and so copy) every page of the shared data.
    gc.freeze()
    try:
        with multiprocessing.get_context("fork").Pool(min(workers, len(items))) as pool:
            yield from pool.imap(_call_forked, items, chunksize=1)
    finally:
        gc.unfreeze()
        _forked_func = None


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (reference counting still frees everything acyclic).

    Building millions of acyclic objects (a parsed JSON, unpickled results) triggers collections that traverse
    every live object again and again: about half the time of parsing a large JSON goes to them.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            # What the block built is still young: the first collection after it would traverse all of it (0.1 s
            # for an LV-VIS-sized evaluation). Frozen and thawed, it joins the oldest generation untraversed.
            gc.freeze()
            gc.unfreeze()
            gc.enable()
