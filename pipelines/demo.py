"""``wsovvis demo``: the whole pipeline, locally, on a small generated static-camera dataset with GT.

A front door on top of the library: it runs the pipeline (:mod:`.local`), so it lives beside it, not in ``wsovvis``."""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path
from typing import Any

from wsovvis import jsonio, storage, synth
from wsovvis.cliutil import add_flag, positive_int
from wsovvis.errors import WsovvisError
from wsovvis.evaluate import stats_line
from wsovvis.evaluate.step import OUTPUT_VERSION as EVALUATE_OUTPUT_VERSION
from wsovvis.maskgen.cli import RANDOM_WEIGHTS
from wsovvis.train.config import CPU_SEQFORMER_OPTS
from wsovvis.workspace import stage_root

log = logging.getLogger(__name__)

SHOWN_STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100")


def seqformer_config() -> str:
    """VNext's SeqFormer config where ``wsovvis prepare`` set the runtime up in this interpreter, else ''."""
    from wsovvis.prepare.hook import installed_config

    config = installed_config()
    if config is None:
        return ""
    return str(Path(config["sources"]["vnext"]) / "projects/SeqFormer/configs/base_ytvis.yaml")


def demo_params(frames_root: str, gt_json: str, work_root: str, num_shards: int) -> dict[str, Any]:
    """Pipeline parameters for a CPU-only local run: motion masks, a tiny local training where SeqFormer is set up."""
    params: dict[str, Any] = {
        "frames_root": frames_root,
        "work_root": work_root,
        "train_gt_json": gt_json,
        "val_frames_root": frames_root,
        "val_gt_json": gt_json,
        "num_shards": num_shards,
        "mask_backend": "motion",
        "mask_device": "cpu",
        "min_masks": 3,
        "min_coverage": 0.2,
        "train_launcher": "local",
        "d2_opts": [str(item) for pair in CPU_SEQFORMER_OPTS.items() for item in pair],
    }
    if config := seqformer_config():
        params["d2_cfg_path"] = config
    return params


def container_demo_params(frames_root: str, gt_json: str, num_shards: int) -> dict[str, Any]:
    """Parameters for the demo in containers: VideoCutLER masks (random weights, every top-10 instance kept, the
    runtime image's CPU flavour) and the tiny SeqFormer trained with the local launcher in the runtime image."""
    params = demo_params(frames_root, gt_json, "", num_shards)
    params.pop("work_root")
    params.pop("d2_cfg_path", None)  # the pipeline's default: VNext's config inside the runtime image
    return {**params, "mask_backend": "videocutler", "mask_weights": RANDOM_WEIGHTS, "confidence": 0.0}


def run_demo(
    out: str | os.PathLike[str],
    num_videos: int = 6,
    num_shards: int = 2,
    seed: int = 0,
    containers: bool = False,
) -> dict[str, Any]:
    """Generate the dataset, run the pipeline locally (in subprocesses, or every step in its image), return the
    pseudo-tube metrics (and say where they are)."""
    from .local import run_in_containers, run_local

    out = Path(out).resolve()
    started = time.monotonic()
    # VideoCutLER on the CPU takes seconds per frame: shorter videos in containers
    frames = {"min_frames": 6, "max_frames": 10} if containers else {}
    dataset = synth.make_dataset(out / "data", num_videos=num_videos, seed=seed, **frames)
    log.info("demo: %d videos with ground truth under %s", num_videos, out / "data")
    if containers:
        params = container_demo_params(dataset.frames_root, dataset.gt_json, num_shards)
        work_root = str(run_in_containers(params, out))
    else:
        work_root = str(out / "work")
        params = demo_params(dataset.frames_root, dataset.gt_json, work_root, num_shards)
        run_local(params, out / "kfp")
    evaluations = print_evaluations(work_root, "wsovvis demo")
    if "pseudo tubes" not in evaluations:
        raise WsovvisError(
            f"demo: the pipeline finished but wrote no pseudo-tube evaluation under {work_root}"
        )
    if "model" not in evaluations:
        print(
            "\n(no model evaluation: training was skipped because the SeqFormer runtime is not installed here)"
        )
    print(f"\nfinished in {time.monotonic() - started:.0f} s")
    return evaluations["pseudo tubes"][1]


def print_evaluations(work_root: str, who: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """Print each evaluation under the work root (the headline stats, where metrics.json and report.html are)."""
    evaluations = _evaluations(work_root)
    for label, (metrics_uri, metrics) in evaluations.items():
        print(f"\n{who}: {label} vs ground truth, {metrics['mode']}, {metrics['num_videos']} videos")
        print("  " + stats_line(metrics, SHOWN_STATS, digits=3))
        print(f"  metrics: {metrics_uri}")
        print(f"  report:  {storage.join(metrics_uri.rsplit('/', 1)[0], 'report.html')}")
    return evaluations


def _evaluations(work_root: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """The evaluate step's outputs by what was scored: the convert output's tubes, or the model's results."""
    root = stage_root(work_root, "evaluate", EVALUATE_OUTPUT_VERSION)
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for folder in storage.listdir(root)[0] if storage.exists(root) else []:
        metrics_uri = storage.join(root, folder, "metrics.json")
        metrics = jsonio.read_json(metrics_uri)
        label = "pseudo tubes" if str(metrics["results"]).endswith("/tubes.json") else "model"
        found[label] = (metrics_uri, metrics)
    return dict(sorted(found.items(), reverse=True))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="generate a small dataset and run the whole pipeline locally; print AP",
        description="Generate a small static-camera dataset with ground truth, run the whole pipeline with "
        "kfp.local (motion masks on the CPU; training only where the SeqFormer runtime is installed), print the "
        "metrics and where the report is.",
    )
    add_flag(parser, "--out", default="out/demo", help="output folder (default out/demo)")
    add_flag(parser, "--videos", type=positive_int, default=6)
    add_flag(parser, "--shards", type=positive_int, default=2)
    add_flag(parser, "--seed", type=int, default=0)
    parser.add_argument(
        "--containers",
        action="store_true",
        help="run every step in its image (`pipeline run --local --containers`): VideoCutLER masks with random "
        "weights and the tiny SeqFormer in the runtime image's CPU flavour (`make images` builds them)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    run_demo(args.out, args.videos, args.shards, args.seed, containers=args.containers)
    return 0
