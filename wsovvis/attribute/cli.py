"""``wsovvis attribute``: the command-line front door of :func:`wsovvis.attribute.attribute`."""

from __future__ import annotations

import argparse

from wsovvis.cliutil import add_flag, fraction, positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "attribute",
        help="label class-agnostic tubes with vocabulary categories using CLIP (open_clip)",
        description=(
            "Give each class-agnostic tube its top-k categories of a vocabulary by CLIP similarity of its mask "
            "crops to prompt-ensembled category names; score = objectness^alpha * p^(1-alpha). Writes a YTVIS "
            "results list and <out>.meta.json. Paths or s3:// URIs. Downloaded weights and text embeddings are "
            "cached under $WSOVVIS_CACHE (default ~/.cache/wsovvis)."
        ),
    )
    add_flag(
        parser,
        "--results",
        required=True,
        help="class-agnostic tubes: a YTVIS results list, or a YTVIS dataset such as `wsovvis convert` tubes",
    )
    add_flag(parser, "--img_root", required=True, help="frames root (<img_root>/<file_name>)")
    add_flag(
        parser,
        "--vocab",
        required=True,
        help="YTVIS/LV-VIS dataset JSON (its categories; its videos locate a results list's frames) "
        "or a text file of category names, one a line",
    )
    add_flag(parser, "--out", required=True, help="output YTVIS results list JSON (written atomically)")
    add_flag(
        parser,
        "--clip_model",
        required=True,
        help="open_clip model name (e.g. ViT-B-32), or an open_clip model config JSON (path or s3://)",
    )
    add_flag(
        parser,
        "--clip_weights",
        required=True,
        help="CLIP checkpoint for that model: local path or s3:// URI",
    )
    add_flag(parser, "--topk", type=positive_int, default=5, help="categories kept per tube (default 5)")
    add_flag(
        parser,
        "--alpha",
        type=fraction,
        default=0.5,
        help="score = objectness^alpha * p^(1-alpha), alpha in [0, 1] (default 0.5)",
    )
    add_flag(parser, "--frames", type=positive_int, default=8, help="frames per tube (default 8)")
    add_flag(
        parser, "--batch", type=positive_int, default=64, help="crops per CLIP forward pass (default 64)"
    )
    add_flag(parser, "--device", choices=["cpu", "cuda"], default="cpu")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from wsovvis.attribute import AttributeOptions, attribute

    attribute(
        args.results,
        args.img_root,
        args.vocab,
        args.out,
        clip_model=args.clip_model,
        clip_weights=args.clip_weights,
        options=AttributeOptions(topk=args.topk, alpha=args.alpha, frames=args.frames, batch=args.batch),
        device=args.device,
    )
    return 0
