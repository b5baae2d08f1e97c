"""make-agnostic: every annotation of a YTVIS dataset to one category, everything else kept."""

from __future__ import annotations

import argparse
import logging
import os
from collections import Counter

from wsovvis import storage, ytvis
from wsovvis.cliutil import add_flag
from wsovvis.workspace import stage_uri

log = logging.getLogger(__name__)


def make_agnostic(
    in_json: str | os.PathLike[str],
    out_json: str | os.PathLike[str],
    category_id: int = 1,
    category_name: str = "object",
) -> dict[str, int]:
    """Rewrite ``in_json`` with every annotation in category ``category_id``; returns counts for the log.

    The original categories are kept under ``info.original_categories`` so per-category numbers can still be
    traced back; ``categories`` becomes the single agnostic category.
    """
    data = ytvis.load_dataset(in_json)
    before = Counter(ann["category_id"] for ann in data.get("annotations", []))
    for ann in data.get("annotations", []):
        ann["category_id"] = category_id
    info = dict(data.get("info") or {})
    info["original_categories"] = data.get("categories", [])
    data["info"] = info
    data["categories"] = [{"id": category_id, "name": category_name}]
    ytvis.write_dataset(out_json, data)
    counts = {
        "videos": len(data["videos"]),
        "annotations": len(data.get("annotations", [])),
        "original_categories": len(before),
    }
    log.info(
        "make-agnostic: %(videos)d videos, %(annotations)d annotations from %(original_categories)d categories",
        counts,
    )
    log.info("wrote %s (category %d %r)", os.fspath(out_json), category_id, category_name)
    return counts


def make_agnostic_step(*, gt_json: str, work_root: str, agnostic_path: str) -> str:
    """The pipeline step: class-agnostic GT on storage (and as an artifact); returns its URI."""
    out_json = storage.join(stage_uri(work_root, "gt-agnostic", gt_json=gt_json), "gt_agnostic.json")
    make_agnostic(gt_json, out_json)
    storage.download(out_json, agnostic_path)
    return out_json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "make-agnostic",
        help="map every annotation of a YTVIS dataset to one category",
        description="Map every annotation of a YTVIS dataset JSON (path or s3:// URI) to one category.",
    )
    add_flag(parser, "--in_json", required=True, help="input YTVIS dataset JSON")
    add_flag(parser, "--out_json", required=True, help="output JSON (written atomically)")
    add_flag(parser, "--category_id", type=int, default=1)
    add_flag(parser, "--category_name", default="object")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    make_agnostic(args.in_json, args.out_json, args.category_id, args.category_name)
    return 0
