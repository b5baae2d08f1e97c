"""The training harness's configuration: Sacred-style ``with CONFIG.yaml key=value`` into a frozen dataclass.

Files are merged in order (nested mappings key by key), then each ``key=value`` update is applied; a dotted
key (``data.train_json=...``) sets a nested value. Values are read the way Sacred reads them (a Python
literal), falling back to YAML (``true``, ``[a, b]``) and then to the plain string.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from wsovvis import storage
from wsovvis.config import from_mapping
from wsovvis.errors import UsageError

DATASET_PREFIX = "ytvis_"

# Names VNext's SeqFormer registers for itself when imported (seqformer/data/datasets/builtin.py); ours must
# differ or the metadata (40 YouTube-VIS categories) of the built-in entries would be used.
VNEXT_BUILTIN_DATASETS = frozenset(
    {
        "ytvis_2019_train",
        "ytvis_2019_val",
        "ytvis_2019_test",
        "ytvis_2019_dev",
        "ytvis_2021_train",
        "ytvis_2021_val",
        "ytvis_2021_test",
        "ytvis_2021_dev",
        "ytvis_2022_val_full",
        "ytvis_2022_val_sub",
    }
)

DEVICES = ("auto", "cpu", "cuda")

# A SeqFormer small enough to train a few iterations on 2 CPU cores (random init; the point is the chain): the
# `d2_opts` of `wsovvis demo`, also what the GPU check and the runtime tests train.
CPU_SEQFORMER_OPTS = {
    "MODEL.WEIGHTS": "",
    "SEED": 0,
    "MODEL.RESNETS.DEPTH": 18,
    "MODEL.RESNETS.RES2_OUT_CHANNELS": 64,
    "MODEL.SeqFormer.ENC_LAYERS": 1,
    "MODEL.SeqFormer.DEC_LAYERS": 1,
    "MODEL.SeqFormer.HIDDEN_DIM": 64,
    "MODEL.SeqFormer.DIM_FEEDFORWARD": 64,
    # Random weights score every query near the focal-loss prior (0.01); keep them all so results are written.
    "MODEL.SeqFormer.APPLY_CLS_THRES": 0.0,
    "INPUT.SAMPLING_FRAME_NUM": 2,
    "INPUT.MIN_SIZE_TRAIN": "(96,)",
    "INPUT.MAX_SIZE_TRAIN": 160,
    "INPUT.MIN_SIZE_TEST": 96,
    "INPUT.MAX_SIZE_TEST": 160,
    "SOLVER.IMS_PER_BATCH": 1,
    "SOLVER.MAX_ITER": 10,
    "SOLVER.CHECKPOINT_PERIOD": 10,
    "DATALOADER.NUM_WORKERS": 0,
}


@dataclass(frozen=True)
class DataConfig:
    """Dataset JSONs and frame roots (local paths or s3:// URIs); frames are ``<img_root>/<file_name>``."""

    train_json: str = ""
    train_img_root: str = ""
    val_json: str = ""
    val_img_root: str = ""


@dataclass(frozen=True)
class TrainConfig:
    """One training or evaluation run.

    ``num_gpus``, ``num_machines``, ``machine_rank`` and ``dist_url`` default to what the PyTorchJob
    environment says (see :mod:`wsovvis.train.distributed`); set them only to override it. ``num_gpus`` is the
    number of processes per machine: GPUs on a GPU machine, CPU processes (gloo) on a CPU-only one.
    """

    output_uri: str = ""
    d2_cfg_path: str = ""
    d2_opts: tuple[str | int | float | bool, ...] = ()
    data: DataConfig = field(default_factory=DataConfig)
    train_name: str = "ytvis_wsovvis_train"
    val_name: str = "ytvis_wsovvis_val"
    eval_only: bool = False
    resume: bool = False
    trainer: str = "seqformer"
    device: str = "auto"
    num_gpus: int | None = None
    num_machines: int | None = None
    machine_rank: int | None = None
    dist_url: str | None = None
    scratch_dir: str | None = None

    def __post_init__(self) -> None:
        if not self.output_uri:
            raise UsageError(
                "config: 'output_uri' is required (a local folder or s3:// prefix for checkpoints)"
            )
        check_dataset_name("train_name", self.train_name)
        check_dataset_name("val_name", self.val_name)
        if self.train_name == self.val_name:
            raise UsageError(
                f"config: train_name and val_name are both {self.train_name!r}; give them different names"
            )
        if len(self.d2_opts) % 2:
            raise UsageError(
                f"config: d2_opts must be KEY VALUE pairs, got an odd number of items: {list(self.d2_opts)}"
            )
        opts = [str(item) for item in self.d2_opts]
        for key in opts[0::2]:
            if not key or key != key.strip() or " " in key:
                raise UsageError(
                    f"config: d2_opts key {key!r} is not a detectron2 config key like SOLVER.MAX_ITER"
                )
        object.__setattr__(self, "d2_opts", tuple(opts))
        if self.device not in DEVICES:
            raise UsageError(f"config: device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        for name in ("num_gpus", "num_machines"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(f"config: {name} must be >= 1, got {value}")
        if self.machine_rank is not None and self.machine_rank < 0:
            raise UsageError(f"config: machine_rank must be >= 0, got {self.machine_rank}")
        data = self.data
        if self.eval_only:
            missing = [k for k in ("val_json", "val_img_root") if not getattr(data, k)]
            if missing:
                raise UsageError(f"config: eval_only needs data.{' and data.'.join(missing)}")
        else:
            missing = [k for k in ("train_json", "train_img_root") if not getattr(data, k)]
            if missing:
                raise UsageError(f"config: training needs data.{' and data.'.join(missing)}")
        if bool(data.val_json) != bool(data.val_img_root):
            raise UsageError("config: give both data.val_json and data.val_img_root, or neither")

    def opts_value(self, key: str) -> str | None:
        """The last value ``d2_opts`` gives ``key``, or None."""
        value = None
        for opt_key, opt_value in zip(self.d2_opts[0::2], self.d2_opts[1::2], strict=True):
            if opt_key == key:
                value = opt_value
        return value

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["d2_opts"] = list(self.d2_opts)
        return data


def check_dataset_name(key: str, name: str) -> None:
    if not name.startswith(DATASET_PREFIX):
        raise UsageError(
            f"config: {key} {name!r} must start with {DATASET_PREFIX!r}: SeqFormer picks its YTVIS data mapper "
            f"by that prefix (for example {DATASET_PREFIX}wsovvis_train)"
        )
    if name in VNEXT_BUILTIN_DATASETS:
        raise UsageError(
            f"config: {key} {name!r} is one of VNext's built-in dataset names, whose metadata would be used "
            f"instead of this data's; choose another (for example {DATASET_PREFIX}wsovvis_train)"
        )


def parse_value(text: str) -> Any:
    """A command-line value as Sacred reads it (a Python literal), else YAML, else the string itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``update``; nested mappings are merged key by key."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def apply_update(data: dict[str, Any], assignment: str) -> dict[str, Any]:
    """Apply one ``dotted.key=value`` update."""
    key, sep, text = assignment.partition("=")
    if not sep or not key:
        raise UsageError(f"config update {assignment!r} is not KEY=VALUE")
    *parents, leaf = key.split(".")
    update: dict[str, Any] = {leaf: parse_value(text)}
    for parent in reversed(parents):
        update = {parent: update}
    return merge(data, update)


def is_config_file(word: str) -> bool:
    return "=" not in word and word.lower().endswith((".yaml", ".yml", ".json"))


def load_config(words: Sequence[str]) -> TrainConfig:
    """Build the config from the words after ``with``: config files (YAML/JSON, local or S3) and KEY=VALUE."""
    data: dict[str, Any] = {}
    sources = []
    for word in words:
        if is_config_file(word):
            try:
                loaded = yaml.safe_load(storage.read_text(word))
            except yaml.YAMLError as exc:
                raise UsageError(f"{word}: not valid YAML: {exc}") from exc
            if loaded is None:
                loaded = {}
            if not isinstance(loaded, dict):
                raise UsageError(f"{word}: a config file holds a mapping, got {type(loaded).__name__}")
            data = merge(data, loaded)
            sources.append(word)
        elif "=" in word:
            data = apply_update(data, word)
            sources.append("command line")
        else:
            raise UsageError(f"{word!r} is neither a config file (.yaml/.yml/.json) nor a KEY=VALUE update")
    return from_mapping(TrainConfig, data, source=" + ".join(dict.fromkeys(sources)) or "config")
