"""available_cpus: a pool sized from the container's CPU quota and affinity, never the host's core count; fork_map,
gc_paused."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

from wsovvis.resources import available_cpus, cgroup_cpu_limit, fork_map, gc_paused, guided_slices


@pytest.fixture
def eight_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("150000 100000", 2), ("200000 100000", 2), ("50000 100000", 1), ("max 100000", 8), ("junk", 8)],
)
def test_cgroup_v2_quota_rounds_up_and_max_means_unlimited(
    tmp_path: Path, eight_cores: None, cpu_max: str, expected: int
) -> None:
    _write(tmp_path / "cpu.max", cpu_max)
    assert available_cpus(tmp_path) == expected


@pytest.mark.parametrize(("quota", "expected"), [("300000", 3), ("-1", 8)])
def test_cgroup_v1_cfs_quota(tmp_path: Path, eight_cores: None, quota: str, expected: int) -> None:
    _write(tmp_path / "cpu" / "cpu.cfs_quota_us", quota)
    _write(tmp_path / "cpu" / "cpu.cfs_period_us", "100000")
    assert available_cpus(tmp_path) == expected


def test_affinity_smaller_than_quota_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    _write(tmp_path / "cpu.max", "400000 100000")
    assert available_cpus(tmp_path) == 1


def test_no_cgroup_files_means_no_limit(tmp_path: Path, eight_cores: None) -> None:
    assert cgroup_cpu_limit(tmp_path) is None
    assert available_cpus(tmp_path) == 8


def test_fork_map_computes_in_other_processes_in_order_and_raises_the_error() -> None:
    big = list(range(100_000))  # reaches the processes through fork, not pickle
    computed = list(fork_map(lambda k: (os.getpid(), k, sum(big[k:])), [0, 1, 2], workers=2))
    assert [(k, total) for _, k, total in computed] == [(k, sum(big[k:])) for k in range(3)]
    assert os.getpid() not in {pid for pid, _, _ in computed}
    with pytest.raises(ZeroDivisionError):
        list(fork_map(lambda k: 1 // k, [1, 0], workers=2))


def test_gc_paused_restores_the_collector() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_what_gc_paused_built_is_not_left_for_the_next_young_collection() -> None:
    # Left young, it would all be traversed by the first collection after the block.
    with gc_paused():
        built = [[i] for i in range(5000)]
    young = {id(o) for o in gc.get_objects(generation=0)}
    assert not any(id(o) in young for o in built)
    assert any(o is built[0] for o in gc.get_objects(generation=2))


@pytest.mark.parametrize(
    ("count", "workers", "smallest"), [(837, 2, 12), (5, 2, 12), (40, 3, 1), (1, 4, 1), (0, 2, 1)]
)
def test_guided_slices_cover_the_range_largest_first(count, workers, smallest):
    bounds = guided_slices(count, workers, smallest)
    assert [i for start, stop in bounds for i in range(start, stop)] == list(range(count))
    sizes = [stop - start for start, stop in bounds]
    assert sizes == sorted(sizes, reverse=True)
    assert all(size >= min(smallest, count) for size in sizes[:-1])
    if count >= 4 * workers * smallest:
        # large first, small last: the work still queued when the first worker finishes is small
        assert sizes[0] >= 4 * sizes[-1]
