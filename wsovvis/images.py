"""The project's container image names, defined once: the fixed names, and those of the images a checkout builds.

Two tags, for two uses:

- **The fixed tag**, ``RELEASE_TAG`` (the package version), under ``DEFAULT_REGISTRY``: ``RELEASE_IMAGES``. The
  committed spec (``wsovvis pipeline compile --release --out pipelines/wsovvis_pipeline.yaml``) and
  ``manifests/train`` name these images, as do the names components declare as ``base_image`` (placeholders:
  every compile sets each task's image) and ``render-pytorchjob``'s default. No environment variable changes
  them, so those generated files are the same everywhere and change only when the pipeline's or the job's
  structure changes, not with every code change; and importing this module (in every component pod too) reads no
  file.
- **The build tag**, :func:`build_tag`: ``<version>-<digest>`` of the files the images are built from
  (:func:`source_tag`), computed only where an image is built or a spec compiled to run: ``scripts/build-images.sh``
  (``make images``) tags what it builds with it (it reads the names with ``python3 -m wsovvis.images``), and
  ``wsovvis pipeline compile`` (for a cluster) and the local container runs (``wsovvis pipeline run --local
  --containers``, ``wsovvis demo --containers``) name the images under it: :func:`image_names`. A fix under the
  same version is a new tag, so KFP's cache (keyed by the image, among others) cannot reuse a step that ran older
  code, and a spec compiled from a checkout names exactly the images ``make images`` builds from it. (Not the git
  commit: a build of an uncommitted change must get a new tag too.) An installed package, which has no build
  context to digest, takes the version.

The built names default to a local development registry; point them at yours with environment variables, read
when the names are (so set them before building images or compiling a pipeline):

- ``WSOVVIS_IMAGE_REGISTRY`` (default ``localhost:5001/wsovvis``, kind's local-registry convention) and
  ``WSOVVIS_IMAGE_TAG`` (instead of the digest) for both images;
- ``WSOVVIS_TOOLS_IMAGE`` / ``WSOVVIS_RUNTIME_IMAGE`` / ``WSOVVIS_RUNTIME_CPU_IMAGE`` to name one image in full.

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
# Inside SOURCE_PATHS but not what the image runs: the compiled spec (not installed), caches, build staging,
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
    """The two images every task and the training job run in, and the runtime image's CPU flavour (what local
    container runs use in its place)."""

    tools: str
    runtime: str
    runtime_cpu: str

    def matching(self, declared: str) -> str:
        """This set's image of the same kind as ``declared``, one of the default names a component declares."""
        if declared == RUNTIME_IMAGE:
            return self.runtime
        if declared == TOOLS_IMAGE:
            return self.tools
        raise ValueError(f"image {declared!r} is neither the tools image {TOOLS_IMAGE} nor the runtime image")


# The fixed tag and its names: what components declare, what the committed spec and manifests/train name.
RELEASE_TAG = __version__
RELEASE_IMAGES = ImageNames(
    tools=f"{DEFAULT_REGISTRY}/tools:{RELEASE_TAG}",
    runtime=f"{DEFAULT_REGISTRY}/runtime:{RELEASE_TAG}",
    runtime_cpu=f"{DEFAULT_REGISTRY}/runtime:{RELEASE_TAG}-cpu",
)
TOOLS_IMAGE = RELEASE_IMAGES.tools
RUNTIME_IMAGE = RELEASE_IMAGES.runtime
RUNTIME_CPU_IMAGE = RELEASE_IMAGES.runtime_cpu

# Where the runtime image puts the upstream trees: images/runtime/Dockerfile runs `wsovvis prepare` on these paths,
# which fails the build when a file the project relies on is missing (tests/unit/test_train_manifests.py).
RUNTIME_SOURCES = {
    "cutler": "/opt/src/CutLER",
    "vnext": "/opt/src/VNext",
    "detectron2": "/opt/src/detectron2",
}
# The train step's default detectron2 config in the runtime image: VNext's SeqFormer config (prepare requires it).
RUNTIME_SEQFORMER_CONFIG = f"{RUNTIME_SOURCES['vnext']}/projects/SeqFormer/configs/base_ytvis.yaml"


def build_tag(root: Path = PROJECT_ROOT) -> str:
    """The tag of the images built from the checkout at ``root``: ``WSOVVIS_IMAGE_TAG``, else :func:`source_tag`;
    where wsovvis runs from an install (no build context beside it), ``RELEASE_TAG``."""
    if tag := os.environ.get("WSOVVIS_IMAGE_TAG"):
        return tag
    if not all((root / entry).exists() for entry in ("pyproject.toml", "images")):
        return RELEASE_TAG
    return source_tag(root)


def image_names(registry: str | None = None, tag: str | None = None) -> ImageNames:
    """The images ``make images`` builds from this checkout, which a spec compiled for a cluster and a local container
    run name: under ``registry`` (default ``WSOVVIS_IMAGE_REGISTRY``, then ``DEFAULT_REGISTRY``) and ``tag`` (default
    :func:`build_tag`). With neither given, ``WSOVVIS_TOOLS_IMAGE`` / ``WSOVVIS_RUNTIME_IMAGE`` /
    ``WSOVVIS_RUNTIME_CPU_IMAGE`` name an image in full."""
    env = os.environ if registry is None and tag is None else {}
    registry = (registry or os.environ.get("WSOVVIS_IMAGE_REGISTRY") or DEFAULT_REGISTRY).rstrip("/")
    tag = tag or build_tag()
    return ImageNames(
        tools=env.get("WSOVVIS_TOOLS_IMAGE", f"{registry}/tools:{tag}"),
        runtime=env.get("WSOVVIS_RUNTIME_IMAGE", f"{registry}/runtime:{tag}"),
        runtime_cpu=env.get("WSOVVIS_RUNTIME_CPU_IMAGE", f"{registry}/runtime:{tag}-cpu"),
    )


def main() -> int:
    """Print the names of the images built from this checkout as shell assignments, for scripts:
    ``eval "$(python3 -m wsovvis.images)"``."""
    built = image_names()
    names = (
        ("TOOLS_IMAGE", built.tools),
        ("RUNTIME_IMAGE", built.runtime),
        ("RUNTIME_CPU_IMAGE", built.runtime_cpu),
    )
    for name, value in names:
        sys.stdout.write(f"{name}={shlex.quote(value)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
