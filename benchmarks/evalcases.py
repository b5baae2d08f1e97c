"""Synthetic YTVIS GT/results pairs and a runner for a local copy of the official evaluators.

Used by ``benchmarks/evaluate.py`` and ``tests/integration/test_evaluate_official.py``. The official code
(youtubevos/cocoapi ``ytvos.py``/``ytvoseval.py``, haochenheheda/LVVIS ``lvvis.py``/``lvviseval.py``) is never
part of this repository: point ``load_official`` at a folder holding copies of those files. They were written
for numpy 1 and matplotlib; the loader gives them a numpy view with ``np.float`` and an int-casting
``linspace``, and stub matplotlib modules when matplotlib is not installed. Nothing global is patched.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
OFFICIAL_FILES = ("ytvos.py", "ytvoseval.py", "lvvis.py", "lvviseval.py")


# --------------------------------------------------------------------------------------------------- official


class _Numpy1(types.ModuleType):
    """numpy as the numpy-1 era code expects it: ``np.float`` and ``linspace`` with a float count."""

    float = float

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)

    @staticmethod
    def linspace(start: Any, stop: Any, num: Any = 50, **kwargs: Any) -> np.ndarray:
        return np.linspace(start, stop, int(num), **kwargs)


def _stub_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        for name in ("matplotlib", "matplotlib.pyplot", "matplotlib.collections", "matplotlib.patches"):
            module = types.ModuleType(name)
            module.PatchCollection = module.Polygon = object  # type: ignore[attr-defined]
            sys.modules.setdefault(name, module)


@dataclass
class Official:
    ytvos: types.ModuleType
    ytvoseval: types.ModuleType
    lvvis: types.ModuleType | None
    lvviseval: types.ModuleType | None


def load_official(directory: str | Path) -> Official:
    """Import the official evaluators from copies in ``directory`` (lvvis files optional)."""
    directory = Path(directory)
    missing = [n for n in OFFICIAL_FILES[:2] if not (directory / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{directory}: missing {', '.join(missing)} (copies of the official evaluator)"
        )
    _stub_matplotlib()
    package = "wsovvis_official_eval"
    if package not in sys.modules:
        pkg = types.ModuleType(package)
        pkg.__path__ = [str(directory)]  # type: ignore[attr-defined]
        sys.modules[package] = pkg
        sys.modules[f"{package}.mask"] = mask_utils
    modules = {}
    for name in OFFICIAL_FILES:
        path = directory / name
        if not path.is_file():
            modules[name] = None
            continue
        spec = importlib.util.spec_from_file_location(f"{package}.{name[:-3]}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        module.np = _Numpy1("numpy")
        module.print = lambda *args, **kwargs: None
        modules[name] = module
    return Official(
        modules["ytvos.py"], modules["ytvoseval.py"], modules["lvvis.py"], modules["lvviseval.py"]
    )


def run_official(
    official: Official, gt: str | Path, results: str | Path, *, class_agnostic: bool = False
) -> dict:
    """The official ytvoseval's 12 stats (fractions) for files ``gt`` and ``results``."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = official.ytvos.YTVOS(str(gt))
        coco_dt = coco_gt.loadRes(str(results))
        evaluator = official.ytvoseval.YTVOSeval(coco_gt, coco_dt, "segm")
        if class_agnostic:
            evaluator.params.useCats = 0
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return dict(zip(STAT_NAMES, (float(s) for s in evaluator.stats), strict=True))


def run_official_lvvis(official: Official, gt: str | Path, results: str | Path) -> dict:
    """The LV-VIS evaluator's 12 stats plus its base/novel values, which it only prints.

    Its ``_summarize`` prints mean_s, mean_bs and mean_ns after computing all three; the module's ``print`` is
    replaced by one that reads them from the caller's frame.
    """
    if official.lvvis is None or official.lvviseval is None:
        raise FileNotFoundError("lvvis.py/lvviseval.py not in the official folder")
    captured: list[tuple[float, float, float]] = []

    def capture(*args: Any, **kwargs: Any) -> None:
        local = sys._getframe(1).f_locals
        if "mean_bs" in local:
            captured.append((float(local["mean_s"]), float(local["mean_bs"]), float(local["mean_ns"])))

    official.lvviseval.print = capture
    with contextlib.redirect_stdout(io.StringIO()):
        lv_gt = official.lvvis.LVVIS(str(gt))
        lv_dt = lv_gt.loadRes(str(results))
        evaluator = official.lvviseval.LVVISeval(lv_gt, lv_dt, "segm")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    per_stat = captured[::3]
    stats = dict(zip(STAT_NAMES, (float(s) for s in evaluator.stats), strict=True))
    stats["base"] = dict(zip(STAT_NAMES, (b for _, b, _ in per_stat), strict=True))
    stats["novel"] = dict(zip(STAT_NAMES, (n for _, _, n in per_stat), strict=True))
    return stats


# --------------------------------------------------------------------------------------------------- cases


def _encode(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _uncompressed(mask: np.ndarray) -> dict:
    flat = mask.T.reshape(-1)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate(([0], change, [flat.size]))).tolist()
    if flat[0]:
        runs.insert(0, 0)
    return {"size": list(mask.shape), "counts": runs}


def _shape_mask(height: int, width: int, box: tuple[float, float, float, float], ellipse: bool) -> np.ndarray:
    x0, y0, w, h = box
    mask = np.zeros((height, width), dtype=np.uint8)
    xa, ya = int(max(0, x0)), int(max(0, y0))
    xb, yb = int(min(width, x0 + w)), int(min(height, y0 + h))
    if xb <= xa or yb <= ya:
        return mask
    if ellipse:
        yy, xx = np.mgrid[ya:yb, xa:xb]
        cx, cy = x0 + w / 2, y0 + h / 2
        inside = ((xx + 0.5 - cx) / (w / 2)) ** 2 + ((yy + 0.5 - cy) / (h / 2)) ** 2 <= 1
        mask[ya:yb, xa:xb] = inside
    else:
        mask[ya:yb, xa:xb] = 1
    return mask


@dataclass
class _Track:
    category_id: int
    boxes: list[tuple[float, float, float, float] | None]
    ellipse: bool


def _random_track(rng: np.random.Generator, height: int, width: int, length: int, category_id: int) -> _Track:
    # Side lengths spread the mean area over the small (<128^2), medium and large (>256^2) ranges.
    scale = rng.choice(["small", "medium", "large"], p=[0.5, 0.3, 0.2])
    side = {"small": (4, 110), "medium": (130, 250), "large": (260, 420)}[scale]
    w = float(min(width, rng.uniform(*side)))
    h = float(min(height, rng.uniform(*side)))
    x, y = rng.uniform(-0.1 * w, width - 0.9 * w), rng.uniform(-0.1 * h, height - 0.9 * h)
    dx, dy = rng.normal(0, 4, size=2)
    present = rng.random(length) < rng.choice([1.0, 0.7, 0.4])
    if not present.any():
        present[rng.integers(length)] = True
    boxes: list[tuple[float, float, float, float] | None] = []
    for f in range(length):
        boxes.append((x + dx * f, y + dy * f, w, h) if present[f] else None)
    return _Track(category_id, boxes, bool(rng.random() < 0.5))


def _jitter(rng: np.random.Generator, track: _Track, amount: float) -> _Track:
    boxes = []
    for box in track.boxes:
        if box is None or rng.random() < 0.1 * amount:
            boxes.append(None if rng.random() < 0.7 else box)
            continue
        x, y, w, h = box
        boxes.append(
            (
                x + rng.normal(0, amount * 0.2 * w),
                y + rng.normal(0, amount * 0.2 * h),
                w * (1 + rng.normal(0, amount * 0.2)),
                h * (1 + rng.normal(0, amount * 0.2)),
            )
        )
    return _Track(track.category_id, boxes, track.ellipse)


def _rles(track: _Track, height: int, width: int, uncompressed: bool = False) -> list[dict | None]:
    out: list[dict | None] = []
    for box in track.boxes:
        if box is None:
            out.append(None)
            continue
        mask = _shape_mask(height, width, box, track.ellipse)
        out.append(_uncompressed(mask) if uncompressed else _encode(mask))
    return out


def random_case(
    rng: np.random.Generator,
    *,
    num_videos: int = 4,
    num_categories: int = 5,
    max_frames: int = 6,
    crowd: bool = True,
    unknown_categories: bool = False,
) -> tuple[dict, list[dict]]:
    """A small random GT dataset and results list exercising the evaluator's corner cases.

    Covers objects present in some frames only, frames with no prediction or no GT, videos without GT, more
    than 10 and more than 100 results in a video, all three area ranges, score ties, crowd GT (``crowd``),
    several categories with LV-VIS partitions (both base and novel present), categories without results.
    """
    categories = [
        {"id": c + 1, "name": f"cat{c + 1}", "partition": int(p)}
        for c, p in enumerate(rng.integers(0, 4, size=num_categories))
    ]
    categories[0]["partition"] = 0
    categories[-1]["partition"] = 3
    videos, annotations, results = [], [], []
    sizes = [(48, 64), (240, 320), (360, 480)]
    video_ids = sorted(rng.choice(np.arange(1, 10 * num_videos), size=num_videos, replace=False).tolist())
    ann_id = 1
    for video_id in video_ids:
        height, width = sizes[rng.integers(len(sizes))]
        length = int(rng.integers(1, max_frames + 1))
        videos.append(
            {
                "id": video_id,
                "height": height,
                "width": width,
                "length": length,
                "file_names": [f"v{video_id}/{f:05d}.jpg" for f in range(length)],
            }
        )
        num_gt = int(rng.choice([0, 1, 2, 3, 5, 8], p=[0.15, 0.2, 0.2, 0.2, 0.15, 0.1]))
        tracks = []
        for _ in range(num_gt):
            category_id = int(rng.integers(1, num_categories + 1))
            track = _random_track(rng, height, width, length, category_id)
            tracks.append(track)
            segs = _rles(track, height, width, uncompressed=bool(rng.random() < 0.3))
            areas: list[float | int | None] = [
                None if s is None else int(_shape_mask(height, width, b, track.ellipse).sum())
                for s, b in zip(segs, track.boxes, strict=True)
            ]
            if rng.random() < 0.2:
                # Fractional areas, as polygon-derived GT has: the LV-VIS evaluator truncates them.
                areas = [None if a is None else a + 0.5 for a in areas]
            annotations.append(
                {
                    "id": ann_id,
                    "video_id": video_id,
                    "category_id": category_id,
                    "iscrowd": int(crowd and rng.random() < 0.1),
                    "segmentations": segs,
                    "areas": areas,
                    "bboxes": [None if b is None else list(b) for b in track.boxes],
                }
            )
            ann_id += 1
        small = height * width <= 48 * 64
        num_results = int(rng.choice([0, 3, 8, 15, 120 if small else 30], p=[0.1, 0.3, 0.25, 0.2, 0.15]))
        for _ in range(num_results):
            kind = rng.random()
            if tracks and kind < 0.6:
                source = tracks[rng.integers(len(tracks))]
                result_track = _jitter(rng, source, float(rng.choice([0.0, 0.1, 0.3, 0.8])))
                if rng.random() < 0.2:
                    result_track.category_id = int(rng.integers(1, num_categories + 1))
            else:
                result_track = _random_track(
                    rng, height, width, length, int(rng.integers(1, num_categories + 1))
                )
            if unknown_categories and rng.random() < 0.1:
                result_track.category_id = num_categories + 1 + int(rng.integers(3))
            score = float(rng.random())
            if rng.random() < 0.3:
                score = round(score, 1)
            segs = _rles(result_track, height, width)
            results.append(
                {
                    "video_id": video_id,
                    "category_id": result_track.category_id,
                    "score": score,
                    "segmentations": [
                        s
                        if s is not None
                        else _encode(np.zeros((height, width), np.uint8))
                        if rng.random() < 0.5
                        else None
                        for s in segs
                    ],
                }
            )
    rng.shuffle(results)
    gt = {"videos": videos, "annotations": annotations, "categories": categories}
    return gt, results


def write_case(directory: Path, gt: dict, results: list[dict]) -> tuple[Path, Path]:
    gt_path, results_path = directory / "gt.json", directory / "results.json"
    gt_path.write_text(json.dumps(gt))
    results_path.write_text(json.dumps(results))
    return gt_path, results_path
