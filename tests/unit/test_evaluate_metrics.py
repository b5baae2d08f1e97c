"""The evaluation numbers on hand-checked cases and the properties a user relies on."""

from __future__ import annotations

import json
import random

import pytest

from tests.unit.evaluate_helpers import (
    annotation,
    categories,
    perfect_results,
    random_dataset,
    rect,
    result,
    video,
    write,
)
from wsovvis.evaluate import STAT_NAMES, evaluate

H = W = 10
TOP5 = rect(H, W, (0, 5), (0, 10))  # rows 0-4: 50 px
TOP4 = rect(H, W, (0, 4), (0, 10))  # rows 0-3: 40 px
TOP2 = rect(H, W, (0, 2), (0, 10))  # rows 0-1: 20 px
CORNER = rect(H, W, (8, 10), (8, 10))  # 4 px, disjoint from the others


def one_object_case() -> dict:
    # One GT over two frames: 50 px then 40 px (mean area 45: "small").
    return {
        "videos": [video(1, 2)],
        "annotations": [annotation(1, 1, 1, [TOP5, TOP4])],
        "categories": categories(1),
    }


def test_hand_checked_single_match(tmp_path):
    # Result: 50 px (= GT) then 20 px (inside GT). Intersection 50 + 20 = 70, union 50 + 40 = 90, IoU 0.778:
    # a match at the thresholds .50 .55 .60 .65 .70 .75 (6 of 10) with precision 1 at every recall point,
    # none at .80-.95. AP = 6/10, AP50 = AP75 = 1, AR = 6/10; the only GT is small, so medium/large are -1.
    gt, res = write(tmp_path, one_object_case(), [result(1, 1, 0.9, [TOP5, TOP2])])
    metrics = evaluate(gt, res)
    assert metrics["AP"] == pytest.approx(0.6)
    assert metrics["AP50"] == pytest.approx(1.0)
    assert metrics["AP75"] == pytest.approx(1.0)
    assert metrics["APs"] == pytest.approx(0.6)
    assert metrics["APm"] == -1 and metrics["APl"] == -1
    assert metrics["AR1"] == pytest.approx(0.6)
    assert metrics["AR100"] == pytest.approx(0.6)
    assert metrics["ARm"] == -1 and metrics["ARl"] == -1


def test_frame_present_in_result_only_counts_in_the_union(tmp_path):
    # GT present in frame 0 only (50 px); result = GT in frame 0 plus 50 px in frame 1 where the GT is absent:
    # IoU = 50 / (50 + 50) = 0.5, a match at the .50 threshold only: AP = 1/10.
    data = {
        "videos": [video(1, 2)],
        "annotations": [annotation(1, 1, 1, [TOP5, None])],
        "categories": categories(1),
    }
    gt, res = write(tmp_path, data, [result(1, 1, 0.9, [TOP5, TOP5])])
    metrics = evaluate(gt, res)
    assert metrics["AP50"] == pytest.approx(1.0)
    assert metrics["AP"] == pytest.approx(0.1)


def test_unmatched_result_lowers_precision_not_recall(tmp_path):
    # Adding a higher-scored result that overlaps nothing: at the 6 thresholds where the true result matches,
    # the ranking is FP then TP, precision envelope 1/2 at every recall point: AP = 6/10 * 1/2 = 0.3.
    # Recall is still 6/10.
    base = [result(1, 1, 0.5, [TOP5, TOP2])]
    gt, res = write(tmp_path, one_object_case(), base)
    before = evaluate(gt, res)
    gt, res = write(tmp_path, one_object_case(), [*base, result(1, 1, 0.9, [CORNER, None])])
    after = evaluate(gt, res)
    assert before["AP"] == pytest.approx(0.6)
    assert after["AP"] == pytest.approx(0.3)
    assert after["AR100"] == before["AR100"] == pytest.approx(0.6)


def test_perfect_results_give_one(tmp_path):
    data = random_dataset(seed=3)
    gt, res = write(tmp_path, data, perfect_results(data))
    metrics = evaluate(gt, res)
    # AR1 may stay below 1: maxDets 1 keeps one result per video and category, and a video can hold two
    # objects of one category.
    defined = [metrics[k] for k in STAT_NAMES if metrics[k] != -1 and k != "AR1"]
    assert len(defined) >= 6 and all(v == pytest.approx(1.0) for v in defined)
    agnostic = evaluate(gt, res, class_agnostic=True)
    assert agnostic["AP"] == pytest.approx(1.0)


def test_shuffling_results_changes_nothing(tmp_path):
    data = random_dataset(seed=5, num_videos=6)
    results = perfect_results(data)
    # Degrade a few so the numbers are not trivially 1, keep scores distinct (ties are order-dependent).
    for res in results[::2]:
        res["segmentations"] = [
            rect(40, 40, (0, 3), (0, 40)) if s is not None else None for s in res["segmentations"]
        ]
    gt, res = write(tmp_path, data, results)
    reference = evaluate(gt, res)
    assert 0 < reference["AP"] < 1
    for seed in range(3):
        shuffled = results[:]
        random.Random(seed).shuffle(shuffled)
        gt, res = write(tmp_path, data, shuffled, name=f"shuffled{seed}.json")
        metrics = evaluate(gt, res)
        assert {k: metrics[k] for k in STAT_NAMES} == {k: reference[k] for k in STAT_NAMES}


def test_video_without_gt_counts_false_positives(tmp_path):
    # A second video without GT holding a higher-scored result: a false positive ranked first.
    data = one_object_case()
    data["videos"].append(video(2, 1))
    results = [result(1, 1, 0.5, [TOP5, TOP4]), result(2, 1, 0.9, [TOP5])]
    gt, res = write(tmp_path, data, results)
    metrics = evaluate(gt, res)
    assert metrics["AP"] == pytest.approx(0.5)  # precision 1/2 at every recall point, all 10 thresholds
    assert metrics["AR100"] == pytest.approx(1.0)
    assert metrics["AR1"] == pytest.approx(1.0)  # maxDets is per video
    assert {v["video_id"]: v["num_results"] for v in metrics["per_video"]} == {1: 1, 2: 1}


def test_per_category_and_category_without_results(tmp_path):
    # Category 1 found perfectly, category 2 has GT but no result (AP 0), category 3 has no GT (-1, left out).
    data = {
        "videos": [video(1, 1)],
        "annotations": [annotation(1, 1, 1, [TOP5]), annotation(2, 1, 2, [CORNER])],
        "categories": categories(3),
    }
    gt, res = write(tmp_path, data, [result(1, 1, 0.9, [TOP5])])
    # Results of one category against three GT categories look class-agnostic: scored as they are on request.
    metrics = evaluate(gt, res, allow_category_mismatch=True)
    by_id = {c["id"]: c for c in metrics["per_category"]}
    assert by_id[1]["AP"] == pytest.approx(1.0)
    assert by_id[2]["AP"] == 0
    assert by_id[3]["AP"] == -1 and by_id[3]["num_gt"] == 0
    assert metrics["AP"] == pytest.approx(0.5)


def test_class_agnostic_counts_results_of_any_category(tmp_path):
    # The result carries a category that is not in the GT: per-category drops it (as the official does,
    # counted in the warnings; evaluate refuses such results unless told to score them so); class-agnostic counts
    # it and finds the object.
    gt, res = write(tmp_path, one_object_case(), [result(1, 99, 0.9, [TOP5, TOP4])])
    per_category = evaluate(gt, res, allow_category_mismatch=True)
    assert per_category["AP"] == 0 and per_category["warnings"]["results_with_unknown_category"] == 1
    agnostic = evaluate(gt, res, class_agnostic=True)
    assert agnostic["AP"] == pytest.approx(1.0) and agnostic["mode"] == "class-agnostic"


def test_crowd_gt_is_ignored(tmp_path):
    # A crowd GT neither needs to be found nor penalises a result matched to it.
    data = one_object_case()
    data["annotations"].append(annotation(2, 1, 1, [CORNER, CORNER], iscrowd=1))
    gt, res = write(tmp_path, data, [result(1, 1, 0.9, [TOP5, TOP4]), result(1, 1, 0.95, [CORNER, CORNER])])
    assert evaluate(gt, res)["AP"] == pytest.approx(1.0)


def test_lvvis_base_and_novel(tmp_path):
    # Category 1 (base) found, category 2 (novel) missed: APb 1, APn 0, AP the mean 0.5.
    data = {
        "videos": [video(1, 1)],
        "annotations": [annotation(1, 1, 1, [TOP5]), annotation(2, 1, 2, [CORNER])],
        "categories": categories(2, partitions=[1, 2]),
    }
    gt, res = write(tmp_path, data, [result(1, 1, 0.9, [TOP5])])
    out = tmp_path / "metrics.json"
    metrics = evaluate(gt, res, lvvis=True, out=out)
    assert (
        metrics["APb"] == pytest.approx(1.0) and metrics["APn"] == 0 and metrics["AP"] == pytest.approx(0.5)
    )
    written = json.loads(out.read_text())
    assert written["APb"] == metrics["APb"] and written["lvvis"]["novel"]["AR100"] == 0
    assert [c["partition"] for c in written["per_category"]] == [1, 2]


def test_metrics_json_layout(tmp_path):
    gt, res = write(tmp_path, one_object_case(), [result(1, 1, 0.9, [TOP5, TOP2])])
    out = tmp_path / "m" / "metrics.json"
    evaluate(gt, res, out=out)
    metrics = json.loads(out.read_text())
    assert list(metrics)[:12] == list(STAT_NAMES)
    assert all(-1 <= metrics[k] <= 1 for k in STAT_NAMES)
    assert metrics["per_video"] == [
        {
            "video_id": 1,
            "num_gt": 1,
            "num_results": 1,
            "mean_best_iou": pytest.approx(70 / 90),
            "gt_found_at_50": 1,
        }
    ]
    assert set(metrics["per_size"]) == {"small", "medium", "large"}
    assert metrics["per_category"][0]["num_results"] == 1


@pytest.mark.parametrize("class_agnostic", [False, True])
def test_a_video_too_large_for_one_iou_call_gives_the_same_numbers(tmp_path, monkeypatch, class_agnostic):
    # A video whose masks exceed the bound of one pycocotools call is split into calls of whole frames.
    from wsovvis.evaluate import ytvoseval

    data = random_dataset(seed=21, num_videos=4)
    results = perfect_results(data)
    for res in results[1::2]:
        res["segmentations"] = [
            rect(40, 40, (0, 9), (0, 40)) if s is not None else None for s in res["segmentations"]
        ]
    gt, res = write(tmp_path, data, results)
    calls: list[int] = []
    iou = ytvoseval.mask_utils.iou
    monkeypatch.setattr(ytvoseval.mask_utils, "iou", lambda *args: calls.append(0) or iou(*args))
    whole = evaluate(gt, res, class_agnostic=class_agnostic, workers=1)
    calls_whole = len(calls)
    monkeypatch.setattr(ytvoseval, "_MAX_IOU_CELLS", 4)
    split = evaluate(gt, res, class_agnostic=class_agnostic, workers=1)
    assert len(calls) - calls_whole > calls_whole
    assert split == whole
