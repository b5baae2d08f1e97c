"""``wsovvis evaluate``: the command-line front door of :func:`wsovvis.evaluate.evaluate`."""

from __future__ import annotations

import argparse

from wsovvis.cliutil import add_flag


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="YouTube-VIS AP/AR (and LV-VIS APb/APn) of results against a GT, with an HTML report",
        description=(
            "Score results (a YTVIS results list, or a YTVIS dataset such as `wsovvis convert` tubes) against a "
            "YTVIS GT exactly as the official youtubevos/cocoapi evaluator does. Paths or s3:// URIs."
        ),
    )
    add_flag(parser, "--gt", required=True, help="GT YTVIS dataset JSON")
    add_flag(
        parser,
        "--results",
        required=True,
        help="results list JSON, or a YTVIS dataset JSON (score 1.0 if absent)",
    )
    add_flag(
        parser,
        "--class_agnostic",
        action="store_true",
        help="ignore categories (useCats=0); every result counts, whatever its category_id",
    )
    add_flag(
        parser,
        "--allow_category_mismatch",
        action="store_true",
        help="score per category even results whose categories cannot be the GT's (all unknown to it, or one "
        "category for all where the GT has several), which evaluate otherwise refuses",
    )
    add_flag(
        parser,
        "--lvvis",
        action="store_true",
        help="LV-VIS evaluator semantics plus APb/APn from 'partition'",
    )
    add_flag(parser, "--out", help="metrics JSON to write")
    add_flag(parser, "--report", help="HTML report to write (report.md is written beside it)")
    add_flag(
        parser, "--img_root", help="frames root (<img_root>/<file_name>): adds frame strips to the report"
    )
    add_flag(
        parser,
        "--workers",
        type=int,
        help="processes to spread the work over (default: the CPUs of the container's quota and affinity)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from wsovvis.evaluate import evaluate

    evaluate(
        args.gt,
        args.results,
        class_agnostic=args.class_agnostic,
        lvvis=args.lvvis,
        allow_category_mismatch=args.allow_category_mismatch,
        out=args.out,
        report=args.report,
        img_root=args.img_root,
        workers=args.workers,
    )
    return 0
