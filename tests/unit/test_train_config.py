"""The training config: Sacred-style files and key=value updates into a frozen dataclass, checked early."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from wsovvis.cli import main
from wsovvis.errors import UsageError
from wsovvis.train.cli import split_words
from wsovvis.train.config import load_config, parse_value

BASE = {
    "output_uri": "s3://bucket/run",
    "d2_cfg_path": "configs/base_ytvis.yaml",
    "data": {"train_json": "s3://bucket/train.json", "train_img_root": "s3://bucket/frames"},
}


@pytest.fixture
def base_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(BASE))
    return path


def test_files_merge_in_order_and_dotted_updates_set_nested_values(base_yaml: Path, tmp_path: Path) -> None:
    extra = tmp_path / "extra.yaml"
    extra.write_text(
        yaml.safe_dump({"data": {"val_json": "v.json", "val_img_root": "frames"}, "num_gpus": 4})
    )

    config = load_config(
        [str(base_yaml), str(extra), "data.train_json=s3://other/train.json", "resume=True", "num_gpus=2"]
    )

    assert config.data.train_json == "s3://other/train.json"
    assert config.data.train_img_root == "s3://bucket/frames"
    assert config.data.val_json == "v.json"
    assert config.resume is True
    assert config.num_gpus == 2
    assert config.trainer == "seqformer"


def test_d2_opts_keep_key_value_pairs_as_strings(base_yaml: Path) -> None:
    config = load_config([str(base_yaml), "d2_opts=['SOLVER.MAX_ITER', 10, 'MODEL.WEIGHTS', '']"])

    assert config.d2_opts == ("SOLVER.MAX_ITER", "10", "MODEL.WEIGHTS", "")
    assert config.opts_value("MODEL.WEIGHTS") == ""
    assert config.opts_value("SOLVER.BASE_LR") is None


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ("learning_rate=0.1", "unknown key(s) learning_rate"),
        ("data.train_jsn=x.json", "unknown key(s) train_jsn"),
        ("train_name=coco_train", "must start with 'ytvis_'"),
        ("val_name=ytvis_2019_val", "one of VNext's built-in dataset names"),
        ("val_name=ytvis_wsovvis_train", "give them different names"),
        ("d2_opts=['SOLVER.MAX_ITER']", "KEY VALUE pairs"),
        ("device=tpu", "device must be one of"),
        ("num_gpus=0", "num_gpus must be >= 1"),
        ("resume=maybe", "resume"),
    ],
)
def test_bad_settings_are_rejected_naming_the_key(base_yaml: Path, update: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config([str(base_yaml), update])


def test_training_needs_train_data_and_eval_only_needs_val_data(base_yaml: Path) -> None:
    with pytest.raises(UsageError, match="training needs data.train_json and data.train_img_root"):
        load_config(["output_uri=/tmp/out"])
    with pytest.raises(UsageError, match="eval_only needs data.val_json and data.val_img_root"):
        load_config([str(base_yaml), "eval_only=True"])
    with pytest.raises(UsageError, match="output_uri"):
        load_config(["data.train_json=a.json", "data.train_img_root=frames"])


def test_values_are_read_as_sacred_reads_them_then_as_yaml() -> None:
    assert parse_value("True") is True
    assert parse_value("true") is True
    assert parse_value("3") == 3
    assert parse_value("[a, b]") == ["a", "b"]
    assert parse_value("s3://bucket/key") == "s3://bucket/key"


def test_command_line_shape_is_sacreds() -> None:
    assert split_words(["with", "a.yaml", "x=1"]) == (None, ["a.yaml", "x=1"])
    assert split_words(["print_config", "with", "a.yaml"]) == ("print_config", ["a.yaml"])
    with pytest.raises(UsageError, match="expected 'with'"):
        split_words(["a.yaml"])


def test_print_config_shows_the_resolved_config(base_yaml: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "print_config", "with", str(base_yaml), "eval_only=False", "resume=True"]) == 0

    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["resume"] is True
    assert printed["data"]["train_json"] == "s3://bucket/train.json"


def test_a_bad_dataset_name_exits_2_with_the_reason(
    base_yaml: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert main(["train", "with", str(base_yaml), "train_name=lvvis_train"]) == 2
    assert "train_name 'lvvis_train' must start with 'ytvis_'" in caplog.text
