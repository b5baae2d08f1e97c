"""make-agnostic component body."""

import json
from pathlib import Path

from kfp import dsl

from components.make_agnostic.component import make_agnostic
from wsovvis.synth import make_dataset


def test_writes_agnostic_gt_to_storage_and_artifact(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data", num_videos=2, seed=5)
    artifact = dsl.Dataset(name="agnostic_gt", uri=str(tmp_path / "art" / "gt"))
    uri = make_agnostic.python_func(
        gt_json=dataset.gt_json, work_root=str(tmp_path / "work"), agnostic_gt=artifact
    )
    data = json.loads(Path(uri).read_text())
    assert data["categories"] == [{"id": 1, "name": "object"}]
    assert {a["category_id"] for a in data["annotations"]} == {1}
    assert (tmp_path / "art" / "gt").read_bytes() == Path(uri).read_bytes()
