"""mask-gen's pipeline step: one shard of masks under a masks root derived from what determines the masks."""

from __future__ import annotations

from wsovvis import storage
from wsovvis.maskgen.cli import build_backend
from wsovvis.maskgen.run import MaskGenConfig, mask_gen
from wsovvis.workspace import stage_uri


def masks_root(
    *, work_root: str, frames_root: str, backend: str, config: str, weights: str, confidence: float
) -> str:
    """Where mask-gen writes: keyed by what determines the masks, not by the sharding (a re-plan resumes)."""
    return stage_uri(
        work_root,
        "masks",
        frames_root=frames_root,
        backend=backend,
        config=config,
        weights=weights,
        confidence=confidence,
    )


def mask_gen_step(
    *,
    manifest_path: str,
    shard: int,
    frames_root: str,
    work_root: str,
    backend: str,
    config: str,
    weights: str,
    confidence: float,
    device: str,
    max_errors: float,
    report_path: str,
) -> str:
    """Masks for one shard under the masks root; the shard report also goes to the artifact. Returns the root."""
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
            manifest=manifest_path,
            shard=shard,
            frames_root=frames_root,
            out_root=out_root,
            max_errors=max_errors,
        ),
        mask_backend,
    )
    storage.write_json(report_path, report.to_json())
    return out_root
