"""A real kube-apiserver (+ etcd) with the PyTorchJob CRD (Training Operator v1.9.0) and the TrainJob,
TrainingRuntime and ClusterTrainingRuntime CRDs (Trainer v2.2.1), for the apiserver tests (the root conftest's
fixture).

Nothing runs pods (no scheduler, kubelet, Training Operator or Trainer): tests play the operator by patching status.
The server is v1.20: the Trainer CRDs go in with only what it cannot take stripped (:func:`for_the_test_apiserver`,
tests/data/crds/README.md says what and why).
The server authorizes with RBAC: ``Cluster.kubeconfig`` is an admin (system:masters); ``pipeline_account`` gives
the credentials of the pipeline's service account bound only to ``manifests/rbac``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from wsovvis.k8s.trainjob import TRAINER_VERSION

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts" / "kube-apiserver"
RBAC = ROOT / "manifests" / "rbac"
# what start.sh and the tests drive besides the kube-apiserver (scripts/kube-apiserver/build.sh installs them)
TOOLS = ("etcd", "kubectl", "openssl", "curl")
CRDS = ROOT / "tests" / "data" / "crds"
CRD = CRDS / "kubeflow.org_pytorchjobs.v1.9.0.yaml"
TRAINER_CRDS = [
    CRDS / f"trainer.kubeflow.org_{plural}.{TRAINER_VERSION}.yaml"
    for plural in ("trainjobs", "trainingruntimes", "clustertrainingruntimes")
]
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
    """etcd + kube-apiserver, with the PyTorchJob and Trainer CRDs installed and established; skips when absent."""
    if not os.access(APISERVER, os.X_OK):
        pytest.skip(
            f"no kube-apiserver at {APISERVER}: run scripts/kube-apiserver/build.sh (once per machine, 5-12 min)"
        )
    for tool in TOOLS:
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            pytest.skip(f"{tool} not found: scripts/kube-apiserver/build.sh (run by `make test`) installs it")
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
        names = ["pytorchjobs.kubeflow.org"]
        for path in TRAINER_CRDS:
            crd = for_the_test_apiserver(yaml.load(path.read_text(), Loader=_LOADER))
            out = subprocess.run(
                ["kubectl", "--kubeconfig", kubeconfig, "create", "--validate=false", "-f", "-"],
                input=json.dumps(crd),
                capture_output=True,
                text=True,
                check=False,
            )
            assert out.returncode == 0, f"{path.name}: {out.stderr}"
            names.append(crd["metadata"]["name"])
        extensions = client.ApiextensionsV1Api(api)

        def established() -> bool:
            for name in names:
                status = extensions.read_custom_resource_definition(name).status
                conditions = (status and status.conditions) or []
                if not any(c.type == "Established" and c.status == "True" for c in conditions):
                    return False
            return True

        wait_for(established, "the PyTorchJob and Trainer CRDs to be established", 60)
        yield found
    finally:
        subprocess.run([str(SCRIPTS / "stop.sh"), pids], check=False)


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def for_the_test_apiserver(crd: dict) -> dict:
    """The CRD with only what the v1.20 API server refuses taken out (tests/data/crds/README.md): every
    ``default: ""``, then list-map annotations whose key that leaves neither required nor defaulted."""

    def strip(node: object) -> None:
        if isinstance(node, list):
            for item in node:
                strip(item)
            return
        if not isinstance(node, dict):
            return
        if node.get("default") == "":
            del node["default"]
        for value in node.values():
            strip(value)
        if node.get("x-kubernetes-list-type") == "map":
            items = node["items"]
            keys = node["x-kubernetes-list-map-keys"]
            if any(
                k not in items.get("required", []) and "default" not in items["properties"][k] for k in keys
            ):
                del node["x-kubernetes-list-type"], node["x-kubernetes-list-map-keys"]

    for version in crd["spec"]["versions"]:
        strip(version["schema"])
    return crd


def wait_for(predicate: Callable[[], object], what: str, timeout: float = 20.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def kubeconfig_for(port: int, token: str) -> str:
    """A kubeconfig for the test server on ``port`` (self-signed certificate) that sends ``token``."""
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "c",
                    "cluster": {"server": f"https://127.0.0.1:{port}", "insecure-skip-tls-verify": True},
                }
            ],
            "users": [{"name": "u", "user": {"token": token}}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "x",
        }
    )


@dataclass
class Account:
    """A service account's credentials: its bearer token and a kubeconfig file that sends it."""

    name: str
    namespace: str
    token: str
    kubeconfig: str


def pipeline_account(cluster: Cluster, namespace: str, workdir: Path) -> Account:
    """Apply ``manifests/rbac`` to ``namespace`` the way its kustomization says to for another namespace (an
    overlay setting the namespace and the RoleBinding's subject), create the service account it binds and
    return a token for it from the TokenRequest API: what a pipeline pod mounts, with only those rights."""
    overlay = workdir / f"rbac-{uuid.uuid4().hex[:8]}"
    overlay.mkdir(parents=True)
    patch = [{"op": "replace", "path": "/subjects/0/namespace", "value": namespace}]
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [os.path.relpath(RBAC, overlay)],
                "namespace": namespace,
                "patches": [{"target": {"kind": "RoleBinding"}, "patch": yaml.safe_dump(patch)}],
            }
        )
    )
    built = [d for d in yaml.safe_load_all(cluster.kubectl("kustomize", str(overlay)).stdout) if d]
    (binding,) = [d for d in built if d["kind"] == "RoleBinding"]
    (subject,) = binding["subjects"]
    assert subject["kind"] == "ServiceAccount" and subject["namespace"] == namespace, subject
    cluster.core.create_namespaced_service_account(namespace, {"metadata": {"name": subject["name"]}})
    cluster.kubectl("apply", "-k", str(overlay))
    token = cluster.core.create_namespaced_service_account_token(
        subject["name"],
        namespace,
        {"spec": {"expirationSeconds": 3600}},  # audiences: the server's own
    ).status.token
    kubeconfig = overlay / "kubeconfig"
    kubeconfig.write_text(kubeconfig_for(cluster.port, token))
    return Account(subject["name"], namespace, token, str(kubeconfig))
