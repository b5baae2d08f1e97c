"""``wsovvis train``: one training (or eval-only) run under the harness, on one machine of a job.

In the launching process: validate the config and every input (a missing file fails here, before any
process or GPU starts), work out the distributed layout, then launch one process per local device.
In each process: stage inputs (local rank 0 of each machine; the rest wait), fetch the newest checkpoint when
resuming, and run the trainer; the global main process does so inside the Sacred run and mirrors outputs.

Local layout under the scratch folder (``scratch_dir``, else ``$WSOVVIS_SCRATCH``, else the system temp
folder): ``data/`` staged inputs, ``output/<run key>/`` the trainer's output folder, ``sacred/<run key>/``
Sacred's file observer; ``<run key>`` is derived from ``output_uri``.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from wsovvis import storage, ytvis
from wsovvis.errors import RuntimeMissingError
from wsovvis.logs import setup_logging
from wsovvis.train import distributed, staging, tracking
from wsovvis.train.config import TrainConfig
from wsovvis.train.datasets import StagedDataset
from wsovvis.train.distributed import DistPlan, plan_distributed, stop_request
from wsovvis.train.staging import LAST_CHECKPOINT, OutputSync
from wsovvis.train.trainers import Preempted, RunContext, Trainer, load_trainer

log = logging.getLogger(__name__)

RESULTS_FILE = "results.json"


@dataclass(frozen=True)
class WorkerJob:
    """Everything a spawned process needs (picklable)."""

    config: TrainConfig
    plan: DistPlan
    runs_uri: str
    weights: str
    log_level: int


def default_runs_uri(config: TrainConfig) -> str:
    return storage.join(config.output_uri, "sacred")


def check_inputs(config: TrainConfig, trainer: Trainer) -> str:
    """Fail on anything missing before work starts; returns ``MODEL.WEIGHTS`` as configured."""
    data = config.data
    if not config.eval_only:
        staging.check_input(data.train_json, "data.train_json")
        staging.check_input(data.train_img_root, "data.train_img_root", folder=True)
    if data.val_json:
        staging.check_input(data.val_json, "data.val_json")
        staging.check_input(data.val_img_root, "data.val_img_root", folder=True)
    trainer.check(config)
    weights = trainer.weights(config)
    staging.check_weights(weights)
    return weights


def train(config: TrainConfig, runs_uri: str | None = None) -> None:
    """Run training (or, with ``eval_only``, inference writing ``results.json``) on this machine's devices."""
    trainer = load_trainer(config.trainer)
    weights = check_inputs(config, trainer)
    try:
        import torch
    except ImportError as exc:
        raise RuntimeMissingError("wsovvis train needs torch: pip install 'wsovvis[train]'") from exc
    cuda_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    plan = plan_distributed(
        device=config.device,
        num_gpus=config.num_gpus,
        num_machines=config.num_machines,
        machine_rank=config.machine_rank,
        dist_url=config.dist_url,
        cuda_count=cuda_count,
    )
    trainer.check_plan(plan)
    log.info(
        "machine %d of %d, %d process(es) on %s, world size %d, %s",
        plan.machine_rank,
        plan.num_machines,
        plan.procs_per_machine,
        plan.device,
        plan.world_size,
        plan.dist_url,
    )
    job = WorkerJob(config, plan, runs_uri or default_runs_uri(config), weights, logging.getLogger().level)
    stop_request.install(forward_to_children=plan.world_size > 1)
    distributed.launch(plan, worker_main, args=(job,))
    if stop_request.requested:
        if config.eval_only:
            raise Preempted("eval-only run received SIGTERM; rerun it to be sure results.json is complete")
        raise Preempted(
            f"stopped by SIGTERM; the last checkpoint is in {config.output_uri}: rerun with resume=True to continue"
        )


def scratch_root(config: TrainConfig) -> Path:
    return Path(
        config.scratch_dir
        or os.environ.get("WSOVVIS_SCRATCH")
        or Path(tempfile.gettempdir()) / "wsovvis-train"
    )


def _stage(
    config: TrainConfig, data_dir: Path, *, download: bool
) -> tuple[StagedDataset | None, StagedDataset | None]:
    def one(name: str, json_uri: str, img_uri: str) -> StagedDataset | None:
        if not json_uri:
            return None
        if download:
            return StagedDataset(
                name, staging.stage_file(json_uri, data_dir), staging.stage_folder(img_uri, data_dir)
            )
        return StagedDataset(
            name, staging.staged_path(json_uri, data_dir), staging.staged_path(img_uri, data_dir, folder=True)
        )

    data = config.data
    train_data = None if config.eval_only else one(config.train_name, data.train_json, data.train_img_root)
    return train_data, one(config.val_name, data.val_json, data.val_img_root)


def _prepare_output_dir(config: TrainConfig, output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    if not config.resume:
        if storage.exists(storage.join(config.output_uri, LAST_CHECKPOINT)):
            log.warning(
                "%s already holds checkpoints; resume=False starts over and overwrites them",
                config.output_uri,
            )
        return
    name = staging.fetch_last_checkpoint(config.output_uri, output_dir)
    if name is None:
        # A stale local marker (from an earlier run on this scratch) must not be resumed from.
        (output_dir / LAST_CHECKPOINT).unlink(missing_ok=True)
        log.info("resume: no checkpoint in %s yet; starting from MODEL.WEIGHTS", config.output_uri)
    else:
        log.info("resume: continuing from %s", storage.join(config.output_uri, name))


def worker_main(job: WorkerJob) -> None:
    """The body of every training process (spawned, or this process when the world size is 1)."""
    config, plan = job.config, job.plan
    global_rank = distributed.get_rank()
    local_rank = plan.local_rank(global_rank)
    if plan.world_size > 1:
        # A fresh spawned process: nothing configured yet. Only the main process logs below WARNING.
        setup_logging(job.log_level if global_rank == 0 else max(job.log_level, logging.WARNING))
        stop_request.install()
    scratch = scratch_root(config)
    run_key = staging.scratch_name(config.output_uri)
    output_dir = scratch / "output" / run_key
    data_dir = scratch / "data"
    if local_rank == 0:
        train_data, val_data = _stage(config, data_dir, download=True)
        weights = staging.stage_weights(job.weights, data_dir, download=True)
        _prepare_output_dir(config, output_dir)
    distributed.barrier()
    if local_rank != 0:
        train_data, val_data = _stage(config, data_dir, download=False)
        weights = staging.stage_weights(job.weights, data_dir, download=False)
    ctx = RunContext(
        config=config,
        plan=plan,
        global_rank=global_rank,
        local_rank=local_rank,
        output_dir=output_dir,
        weights=weights,
        train_data=train_data,
        val_data=val_data,
        output_sync=OutputSync(output_dir, config.output_uri) if global_rank == 0 else None,
    )
    trainer = load_trainer(config.trainer)
    try:
        if global_rank == 0:
            info = {
                **tracking.provenance(),
                "output_uri": config.output_uri,
                "runs_uri": job.runs_uri,
                "distributed": asdict(plan),
            }
            tracking.run_with_sacred(
                lambda recorder: _run_stage(trainer, ctx, recorder),
                config=config.to_dict(),
                info=info,
                runs_uri=job.runs_uri,
                local_dir=scratch / "sacred" / run_key,
                is_preemption=lambda exc: isinstance(exc, Preempted),
            )
        else:
            _run_stage(trainer, ctx, None)
    except Preempted as exc:
        log.warning("%s", exc)


def _run_stage(trainer: Trainer, ctx: RunContext, recorder: tracking.SacredRun | None) -> int | None:
    ctx.recorder = recorder
    if not ctx.config.eval_only:
        trainer.train(ctx)
        ctx.sync_outputs()
        return None
    results = trainer.evaluate(ctx)
    if not ctx.is_main:
        return None
    if results is None:
        raise RuntimeError(f"trainer {ctx.config.trainer} returned no results on the main process")
    count = ytvis.write_results(ctx.output_dir / RESULTS_FILE, results)
    log.info("eval-only: %d results for %s", count, storage.join(ctx.config.output_uri, RESULTS_FILE))
    ctx.sync_outputs()
    return count
