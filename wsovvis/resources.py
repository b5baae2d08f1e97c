"""How many CPUs this process may use: the container's CPU quota and affinity, not the host's core count.

``os.cpu_count()`` reports the host's cores; in a pod limited to 2 CPUs on a 64-core node a pool of 64 workers
would be throttled into running slower than one. The quota lives in the cgroup (v2 ``cpu.max``, v1
``cpu.cfs_quota_us``/``cpu.cfs_period_us``) and the allowed cores in the affinity mask; the smallest wins.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

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
