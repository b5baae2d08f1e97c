"""attribute: CLIP (open_clip) labels for class-agnostic tubes, as a YTVIS results list for LV-VIS evaluation."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Output

from wsovvis.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def attribute(
    results_json: str,
    img_root: str,
    vocab_json: str,
    work_root: str,
    clip_model: str,
    clip_weights: str,
    topk: int,
    alpha: float,
    device: str,
    labelled: Output[Dataset],
    metadata: Output[Artifact],
) -> str:
    """Label each tube with its top-k vocabulary categories; return the labelled results' URI."""
    from wsovvis.attribute.step import attribute_step

    return attribute_step(
        results_json=results_json,
        img_root=img_root,
        vocab_json=vocab_json,
        work_root=work_root,
        clip_model=clip_model,
        clip_weights=clip_weights,
        topk=topk,
        alpha=alpha,
        device=device,
        results_path=labelled.path,
        metadata_artifact_path=metadata.path,
    )
