"""convert's pipeline step: fan-in of the mask shards into one tube JSON under a root derived from its inputs."""

from __future__ import annotations

from dataclasses import asdict

from wsovvis import storage
from wsovvis.convert import ConvertOptions, convert, read_skip_list
from wsovvis.errors import UsageError
from wsovvis.workspace import stage_uri


def convert_step(
    *,
    mask_roots: list[str],
    img_root: str,
    work_root: str,
    split_name: str,
    skip_list: str,
    min_masks: int,
    min_coverage: float,
    link_iou: float,
    tubes_path: str,
    skip_report_path: str,
) -> str:
    """Convert to the tube JSON on storage (and as artifacts, with the skip report); return its URI.

    ``link_iou`` 0 = linker off.
    """
    roots = sorted(set(mask_roots))
    if len(roots) != 1:
        raise UsageError(
            f"convert: the mask shards wrote to {len(roots)} different roots {roots}; expected one"
        )
    options = ConvertOptions(
        split_name=split_name,
        skip_list=read_skip_list(skip_list or None),
        min_masks=min_masks,
        min_coverage=min_coverage,
        link_iou=link_iou or None,
    )
    out_dir = stage_uri(
        work_root, "tubes", mask_root=roots[0], img_root=img_root, **_options_key(options, skip_list)
    )
    out_json = storage.join(out_dir, "tubes.json")
    summary = convert(
        roots[0], img_root, out_json, options, skip_report=storage.join(out_dir, "skipped.json")
    )
    storage.download(out_json, tubes_path)
    storage.download(summary.skip_report, skip_report_path)
    return out_json


def _options_key(options: ConvertOptions, skip_list: str) -> dict[str, object]:
    key = {k: v for k, v in asdict(options).items() if k not in ("skip_list", "workers")}
    key["skip_list"] = skip_list
    return key
