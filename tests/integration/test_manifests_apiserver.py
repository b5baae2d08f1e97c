"""`kubectl apply --dry-run=server` of every offline-buildable kustomization against a real API server.

The API server is the one the suite's kube-apiserver fixture starts (with the PyTorchJob CRD), or the one whose
kubeconfig is in ``WSOVVIS_TEST_KUBECONFIG``. Namespaces the manifests use are created for real (a test server); kinds whose CRD the
server lacks are reported as a skip, not applied.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
KUBECTL = shutil.which("kubectl")

pytestmark = pytest.mark.apiserver


def offline_kustomizations() -> list[Path]:
    dirs = []
    for path in sorted(MANIFESTS.rglob("kustomization.yaml")):
        spec = yaml.safe_load(path.read_text()) or {}
        if not any("github.com/" in entry for entry in spec.get("resources", [])):
            dirs.append(path.parent)
    return dirs


@pytest.fixture(scope="module")
def kubeconfig(request: pytest.FixtureRequest) -> str:
    """``WSOVVIS_TEST_KUBECONFIG`` (another test server), else the suite's own kube-apiserver."""
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    return os.environ.get("WSOVVIS_TEST_KUBECONFIG") or request.getfixturevalue("kube_cluster").kubeconfig


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUBECTL, "--kubeconfig", kubeconfig, *args], input=stdin, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("directory", offline_kustomizations(), ids=lambda d: str(d.relative_to(MANIFESTS)))
def test_server_accepts_the_built_manifests(kubeconfig: str, directory: Path):
    built = subprocess.run(
        [KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, check=True
    ).stdout
    objects = [doc for doc in yaml.safe_load_all(built) if doc]
    for namespace in sorted({o["metadata"]["namespace"] for o in objects if "namespace" in o["metadata"]}):
        if kubectl(kubeconfig, "get", "namespace", namespace).returncode != 0:
            created = kubectl(kubeconfig, "create", "namespace", namespace)
            assert created.returncode == 0, created.stderr
    out = kubectl(kubeconfig, "apply", "--dry-run=server", "-f", "-", stdin=built)
    if out.returncode != 0 and "no matches for kind" in out.stderr:
        pytest.skip(
            f"the API server lacks a CRD {directory.name} needs: {out.stderr.strip().splitlines()[0]}"
        )
    assert out.returncode == 0, f"{directory.name}: server rejected the manifests:\n{out.stderr}"
    assert out.stdout.count("(server dry run)") == len(objects)
