"""YTVIS dataset/results: validation names the place and field; writing streams, round-trips and is atomic."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from wsovvis import rle, ytvis
from wsovvis.errors import InputError


def _dataset() -> dict:
    mask = np.zeros((4, 6), np.uint8)
    mask[1:3, 2:5] = 1
    seg = rle.encode_mask(mask)
    return {
        "videos": [
            {"id": 1, "file_names": ["a\\00000.jpg", "a\\00001.jpg"], "height": 4, "width": 6, "length": 2}
        ],
        "annotations": [
            {
                "id": 5,
                "video_id": 1,
                "category_id": 3,
                "iscrowd": 0,
                "segmentations": [seg, None],
                "bboxes": [[2, 1, 3, 2], None],
                "areas": [6, None],
            }
        ],
        "categories": [{"id": 3, "name": "cat"}],
    }


def test_backslashes_are_normalised_and_a_valid_dataset_passes() -> None:
    data = ytvis.validate_dataset(_dataset(), "gt.json")
    assert data["videos"][0]["file_names"] == ["a/00000.jpg", "a/00001.jpg"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["videos"][0].pop("height"), "video 1: missing field 'height'"),
        (lambda d: d["videos"][0].update(length=3), "video 1: field 'length' is 3 but 'file_names' has 2"),
        (
            lambda d: d["annotations"][0].update(video_id=9),
            "annotation 5 (video 9): video_id 9 is not in videos",
        ),
        (
            lambda d: d["annotations"][0].update(category_id=4),
            "annotation 5 (video 1): category_id 4 is not in",
        ),
        (lambda d: d["annotations"][0]["segmentations"].append(None), "'segmentations' has 3 entries"),
        (
            lambda d: d["annotations"][0]["segmentations"].__setitem__(0, {"counts": "x"}),
            "segmentations[0] is not",
        ),
        (lambda d: d["annotations"][0]["segmentations"][0].update(size=[5, 6]), "differs from the video's"),
        (lambda d: d["annotations"][0]["bboxes"].__setitem__(0, [1, 2]), "bboxes[0] must be [x, y, w, h]"),
        # sizes that compare equal to the video's but are not integers
        (
            lambda d: d["annotations"][0]["segmentations"][0].update(size=[4.0, 6]),
            "segmentations[0].size must be [height, width]",
        ),
        (lambda d: d["annotations"][0]["areas"].__setitem__(0, "6"), "areas[0] must be a number"),
        (lambda d: d["annotations"].append(copy.deepcopy(d["annotations"][0])), "annotation 5: duplicate id"),
    ],
)
def test_validation_errors_name_the_file_place_and_field(mutate, message: str) -> None:
    data = _dataset()
    mutate(data)
    with pytest.raises(InputError) as exc:
        ytvis.validate_dataset(data, "gt.json")
    assert str(exc.value).startswith("gt.json: ")
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("a/../00000.jpg", "names a folder"),
        ("../a/00000.jpg", "names a folder"),
        ("a/./00000.jpg", "names a folder"),
        ("/a/00000.jpg", "empty"),
        ("a//00000.jpg", "empty"),
        ("a/", "empty"),
        ("a/0\x000.jpg", "NUL"),
        ("a/" + "x" * 256, "256 bytes long"),
        ("a/\udc80.jpg", "not valid UTF-8"),
    ],
)
def test_frame_names_that_leave_the_image_root_are_refused(name: str, problem: str) -> None:
    data = _dataset()
    data["videos"][0]["file_names"][1] = name
    with pytest.raises(InputError, match=rf"video 1: file_names\[1\] .* \(.*{problem}"):
        ytvis.validate_dataset(data, "gt.json")


def test_frame_names_that_only_look_odd_are_accepted() -> None:
    data = _dataset()
    data["videos"][0]["file_names"] = ["a/...", "a/.hidden.jpg"]
    data["videos"].append(dict(data["videos"][0], id=2, file_names=["é/" + "x" * 250, "b/1.jpg"]))
    assert ytvis.validate_dataset(data, "gt.json")["videos"][1]["file_names"][0].startswith("é/")


def test_writer_round_trips_and_is_deterministic(tmp_path: Path) -> None:
    data = ytvis.validate_dataset(_dataset(), "gt.json")
    ytvis.write_dataset(tmp_path / "a.json", data)
    ytvis.write_dataset(tmp_path / "b.json", ytvis.load_dataset(tmp_path / "a.json"))
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert json.loads((tmp_path / "a.json").read_text()) == data
    ytvis.write_dataset(tmp_path / "empty.json", {"videos": [], "annotations": [], "categories": []})
    assert json.loads((tmp_path / "empty.json").read_text()) == {
        "categories": [],
        "annotations": [],
        "videos": [],
    }
    assert ytvis.write_results(tmp_path / "r.json", iter([{"video_id": 1}, {"video_id": 2}])) == 2
    assert json.loads((tmp_path / "r.json").read_text()) == [{"video_id": 1}, {"video_id": 2}]


def test_interrupted_stream_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "tubes.json"

    def annotations():
        yield {"id": 1}
        raise RuntimeError("worker died")

    with pytest.raises(RuntimeError), ytvis.dataset_writer(target, []) as writer:
        for ann in annotations():
            writer.add_annotation(ann)
    assert list(tmp_path.iterdir()) == []
