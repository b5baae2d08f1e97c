"""The project's container image names, defined once.

Components take their ``base_image`` from here, and ``scripts/build-images.sh`` tags what it builds with the
same names (it reads them with ``python3 -m wsovvis.images``). Defaults name a local development registry;
point them at yours with environment variables, read at import time (so set them before compiling a pipeline):

- ``WSOVVIS_IMAGE_REGISTRY`` (default ``localhost:5001/wsovvis``, kind's local-registry convention) and
  ``WSOVVIS_IMAGE_TAG`` (default the package version) for both images;
- ``WSOVVIS_TOOLS_IMAGE`` / ``WSOVVIS_RUNTIME_IMAGE`` / ``WSOVVIS_RUNTIME_CPU_IMAGE`` to name one image in full.

The tools image is CPU-only (wsovvis, kfp, kfp-kubernetes, minio, pycocotools, OpenCV); the runtime image adds
CUDA, torch and the patched CutLER/VNext/detectron2 with their ops built. Its CPU flavour (same Dockerfile, no
compiled op: the PyTorch deformable attention) is what ``wsovvis pipeline run --local --containers`` runs in
place of the runtime image on machines without a GPU.
"""

from __future__ import annotations

import os
import shlex
import sys

from wsovvis import __version__

IMAGE_REGISTRY = os.environ.get("WSOVVIS_IMAGE_REGISTRY", "localhost:5001/wsovvis").rstrip("/")
IMAGE_TAG = os.environ.get("WSOVVIS_IMAGE_TAG", __version__)
TOOLS_IMAGE = os.environ.get("WSOVVIS_TOOLS_IMAGE", f"{IMAGE_REGISTRY}/tools:{IMAGE_TAG}")
RUNTIME_IMAGE = os.environ.get("WSOVVIS_RUNTIME_IMAGE", f"{IMAGE_REGISTRY}/runtime:{IMAGE_TAG}")
RUNTIME_CPU_IMAGE = os.environ.get("WSOVVIS_RUNTIME_CPU_IMAGE", f"{IMAGE_REGISTRY}/runtime:{IMAGE_TAG}-cpu")


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
