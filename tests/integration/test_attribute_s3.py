"""`wsovvis attribute` with the model config, weights, frames, tubes and outputs on the real S3 server."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.attributedata import agnostic_results, gt_dataset, tube_masks, write_json, write_video
from tests.clipdata import write_tiny_model
from wsovvis import jsonio, storage
from wsovvis.cli import main

pytestmark = pytest.mark.s3
pytest.importorskip("open_clip", reason="open_clip is not installed (pip install 'wsovvis[attribute]')")


def test_attribute_reads_weights_from_s3_once_and_caches_text_embeddings_on_s3(
    s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    masks = [tube_masks(5, 4, (12, 20)), tube_masks(5, 26, (14, 14))]
    names = write_video(tmp_path / "frames", "a", 5, [((220, 20, 20), masks[0]), ((20, 20, 220), masks[1])])
    categories = [{"id": 1, "name": "person", "partition": 0}, {"id": 2, "name": "dog", "partition": 2}]
    gt = gt_dataset([(3, names)], [(3, 1, masks[0]), (3, 2, masks[1])], categories)
    write_json(tmp_path / "gt.json", gt)
    write_json(tmp_path / "agnostic.json", agnostic_results(gt, [0.8, 0.5]))
    config, weights = write_tiny_model(tmp_path / "model")
    storage.upload_tree(tmp_path / "frames", f"{s3_bucket}/frames")
    for local, key in (
        (tmp_path / "gt.json", "gt.json"),
        (tmp_path / "agnostic.json", "agnostic.json"),
        (config, "models/tiny.json"),
        (weights, "models/tiny.pt"),
    ):
        storage.upload(local, f"{s3_bucket}/{key}")
    monkeypatch.setenv("WSOVVIS_CACHE", str(tmp_path / "cache"))

    from wsovvis.attribute import attribute

    def run(out: str) -> dict:
        return attribute(
            f"{s3_bucket}/agnostic.json",
            f"{s3_bucket}/frames",
            f"{s3_bucket}/gt.json",
            out,
            clip_model=f"{s3_bucket}/models/tiny.json",
            clip_weights=f"{s3_bucket}/models/tiny.pt",
            text_cache=f"{s3_bucket}/cache/clip-text",
        )

    first = run(f"{s3_bucket}/out/first.json")
    assert first["clip_weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    cached_weights = list((tmp_path / "cache" / "clip-weights").rglob("tiny.pt"))
    assert len(cached_weights) == 1 and cached_weights[0].read_bytes() == weights.read_bytes()
    assert first["text_embeddings"].startswith(f"{s3_bucket}/cache/clip-text/")
    assert storage.exists(first["text_embeddings"])
    meta = jsonio.read_json(f"{s3_bucket}/out/first.json.meta.json")
    assert meta["clip_weights"] == f"{s3_bucket}/models/tiny.pt" and meta["num_results"] == 4

    # fetched once: with the S3 object gone, the cached copy serves the next run, with the same output
    storage.delete(f"{s3_bucket}/models/tiny.pt")
    second = run(f"{s3_bucket}/out/second.json")
    assert second["clip_weights_sha256"] == first["clip_weights_sha256"]
    assert second["text_embeddings"] == first["text_embeddings"]
    assert storage.read_bytes(f"{s3_bucket}/out/second.json") == storage.read_bytes(
        f"{s3_bucket}/out/first.json"
    )

    code = main(
        [
            "evaluate",
            "--gt",
            f"{s3_bucket}/gt.json",
            "--results",
            f"{s3_bucket}/out/first.json",
            "--lvvis",
            "--out",
            f"{s3_bucket}/out/metrics.json",
        ]
    )
    assert code == 0
    metrics = json.loads(storage.read_text(f"{s3_bucket}/out/metrics.json"))
    assert metrics["num_results"] == 4 and {"APb", "APn"} <= metrics.keys()


def test_absent_s3_weights_are_one_line_naming_the_option(s3_bucket: str, tmp_path: Path) -> None:
    from wsovvis.attribute.clip import fetch_weights
    from wsovvis.errors import InputError

    with pytest.raises(InputError) as caught:
        fetch_weights(f"{s3_bucket}/models/absent.pt", tmp_path)
    assert str(caught.value) == f"--clip_weights {s3_bucket}/models/absent.pt: does not exist"
