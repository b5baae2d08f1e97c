"""Bad input gives a clear error or a counted warning; a YTVIS dataset works as results."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from pycocotools import mask as mask_utils

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
from wsovvis import rle
from wsovvis.errors import InputError, UsageError
from wsovvis.evaluate import evaluate
from wsovvis.evaluate.inputs import load_gt, load_results

H = W = 10
TOP5 = rect(H, W, (0, 5), (0, 10))
TOP4 = rect(H, W, (0, 4), (0, 10))


def gt_data() -> dict:
    return {
        "videos": [video(1, 2, folder="JPEGImages/aaa"), video(2, 1, folder="JPEGImages/bbb")],
        "annotations": [annotation(1, 1, 1, [TOP5, TOP4]), annotation(2, 2, 2, [TOP4])],
        "categories": categories(2, partitions=[0, 2]),
    }


def test_results_for_unknown_videos_are_counted_and_left_out(tmp_path):
    results = [result(1, 1, 0.9, [TOP5, TOP4]), result(2, 2, 0.8, [TOP4]), result(77, 1, 0.9, [TOP5])]
    gt, res = write(tmp_path, gt_data(), results)
    metrics = evaluate(gt, res)
    assert metrics["warnings"] == {"results_for_unknown_videos": 1}
    assert metrics["AP"] == pytest.approx(1.0)


def test_empty_results_give_zero_with_a_warning(tmp_path):
    gt, res = write(tmp_path, gt_data(), [])
    metrics = evaluate(gt, res)
    assert metrics["AP"] == 0 and metrics["AR100"] == 0
    assert metrics["warnings"] == {"no_results": 1}


@pytest.mark.parametrize(
    ("segmentations", "message"),
    [
        ([TOP5], "'segmentations' has 1 entries, the GT video has 2 frames"),
        (
            [TOP5, {"size": [H, W], "counts": "abc!"}],
            r"segmentations\[1\].counts is not a compressed RLE string",
        ),
        ([TOP5, {"size": [H + 1, W], "counts": TOP4["counts"]}], r"differs from video 1's \[height, width\]"),
        ([TOP5, {"counts": TOP4["counts"]}], r"segmentations\[1\]: missing field 'size'"),
        # area 200 in a 10x10 frame
        (
            [TOP5, {"size": [H, W], "counts": "0X6"}],
            r"segmentations\[1\]\.counts .*\(its runs add up to 200 pixels, not the frame's 100\)",
        ),
        # ends inside a number: pycocotools would read past the string and write past its buffer
        (
            [TOP5, {"size": [H, W], "counts": "0o"}],
            r"segmentations\[1\].counts is not a compressed RLE string .*\(it ends inside a number, with 'o'\)",
        ),
        (
            [TOP5, {"size": [H, W], "counts": "0P"}],
            r"segmentations\[1\].counts is not a compressed RLE string .*\(it ends inside a number, with 'P'\)",
        ),
        ([TOP5, {"size": [H, W], "counts": [5, 5]}], r"segmentations\[1\] is a malformed uncompressed RLE"),
        ("nope", "'segmentations' must be a list, got a string"),
    ],
)
def test_malformed_results_name_the_result_and_frame(tmp_path, segmentations, message):
    results = [result(2, 2, 0.8, [TOP4]), result(1, 1, 0.9, segmentations)]
    gt, res = write(tmp_path, gt_data(), results)
    with pytest.raises(InputError, match=message) as caught:
        evaluate(gt, res)
    assert str(res) in str(caught.value) and "result 1 (video 1)" in str(caught.value)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"video_id": 1, "category_id": 1, "segmentations": []}, "missing field 'score'"),
        (
            {"video_id": 1, "category_id": 1, "score": "high", "segmentations": []},
            "'score' must be a finite number",
        ),
        (
            {"video_id": 1, "category_id": "x", "score": 1, "segmentations": []},
            "'category_id' must be an integer",
        ),
    ],
)
def test_results_with_bad_fields(tmp_path, entry, message):
    gt, res = write(tmp_path, gt_data(), [entry])
    with pytest.raises(InputError, match=message):
        evaluate(gt, res)


def test_the_results_checker_checks_lengths_against_the_videos(tmp_path):
    # The project's one results checker (evaluate's loader, which attribute and the tests use too).
    gt, res = write(tmp_path, gt_data(), [result(1, 1, 0.5, [TOP5, TOP4])])
    videos = load_gt(gt)[0]
    warnings = Counter()
    [checked] = load_results(res, videos, warnings)
    assert (checked.index, checked.video_id, checked.category_id, checked.score) == (0, 1, 1, 0.5)
    assert checked.mask_areas.tolist() == [50, 40] and not warnings
    gt, res = write(tmp_path, gt_data(), [result(1, 1, 0.5, [None])])
    with pytest.raises(InputError, match="results.json: result 0 .*has 1 entries, the GT video has 2 frames"):
        load_results(res, videos, warnings)
    gt, res = write(tmp_path, gt_data(), [result(7, 1, 0.5, [None])])
    assert load_results(res, videos, warnings) == [] and warnings["results_for_unknown_videos"] == 1
    gt, res = write(tmp_path, gt_data(), {"video_id": 1})
    with pytest.raises(InputError, match="neither a YTVIS results list nor a YTVIS dataset"):
        load_results(res, videos, warnings)


def test_results_that_are_neither_list_nor_dataset(tmp_path):
    gt, res = write(tmp_path, gt_data(), {"results": []})
    with pytest.raises(InputError, match="neither a YTVIS results list nor a YTVIS dataset"):
        evaluate(gt, res)


def test_uncompressed_result_rle_is_accepted(tmp_path):
    # Rows 0-4 of every column: runs of (0 zeros, 5 ones, 5 zeros) x 10, in column-major order.
    counts = [0] + [5, 5] * 10
    results = [result(1, 1, 0.9, [{"size": [H, W], "counts": counts}, TOP4]), result(2, 2, 0.8, [TOP4])]
    gt, res = write(tmp_path, gt_data(), results)
    assert evaluate(gt, res)["AP"] == pytest.approx(1.0)


@pytest.mark.parametrize("workers", [1, 2])
def test_uncompressed_gt_rle_is_accepted(tmp_path, workers):
    # The checked GT (converted to compressed RLE) comes back from the worker that checks it.
    data = gt_data()
    data["annotations"][0]["segmentations"][0] = {"size": [H, W], "counts": [0] + [5, 5] * 10}
    gt, res = write(tmp_path, data, [result(1, 1, 0.9, [TOP5, TOP4]), result(2, 2, 0.8, [TOP4])])
    assert evaluate(gt, res, workers=workers)["AP"] == pytest.approx(1.0)


def test_lvvis_needs_partitions_and_per_category(tmp_path):
    data = gt_data()
    gt, res = write(tmp_path, data, [result(1, 1, 0.9, [TOP5, TOP4])])
    with pytest.raises(UsageError, match="cannot be combined with --class-agnostic"):
        evaluate(gt, res, lvvis=True, class_agnostic=True)
    del data["categories"][1]["partition"]
    gt, res = write(tmp_path, data, [result(1, 1, 0.9, [TOP5, TOP4])])
    with pytest.raises(InputError, match="category 2 .* has no 'partition'"):
        evaluate(gt, res, lvvis=True)


def test_gt_without_categories_is_refused(tmp_path):
    data = gt_data()
    data["categories"] = []
    data["annotations"] = []
    gt, res = write(tmp_path, data, [])
    with pytest.raises(InputError, match="no 'categories'"):
        evaluate(gt, res)


def test_class_agnostic_results_scored_per_category_are_refused_naming_the_flags(tmp_path):
    # Every result category 1 (as class-agnostic tubes) against a GT of two categories: per category the
    # official would score it near 0 without a word; evaluate refuses, naming the file and both ways out.
    results = [result(1, 1, 0.9, [TOP5, TOP4]), result(2, 1, 0.8, [TOP4])]
    gt, res = write(tmp_path, gt_data(), results)
    with pytest.raises(InputError) as caught:
        evaluate(gt, res)
    assert str(caught.value) == (
        f"{res}: every result has category 1 ('cat1'), the GT has 2 categories, ids 1, 2; class-agnostic "
        "results? Pass --class-agnostic to score them class-agnostically, or --allow-category-mismatch to score "
        "them per category as they are"
    )
    assert evaluate(gt, res, class_agnostic=True)["AP"] == pytest.approx(1.0)
    scored = evaluate(gt, res, allow_category_mismatch=True)  # as the official scores them: category 2 missed
    assert scored["mode"] == "per-category" and scored["AP"] == pytest.approx(0.5)


def test_tubes_of_one_category_scored_per_category_are_refused(tmp_path):
    data = tubes_dataset()
    for ann in data["annotations"]:
        ann["category_id"] = 1
    gt, res = write(tmp_path, gt_data(), data, name="tubes.json")
    with pytest.raises(InputError, match=r"tubes\.json: every result has category 1 .*--class-agnostic"):
        evaluate(gt, res)


@pytest.mark.parametrize(
    ("category_ids", "message"),
    [
        (
            [99, 99],
            "every result has category 99, which the GT does not have (it has 2 categories, ids 1, 2)",
        ),
        (
            [7, 8],
            "every result has a category the GT does not have (results: 7, 8; GT: 2 categories, ids 1, 2)",
        ),
    ],
)
def test_results_none_of_whose_categories_the_gt_has_are_refused(tmp_path, category_ids, message):
    results = [result(1, category_ids[0], 0.9, [TOP5, TOP4]), result(2, category_ids[1], 0.8, [TOP4])]
    gt, res = write(tmp_path, gt_data(), results)
    with pytest.raises(InputError, match=re.escape(f"{res}: {message}; pass --class-agnostic")):
        evaluate(gt, res)
    # With --lvvis (which cannot be class-agnostic) the advice is labels from the GT's categories.
    with pytest.raises(
        InputError, match=re.escape("(wsovvis attribute --vocab GT), or pass --allow-category")
    ):
        evaluate(gt, res, lvvis=True)
    assert evaluate(gt, res, allow_category_mismatch=True)["AP"] == 0
    assert evaluate(gt, res, class_agnostic=True)["AP"] == pytest.approx(1.0)


def test_results_whose_categories_can_be_the_gts_pass(tmp_path):
    # Some categories unknown (left out, as the official leaves them out); no results; one GT category that the
    # results share; --lvvis labels all of one category (attribute's top-1 on a small set may be just that).
    some_unknown = [result(1, 1, 0.9, [TOP5, TOP4]), result(2, 2, 0.8, [TOP4]), result(2, 99, 0.7, [TOP4])]
    gt, res = write(tmp_path, gt_data(), some_unknown)
    assert evaluate(gt, res)["warnings"] == {"results_with_unknown_category": 1}
    gt, res = write(tmp_path, gt_data(), [])
    assert evaluate(gt, res)["warnings"] == {"no_results": 1}
    one_category = gt_data()
    one_category["categories"] = one_category["categories"][:1]
    one_category["annotations"][1]["category_id"] = 1
    gt, res = write(tmp_path, one_category, [result(1, 1, 0.9, [TOP5, TOP4]), result(2, 1, 0.8, [TOP4])])
    assert evaluate(gt, res)["AP"] == pytest.approx(1.0)
    gt, res = write(tmp_path, gt_data(), [result(1, 1, 0.9, [TOP5, TOP4]), result(2, 1, 0.8, [TOP4])])
    assert evaluate(gt, res, lvvis=True)["APb"] == pytest.approx(1.0)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_bad_gt_is_reported_before_a_missing_results_file(tmp_path, workers):
    # With workers the GT loads in another process while the results are read; the GT's error still comes first.
    data = gt_data()
    data["categories"] = []
    data["annotations"] = []
    gt, res = write(tmp_path, data, [])
    res.unlink()
    with pytest.raises(InputError, match="no 'categories'"):
        evaluate(gt, res, workers=workers)
    # a GT frame's value, checked where its video is evaluated, still comes before the missing file
    data = gt_data()
    data["annotations"][1]["bboxes"] = [[1, 2]]
    gt, res = write(tmp_path, data, [])
    res.unlink()
    with pytest.raises(InputError, match=r"annotation 2 \(video 2\): bboxes\[0\] must be"):
        evaluate(gt, res, workers=workers)
    gt, res = write(tmp_path, gt_data(), [])
    res.unlink()
    with pytest.raises(InputError, match=str(res)):
        evaluate(gt, res, workers=workers)


@pytest.mark.parametrize("workers", [1, 2])
def test_gt_errors_come_in_file_order_though_frames_are_checked_later(tmp_path, workers):
    # Annotation 1's bad frame comes before annotation 2's bad field in the file, so it is the error reported.
    data = gt_data()
    data["annotations"][0]["bboxes"] = [[1, 2], None]
    data["annotations"][1]["category_id"] = 9
    gt, res = write(tmp_path, data, [result(1, 1, 0.9, [TOP5, TOP4])])
    with pytest.raises(InputError, match=r"annotation 1 \(video 1\): bboxes\[0\] must be"):
        evaluate(gt, res, workers=workers)


# --------------------------------------------------------------------------------------------------- datasets


def tubes_dataset() -> dict:
    """Pseudo tubes as `wsovvis convert` writes them: own video ids, every frame, frames under another root."""
    videos = [video(10, 3, folder="aaa"), video(20, 1, folder="bbb"), video(30, 1, folder="zzz")]
    # GT video 1 has frames 00000 and 00001 only; the tubes video has 00000..00002.
    anns = [
        annotation(1, 10, 1, [TOP5, TOP4, TOP5]),
        annotation(2, 20, 2, [TOP4]),
        annotation(3, 30, 1, [TOP4]),
    ]
    anns[1]["score"] = 0.5
    for ann in anns:
        del ann["areas"]
    return {"videos": videos, "annotations": anns, "categories": categories(2)}


def test_dataset_as_results_matches_videos_by_frame_folder(tmp_path):
    gt, res = write(tmp_path, gt_data(), tubes_dataset(), name="tubes.json")
    metrics = evaluate(gt, res)
    assert metrics["AP"] == pytest.approx(1.0)
    assert metrics["num_results"] == 2
    assert metrics["warnings"] == {"results_for_unknown_videos": 1, "results_videos_not_in_gt": 1}
    assert {v["video_id"]: v["num_results"] for v in metrics["per_video"]} == {1: 1, 2: 1}


def test_dataset_as_results_missing_gt_frames_count_as_empty(tmp_path):
    tubes = tubes_dataset()
    tubes["videos"][0]["file_names"] = ["aaa/00000.jpg", "aaa/00007.jpg", "aaa/00008.jpg"]
    gt, res = write(tmp_path, gt_data(), tubes, name="tubes.json")
    metrics = evaluate(gt, res)
    # GT frame 00001 has no tube frame: IoU of video 1 = 50 / (50 + 40) < 0.75, so AP < 1.
    assert metrics["warnings"]["gt_frames_missing_in_results"] == 1
    assert 0 < metrics["AP"] < 1


def test_dataset_as_results_of_another_size_is_refused(tmp_path):
    tubes = tubes_dataset()
    tubes["videos"][1]["height"] = 20
    tubes["annotations"][1]["segmentations"] = [rect(20, W, (0, 4), (0, 10))]
    gt, res = write(tmp_path, gt_data(), tubes, name="tubes.json")
    with pytest.raises(InputError, match="video 20 .* is 20x10, its GT video 2 is 10x10"):
        evaluate(gt, res)


def test_rle_areas_past_pycocotools_uint8_limit():
    # pycocotools' area() fails for more than 255 masks under numpy 2; rle.areas chunks the call.
    masks = [rect(H, W, (0, 1 + i % 9), (0, 10)) for i in range(600)]
    assert rle.areas(masks).tolist() == [10 * (1 + i % 9) for i in range(600)]


@pytest.mark.parametrize("class_agnostic", [False, True])
def test_metrics_do_not_depend_on_the_number_of_workers(tmp_path, class_agnostic):
    data = random_dataset(seed=11, num_videos=9)
    other = random_dataset(seed=12, num_videos=10)  # video 10 is not in the GT: a counted warning
    results = (
        perfect_results(data)
        + [
            result(ann["video_id"], ann["category_id"], 0.5, ann["segmentations"])
            for ann in other["annotations"]
            if ann["video_id"] <= 9
            and len(ann["segmentations"]) == len(data["videos"][ann["video_id"] - 1]["file_names"])
        ]
        + [result(10, 1, 0.3, [None] * 4)]
    )
    gt, res = write(tmp_path, data, results)
    serial = evaluate(gt, res, class_agnostic=class_agnostic, workers=1)
    assert serial["warnings"]["results_for_unknown_videos"] == 1
    for workers in (2, 3):
        assert evaluate(gt, res, class_agnostic=class_agnostic, workers=workers) == serial


def test_a_malformed_result_among_many_is_named(tmp_path):
    oversized = {"size": [H, W], "counts": "0X6"}
    results = [result(2, 2, 0.8, [TOP4]) for _ in range(12)]
    results[10] = result(1, 1, 0.9, [TOP5, oversized])
    gt, res = write(tmp_path, gt_data(), results)
    with pytest.raises(
        InputError, match=r"result 10 \(video 1\): segmentations\[1\]\.counts .*add up to 200"
    ):
        evaluate(gt, res)
    results[10] = result(2, 2, 0.8, [TOP4])
    results[11] = result(1, 1, 0.9, [TOP5])
    gt, res = write(tmp_path, gt_data(), results)
    with pytest.raises(InputError, match="result 11 .*'segmentations' has 1 entries"):
        evaluate(gt, res)


@pytest.mark.parametrize("workers", [1, 2])
def test_each_problem_is_named_whatever_its_video(tmp_path, workers):
    # The loader reads the whole input before any video is evaluated, whatever the number of workers: the error
    # names the result (or GT object) and frame, and the GT comes first.
    def fine(video_id):
        return result(video_id, video_id, 0.8, [TOP4, TOP5] if video_id == 1 else [TOP4])

    oversized = {"size": [H, W], "counts": "0X6"}
    problems = [
        (
            2,
            result(1, 1, 0.9, [TOP5, oversized]),
            r"result 2 \(video 1\): segmentations\[1\]\.counts .*add up to",
        ),
        (
            5,
            result(2, 2, 0.9, [{"size": [H, W], "counts": "bad counts"}]),
            r"result 5 \(video 2\): segmentations\[0\]\.counts is not a compressed RLE string",
        ),
        (
            8,
            result(1, 1, 0.9, [TOP5, {"size": [H, W]}]),
            r"result 8 \(video 1\): segmentations\[1\]: missing field",
        ),
        (11, {"video_id": 1, "score": 0.5, "category_id": 1}, "result 11 .*missing field 'segmentations'"),
    ]
    for index, bad, message in problems:
        results = [fine(v) for v in (2, 1) * 6]
        results[index] = bad
        gt, res = write(tmp_path, gt_data(), results)
        with pytest.raises(InputError, match=message):
            evaluate(gt, res, workers=workers)
    # The GT's structure and per-frame values are checked before the results are read; the strings of every mask,
    # GT and results, in one batch after that (the GT's first).
    results = [fine(v) for v in (2, 1) * 6]
    bad_gt = gt_data()
    bad_gt["annotations"][1]["segmentations"] = [oversized]
    results[3] = result(2, 2, 0.9, [oversized])
    gt, res = write(tmp_path, bad_gt, results)
    with pytest.raises(
        InputError, match=r"gt.json: annotation 2 \(video 2\): segmentations\[0\]\.counts .*add up to 200"
    ):
        evaluate(gt, res, workers=workers)
    results[0] = {"video_id": "x"}
    frame_bad_gt = gt_data()
    frame_bad_gt["annotations"][1]["bboxes"] = [[1, 2]]
    gt, res = write(tmp_path, frame_bad_gt, results)
    with pytest.raises(
        InputError, match=r"gt.json: annotation 2 \(video 2\): bboxes\[0\] must be \[x, y, w, h\]"
    ):
        evaluate(gt, res, workers=workers)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize(("bad_at", "counts"), [(640, "abc\u00e9"), (1, "abc!"), (777, TOP4["counts"] + "o")])
def test_a_bad_string_among_many_is_named(tmp_path, workers, bad_at, counts):
    # The strings are checked a few hundred at a time: the one named is the bad one, in whichever batch it is.
    results = [result(1, 1, 0.5, [TOP5, TOP4]) for _ in range(800)]
    results[bad_at] = result(1, 1, 0.5, [TOP5, {"size": [H, W], "counts": counts}])
    gt, res = write(tmp_path, gt_data(), results)
    with pytest.raises(
        InputError, match=rf"result {bad_at} \(video 1\): segmentations\[1\]\.counts is not a"
    ):
        evaluate(gt, res, workers=workers)


@pytest.mark.parametrize("workers", [1, 2])
def test_bad_strings_and_bad_fields_come_in_file_order(tmp_path, workers):
    bad_string = {"size": [H, W], "counts": "bad counts"}
    results = [result(1, 1, 0.5, [TOP5, TOP4]) for _ in range(6)]
    results[1] = result(1, 1, 0.5, [TOP5])
    results[4] = result(1, 1, 0.5, [TOP5, bad_string])
    gt, res = write(tmp_path, gt_data(), results)
    with pytest.raises(InputError, match=r"result 1 \(video 1\): 'segmentations' has 1 entries"):
        evaluate(gt, res, workers=workers)
    # The GT's too, though its videos may be checked by other workers in another order.
    data = gt_data()
    data["annotations"][0]["segmentations"][1] = bad_string
    data["annotations"][1]["segmentations"] = [{"size": [H, W], "counts": "0o"}]
    gt, res = write(tmp_path, data, [result(1, 1, 0.5, [TOP5, TOP4])])
    with pytest.raises(InputError, match=r"annotation 1 \(video 1\): segmentations\[1\]\.counts is not a"):
        evaluate(gt, res, workers=workers)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_gt_rle_that_ends_inside_a_number_is_refused(tmp_path, workers):
    data = gt_data()
    data["annotations"][1]["segmentations"] = [{"size": [H, W], "counts": TOP4["counts"] + "o"}]
    gt, res = write(tmp_path, data, [result(1, 1, 0.9, [TOP5, TOP4])])
    with pytest.raises(
        InputError, match=r"annotation 2 \(video 2\): segmentations\[0\].counts .* ends inside"
    ):
        evaluate(gt, res, workers=workers)


def test_workers_below_one_is_a_usage_error(tmp_path):
    gt, res = write(tmp_path, gt_data(), [])
    with pytest.raises(UsageError, match="--workers must be >= 1"):
        evaluate(gt, res, workers=0)


# Runs [0, 10] in a 10x10 frame: pycocotools' IoU (and merge) loop forever on runs that do not cover the frame.
SHORT = {"size": [H, W], "counts": "0:"}


@pytest.mark.parametrize(
    ("side", "seg", "message"),
    [
        (
            "results",
            SHORT,
            r"results.json: result 0 \(video 1\): segmentations\[1\]\.counts is not a compressed RLE string for a "
            r"10x10 frame \(its runs add up to 10 pixels, not the frame's 100\)",
        ),
        (
            "gt",
            SHORT,
            r"gt.json: annotation 1 \(video 1\): segmentations\[1\]\.counts .*runs add up to 10 pixels",
        ),
        (
            "results",
            dict(SHORT, size=[H, 2 * W]),
            r"result 0 \(video 1\): segmentations\[1\]\.size \[10, 20\] differs",
        ),
        (
            "gt",
            dict(SHORT, size=[H, 2 * W]),
            r"annotation 1 \(video 1\): segmentations\[1\]\.size \[10, 20\] differs",
        ),
    ],
)
def test_masks_that_would_hang_pycocotools_are_refused(tmp_path, side, seg, message):
    # The command runs in a process of its own with a timeout: before the check, these cases never finished.
    data = gt_data()
    results = [result(1, 1, 0.9, [TOP5, TOP4]), result(2, 2, 0.8, [TOP4])]
    if side == "results":
        results[0]["segmentations"] = [TOP5, seg]
    else:
        data["annotations"][0]["segmentations"][1] = seg
    gt, res = write(tmp_path, data, results)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "wsovvis",
            "evaluate",
            "--gt",
            str(gt),
            "--results",
            str(res),
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert re.search(message, done.stderr), done.stderr


def _coco_strings(seed: int) -> tuple[list[str], list[int], list[int]]:
    """Compressed RLE strings pycocotools wrote (small random masks, empty and full ones, and big frames with
    long runs, whose numbers take several characters), with each frame's pixels and each mask's area."""
    rng = np.random.default_rng(seed)
    strings, pixels, areas = [], [], []
    for i in range(400):
        height, width = int(rng.integers(1, 30)), int(rng.integers(1, 30))
        mask = (rng.random((height, width)) < rng.random()).astype(np.uint8)
        mask[:] = 0 if i % 5 == 0 else 1 if i % 7 == 0 else mask
        strings.append(rle.encode_mask(mask)["counts"])
        pixels.append(height * width)
        areas.append(int(mask.sum()))
    for _ in range(100):
        height, width = 1080, 1920
        runs = rng.integers(0, 50_000, size=int(rng.integers(1, 40))).tolist()
        runs.append(height * width - sum(runs))
        encoded = mask_utils.frPyObjects({"size": [height, width], "counts": runs}, height, width)
        strings.append(encoded["counts"].decode("ascii"))
        pixels.append(height * width)
        areas.append(int(sum(runs[1::2])))
    return strings, pixels, areas


@pytest.mark.parametrize("chunk", [1 << 18, 64, 1])
def test_the_rle_check_decodes_as_pycocotools_does(monkeypatch, chunk):
    # Strings are checked a chunk at a time; the areas and the verdict do not depend on where chunks end.
    monkeypatch.setattr(rle, "_CHARS_PER_CHECK", chunk)
    strings, pixels, areas = _coco_strings(seed=3)
    found, bad, problem = rle.check_strings(strings, np.array(pixels))
    assert (bad, problem) == (None, "")
    assert (
        found.tolist()
        == areas
        == rle.areas([{"size": [1, p], "counts": s} for s, p in zip(strings, pixels, strict=True)]).tolist()
    )


@pytest.mark.parametrize(
    ("counts", "pixels", "problem"),
    [
        ("0:", 100, "its runs add up to 10 pixels, not the frame's 100"),
        (
            "T3",
            200,
            "its runs add up to 100 pixels, not the frame's 200",
        ),  # one run of 100 pixels, in a frame of 200
        ("", 100, "it is empty"),
        ("0o", 100, "it ends inside a number, with 'o'"),
        ("1!", 100, "character '!'"),
        ("1\u00e9", 100, "character 'é'"),
        ("PPPPPP0", 100, "a number of more than 6 characters"),
        (
            "0O2",
            1,
            "a run is negative",
        ),  # runs 0, -1, 2: they add up, but pycocotools would read -1 as 2**32 - 1
    ],
)
def test_the_rle_check_names_the_string_it_refuses(counts, pixels, problem):
    strings, frame_pixels, _ = _coco_strings(seed=4)
    at = 250
    strings.insert(at, counts)
    frame_pixels.insert(at, pixels)
    _, bad, why = rle.check_strings(strings, np.array(frame_pixels))
    assert bad == at and problem in why


def test_a_corrupted_string_is_refused_or_decodes_to_runs_that_cover_the_frame():
    # Any character changed: either refused, or its runs still add up to the frame (pycocotools then ends).
    strings, pixels, _ = _coco_strings(seed=5)
    rng = np.random.default_rng(6)
    for index in rng.integers(0, len(strings), size=300).tolist():
        chars = list(strings[index])
        chars[int(rng.integers(len(chars)))] = chr(int(rng.integers(48, 112)))
        corrupted = "".join(chars)
        areas, bad, _ = rle.check_strings([corrupted], np.array([pixels[index]]))
        if bad is None:
            decoded = rle.decode({"size": [1, pixels[index]], "counts": corrupted})
            assert decoded.size == pixels[index] and int(decoded.sum()) == int(areas[0])


def test_a_score_that_overflows_is_the_error_any_file_gets(tmp_path):
    gt, res = write(tmp_path, gt_data(), [])
    res.write_text('[{"video_id": 1, "category_id": 1, "score": 1e999, "segmentations": [null, null]}]')
    with pytest.raises(InputError, match="holds a number that is not finite"):
        evaluate(gt, res)
