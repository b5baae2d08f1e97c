"""`wsovvis attribute` with a real open_clip model: a tiny CLIP with random weights written to disk.

Loading by path, the one-line errors for absent or unfitting weights, batched against one-at-a-time output, and
an output that validates as YTVIS results and that `wsovvis evaluate --lvvis` scores.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.attributedata import agnostic_results, gt_dataset, tube_masks, write_json, write_video
from tests.clipdata import TINY_CONFIG, write_tiny_model
from tests.unit.evaluate_helpers import checked_results
from wsovvis.cli import main
from wsovvis.errors import InputError, UsageError

pytest.importorskip("open_clip", reason="open_clip is not installed (pip install 'wsovvis[attribute]')")

ROOT = Path(__file__).resolve().parents[2]
COLOURS = [(220, 20, 20), (20, 20, 220), (20, 200, 20)]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_tiny_model(tmp_path_factory.mktemp("clip"))


@pytest.fixture
def dataset(tmp_path: Path) -> dict[str, Path]:
    """Two videos with three tubes; a GT with LV-VIS partitions; class-agnostic results."""
    masks = [
        tube_masks(5, 4, (12, 20)),
        tube_masks(5, 26, (14, 14)),
        tube_masks(4, 8, (20, 10), areas_grow=True),
    ]
    v1 = write_video(tmp_path / "frames", "a", 5, [(COLOURS[0], masks[0]), (COLOURS[1], masks[1])])
    v2 = write_video(tmp_path / "frames", "b", 4, [(COLOURS[2], masks[2])])
    categories = [
        {"id": 1, "name": "person", "partition": 0},
        {"id": 2, "name": "dog", "partition": 1},
        {"id": 3, "name": "aerosol_can", "partition": 2},
        {"id": 4, "name": "bow_(weapon)", "partition": 3},
    ]
    gt = gt_dataset([(7, v1), (9, v2)], [(7, 1, masks[0]), (7, 3, masks[1]), (9, 4, masks[2])], categories)
    return {
        "frames": tmp_path / "frames",
        "gt": write_json(tmp_path / "gt.json", gt),
        "results": write_json(tmp_path / "agnostic.json", agnostic_results(gt, [0.9, 0.6, 0.3])),
        "out": tmp_path / "labelled.json",
    }


def _attribute_args(dataset, config: Path, weights: Path) -> list[str]:
    return [
        "attribute",
        "--results",
        str(dataset["results"]),
        "--img_root",
        str(dataset["frames"]),
        "--vocab",
        str(dataset["gt"]),
        "--out",
        str(dataset["out"]),
        "--clip_model",
        str(config),
        "--clip_weights",
        str(weights),
    ]


def _attribute(dataset, config: Path, weights: Path, *extra: str) -> int:
    return main([*_attribute_args(dataset, config, weights), *extra])


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSOVVIS_CACHE", str(tmp_path / "cache"))


def test_the_output_is_ytvis_results_that_evaluate_lvvis_scores(dataset, tiny_model) -> None:
    from wsovvis.evaluate import evaluate

    config, weights = tiny_model
    assert _attribute(dataset, config, weights, "--topk", "3") == 0
    out = checked_results(dataset["gt"], dataset["out"])
    assert len(out) == 3 * 3
    assert {r["category_id"] for r in out} <= {1, 2, 3, 4}
    assert [r["video_id"] for r in out] == [7, 7, 7, 7, 7, 7, 9, 9, 9]
    for tube in range(3):
        scores = [r["score"] for r in out[3 * tube : 3 * tube + 3]]
        assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)
        assert len({r["category_id"] for r in out[3 * tube : 3 * tube + 3]}) == 3
    metrics = evaluate(dataset["gt"], dataset["out"], lvvis=True)
    assert metrics["num_results"] == 9 and metrics["num_gt"] == 3
    assert 0.0 <= metrics["AP"] <= 1.0 and {"APb", "APn"} <= metrics.keys()

    meta = json.loads(Path(f"{dataset['out']}.meta.json").read_text())
    assert meta["clip_weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert meta["clip_weights"] == str(weights) and meta["num_categories"] == 4
    assert meta["num_tubes"] == 3 and meta["num_crops"] == 5 + 5 + 4 and meta["num_results"] == 9
    assert meta["logit_scale"] == pytest.approx(1 / 0.07, rel=1e-5)  # open_clip's initial scale, as saved


def test_batched_and_one_crop_at_a_time_give_the_same_labels_and_scores(dataset, tiny_model) -> None:
    # fp32 matrix kernels round differently for different batch shapes (about 1e-7 of an embedding here), so
    # scores agree to float precision, not bit for bit; tubes, categories, their order and masks are identical.
    config, weights = tiny_model
    assert _attribute(dataset, config, weights, "--batch", "1") == 0
    one_at_a_time = json.loads(dataset["out"].read_text())
    for batch in ("4", "64"):
        assert _attribute(dataset, config, weights, "--batch", batch) == 0
        batched = json.loads(dataset["out"].read_text())
        assert [{k: v for k, v in r.items() if k != "score"} for r in batched] == [
            {k: v for k, v in r.items() if k != "score"} for r in one_at_a_time
        ], f"--batch {batch}"
        assert [r["score"] for r in batched] == pytest.approx([r["score"] for r in one_at_a_time], rel=1e-5)


def test_the_encoder_loads_the_saved_weights(tiny_model, tmp_path: Path) -> None:
    import torch

    from wsovvis.attribute.clip import ClipEncoder, fetch_weights

    config, weights = tiny_model
    encoder = ClipEncoder(str(config), fetch_weights(str(weights), tmp_path), "cpu", tmp_path)
    saved = torch.load(weights)
    for name, tensor in encoder.net.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
    crops = np.random.default_rng(0).integers(0, 255, size=(3, 32, 32, 3), dtype=np.uint8)
    embeddings = encoder.encode_images(crops)
    assert embeddings.shape == (3, TINY_CONFIG["embed_dim"])
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)
    texts = encoder.encode_texts(["a photo of a dog.", "a photo of a cat."])
    assert texts.shape == (2, TINY_CONFIG["embed_dim"]) and not np.allclose(texts[0], texts[1])


def _error(dataset, config: Path, weights: Path) -> str:
    from wsovvis.attribute import attribute

    with pytest.raises(InputError) as caught:
        attribute(
            dataset["results"],
            str(dataset["frames"]),
            dataset["gt"],
            dataset["out"],
            clip_model=str(config),
            clip_weights=str(weights),
        )
    message = str(caught.value)
    assert "\n" not in message
    assert not dataset["out"].exists()
    return message


def test_missing_weights_are_one_line_naming_the_option(dataset, tiny_model, tmp_path) -> None:
    message = _error(dataset, tiny_model[0], tmp_path / "absent.pt")
    assert message == f"--clip_weights {tmp_path / 'absent.pt'}: no such file"


def _other_model_weights(tmp_path: Path) -> Path:
    import open_clip
    import torch

    open_clip.add_model_config(write_json(tmp_path / "other-clip.json", dict(TINY_CONFIG, embed_dim=8)))
    torch.save(open_clip.create_model("other-clip").state_dict(), tmp_path / "other.pt")
    return tmp_path / "other.pt"


def test_weights_of_another_model_are_one_line_naming_both_options(dataset, tiny_model, tmp_path) -> None:
    message = _error(dataset, tiny_model[0], _other_model_weights(tmp_path))
    assert message.startswith(
        f"--clip_weights {tmp_path / 'other.pt'}: these weights do not fit --clip_model "
    )
    assert "size mismatch" in message


def test_the_command_prints_the_weights_error_as_one_line_and_exits_1(dataset, tiny_model, tmp_path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "wsovvis",
            *_attribute_args(dataset, tiny_model[0], _other_model_weights(tmp_path)),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert completed.returncode == 1
    errors = [line for line in completed.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "do not fit --clip_model" in errors[0], completed.stderr
    assert "Traceback" not in completed.stderr


def test_a_file_that_is_no_checkpoint_is_one_line(dataset, tiny_model, tmp_path) -> None:
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    assert "not a loadable checkpoint" in _error(dataset, tiny_model[0], tmp_path / "garbage.pt")


def test_model_names_are_checked_before_anything_downloads(tiny_model, tmp_path) -> None:
    from wsovvis.attribute.clip import ClipEncoder, fetch_weights

    weights = fetch_weights(str(tiny_model[1]), tmp_path)
    with pytest.raises(UsageError, match="--clip_model no-such-model: open_clip knows no such model"):
        ClipEncoder("no-such-model", weights, "cpu", tmp_path)
    with pytest.raises(UsageError, match="model-hub names are not used"):
        ClipEncoder("hf-hub:laion/CLIP-ViT-B-32", weights, "cpu", tmp_path)
    with pytest.raises(InputError, match="--clip_model .*needs 'embed_dim'"):
        ClipEncoder(str(write_json(tmp_path / "bad.json", {"embed_dim": 4})), weights, "cpu", tmp_path)
    with pytest.raises(UsageError, match="--clip_weights is empty"):
        fetch_weights("", tmp_path)
