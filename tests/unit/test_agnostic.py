"""make-agnostic: one category, everything else kept."""

from __future__ import annotations

import json
from pathlib import Path

from wsovvis.cli import main


def test_every_annotation_becomes_the_one_category_and_the_rest_is_kept(tmp_path: Path) -> None:
    seg = {"size": [2, 2], "counts": "04"}
    source = {
        "info": {"year": 2023},
        "videos": [{"id": 7, "file_names": ["v\\0.jpg"], "height": 2, "width": 2, "length": 1}],
        "annotations": [
            {"id": 1, "video_id": 7, "category_id": 3, "iscrowd": 0, "segmentations": [seg], "areas": [4]},
            {
                "id": 2,
                "video_id": 7,
                "category_id": 9,
                "iscrowd": 1,
                "segmentations": [None],
                "areas": [None],
            },
        ],
        "categories": [{"id": 3, "name": "cat", "partition": 0}, {"id": 9, "name": "dog", "partition": 2}],
    }
    (tmp_path / "gt.json").write_text(json.dumps(source))
    assert (
        main(
            [
                "make-agnostic",
                "--in_json",
                str(tmp_path / "gt.json"),
                "--out-json",
                str(tmp_path / "ag.json"),
                "--category_name",
                "thing",
            ]
        )
        == 0
    )
    out = json.loads((tmp_path / "ag.json").read_text())
    assert out["categories"] == [{"id": 1, "name": "thing"}]
    assert [a["category_id"] for a in out["annotations"]] == [1, 1]
    for before, after in zip(source["annotations"], out["annotations"], strict=True):
        assert {k: v for k, v in after.items() if k != "category_id"} == {
            k: v for k, v in before.items() if k != "category_id"
        }
    assert out["videos"][0]["file_names"] == ["v/0.jpg"]
    assert out["info"]["year"] == 2023 and out["info"]["original_categories"] == source["categories"]


def test_invalid_input_is_a_clear_error(tmp_path: Path, caplog) -> None:
    (tmp_path / "gt.json").write_text(json.dumps({"videos": [{"id": 1}]}))
    assert (
        main(
            ["make-agnostic", "--in_json", str(tmp_path / "gt.json"), "--out_json", str(tmp_path / "o.json")]
        )
        == 1
    )
    assert "gt.json: video 1: missing field 'file_names'" in caplog.text
    assert not (tmp_path / "o.json").exists()
