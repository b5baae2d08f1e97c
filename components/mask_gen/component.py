"""mask-gen: pseudo masks for one shard (one GPU pod per ParallelFor iteration), resumable per video."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Output

from wsovvis.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def mask_gen(
    manifest: Input[Artifact],
    shard: int,
    frames_root: str,
    work_root: str,
    backend: str,
    config: str,
    weights: str,
    confidence: float,
    device: str,
    max_errors: float,
    report: Output[Artifact],
) -> str:
    """Run the backend over the shard's videos; return the masks root (the same for every shard)."""
    from wsovvis.maskgen.step import mask_gen_step

    return mask_gen_step(
        manifest_path=manifest.path,
        shard=shard,
        frames_root=frames_root,
        work_root=work_root,
        backend=backend,
        config=config,
        weights=weights,
        confidence=confidence,
        device=device,
        max_errors=max_errors,
        report_path=report.path,
    )
