"""attribute: open-vocabulary labels for class-agnostic tubes, from CLIP (open_clip), as a YTVIS results list.

``attribute(results, img_root, vocab, out, clip_model=..., clip_weights=...)`` writes each tube once per top-k
category with ``score = objectness^alpha * p(category)^(1-alpha)`` and, beside ``out``, ``<out>.meta.json`` with
what produced it (model, weights URI and SHA-256, vocabulary, templates, options, counts). The method and its
sources: docs/dev/attribution.md.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from wsovvis import __version__, jsonio
from wsovvis.attribute.run import AttributeOptions, attribute_tubes, load_tubes, text_prompts
from wsovvis.attribute.vocab import load_vocabulary

log = logging.getLogger(__name__)

__all__ = ["AttributeOptions", "attribute", "metadata_path"]


def metadata_path(out: str | os.PathLike[str]) -> str:
    """Where the metadata of an attribution output goes: ``<out>.meta.json`` (a results file is a bare list)."""
    return f"{os.fspath(out)}.meta.json"


def attribute(
    results: str | os.PathLike[str],
    img_root: str,
    vocab: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    clip_model: str,
    clip_weights: str,
    options: AttributeOptions | None = None,
    device: str = "cpu",
    cache_dir: str | os.PathLike[str] | None = None,
    text_cache: str | None = None,
) -> dict[str, Any]:
    """Label the tubes of ``results`` (a YTVIS results list or tube dataset) with the vocabulary's categories.

    ``cache_dir`` (local; default ``$WSOVVIS_CACHE`` or ``~/.cache/wsovvis``) keeps S3 weights; ``text_cache``
    (a path or s3:// URI; default ``<cache_dir>/clip-text``) keeps text embeddings. Returns the metadata written
    to :func:`metadata_path`.
    """
    from wsovvis.attribute import clip

    options = options or AttributeOptions()
    started = time.monotonic()
    cache_dir = Path(cache_dir) if cache_dir is not None else clip.default_cache_dir()
    text_cache = text_cache or os.fspath(cache_dir / "clip-text")
    vocabulary = load_vocabulary(vocab)
    tubes = load_tubes(results, vocabulary)
    weights = clip.fetch_weights(clip_weights, cache_dir)
    encoder = clip.ClipEncoder(clip_model, weights, device, cache_dir)
    prompts = text_prompts(vocabulary, options.templates)
    key = clip.text_cache_key(clip.model_identity(clip_model), weights.sha256, prompts)
    texts, text_uri = clip.text_embeddings(encoder, prompts, text_cache, key)
    log.info(
        "attribute: %d tubes in %d videos, %d categories, model %s on %s",
        len(tubes.detections),
        len({d.video_id for d in tubes.detections}),
        len(vocabulary.categories),
        clip_model,
        device,
    )
    summary = attribute_tubes(tubes, img_root, vocabulary, texts, encoder, options, out)
    seconds = time.monotonic() - started
    metadata = {
        "results": os.fspath(results),
        "img_root": img_root,
        "vocab": os.fspath(vocab),
        "num_categories": len(vocabulary.categories),
        "clip_model": clip_model,
        "clip_weights": clip_weights,
        "clip_weights_sha256": weights.sha256,
        "logit_scale": encoder.logit_scale,
        "image_size": encoder.image_size,
        "device": device,
        "text_embeddings": text_uri,
        "options": asdict(options),
        **asdict(summary),
        "seconds": round(seconds, 3),
        "wsovvis_version": __version__,
    }
    jsonio.write_json(metadata_path(out), metadata)
    log.info(
        "attribute: %d results (top-%d of %d tubes, %d without a mask) from %d crops in %.1fs; wrote %s and %s",
        summary.num_results,
        options.topk,
        summary.num_tubes,
        summary.num_tubes_without_mask,
        summary.num_crops,
        seconds,
        os.fspath(out),
        metadata_path(out),
    )
    return metadata
