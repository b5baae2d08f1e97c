"""Attribution with an encoder whose embeddings are known: which categories a tube gets, in which order, with
which scores, and how crops are weighted. (The real open_clip model is exercised in test_attribute_clip.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.attributedata import agnostic_results, gt_dataset, tube_masks, write_json, write_video
from tests.unit.evaluate_helpers import checked_results
from wsovvis.attribute.clip import text_cache_key, text_embeddings
from wsovvis.attribute.run import (
    TEMPLATES,
    AttributeOptions,
    attribute_tubes,
    load_tubes,
    text_prompts,
    tube_embeddings,
)
from wsovvis.attribute.vocab import load_vocabulary
from wsovvis.errors import InputError, UsageError

RED, BLUE, GREEN = (220, 20, 20), (20, 20, 220), (20, 200, 20)
NAMES = ["cat1", "cat2", "cat3", "cat4", "cat5"]
DIM = 8
# What a crop of each colour embeds as (before normalisation); the text of category j embeds as the j-th axis.
EMBEDS = {
    RED: np.array([0.1, 0.5, 0.9, 0.3, 0.0, 0, 0, 0]),
    BLUE: np.array([0.8, 0.0, 0.2, 0.6, 0.1, 0, 0, 0]),
    GREEN: np.array([0.0, 0.0, 0.0, 0.0, 1.0, 0, 0, 0]),
}


class KnownEncoder:
    """Crops embed by the colour at their centre (the tube's colour); texts embed as one-hot category axes."""

    image_size = 24
    logit_scale = 10.0

    def __init__(self) -> None:
        self.image_batches: list[int] = []
        self.text_calls = 0

    def encode_images(self, crops: np.ndarray) -> np.ndarray:
        self.image_batches.append(len(crops))
        rows = []
        for crop in crops:
            centre = crop[self.image_size // 2, self.image_size // 2].astype(int)
            colour = min(EMBEDS, key=lambda c: np.abs(np.array(c) - centre).sum())
            rows.append(EMBEDS[colour] / np.linalg.norm(EMBEDS[colour]))
        return np.array(rows, dtype=np.float32)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        self.text_calls += 1
        rows = np.zeros((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            rows[row, next(j for j, name in enumerate(NAMES) if text.endswith(f" {name}."))] = 1.0
        return rows


def _softmax(values: np.ndarray) -> np.ndarray:
    exp = np.exp(values - values.max())
    return exp / exp.sum()


@pytest.fixture
def two_tubes(tmp_path: Path) -> dict[str, Path]:
    """One video, a red tube (GT cat3) and a blue tube (GT cat1); class-agnostic results with scores .9/.4."""
    red, blue = tube_masks(6, 4, (10, 20)), tube_masks(6, 28, (12, 16))
    names = write_video(tmp_path / "frames", "v1", 6, [(RED, red), (BLUE, blue)])
    categories = [{"id": 10 + j, "name": n, "partition": j % 4} for j, n in enumerate(NAMES)]
    gt = gt_dataset([(1, names)], [(1, 12, red), (1, 10, blue)], categories)
    return {
        "frames": tmp_path / "frames",
        "gt": write_json(tmp_path / "gt.json", gt),
        "results": write_json(tmp_path / "agnostic.json", agnostic_results(gt, [0.9, 0.4])),
        "out": tmp_path / "out.json",
        "cache": tmp_path / "cache",
    }


def _run(
    paths: dict[str, Path], options: AttributeOptions, encoder: KnownEncoder | None = None
) -> list[dict]:
    encoder = encoder or KnownEncoder()
    vocabulary = load_vocabulary(paths["gt"])
    prompts = text_prompts(vocabulary, options.templates)
    texts, _ = text_embeddings(encoder, prompts, str(paths["cache"]), text_cache_key("known", "0", prompts))
    tubes = load_tubes(paths["results"], vocabulary)
    attribute_tubes(tubes, str(paths["frames"]), vocabulary, texts, encoder, options, paths["out"])
    return json.loads(paths["out"].read_text())


def test_a_tube_that_embeds_as_category_k_gets_k_first_and_the_topk_follow_similarity(two_tubes) -> None:
    options = AttributeOptions(topk=3, alpha=0.5)
    out = _run(two_tubes, options)
    assert out == checked_results(two_tubes["gt"], two_tubes["out"])
    assert [r["category_id"] for r in out] == [
        12,
        11,
        13,
        10,
        13,
        12,
    ]  # red: cat3 cat2 cat4; blue: cat1 cat4 cat3
    for tube, (colour, objectness) in enumerate([(RED, 0.9), (BLUE, 0.4)]):
        cosine = EMBEDS[colour][:5] / np.linalg.norm(EMBEDS[colour])
        p = _softmax(10.0 * cosine)
        for rank in range(3):
            result = out[3 * tube + rank]
            expected = objectness**0.5 * p[result["category_id"] - 10] ** 0.5
            assert result["score"] == pytest.approx(expected, rel=1e-6)
    gt = json.loads(two_tubes["gt"].read_text())
    assert out[0]["segmentations"] == gt["annotations"][0]["segmentations"]  # masks unchanged
    assert out[3]["segmentations"] == gt["annotations"][1]["segmentations"]


@pytest.mark.parametrize(("alpha", "check"), [(1.0, "objectness"), (0.0, "probability")])
def test_alpha_weighs_objectness_against_the_class_probability(two_tubes, alpha: float, check: str) -> None:
    out = _run(two_tubes, AttributeOptions(topk=5, alpha=alpha))
    red = [r["score"] for r in out[:5]]
    if check == "objectness":
        assert red == pytest.approx([0.9] * 5)
    else:
        assert sum(red) == pytest.approx(1.0)  # all five probabilities of the red tube


def test_crops_are_weighted_by_mask_area(tmp_path: Path) -> None:
    # One tube whose mask grows each frame; red in the first three frames, green in the last three.
    masks = tube_masks(6, 10, (10, 6), areas_grow=True)
    colours = [RED] * 3 + [GREEN] * 3
    names = write_video(tmp_path / "frames", "v1", 6, [(colours, masks)])
    gt = gt_dataset([(1, names)], [(1, 1, masks)], [{"id": 1, "name": "cat1"}])
    write_json(tmp_path / "gt.json", gt)
    write_json(tmp_path / "res.json", agnostic_results(gt, [1.0]))
    tubes = load_tubes(tmp_path / "res.json", load_vocabulary(tmp_path / "gt.json"))
    embedding, crops = tube_embeddings(
        tubes, str(tmp_path / "frames"), KnownEncoder(), DIM, AttributeOptions()
    )
    areas = np.array([m.sum() for m in masks], dtype=float)
    unit = {c: EMBEDS[c] / np.linalg.norm(EMBEDS[c]) for c in (RED, GREEN)}
    expected = sum(a * unit[c] for a, c in zip(areas, colours, strict=True))
    assert crops == 6
    np.testing.assert_allclose(embedding[0], expected / np.linalg.norm(expected), atol=1e-6)
    uniform = sum(unit[c] for c in colours)
    assert not np.allclose(embedding[0], uniform / np.linalg.norm(uniform), atol=1e-3)


def test_frames_caps_the_crops_per_tube_and_batch_sets_the_forward_size(two_tubes) -> None:
    encoder = KnownEncoder()
    _run(two_tubes, AttributeOptions(frames=4, batch=3), encoder)
    assert encoder.image_batches == [3, 3, 2]  # 2 tubes x 4 frames in batches of 3


def test_batched_and_unbatched_runs_write_the_same_bytes(two_tubes) -> None:
    _run(two_tubes, AttributeOptions(batch=1))
    one_by_one = two_tubes["out"].read_bytes()
    _run(two_tubes, AttributeOptions(batch=64))
    assert two_tubes["out"].read_bytes() == one_by_one


def test_text_embeddings_are_computed_once_per_vocabulary_and_templates(two_tubes) -> None:
    encoder = KnownEncoder()
    _run(two_tubes, AttributeOptions(), encoder)
    _run(two_tubes, AttributeOptions(), encoder)
    assert encoder.text_calls == 1
    _run(two_tubes, AttributeOptions(templates=TEMPLATES[:2]), encoder)
    assert encoder.text_calls == 2
    assert len(list(two_tubes["cache"].glob("*.npy"))) == 2


def test_a_tube_dataset_with_a_names_file_uses_its_own_videos(two_tubes, tmp_path: Path) -> None:
    tubes = json.loads(two_tubes["gt"].read_text())
    for ann in tubes["annotations"]:
        ann["category_id"] = 1
        ann["score"] = 0.5
    tubes["categories"] = [{"id": 1, "name": "object"}]
    two_tubes["results"] = write_json(tmp_path / "tubes.json", tubes)
    two_tubes["gt"] = tmp_path / "names.txt"
    two_tubes["gt"].write_text("\n".join(NAMES) + "\n")
    out = _run(two_tubes, AttributeOptions(topk=1))
    assert [(r["video_id"], r["category_id"]) for r in out] == [(1, 3), (1, 1)]  # ids 1..N in file order


def test_a_results_list_needs_a_vocabulary_with_videos(two_tubes, tmp_path: Path) -> None:
    names = tmp_path / "names.txt"
    names.write_text("cat1\ncat2\n")
    with pytest.raises(UsageError, match="names its videos only by id"):
        load_tubes(two_tubes["results"], load_vocabulary(names))


def test_tubes_without_a_mask_get_no_label(two_tubes, tmp_path: Path) -> None:
    results = json.loads(two_tubes["results"].read_text())
    results.append({**results[0], "segmentations": [None] * 6})
    write_json(two_tubes["results"], results)
    out = _run(two_tubes, AttributeOptions(topk=2))
    assert len(out) == 4


def test_negative_objectness_is_refused(two_tubes) -> None:
    results = json.loads(two_tubes["results"].read_text())
    results[1]["score"] = -0.1
    write_json(two_tubes["results"], results)
    with pytest.raises(InputError, match="result 1 .*negative"):
        load_tubes(two_tubes["results"], load_vocabulary(two_tubes["gt"]))


def test_vocabulary_keeps_ids_names_and_partitions(two_tubes, tmp_path: Path) -> None:
    vocabulary = load_vocabulary(two_tubes["gt"])
    assert vocabulary.ids == [10, 11, 12, 13, 14]
    assert vocabulary.categories[3]["partition"] == 3
    names = tmp_path / "names.txt"
    names.write_text("# LV-VIS subset\naerosol_can\n\nbow_(weapon)\n")
    vocabulary = load_vocabulary(names)
    assert vocabulary.ids == [1, 2] and vocabulary.videos is None
    assert text_prompts(vocabulary, ("a photo of a {}.",)) == [
        ["a photo of a aerosol can."],
        ["a photo of a bow (weapon)."],
    ]
    names.write_text("cat\ndog\ncat\n")
    with pytest.raises(InputError, match="more than once.*--vocab"):
        load_vocabulary(names)


def test_options_are_checked() -> None:
    with pytest.raises(UsageError, match="--alpha"):
        AttributeOptions(alpha=1.5)
    with pytest.raises(UsageError, match="--topk"):
        AttributeOptions(topk=0)
