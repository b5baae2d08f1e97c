"""Compile the pipeline to its one YAML spec."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from kfp import compiler

from wsovvis.images import ImageNames
from wsovvis.k8s.placement import PodResources, S3Source

from .wsovvis_pipeline import MASK_GEN_PARALLELISM, build_pipeline

# The committed spec: every default and the fixed images (`wsovvis pipeline compile --release --out` this path).
SPEC_PATH = Path(__file__).with_name("wsovvis_pipeline.yaml")


def compile_pipeline(
    out: str | os.PathLike[str] = SPEC_PATH,
    parallelism: int = MASK_GEN_PARALLELISM,
    s3: S3Source | None = None,
    images: ImageNames | None = None,
    resources: Mapping[str, PodResources] | None = None,
    s3_names_as_params: bool = False,
) -> Path:
    """Write the compiled spec atomically and return its path (the arguments: ``build_pipeline``'s); ``images``
    default to the fixed ones, so that with every default this writes the committed spec."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.tmp.yaml")
    compiler.Compiler().compile(
        build_pipeline(parallelism, s3, images, resources, s3_names_as_params), str(staging)
    )
    os.replace(staging, out)
    return out
