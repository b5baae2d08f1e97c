"""The project's container image names, defined once.

Components take their ``base_image`` from here, ``wsovvis pipeline compile`` sets every task's image and the
training PyTorchJob's image from here (``--registry``/``--tag`` override them), ``render-pytorchjob`` defaults
to the runtime image, and ``scripts/build-images.sh`` tags what it builds with the same names (it reads them
with ``python3 -m wsovvis.images``). Defaults name a local development registry; point them at yours with
environment variables, read at import time (so set them before compiling a pipeline):

- ``WSOVVIS_IMAGE_REGISTRY`` (default ``localhost:5001/wsovvis``, kind's local-registry convention) and
  ``WSOVVIS_IMAGE_TAG`` (default :func:`source_tag`) for both images;
- ``WSOVVIS_TOOLS_IMAGE`` / ``WSOVVIS_RUNTIME_IMAGE`` / ``WSOVVIS_RUNTIME_CPU_IMAGE`` to name one image in full.

The default tag is a digest of the files the images are built from, not the package version: a fix under the
same version gets a new tag, so KFP's cache (keyed by the image, among others) cannot reuse a step that ran
older code, and the committed spec names exactly the images `make images` builds from the same checkout. (Not
the git commit: committing the compiled spec would change the commit it names.)

The tools image is CPU-only (wsovvis, kfp, kfp-kubernetes, minio, pycocotools, OpenCV); the runtime image adds
CUDA, torch and the patched CutLER/VNext/detectron2 with their ops built. Its CPU flavour (same Dockerfile, no
compiled op: the PyTorch deformable attention) is what ``wsovvis pipeline run --local --containers`` runs in
place of the runtime image on machines without a GPU.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from wsovvis import __version__

DEFAULT_REGISTRY = "localhost:5001/wsovvis"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
# What the images are built from (the build context's files and the third-party pins), relative to the root.
SOURCE_PATHS = ("pyproject.toml", "wsovvis", "components", "pipelines", "images", "third_party/pins.json")
# Inside SOURCE_PATHS but not what the image runs: the compiled spec (it names the tag), caches, build staging,
# and the components' tests (folders named tests).
SOURCE_EXCLUDED = ("pipelines/wsovvis_pipeline.yaml", "images/build", "images/tools/wheels")
DIGEST_LENGTH = 12


def _source_files(root: Path) -> list[Path]:
    files = []
    for entry in SOURCE_PATHS:
        path = root / entry
        candidates = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in candidates:
            rel = file.relative_to(root).as_posix()
            if (
                file.is_file()
                and "__pycache__" not in file.parts
                and "tests" not in file.relative_to(root).parts
                and file.suffix != ".pyc"
                and not any(rel == x or rel.startswith(f"{x}/") for x in SOURCE_EXCLUDED)
            ):
                files.append(file)
    return files


def source_tag(root: Path = PROJECT_ROOT) -> str:
    """``<version>-<digest>``: the package version and a digest of the source files the images are built from."""
    digest = hashlib.sha256()
    for file in _source_files(root):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return f"{__version__}-{digest.hexdigest()[:DIGEST_LENGTH]}"


@dataclass(frozen=True)
class ImageNames:
    """The two images every task and the training job run in."""

    tools: str
    runtime: str

    def matching(self, declared: str) -> str:
        """This set's image of the same kind as ``declared``, one of the default names a component declares."""
        if declared == RUNTIME_IMAGE:
            return self.runtime
        if declared == TOOLS_IMAGE:
            return self.tools
        raise ValueError(f"image {declared!r} is neither the tools image {TOOLS_IMAGE} nor the runtime image")


IMAGE_REGISTRY = os.environ.get("WSOVVIS_IMAGE_REGISTRY", DEFAULT_REGISTRY).rstrip("/")
IMAGE_TAG = os.environ.get("WSOVVIS_IMAGE_TAG") or source_tag()
TOOLS_IMAGE = os.environ.get("WSOVVIS_TOOLS_IMAGE", f"{IMAGE_REGISTRY}/tools:{IMAGE_TAG}")
RUNTIME_IMAGE = os.environ.get("WSOVVIS_RUNTIME_IMAGE", f"{IMAGE_REGISTRY}/runtime:{IMAGE_TAG}")
RUNTIME_CPU_IMAGE = os.environ.get("WSOVVIS_RUNTIME_CPU_IMAGE", f"{IMAGE_REGISTRY}/runtime:{IMAGE_TAG}-cpu")

# Where the runtime image puts the upstream trees: images/runtime/Dockerfile runs `wsovvis prepare` on these paths,
# which fails the build when a file the project relies on is missing (tests/unit/test_train_manifests.py).
RUNTIME_SOURCES = {
    "cutler": "/opt/src/CutLER",
    "vnext": "/opt/src/VNext",
    "detectron2": "/opt/src/detectron2",
}
# The train step's default detectron2 config in the runtime image: VNext's SeqFormer config (prepare requires it).
RUNTIME_SEQFORMER_CONFIG = f"{RUNTIME_SOURCES['vnext']}/projects/SeqFormer/configs/base_ytvis.yaml"


def image_names(registry: str | None = None, tag: str | None = None) -> ImageNames:
    """Both images under ``registry`` and ``tag`` (each defaulting to the environment's, then the defaults);
    with neither given, ``TOOLS_IMAGE`` and ``RUNTIME_IMAGE`` (full-name overrides included)."""
    if registry is None and tag is None:
        return ImageNames(TOOLS_IMAGE, RUNTIME_IMAGE)
    registry = (registry or IMAGE_REGISTRY).rstrip("/")
    tag = tag or IMAGE_TAG
    return ImageNames(f"{registry}/tools:{tag}", f"{registry}/runtime:{tag}")


def main() -> int:
    """Print the image names as shell assignments, for scripts: ``eval "$(python3 -m wsovvis.images)"``."""
    names = (
        ("TOOLS_IMAGE", TOOLS_IMAGE),
        ("RUNTIME_IMAGE", RUNTIME_IMAGE),
        ("RUNTIME_CPU_IMAGE", RUNTIME_CPU_IMAGE),
    )
    for name, value in names:
        sys.stdout.write(f"{name}={shlex.quote(value)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
