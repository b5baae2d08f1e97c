"""``wsovvis mask-gen``: the command-line front door of the shard runner."""

from __future__ import annotations

import argparse
import dataclasses

from wsovvis import storage
from wsovvis.cliutil import add_flag, fraction
from wsovvis.config import load_yaml
from wsovvis.errors import UsageError
from wsovvis.maskgen.backend import Backend
from wsovvis.maskgen.run import MaskGenConfig, mask_gen

BACKENDS = ("videocutler", "motion")


RANDOM_WEIGHTS = "random"  # videocutler with a randomly initialised model: checks the chain, not the masks


def build_backend(
    name: str,
    *,
    config: str | None = None,
    weights: str | None = None,
    cutler_dir: str | None = None,
    confidence: float | None = None,
    device: str = "cuda",
    window: int = 80,
    overlap: int = 8,
) -> Backend:
    """The mask backend ``name`` with its settings (shared by the CLI and the pipeline step)."""
    if name == "motion":
        from wsovvis.maskgen.motion import MotionBackend, MotionOptions

        options = MotionOptions()
        if config:
            options = load_yaml(MotionOptions, storage.read_text(config), source=config)
        if confidence is not None:
            options = dataclasses.replace(options, confidence=confidence)
        return MotionBackend(options)
    if name != "videocutler":
        raise UsageError(f"mask-gen: unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    from wsovvis.maskgen.videocutler import VideoCutlerBackend, VideoCutlerOptions

    if not weights:
        raise UsageError(
            f"mask-gen --backend videocutler needs --weights (a .pth path or s3:// URI, or {RANDOM_WEIGHTS!r})"
        )
    return VideoCutlerBackend(
        VideoCutlerOptions(
            cutler_dir=cutler_dir,
            config_file=config,
            weights=None if weights == RANDOM_WEIGHTS else weights,
            confidence=0.6 if confidence is None else confidence,
            device=device,
            window=window,
            overlap=overlap,
        )
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "mask-gen",
        help="pseudo masks for every video of one shard (one tar per video, resumable)",
        description="Run a mask backend over every video of shard K of a plan-shards manifest and write "
        "<out_root>/<video_id>.tar, a done marker per video and <out_root>/_reports/shard-K.json. "
        "A rerun skips videos already done.",
    )
    add_flag(parser, "--manifest", required=True, help="shard manifest from plan-shards (path or s3:// URI)")
    add_flag(parser, "--shard", type=int, required=True, help="shard index K")
    add_flag(
        parser, "--frames_root", required=True, help="folder or s3:// prefix holding <video_id>/<frame>.jpg"
    )
    add_flag(parser, "--out_root", required=True, help="output folder or s3:// prefix")
    add_flag(parser, "--backend", choices=BACKENDS, required=True)
    add_flag(
        parser,
        "--config",
        help="videocutler: the detectron2 config (default: the CutLER checkout's "
        "videocutler/configs/imagenet_video/video_mask2former_R50_cls_agnostic.yaml); "
        "motion: a YAML of motion options (threshold, link_iou, ...)",
    )
    add_flag(
        parser,
        "--weights",
        help=f"videocutler: model weights (.pth path or s3:// URI; {RANDOM_WEIGHTS!r}: random init, for tests)",
    )
    add_flag(parser, "--cutler_dir", help="videocutler: CutLER checkout (default $WSOVVIS_CUTLER_DIR)")
    add_flag(
        parser, "--confidence", type=fraction, default=None, help="keep instances scoring at least this (0.6)"
    )
    add_flag(parser, "--device", default="cuda", help="videocutler: torch device (cuda, cuda:1, cpu)")
    add_flag(parser, "--window", type=int, default=80, help="videocutler: frames per forward pass")
    add_flag(
        parser, "--overlap", type=int, default=8, help="videocutler: frames shared by consecutive windows"
    )
    add_flag(parser, "--max_errors", type=fraction, default=0.05, help="fraction of videos allowed to fail")
    add_flag(parser, "--scratch", help="local folder for downloaded frames (default: the system temp dir)")
    add_flag(
        parser,
        "--prefetch",
        type=int,
        default=2,
        help="videos fetched and decoded ahead of the one being predicted, while the last one is written "
        "(memory: this many videos' frames + 2); 0 runs the videos one after another",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    backend = build_backend(
        args.backend,
        config=args.config,
        weights=args.weights,
        cutler_dir=args.cutler_dir,
        confidence=args.confidence,
        device=args.device,
        window=args.window,
        overlap=args.overlap,
    )
    mask_gen(
        MaskGenConfig(
            manifest=args.manifest,
            shard=args.shard,
            frames_root=args.frames_root,
            out_root=args.out_root,
            max_errors=args.max_errors,
            scratch=args.scratch,
            prefetch=args.prefetch,
        ),
        backend,
    )
    return 0
