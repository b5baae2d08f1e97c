"""mask-gen's pipeline step: one shard of masks under a masks root derived from what determines the masks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wsovvis import jsonio
from wsovvis.maskgen.cli import build_backend
from wsovvis.maskgen.run import MaskGenConfig, mask_gen
from wsovvis.workspace import stage_uri

OUTPUT_VERSION = 1  # bump when a change makes mask-gen write different masks (see wsovvis.workspace)


def masks_root(
    *, work_root: str, frames_root: str, backend: str, config: str, weights: str, confidence: float
) -> str:
    """Where mask-gen writes: keyed by what determines the masks, not by the sharding (a re-plan resumes)."""
    return stage_uri(
        work_root,
        "masks",
        OUTPUT_VERSION,
        frames_root=frames_root,
        backend=backend,
        config=config,
        weights=weights,
        confidence=confidence,
    )


def mask_gen_step(
    *,
    shard: dict[str, Any],
    frames_root: str,
    work_root: str,
    backend: str,
    config: str,
    weights: str,
    confidence: float,
    device: str,
    max_errors: float,
    report_path: str,
    log_metric: Callable[[str, float], object],
) -> str:
    """Masks for one shard under the masks root; the shard report also goes to the artifact. Returns the root.

    ``shard`` is one of plan-shards' items: ``{"index": k, "manifest_uri": URI}``.

    The counts (videos done, empty, failed, skipped as done by an earlier run; frames per second) go to
    ``log_metric(name, value)`` (KFP's ``Metrics.log_metric`` in the component).
    """
    out_root = masks_root(
        work_root=work_root,
        frames_root=frames_root,
        backend=backend,
        config=config,
        weights=weights,
        confidence=confidence,
    )
    mask_backend = build_backend(
        backend, config=config or None, weights=weights or None, confidence=confidence, device=device
    )
    report = mask_gen(
        MaskGenConfig(
            manifest=shard["manifest_uri"],
            shard=int(shard["index"]),
            frames_root=frames_root,
            out_root=out_root,
            max_errors=max_errors,
        ),
        mask_backend,
    )
    jsonio.write_json(report_path, report.to_json())
    earlier = sum(o.earlier_run for o in report.outcomes)
    counts = {
        "videos_done": len(report.ids("done")),
        "videos_empty": len(report.ids("empty")),
        "videos_failed": len(report.failed),
        "videos_skipped": earlier,
        "frames_per_second": round(report.frames_per_second, 2),
    }
    for name, value in counts.items():
        log_metric(name, value)
    return out_root
