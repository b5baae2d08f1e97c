"""The contract between the harness and a model's trainer, and how a trainer is named in the config.

The harness does everything around training (distributed launch, staging, Sacred, checkpoint sync,
preemption); a :class:`Trainer` does the model-specific part in every process. ``trainer`` in the config is a
built-in name (``seqformer``) or an import path ``package.module:ClassName``: the spawned workers import it
again by that path, so a trainer registered only in memory would not reach them.
"""

from __future__ import annotations

import abc
import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsovvis.errors import UsageError, WsovvisError
from wsovvis.train import distributed
from wsovvis.train.config import TrainConfig
from wsovvis.train.datasets import StagedDataset
from wsovvis.train.distributed import DistPlan
from wsovvis.train.staging import OutputSync
from wsovvis.train.tracking import SacredRun

log = logging.getLogger(__name__)

BUILTIN_TRAINERS = {"seqformer": "wsovvis.train.seqformer:SeqFormerTrainer"}


class Preempted(WsovvisError):
    """Training stopped on SIGTERM after writing a checkpoint; rerun with resume=True to continue."""

    exit_code = 143  # 128 + SIGTERM, what a process killed by SIGTERM reports


@dataclass
class RunContext:
    """What one training process knows about its run."""

    config: TrainConfig
    plan: DistPlan
    global_rank: int
    local_rank: int
    output_dir: Path
    weights: str
    train_data: StagedDataset | None
    val_data: StagedDataset | None
    recorder: SacredRun | None = None
    output_sync: OutputSync | None = None

    @property
    def is_main(self) -> bool:
        return self.global_rank == 0

    def log_scalar(self, name: str, value: float, step: int) -> None:
        """Record a metric in the Sacred run (on the main process; a no-op elsewhere)."""
        if self.recorder is not None:
            self.recorder.log_scalar(name, value, step)

    def sync_outputs(self) -> None:
        """Mirror the output folder and the Sacred run to their URIs (main process only)."""
        if self.output_sync is not None:
            self.output_sync.sync()
        if self.recorder is not None:
            self.recorder.sync()

    def stop_requested(self) -> bool:
        """True on every process once any process got SIGTERM. A collective: call it on every rank each step."""
        return distributed.any_rank(distributed.stop_request.requested)

    def preempt(self, save_checkpoint: Callable[[], None], iteration: int) -> None:
        """Write a checkpoint (main process), sync it, and raise :class:`Preempted` on every process."""
        if self.is_main:
            save_checkpoint()
            self.sync_outputs()
        distributed.barrier()
        raise Preempted(
            f"stopped by SIGTERM after iteration {iteration}; the checkpoint is in {self.config.output_uri}: "
            "rerun with resume=True to continue"
        )


class Trainer(abc.ABC):
    """A model's training and inference, run in every process by the harness."""

    def check(self, config: TrainConfig) -> None:  # noqa: B027 - optional hook
        """Validate trainer-specific settings before any work starts (raise UsageError/InputError)."""

    def weights(self, config: TrainConfig) -> str:
        """``MODEL.WEIGHTS`` as configured (before staging): '' for random initialisation."""
        return config.opts_value("MODEL.WEIGHTS") or ""

    def check_plan(self, plan: DistPlan) -> None:  # noqa: B027 - optional hook
        """Refuse a distributed layout the trainer cannot run (raise UsageError) before any process starts."""

    @abc.abstractmethod
    def train(self, ctx: RunContext) -> None:
        """Train from ``ctx.weights`` (or the newest checkpoint in ``ctx.output_dir`` when resuming).

        Write checkpoints into ``ctx.output_dir`` in detectron2's layout and call ``ctx.sync_outputs()`` after
        each; call ``ctx.stop_requested()`` once per step and ``ctx.preempt(...)`` when it is true.
        """

    @abc.abstractmethod
    def evaluate(self, ctx: RunContext) -> list[dict[str, Any]] | None:
        """Predict ``ctx.val_data``; return the YTVIS results of all processes on the main one (None elsewhere)."""


def load_trainer(spec: str) -> Trainer:
    """The trainer named by a built-in name or a ``module:Class`` path."""
    path = BUILTIN_TRAINERS.get(spec, spec)
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(
            f"config: trainer {spec!r} is neither a built-in trainer ({', '.join(BUILTIN_TRAINERS)}) "
            "nor an import path like package.module:ClassName"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"config: trainer {spec!r}: cannot import {module_name} ({exc})") from exc
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Trainer)):
        raise UsageError(f"config: trainer {spec!r}: {module_name} has no Trainer subclass named {attr}")
    return cls()
