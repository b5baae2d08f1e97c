"""``wsovvis convert``: the seed tool's flags, snake or dash spelling."""

from __future__ import annotations

import argparse

from wsovvis.cliutil import add_flag, fraction
from wsovvis.convert import ConvertOptions, convert, read_skip_list


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="mask PNGs (folders or one tar per video) to one YTVIS tube JSON",
        description=(
            "Convert VideoCutLER-style mask PNGs <mask_root>/<video_id>/mask_<frame>.png (or <video_id>.tar) with "
            "frames <img_root>/<video_id>/<frame>.jpg into one YTVIS-style tube JSON. Paths may be s3:// URIs. "
            "Videos that cannot be converted are listed in the skip report; the run fails only when none converts."
        ),
    )
    add_flag(parser, "--mask_root", required=True, help="folder or prefix holding the masks")
    add_flag(parser, "--img_root", required=True, help="folder or prefix holding the frames")
    add_flag(parser, "--out_json", required=True, help="output tube JSON (written atomically)")
    add_flag(parser, "--split_name", default="", help="recorded in the JSON's info")
    add_flag(parser, "--skip_list", default=None, help="file of video ids to leave out, one per line")
    add_flag(parser, "--min_masks", type=int, default=3, help="fewest mask PNGs a video needs (default 3)")
    add_flag(
        parser, "--min_coverage", type=fraction, default=0.2, help="fewest mask PNGs / frames (default 0.2)"
    )
    add_flag(parser, "--skip_report", default=None, help="skip report JSON (default <out_json>.skipped.json)")
    add_flag(
        parser, "--link_iou", type=fraction, default=None, help="join fragmented ids at IoU >= this (off)"
    )
    add_flag(
        parser,
        "--workers",
        type=int,
        default=0,
        help="processes (default: one per CPU this container may use)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    options = ConvertOptions(
        split_name=args.split_name,
        skip_list=read_skip_list(args.skip_list),
        min_masks=args.min_masks,
        min_coverage=args.min_coverage,
        link_iou=args.link_iou,
        workers=args.workers,
    )
    summary = convert(args.mask_root, args.img_root, args.out_json, options, args.skip_report)
    print(summary.line())
    return 0
