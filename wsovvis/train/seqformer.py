"""SeqFormer (VNext's detectron2 project) as a harness :class:`~wsovvis.train.trainers.Trainer`.

The detectron2 config is ``d2_cfg_path`` (a local file: ``_BASE_`` includes are resolved beside it) merged with
``d2_opts``; the harness then sets what it owns: ``OUTPUT_DIR`` (the local output folder; for eval-only its
``eval/`` subfolder, so the run's ``config.yaml`` and ``log.txt`` do not overwrite training's), ``MODEL.WEIGHTS``
(the staged weights), ``MODEL.DEVICE``, ``DATASETS.TRAIN``/``TEST`` (our registered names; the test list is
never empty because SeqFormer reads ``DATASETS.TEST[0]`` when it builds the model) and
``MODEL.SeqFormer.NUM_CLASSES`` (the number of categories in the JSON: 1 for class-agnostic data; SeqFormer's
default is 80).

Training uses VNext's own ``Trainer`` (``projects/SeqFormer/train_net.py``) with three changes: evaluation
writes YTVIS results through the project's code instead of VNext's evaluator (which needs
``pycocotools.ytvos`` and writes nothing when there are no predictions), the end-of-training evaluation runs
only if ``TEST.EVAL_PERIOD`` asks for evaluation, and a hook records losses in the Sacred run, syncs each new
checkpoint to ``output_uri`` and stops on SIGTERM after writing a checkpoint.

Processes: on GPUs detectron2's ``launch`` (NCCL). detectron2's trainer wraps the model in DDP with
``device_ids``, which CPU modules reject, so on CPU SeqFormer runs as a single process.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import logging
from pathlib import Path
from typing import Any

import numpy as np

from wsovvis import rle
from wsovvis.errors import InputError, RuntimeMissingError, UsageError
from wsovvis.train import distributed, staging
from wsovvis.train.config import TrainConfig
from wsovvis.train.datasets import num_categories, register_detectron2
from wsovvis.train.distributed import DistPlan
from wsovvis.train.trainers import RunContext, Trainer

log = logging.getLogger(__name__)

NUM_CLASSES_KEY = "MODEL.SeqFormer.NUM_CLASSES"
METRICS_PERIOD = 20
EVAL_SUBDIR = "eval"  # eval-only runs' own OUTPUT_DIR, inside the training output folder
# Recorded in the Sacred run: the weighted total and the last decoder layer's terms (the _0.._n aux terms are
# in detectron2's own metrics.json).
RECORDED_SCALARS = ("total_loss", "loss_ce", "loss_bbox", "loss_giou", "loss_mask", "loss_dice", "lr")


def import_seqformer() -> Any:
    """VNext's ``detectron2.projects.seqformer`` package, or a RuntimeMissingError saying what to install.

    SeqFormer imports ``pycocotools.ytvos``, which PyPI's pycocotools lacks: the runtime hook that ``wsovvis prepare``
    installs provides it, with the other import fixes of the runtime (docs/dev/runtime.md).
    """
    try:
        import detectron2  # noqa: F401
    except ImportError as exc:
        raise RuntimeMissingError(
            "the SeqFormer trainer needs VNext's detectron2 (the GPU runtime image, or `wsovvis prepare`)"
        ) from exc
    try:
        import detectron2.projects.seqformer as seqformer
    except ImportError as exc:
        raise RuntimeMissingError(
            f"detectron2.projects.seqformer is not importable ({exc}); run `wsovvis prepare` in this environment "
            "(docs/dev/runtime.md)"
        ) from exc
    return seqformer


@functools.lru_cache(maxsize=1)
def vnext_train_net() -> Any:
    """VNext's ``projects/SeqFormer/train_net.py`` (its ``Trainer`` class), imported from beside the package."""
    seqformer = import_seqformer()
    path = Path(seqformer.__file__).resolve().parents[1] / "train_net.py"
    if not path.is_file():
        raise RuntimeMissingError(
            f"VNext's SeqFormer train_net.py is not at {path}; is VNext installed in place?"
        )
    spec = importlib.util.spec_from_file_location("wsovvis_vnext_seqformer_train_net", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_cfg(config: TrainConfig, ctx: RunContext | None = None) -> Any:
    """The detectron2 config; with ``ctx``, also the settings the harness owns (see the module docstring)."""
    from detectron2.config import get_cfg

    seqformer = import_seqformer()
    cfg = get_cfg()
    seqformer.add_seqformer_config(cfg)
    cfg.merge_from_file(config.d2_cfg_path)
    cfg.merge_from_list(list(config.d2_opts))
    if ctx is not None:
        dataset = ctx.val_data if config.eval_only else ctx.train_data
        classes = num_categories(dataset.json_path)
        if classes < 1:
            raise InputError(
                f"{dataset.json_path}: no categories; SeqFormer needs at least one (class-agnostic: 1)"
            )
        asked = config.opts_value(NUM_CLASSES_KEY)
        if asked is not None and int(asked) != classes:
            raise UsageError(
                f"d2_opts sets {NUM_CLASSES_KEY} {asked}, but {dataset.json_path} has {classes} categories; drop it "
                "from d2_opts (the harness takes it from the JSON)"
            )
        cfg.MODEL.SeqFormer.NUM_CLASSES = classes
        cfg.OUTPUT_DIR = str(ctx.output_dir / EVAL_SUBDIR if config.eval_only else ctx.output_dir)
        cfg.MODEL.WEIGHTS = ctx.weights
        cfg.MODEL.DEVICE = ctx.plan.device
        cfg.DATASETS.TRAIN = () if ctx.train_data is None else (ctx.train_data.name,)
        cfg.DATASETS.TEST = (ctx.val_data.name if ctx.val_data is not None else ctx.train_data.name,)
    cfg.freeze()
    return cfg


def to_ytvis_results(
    video_id: int, output: dict[str, Any], contiguous_to_dataset: dict[int, int]
) -> list[dict[str, Any]]:
    """SeqFormer's per-video output (pred_scores, pred_labels, pred_masks T×H×W) as YTVIS results."""
    results = []
    for score, label, masks in zip(
        output["pred_scores"], output["pred_labels"], output["pred_masks"], strict=True
    ):
        frames = np.asarray(masks.cpu().numpy() if hasattr(masks, "cpu") else masks, dtype=np.uint8)
        results.append(
            {
                "video_id": video_id,
                "score": float(score),
                "category_id": contiguous_to_dataset[int(label)],
                "segmentations": [rle.encode_mask(frame) for frame in frames],
            }
        )
    return results


def _results_evaluator(dataset_name: str) -> Any:
    """A detectron2 DatasetEvaluator collecting YTVIS results; ``.results`` holds all ranks' on the main one."""
    from detectron2.data import MetadataCatalog
    from detectron2.evaluation import DatasetEvaluator

    id_map = MetadataCatalog.get(dataset_name).thing_dataset_id_to_contiguous_id
    contiguous_to_dataset = {contiguous: dataset_id for dataset_id, contiguous in id_map.items()}

    class YTVISResults(DatasetEvaluator):
        def reset(self) -> None:
            self.predictions: list[dict[str, Any]] = []
            self.results: list[dict[str, Any]] | None = None

        def process(self, inputs: list[dict[str, Any]], outputs: dict[str, Any]) -> None:
            (video,) = inputs
            self.predictions.extend(to_ytvis_results(video["video_id"], outputs, contiguous_to_dataset))

        def evaluate(self) -> dict[str, Any]:
            gathered = distributed.gather_to_main(self.predictions)
            self.results = None if gathered is None else [r for part in gathered for r in part]
            if self.results is not None:
                log.info("%s: %d predicted instances", dataset_name, len(self.results))
            return {}

    evaluator = YTVISResults()
    evaluator.reset()
    return evaluator


def _harness_hook(ctx: RunContext) -> Any:
    from detectron2.engine import HookBase

    class HarnessHook(HookBase):
        """Losses to Sacred, new checkpoints to output_uri, and a checkpoint then a stop on SIGTERM."""

        def __init__(self) -> None:
            self._marker_mtime: int | None = None

        def after_step(self) -> None:
            trainer = self.trainer
            iteration = trainer.iter
            if ctx.is_main:
                if (
                    iteration == 0
                    or (iteration + 1) % METRICS_PERIOD == 0
                    or iteration + 1 == trainer.max_iter
                ):
                    for name in RECORDED_SCALARS:
                        if name in trainer.storage.histories():
                            ctx.log_scalar(name, trainer.storage.history(name).latest(), iteration)
                marker = ctx.output_dir / staging.LAST_CHECKPOINT
                mtime = marker.stat().st_mtime_ns if marker.exists() else None
                if mtime != self._marker_mtime:
                    self._marker_mtime = mtime
                    ctx.sync_outputs()
            if ctx.stop_requested():
                ctx.preempt(
                    lambda: trainer.checkpointer.save(f"model_{iteration:07d}", iteration=iteration),
                    iteration,
                )

    return HarnessHook()


class SeqFormerTrainer(Trainer):
    def check(self, config: TrainConfig) -> None:
        if not config.d2_cfg_path:
            raise UsageError(
                "config: d2_cfg_path is required for the seqformer trainer (a detectron2 YAML config)"
            )
        if "://" in config.d2_cfg_path:
            raise UsageError(
                f"config: d2_cfg_path {config.d2_cfg_path} must be a local file (its _BASE_ includes are read beside "
                "it); put overrides in d2_opts"
            )
        staging.check_input(config.d2_cfg_path, "d2_cfg_path")

    def weights(self, config: TrainConfig) -> str:
        return build_cfg(config).MODEL.WEIGHTS

    def check_plan(self, plan: DistPlan) -> None:
        if plan.device != "cuda" and plan.world_size > 1:
            raise UsageError(
                "SeqFormer trains on CPU as one process only (detectron2's trainer builds DDP for GPUs); "
                "set num_gpus=1 and num_machines=1, or run on GPUs"
            )

    def _setup(self, ctx: RunContext) -> tuple[Any, Any]:
        from detectron2.engine import default_setup

        for dataset in (ctx.train_data, ctx.val_data):
            if dataset is not None:
                register_detectron2(dataset)
        cfg = build_cfg(ctx.config, ctx)
        default_setup(
            cfg, argparse.Namespace(config_file=ctx.config.d2_cfg_path, eval_only=ctx.config.eval_only)
        )
        return cfg, self._trainer_class(ctx)

    def _trainer_class(self, ctx: RunContext) -> type:
        from detectron2.engine import hooks

        base = vnext_train_net().Trainer

        class HarnessTrainer(base):
            @classmethod
            def build_evaluator(cls, cfg: Any, dataset_name: str, output_folder: str | None = None) -> Any:
                return _results_evaluator(dataset_name)

            def build_hooks(self) -> list[Any]:
                built = super().build_hooks()
                if self.cfg.TEST.EVAL_PERIOD <= 0:
                    built = [hook for hook in built if not isinstance(hook, hooks.EvalHook)]
                return [*built, _harness_hook(ctx)]

        return HarnessTrainer

    def train(self, ctx: RunContext) -> None:
        cfg, trainer_class = self._setup(ctx)
        trainer = trainer_class(cfg)
        trainer.resume_or_load(resume=ctx.config.resume)
        if trainer.start_iter:
            log.info("resuming at iteration %d", trainer.start_iter)
        trainer.train()

    def evaluate(self, ctx: RunContext) -> list[dict[str, Any]] | None:
        from detectron2.checkpoint import DetectionCheckpointer
        from detectron2.evaluation import inference_on_dataset

        cfg, trainer_class = self._setup(ctx)
        model = trainer_class.build_model(cfg)
        # The checkpoints are in the training output folder, one level above this run's OUTPUT_DIR.
        DetectionCheckpointer(model, save_dir=str(ctx.output_dir)).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=ctx.config.resume
        )
        dataset_name = cfg.DATASETS.TEST[0]
        evaluator = _results_evaluator(dataset_name)
        inference_on_dataset(model, trainer_class.build_test_loader(cfg, dataset_name), evaluator)
        return evaluator.results
