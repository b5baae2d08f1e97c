"""attribute component body: labelled results under the work root and as artifacts, text embeddings cached."""

import json
from pathlib import Path

import pytest
from kfp import dsl

from components.attribute.component import attribute
from tests.attributedata import agnostic_results, gt_dataset, tube_masks, write_json, write_video
from tests.clipdata import write_tiny_model

pytest.importorskip("open_clip", reason="open_clip is not installed (pip install 'wsovvis[attribute]')")


def test_labels_tubes_into_the_work_root_and_the_artifacts(tmp_path: Path) -> None:
    masks = tube_masks(4, 6, (12, 18))
    names = write_video(tmp_path / "frames", "a", 4, [((200, 40, 40), masks)])
    categories = [{"id": 1, "name": "cat", "partition": 0}, {"id": 2, "name": "dog", "partition": 2}]
    gt = gt_dataset([(1, names)], [(1, 2, masks)], categories)
    write_json(tmp_path / "gt.json", gt)
    write_json(tmp_path / "tubes.json", agnostic_results(gt, [0.7]))
    config, weights = write_tiny_model(tmp_path / "model")

    def call(topk: int) -> str:
        return attribute.python_func(
            results_json=str(tmp_path / "tubes.json"),
            img_root=str(tmp_path / "frames"),
            vocab_json=str(tmp_path / "gt.json"),
            work_root=str(tmp_path / "work"),
            clip_model=str(config),
            clip_weights=str(weights),
            topk=topk,
            alpha=0.5,
            device="cpu",
            labelled=dsl.Dataset(name="labelled", uri=str(tmp_path / "art" / f"labelled{topk}")),
            metadata=dsl.Artifact(name="metadata", uri=str(tmp_path / "art" / f"metadata{topk}")),
        )

    uri = call(2)
    assert uri.startswith(str(tmp_path / "work" / "attribute")) and uri.endswith("results.json")
    assert Path(uri).read_bytes() == (tmp_path / "art" / "labelled2").read_bytes()
    assert sorted(r["category_id"] for r in json.loads(Path(uri).read_text())) == [1, 2]
    meta = json.loads((tmp_path / "art" / "metadata2").read_text())
    assert meta["clip_weights"] == str(weights) and meta["options"]["topk"] == 2
    assert meta["text_embeddings"].startswith(str(tmp_path / "work" / "cache" / "clip-text"))
    other = call(1)
    assert other != uri and len(json.loads(Path(other).read_text())) == 1
    assert len(list((tmp_path / "work" / "cache" / "clip-text").iterdir())) == 1  # shared by both runs
