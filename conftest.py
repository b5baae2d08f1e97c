"""Fixtures shared by every test folder: the real S3 server the suite starts, and hardware/runtime skips."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from wsovvis.s3server import S3Server

ROOT = Path(__file__).resolve().parent


def _started_s3_server(data_dir: Path) -> S3Server:
    """An S3 server of wsovvis.s3server, started; skip where SeaweedFS is not installed, fail where it does not start."""
    from wsovvis.errors import WsovvisError
    from wsovvis.s3server import S3Server, weed_binary

    try:
        weed_binary()
    except WsovvisError as exc:
        pytest.skip(f"S3 server not available: {exc}")
    server = S3Server(data_dir)
    try:
        server.start()
    except WsovvisError as exc:
        pytest.fail(str(exc))
    return server


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3 server (SeaweedFS on a free loopback port) for the session; the AWS_* variables point at it."""
    from wsovvis.environ import environ_set

    server = _started_s3_server(tmp_path_factory.mktemp("s3"))
    try:
        with environ_set(server.env()):
            yield server.endpoint
    finally:
        server.stop()


@pytest.fixture
def s3_server(tmp_path: Path) -> Iterator[S3Server]:
    """A fresh S3 server for one test, which the test may kill and start again on the same port and data (the
    AWS_* variables point at it while the test runs)."""
    from wsovvis.environ import environ_set

    server = _started_s3_server(tmp_path / "s3-server")
    try:
        with environ_set(server.env()):
            yield server
    finally:
        server.kill()


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A fresh, empty bucket on the suite's S3 server, as an ``s3://name`` URI."""
    from wsovvis import storage

    uri = f"s3://test-{uuid.uuid4().hex[:12]}"
    storage.ensure_bucket(uri)
    return uri


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real kube-apiserver + etcd with the PyTorchJob CRD for the session (skips when it is not built)."""
    from tests.kube import start_cluster

    yield from start_cluster(tmp_path_factory)
