"""Benchmark: `wsovvis evaluate` vs the official youtubevos/cocoapi evaluator on an LV-VIS-val-sized case.

    PYTHONPATH=$PWD python benchmarks/evaluate.py [--official /path/to/ytvoseval.py] [--class-agnostic] \
        [--workers N] [--repeat N] [--workdir DIR]

Generates (seeded) 837 videos of 10-35 frames, 1,196 categories, about 4 GT objects and 10 results per video,
then times each side as a whole process (interpreter start, imports, JSON loading, evaluation), one after the
other in the same run (``--repeat``: alternating, best and median), and prints both times (wall and CPU,
workers included), the ratio, peak memory (the largest process's RSS in every run; the whole process tree's PSS,
so memory shared copy-on-write with forked workers counts once, in one extra run of each side that samples it
every 20 ms, since sampling takes CPU from the timed process), the load average, and whether all 12 stats agree
to 1e-6. wsovvis is byte-compiled first, as an installed package is. ``--workers`` goes to ``wsovvis evaluate``
(default there: the CPUs of the container's quota). The official needs ``ytvos.py`` beside ``ytvoseval.py``
(copies of youtubevos/cocoapi's; never committed here).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from evalcases import STAT_NAMES  # noqa: E402

OFFICIAL_RUNNER = """
import json, sys
sys.path.insert(0, {here!r})
import evalcases
official = evalcases.load_official({directory!r})
stats = evalcases.run_official(official, {gt!r}, {results!r}, class_agnostic={agnostic!r})
print(json.dumps(stats))
"""


def _ellipse_counts(height: int, width: int, cx: float, cy: float, rx: float, ry: float) -> list[int] | None:
    """Uncompressed column-major RLE counts of a filled ellipse, built from its column spans."""
    x0, x1 = max(0, int(cx - rx)), min(width, int(cx + rx) + 1)
    xs = np.arange(x0, x1) + 0.5
    half = ry * np.sqrt(np.clip(1 - ((xs - cx) / rx) ** 2, 0, None))
    top = np.clip(np.ceil(cy - half - 0.5), 0, height).astype(np.int64)
    bottom = np.clip(np.floor(cy + half - 0.5) + 1, 0, height).astype(np.int64)
    keep = bottom > top
    if not keep.any():
        return None
    cols = np.arange(x0, x1)[keep]
    top, bottom = top[keep], bottom[keep]
    starts = cols * height + top
    ends = cols * height + bottom
    # Adjacent columns whose runs touch (a run to the bottom edge, the next from the top) merge into one.
    joined = np.flatnonzero(starts[1:] == ends[:-1])
    starts = np.delete(starts, joined + 1)
    ends = np.delete(ends, joined)
    edges = np.empty(2 * len(starts), dtype=np.int64)
    edges[0::2], edges[1::2] = starts, ends
    counts = np.diff(np.concatenate(([0], edges, [height * width])))
    return counts.tolist()


def _track(rng: np.random.Generator, height: int, width: int, length: int) -> list[tuple[float, ...] | None]:
    rx, ry = rng.uniform(8, width / 3), rng.uniform(8, height / 3)
    cx, cy = rng.uniform(rx, width - rx), rng.uniform(ry, height - ry)
    vx, vy = rng.normal(0, 3, size=2)
    start, stop = sorted(rng.integers(0, length + 1, size=2))
    if stop - start < 1:
        start, stop = 0, length
    return [(cx + vx * f, cy + vy * f, rx, ry) if start <= f < stop else None for f in range(length)]


def _jitter(rng: np.random.Generator, track: list, amount: float) -> list:
    return [
        None
        if e is None
        else (
            e[0] + rng.normal(0, amount * e[2]),
            e[1] + rng.normal(0, amount * e[3]),
            e[2] * rng.uniform(0.8, 1.2),
            e[3],
        )
        for e in track
    ]


def _encode(track: list, height: int, width: int) -> tuple[list, list]:
    uncompressed, frames = [], []
    for f, e in enumerate(track):
        counts = None if e is None else _ellipse_counts(height, width, *e)
        if counts is not None:
            uncompressed.append({"size": [height, width], "counts": counts})
            frames.append(f)
    segs: list = [None] * len(track)
    areas: list = [None] * len(track)
    if uncompressed:
        encoded = mask_utils.frPyObjects(uncompressed, height, width)
        for f, rle, raw in zip(frames, encoded, uncompressed, strict=True):
            segs[f] = {"size": [height, width], "counts": rle["counts"].decode("ascii")}
            areas[f] = int(sum(raw["counts"][1::2]))
    return segs, areas


def make_case(directory: Path, seed: int, num_videos: int, num_categories: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    categories = [
        {"id": c + 1, "name": f"category {c + 1}", "partition": int(rng.integers(0, 4))}
        for c in range(num_categories)
    ]
    videos, annotations, results = [], [], []
    for video_id in range(1, num_videos + 1):
        height, width = (360, 640) if rng.random() < 0.7 else (720, 1280)
        length = int(rng.integers(10, 36))
        videos.append(
            {
                "id": video_id,
                "height": height,
                "width": width,
                "length": length,
                "file_names": [f"{video_id:05d}/{f:05d}.jpg" for f in range(length)],
            }
        )
        video_cats = rng.integers(1, num_categories + 1, size=3)
        for _ in range(int(rng.poisson(4))):
            track = _track(rng, height, width, length)
            category_id = int(rng.choice(video_cats))
            segs, areas = _encode(track, height, width)
            if not any(segs):
                continue
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "video_id": video_id,
                    "category_id": category_id,
                    "iscrowd": 0,
                    "segmentations": segs,
                    "areas": areas,
                    "bboxes": [None] * length,
                }
            )
            for _ in range(int(rng.integers(1, 3))):
                right = rng.random() < 0.6
                results.append(
                    {
                        "video_id": video_id,
                        "category_id": category_id if right else int(rng.integers(1, num_categories + 1)),
                        "score": float(rng.random()),
                        "segmentations": _encode(
                            _jitter(rng, track, float(rng.uniform(0, 0.3))), height, width
                        )[0],
                    }
                )
        so_far = sum(r["video_id"] == video_id for r in results[-40:])
        for _ in range(max(0, int(rng.poisson(10)) - so_far)):
            segs, _ = _encode(_track(rng, height, width, length), height, width)
            results.append(
                {
                    "video_id": video_id,
                    "category_id": int(
                        rng.choice(video_cats) if rng.random() < 0.5 else rng.integers(1, num_categories + 1)
                    ),
                    "score": float(rng.random() * 0.8),
                    "segmentations": segs,
                }
            )
    gt_path, results_path = directory / "gt.json", directory / "results.json"
    gt_path.write_text(json.dumps({"videos": videos, "annotations": annotations, "categories": categories}))
    results_path.write_text(json.dumps(results))
    print(
        f"case: {num_videos} videos, {sum(v['length'] for v in videos)} frames, {num_categories} categories, "
        f"{len(annotations)} GT objects, {len(results)} results; GT {gt_path.stat().st_size / 1e6:.0f} MB, "
        f"results {results_path.stat().st_size / 1e6:.0f} MB"
    )
    return gt_path, results_path


def _tree_pss_kib(pid: int) -> int:
    """Proportional set size (KiB) of a process and all its descendants; 0 for those already gone."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            rollup = Path(f"/proc/{current}/smaps_rollup").read_text()
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        total += next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
    return total


def _timed(command: list[str], env: dict[str, str], sample_pss: bool) -> tuple[float, float, int, int, str]:
    """Wall time, CPU time (user + system, children included), peak RSS of the largest process (KiB), peak PSS
    of the process tree (KiB, sampled every 20 ms when ``sample_pss``, else 0) and stdout of one child process."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, env=env, stdout=out, stderr=err, text=True)
        peak_pss = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak_pss
            while not done.wait(0.02):
                peak_pss = max(peak_pss, _tree_pss_kib(child.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        if sample_pss:
            sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - started
        done.set()
        if sample_pss:
            sampler.join()
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            sys.exit(f"{' '.join(command[:4])} failed:\n{err.read()[-3000:]}")
        return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, peak_pss, out.read()


def _load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--official", help="path of a copy of youtubevos/cocoapi ytvoseval.py (ytvos.py beside it)"
    )
    parser.add_argument("--class-agnostic", action="store_true")
    parser.add_argument("--workers", type=int, help="passed to wsovvis evaluate --workers")
    parser.add_argument("--videos", type=int, default=837)
    parser.add_argument("--categories", type=int, default=1196)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workdir", help="keep the generated files here and reuse them (default: a temporary folder)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each side, alternating")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="wsovvis-bench-") as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        case = {"seed": args.seed, "videos": args.videos, "categories": args.categories}
        case_file = workdir / "case.json"
        gt, results = workdir / "gt.json", workdir / "results.json"
        if (
            case_file.exists()
            and json.loads(case_file.read_text()) == case
            and gt.exists()
            and results.exists()
        ):
            print(f"case: reusing {gt} and {results} ({case})")
        else:
            started = time.perf_counter()
            gt, results = make_case(workdir, args.seed, args.videos, args.categories)
            case_file.write_text(json.dumps(case))
            print(f"generated in {time.perf_counter() - started:.1f}s")
        env = dict(os.environ, PYTHONPATH=str(ROOT), WSOVVIS_NO_PROGRESS="1")
        # An installed wsovvis (pip, the images) runs from byte-code compiled at install time; a checkout under
        # PYTHONDONTWRITEBYTECODE would compile its modules again in every timed run.
        compileall.compile_dir(str(ROOT / "wsovvis"), quiet=1)
        metrics_path = workdir / "metrics.json"
        ours_cmd = [
            sys.executable,
            "-m",
            "wsovvis",
            "--log-level",
            "WARNING",
            "evaluate",
            "--gt",
            str(gt),
            "--results",
            str(results),
            "--out",
            str(metrics_path),
        ]
        if args.class_agnostic:
            ours_cmd.append("--class-agnostic")
        if args.workers is not None:
            ours_cmd += ["--workers", str(args.workers)]
        official_cmd = None
        if args.official:
            official_cmd = [
                sys.executable,
                "-c",
                OFFICIAL_RUNNER.format(
                    here=str(HERE),
                    directory=str(Path(args.official).parent),
                    gt=str(gt),
                    results=str(results),
                    agnostic=args.class_agnostic,
                ),
            ]
        ours_runs, official_runs = [], []
        metrics = official = {}
        # Alternate the two sides, so that both see the machine's load of the same moments. The timed runs sample
        # no memory: the sampler's reads of /proc would take CPU from the side with workers on a small machine.
        for run in range(1, args.repeat + 1):
            load = _load()
            wall, cpu, peak, _, _ = _timed(ours_cmd, env, sample_pss=False)
            ours_runs.append((wall, cpu, peak))
            metrics = json.loads(metrics_path.read_text())
            print(
                f"[{run}] wsovvis evaluate (workers {args.workers or 'default'}): {wall:.2f}s wall, {cpu:.2f}s CPU "
                f"(whole process, workers included), peak RSS {peak / 1024:.0f} MiB (largest process); "
                f"{load} before"
            )
            if official_cmd is None:
                continue
            load = _load()
            wall, cpu, peak, _, out = _timed(official_cmd, env, sample_pss=False)
            official_runs.append((wall, cpu, peak))
            official = json.loads(out.strip().splitlines()[-1])
            print(
                f"[{run}] official ytvoseval: {wall:.2f}s wall, {cpu:.2f}s CPU (whole process), "
                f"peak RSS {peak / 1024:.0f} MiB; {load} before"
            )
        # One more run of each side for the process tree's memory: PSS counts pages shared copy-on-write with
        # forked workers once.
        for name, command in (("wsovvis evaluate", ours_cmd), ("official ytvoseval", official_cmd)):
            if command is not None:
                _, _, peak, pss, _ = _timed(command, env, sample_pss=True)
                print(
                    f"memory run, {name}: peak PSS {pss / 1024:.0f} MiB (process tree), peak RSS {peak / 1024:.0f} MiB"
                )
        print(f"after: {_load()}")
        print("  ours     " + "  ".join(f"{k} {metrics[k]:.4f}" for k in STAT_NAMES))
        if official_cmd is None:
            print("official: not run (pass --official PATH/ytvoseval.py)")
            return 0
        print("  official " + "  ".join(f"{k} {official[k]:.4f}" for k in STAT_NAMES))
        worst = max(abs(metrics[k] - official[k]) for k in STAT_NAMES)
        for name, pick in (("best", min), ("median", statistics.median)):
            ours_wall, official_wall = pick(r[0] for r in ours_runs), pick(r[0] for r in official_runs)
            ours_cpu, official_cpu = pick(r[1] for r in ours_runs), pick(r[1] for r in official_runs)
            print(
                f"speed-up ({name} of {args.repeat}): {official_wall / ours_wall:.1f}x wall "
                f"({official_wall:.2f}s / {ours_wall:.2f}s), {official_cpu / ours_cpu:.1f}x CPU time "
                f"({official_cpu:.2f}s / {ours_cpu:.2f}s)"
            )
        print(
            "  (on a busy machine wall times stretch, and a process with workers gets a larger share of it; "
            "CPU time counts every worker's)"
        )
        print(f"stats identical to 1e-6: {worst <= 1e-6} (max abs difference {worst:.3g})")
        return 0 if worst <= 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
