"""Equality with the official evaluators on randomized cases.

The official code is never part of this repository. The tests read it from ``../shared/reference/ytvis-official``
next to the checkout (youtubevos/cocoapi's ``ytvos.py`` and ``ytvoseval.py``; CI has it), or from the folder
``WSOVVIS_OFFICIAL_EVAL_DIR`` names, which may also hold haochenheheda/LVVIS's ``lvvis.py`` and ``lvviseval.py``; they
skip, saying so, where neither is there. ``WSOVVIS_OFFICIAL_EVAL_CASES`` sets the number of random cases per mode
(default 50; about 0.2 s of CPU per case, ~20 s for the whole module). Each case
is a few videos with objects present in some frames only, frames where results or GT are empty, videos without
GT, more than 10 and more than 100 results in a video, all three area ranges, score ties, crowd GT, several
categories with LV-VIS partitions, and categories without results.
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from wsovvis.evaluate import STAT_NAMES, evaluate

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import evalcases  # noqa: E402

OFFICIAL_DIR = Path(
    os.environ.get("WSOVVIS_OFFICIAL_EVAL_DIR") or ROOT.parent / "shared" / "reference" / "ytvis-official"
)
CASES = int(os.environ.get("WSOVVIS_OFFICIAL_EVAL_CASES", "50"))
TOLERANCE = 1e-6

pytestmark = pytest.mark.skipif(
    not (OFFICIAL_DIR / "ytvoseval.py").is_file(),
    reason=f"the official evaluator is not at {OFFICIAL_DIR} (../shared/reference/ytvis-official next to the "
    "checkout, or set WSOVVIS_OFFICIAL_EVAL_DIR to a folder with copies of ytvos.py/ytvoseval.py)",
)


@pytest.fixture(scope="module")
def official() -> evalcases.Official:
    return evalcases.load_official(OFFICIAL_DIR)


def _cases(tmp_path: Path, first_seed: int, count: int = CASES, **options):
    """``count`` random cases from seed ``first_seed`` on, as (seed, gt path, results path); seeds whose results are
    empty are passed over (the official cannot load an empty results list)."""
    made = 0
    for seed in itertools.count(first_seed):
        if made == count:
            return
        gt, results = evalcases.random_case(np.random.default_rng(seed), **options)
        if not results:
            continue
        made += 1
        folder = tmp_path / f"case{seed}"
        folder.mkdir()
        yield seed, *evalcases.write_case(folder, gt, results)


def _compare(pairs: list[tuple[str, float, float]], seed: int, worst: list[float]) -> None:
    for name, theirs, ours in pairs:
        worst.append(abs(theirs - ours))
        assert abs(theirs - ours) <= TOLERANCE, f"seed {seed}: {name} official {theirs!r} ours {ours!r}"


@pytest.mark.slow
def test_per_category_equals_official(official, tmp_path):
    worst: list[float] = []
    for seed, gt, results in _cases(tmp_path, 1000, unknown_categories=True):
        theirs = evalcases.run_official(official, gt, results)
        ours = evaluate(gt, results, allow_category_mismatch=True)
        _compare([(k, theirs[k], ours[k]) for k in STAT_NAMES], seed, worst)
    print(f"per-category: {len(worst) // 12} cases, max abs difference {max(worst):.3g}")


@pytest.mark.slow
def test_class_agnostic_equals_official(official, tmp_path):
    worst: list[float] = []
    for seed, gt, results in _cases(tmp_path, 2000):
        theirs = evalcases.run_official(official, gt, results, class_agnostic=True)
        ours = evaluate(gt, results, class_agnostic=True)
        _compare([(k, theirs[k], ours[k]) for k in STAT_NAMES], seed, worst)
    print(f"class-agnostic: {len(worst) // 12} cases, max abs difference {max(worst):.3g}")


@pytest.mark.slow
def test_lvvis_equals_official(official, tmp_path):
    if official.lvviseval is None:
        pytest.skip(f"{OFFICIAL_DIR} has no lvvis.py/lvviseval.py")
    worst: list[float] = []
    for seed, gt, results in _cases(tmp_path, 3000):
        theirs = evalcases.run_official_lvvis(official, gt, results)
        ours = evaluate(gt, results, lvvis=True, allow_category_mismatch=True)
        pairs = [(k, theirs[k], ours[k]) for k in STAT_NAMES]
        for side in ("base", "novel"):
            pairs += [(f"{k} {side}", theirs[side][k], ours["lvvis"][side][k]) for k in STAT_NAMES]
        _compare(pairs, seed, worst)
    print(f"LV-VIS: {len(worst) // 36} cases, max abs difference {max(worst):.3g}")


@pytest.mark.slow
@pytest.mark.parametrize("class_agnostic", [False, True])
def test_larger_cases_equal_official(official, tmp_path, class_agnostic):
    # More videos, frames and categories per case: ties across videos, many categories without results.
    worst: list[float] = []
    options = {"num_videos": 12, "num_categories": 10, "max_frames": 10}
    for seed, gt, results in _cases(tmp_path, 4000, max(1, CASES // 4), **options):
        theirs = evalcases.run_official(official, gt, results, class_agnostic=class_agnostic)
        ours = evaluate(gt, results, class_agnostic=class_agnostic, allow_category_mismatch=True)
        _compare([(k, theirs[k], ours[k]) for k in STAT_NAMES], seed, worst)
    print(f"larger cases (class-agnostic {class_agnostic}): {len(worst) // 12} cases, max {max(worst):.3g}")


@pytest.mark.slow
def test_gt_id_zero_equals_official(official, tmp_path):
    # The official tests a match by the matched GT's id, so a match to GT id 0 counts as none; kept for equality.
    worst: list[float] = []
    for seed in range(5000, 5000 + max(1, CASES // 4)):
        gt, results = evalcases.random_case(np.random.default_rng(seed), crowd=False)
        if not results or not gt["annotations"]:
            continue
        gt["annotations"][0]["id"] = 0
        folder = tmp_path / f"case{seed}"
        folder.mkdir()
        gt_path, results_path = evalcases.write_case(folder, gt, results)
        theirs = evalcases.run_official(official, gt_path, results_path)
        ours = evaluate(gt_path, results_path, allow_category_mismatch=True)
        _compare([(k, theirs[k], ours[k]) for k in STAT_NAMES], seed, worst)
    print(f"GT id 0: {len(worst) // 12} cases, max abs difference {max(worst):.3g}")
