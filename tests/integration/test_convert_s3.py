"""convert with every input and output on s3:// URIs against the real S3 server."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.maskdata import random_video, write_frames, write_masks
from wsovvis import jsonio, storage
from wsovvis.cli import main
from wsovvis.convert import ConvertOptions, convert

pytestmark = pytest.mark.s3


def test_convert_reads_and_writes_s3_and_matches_the_local_run(s3_bucket: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    videos = [random_video(rng, f"v{i}") for i in range(4)]
    for i, video in enumerate(videos):
        write_frames(video, tmp_path / "frames")
        write_masks(video, tmp_path / "masks", as_tar=i != 0)
    (tmp_path / "masks" / "v3.tar").write_bytes(b"not a tar")
    (tmp_path / "skip.txt").write_text("v2\n")
    storage.upload_tree(tmp_path / "frames", f"{s3_bucket}/frames")
    storage.upload_tree(tmp_path / "masks", f"{s3_bucket}/masks")
    storage.upload(tmp_path / "skip.txt", f"{s3_bucket}/skip.txt")

    local_out = tmp_path / "local.json"
    options = ConvertOptions(skip_list=frozenset({"v2"}), workers=2)
    convert(str(tmp_path / "masks"), str(tmp_path / "frames"), str(local_out), options)
    code = main(
        [
            "convert",
            "--mask_root",
            f"{s3_bucket}/masks",
            "--img_root",
            f"{s3_bucket}/frames",
            "--out_json",
            f"{s3_bucket}/out/tubes.json",
            "--skip_list",
            f"{s3_bucket}/skip.txt",
            "--skip_report",
            f"{s3_bucket}/out/skipped.json",
        ]
    )
    assert code == 0
    assert storage.read_bytes(f"{s3_bucket}/out/tubes.json") == local_out.read_bytes()
    report = jsonio.read_json(f"{s3_bucket}/out/skipped.json")
    assert {s["video_id"]: s["reason"].split(":")[0] for s in report["skipped"]} == {
        "v2": "skip list",
        "v3": "unreadable mask archive",
    }
    assert report["skipped"][1]["file"] == f"{s3_bucket}/masks/v3.tar"
    assert len(json.loads(local_out.read_text())["videos"]) == 2
