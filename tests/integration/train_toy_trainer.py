"""A test-only trainer: a tiny torch model, trained and evaluated under the harness in place of SeqFormer.

It follows the same contract as the SeqFormer adapter (detectron2's checkpoint layout, ``d2_opts`` for its
settings) so the harness's distributed launch, staging, Sacred run, checkpoint sync, preemption and resume
can be tested without VNext. Each sample is a frame: features from the staged image's pixels, target the
normalised box. Options (``d2_opts``): SOLVER.MAX_ITER, SOLVER.CHECKPOINT_PERIOD, SOLVER.BASE_LR,
MODEL.WEIGHTS (a state dict), TOY.STEP_SECONDS (sleep per step), TOY.PARAMS_DIR (each rank writes its final
parameters there as ``rank<N>.json``).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from wsovvis import jsonio, rle, storage
from wsovvis.errors import UsageError
from wsovvis.train import distributed
from wsovvis.train.config import TrainConfig
from wsovvis.train.datasets import load_dataset_dicts
from wsovvis.train.staging import LAST_CHECKPOINT
from wsovvis.train.trainers import RunContext, Trainer

log = logging.getLogger(__name__)

OPTIONS = {
    "SOLVER.MAX_ITER": int,
    "SOLVER.CHECKPOINT_PERIOD": int,
    "SOLVER.BASE_LR": float,
    "MODEL.WEIGHTS": str,
    "TOY.STEP_SECONDS": float,
    "TOY.PARAMS_DIR": str,
}
DEFAULTS = {
    "SOLVER.MAX_ITER": 6,
    "SOLVER.CHECKPOINT_PERIOD": 3,
    "SOLVER.BASE_LR": 0.05,
    "TOY.STEP_SECONDS": 0.0,
}


def options(config: TrainConfig) -> dict[str, Any]:
    opts = dict(DEFAULTS)
    for key, value in zip(config.d2_opts[0::2], config.d2_opts[1::2], strict=True):
        if key not in OPTIONS:
            raise UsageError(f"toy trainer: unknown option {key}")
        opts[key] = OPTIONS[key](value)
    return opts


def build_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Linear(3, 4)


def samples(records: list[dict[str, Any]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    out = []
    for record in records:
        for frame, objects in enumerate(record["annotations"]):
            pixels = (
                np.asarray(Image.open(record["file_names"][frame]).convert("RGB"), dtype=np.float32) / 255.0
            )
            features = torch.tensor([pixels.mean(), frame / record["length"], 1.0])
            for obj in objects:
                x, y, w, h = obj["bbox"]
                target = torch.tensor(
                    [x / record["width"], y / record["height"], w / record["width"], h / record["height"]]
                )
                out.append((features, target))
    return out


class ToyTrainer(Trainer):
    def check(self, config: TrainConfig) -> None:
        options(config)

    def _model(self, ctx: RunContext) -> tuple[torch.nn.Module, torch.nn.Module]:
        model = build_model()
        weights = options(ctx.config).get("MODEL.WEIGHTS")
        if weights:
            model.load_state_dict(torch.load(ctx.weights, map_location="cpu"))
        wrapped = (
            torch.nn.parallel.DistributedDataParallel(model) if distributed.get_world_size() > 1 else model
        )
        return model, wrapped

    def train(self, ctx: RunContext) -> None:
        opts = options(ctx.config)
        model, wrapped = self._model(ctx)
        optimizer = torch.optim.SGD(model.parameters(), lr=opts["SOLVER.BASE_LR"])
        start = 0
        marker = ctx.output_dir / LAST_CHECKPOINT
        if ctx.config.resume and marker.exists():
            state = torch.load(ctx.output_dir / marker.read_text().strip(), map_location="cpu")
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start = state["iteration"] + 1
            log.info("resumed from iteration %d", state["iteration"])
        world, rank = distributed.get_world_size(), distributed.get_rank()
        shard = samples(load_dataset_dicts(ctx.train_data))[rank::world]

        def save(iteration: int) -> None:
            name = f"model_{iteration:07d}.pth"
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "iteration": iteration}
            torch.save(state, ctx.output_dir / name)
            storage.write_text(marker, name)

        for iteration in range(start, opts["SOLVER.MAX_ITER"]):
            features, target = shard[iteration % len(shard)]
            loss = torch.nn.functional.mse_loss(wrapped(features), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            ctx.log_scalar("loss", loss.item(), iteration)
            log.info("iteration %d loss %.6f", iteration, loss.item())
            period_end = (iteration + 1) % opts["SOLVER.CHECKPOINT_PERIOD"] == 0
            if ctx.is_main and (period_end or iteration + 1 == opts["SOLVER.MAX_ITER"]):
                save(iteration)
                ctx.sync_outputs()
            if ctx.stop_requested():
                ctx.preempt(lambda iteration=iteration: save(iteration), iteration)
            time.sleep(opts["TOY.STEP_SECONDS"])
        if opts.get("TOY.PARAMS_DIR"):
            params = {name: value.tolist() for name, value in model.state_dict().items()}
            jsonio.write_json(Path(opts["TOY.PARAMS_DIR"]) / f"rank{rank}.json", params)

    def evaluate(self, ctx: RunContext) -> list[dict[str, Any]] | None:
        model, _ = self._model(ctx)
        marker = ctx.output_dir / LAST_CHECKPOINT
        if ctx.config.resume and marker.exists():
            model.load_state_dict(
                torch.load(ctx.output_dir / marker.read_text().strip(), map_location="cpu")["model"]
            )
        world, rank = distributed.get_world_size(), distributed.get_rank()
        results = []
        with torch.no_grad():
            for record in load_dataset_dicts(ctx.val_data)[rank::world]:
                mask = np.zeros((record["height"], record["width"]), dtype=np.uint8)
                mask[: record["height"] // 2, : record["width"] // 2] = 1
                score = torch.sigmoid(model(torch.tensor([0.5, 0.0, 1.0]))).mean().item()
                results.append(
                    {
                        "video_id": record["video_id"],
                        "score": score,
                        "category_id": 1,
                        "segmentations": [rle.encode_mask(mask)] * record["length"],
                    }
                )
        gathered = distributed.gather_to_main(results)
        if gathered is None:
            return None
        return [result for part in gathered for result in part]


def read_params(params_dir: Path) -> dict[str, Any]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(params_dir.glob("rank*.json"))}


def record_rank_or_crash(crash_rank: int, out_dir: str) -> None:
    """A launch target: every rank records its ranks, then ``crash_rank`` fails while the others wait."""
    rank = distributed.get_rank()
    local = torch.distributed.get_rank(group=distributed.local_group())
    jsonio.write_json(Path(out_dir) / f"rank{rank}.json", {"rank": rank, "local_rank": local})
    if rank == crash_rank:
        raise RuntimeError("deliberate failure")
    distributed.barrier()
