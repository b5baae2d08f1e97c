"""attribute's pipeline step: label tubes under the work root, copy results and metadata to the artifacts."""

from __future__ import annotations

import logging

from wsovvis import storage
from wsovvis.attribute import AttributeOptions, attribute, metadata_path
from wsovvis.workspace import stage_uri

log = logging.getLogger(__name__)


def attribute_step(
    *,
    results_json: str,
    img_root: str,
    vocab_json: str,
    work_root: str,
    clip_model: str,
    clip_weights: str,
    topk: int,
    alpha: float,
    device: str,
    results_path: str,
    metadata_artifact_path: str,
) -> str:
    """Label the tubes with the vocabulary's categories; return the labelled results' URI on storage.

    The output goes to a location derived from the inputs; text embeddings are cached under
    ``<work_root>/cache/clip-text`` for every run that shares the model, weights and vocabulary.
    """
    out_dir = stage_uri(
        work_root,
        "attribute",
        results=results_json,
        img_root=img_root,
        vocab=vocab_json,
        clip_model=clip_model,
        clip_weights=clip_weights,
        topk=topk,
        alpha=alpha,
    )
    out = storage.join(out_dir, "results.json")
    attribute(
        results_json,
        img_root,
        vocab_json,
        out,
        clip_model=clip_model,
        clip_weights=clip_weights,
        options=AttributeOptions(topk=topk, alpha=alpha),
        device=device,
        text_cache=storage.join(work_root, "cache", "clip-text"),
    )
    storage.download(out, results_path)
    storage.download(metadata_path(out), metadata_artifact_path)
    log.info("attribute: labelled results %s", out)
    return out
