"""A real kube-apiserver (+ etcd) with the PyTorchJob CRD, for the apiserver tests (the root conftest's fixture).

Nothing runs pods (no scheduler, kubelet or Training Operator): tests play the operator by patching status.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts" / "kube-apiserver"
CRD = ROOT / "tests" / "data" / "crds" / "kubeflow.org_pytorchjobs.v1.9.0.yaml"
APISERVER = Path(
    os.environ.get("KUBE_APISERVER", Path.home() / ".cache" / "wsovvis-dev" / "bin" / "kube-apiserver")
)


@dataclass
class Cluster:
    kubeconfig: str
    port: int
    custom: object
    core: object

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        out = subprocess.run(
            ["kubectl", "--kubeconfig", self.kubeconfig, *args], capture_output=True, text=True, check=False
        )
        if check:
            assert out.returncode == 0, f"kubectl {' '.join(args)}: {out.stderr}"
        return out


def start_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """etcd + kube-apiserver, with the PyTorchJob CRD installed and established; skips when absent."""
    if not os.access(APISERVER, os.X_OK):
        pytest.skip(
            f"no kube-apiserver at {APISERVER}: run scripts/kube-apiserver/build.sh (once per machine, 5-12 min)"
        )
    for tool in ("etcd", "kubectl", "openssl", "curl"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            pytest.skip(
                f"{tool} not found: scripts/kube-apiserver/build.sh installs etcd; kubectl must be on PATH"
            )
    workdir = tmp_path_factory.mktemp("kube-apiserver")
    started = subprocess.run(
        [str(SCRIPTS / "start.sh"), str(workdir)],
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ, KUBE_APISERVER=str(APISERVER)),
    )
    if started.returncode != 0:
        pytest.fail(f"kube-apiserver did not start: {started.stderr.strip()}")
    pids = started.stdout.strip()
    try:
        from kubernetes import client
        from kubernetes import config as kube_config

        kubeconfig = str(workdir / "kubeconfig")
        configuration = client.Configuration()
        kube_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        api = client.ApiClient(configuration)
        found = Cluster(kubeconfig, int(pids.split()[2]), client.CustomObjectsApi(api), client.CoreV1Api(api))
        found.kubectl("create", "--validate=false", "-f", str(CRD))
        extensions = client.ApiextensionsV1Api(api)

        def established() -> bool:
            status = extensions.read_custom_resource_definition("pytorchjobs.kubeflow.org").status
            return any(
                c.type == "Established" and c.status == "True" for c in (status and status.conditions) or []
            )

        wait_for(established, "the PyTorchJob CRD to be established", 60)
        yield found
    finally:
        subprocess.run([str(SCRIPTS / "stop.sh"), pids], check=False)


def wait_for(predicate: Callable[[], object], what: str, timeout: float = 20.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
