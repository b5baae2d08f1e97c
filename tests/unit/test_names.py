"""wsovvis.names: which names from inputs are usable, and the one frame order every stage shares."""

from __future__ import annotations

import json

import pytest

from wsovvis import names, shards, storage
from wsovvis.errors import InputError, UsageError


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("..", "names a folder"),
        (".", "names a folder"),
        ("", "empty"),
        ("/abs", "contains a '/'"),
        ("a/../b", "contains a '/'"),
        ("a\\b", "contains a '\\'"),
        ("x\0y", "NUL"),
        ("caf\udce9", "not valid UTF-8"),
        ("é" * 126, "252 bytes long, over the 250"),
        ("_done", "starts with '_'"),
        (".hidden", "starts with '.'"),
        (7, "not a string but int"),
    ],
)
def test_video_ids_that_are_not_plain_names_are_refused_with_the_reason(name, why) -> None:
    with pytest.raises(names.InvalidNameError) as caught:
        names.check_video_id(name)
    assert why in str(caught.value)


def test_usable_video_ids_pass_unchanged() -> None:
    for name in ("00001", "a1b2c3d4e5", "vidéo-1.mp4 copy", "x" * 250):
        assert names.check_video_id(name) == name


def test_frame_order_is_numeric_aware_and_total() -> None:
    given = ["frame_10.jpg", "frame_2.jpg", "frame_1.jpg", "frame_02.jpg", "a", "a1", "b", "10", "9"]
    assert names.sorted_names(given) == [
        "9",
        "10",
        "a",
        "a1",
        "b",
        "frame_1.jpg",
        "frame_02.jpg",
        "frame_2.jpg",
        "frame_10.jpg",
    ]


def test_truncation_keeps_whole_utf8_characters() -> None:
    assert names.truncate_bytes("ééé", 5) == "éé"
    assert names.truncate_bytes("short", 241) == "short"


def test_a_manifest_whose_video_ids_are_not_strings_is_an_input_error(tmp_path) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"shards": [{"index": 0, "videos": ["a", {"id": 1}]}]}))
    with pytest.raises(InputError, match="shard 0: 'videos' must be a list of video id strings"):
        shards.load_shard(str(path), 0)


@pytest.mark.parametrize("uri", ["s3://b/k", "s3://Upper/k", "s3://bad_name/k", "s3://a..b/k"])
def test_bucket_names_s3_refuses_are_a_usage_error_before_any_request(uri) -> None:
    with pytest.raises(UsageError, match="is not an S3 bucket name"):
        storage.parse_s3(uri)
