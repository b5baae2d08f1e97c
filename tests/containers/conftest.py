"""What every container test needs: a Docker API (``make test-containers`` starts podman's) and the built images."""

from __future__ import annotations

import os
from typing import Any

import pytest

from wsovvis.images import image_names


@pytest.fixture(scope="session")
def docker_api() -> Any:
    """A client of the Docker API that ``DOCKER_HOST`` names; skips, saying why, without it or the images."""
    docker = pytest.importorskip("docker", reason="the docker SDK is not installed (pip install docker)")
    if not os.environ.get("DOCKER_HOST"):
        pytest.skip(
            "no DOCKER_HOST: run with `make test-containers` (scripts/containers.sh run starts podman's API)"
        )
    client = docker.from_env()
    missing = []
    built = image_names()  # what `make images` built from this checkout
    for image in (built.tools, built.runtime_cpu):
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            missing.append(image)
    if missing:
        pytest.skip(f"images not built: {', '.join(missing)} (make images)")
    return client
