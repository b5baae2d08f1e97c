"""Every kustomization under manifests/ that needs no network builds, and what it builds is valid and safe.

Built-in objects pass strict schema validation (``kubernetes-validate --strict``) for the Kubernetes version of the
kind node image; custom resources validate against their CRD's schema with unknown fields rejected (CRDs from the
folder in ``WSOVVIS_CRD_DIR``); no Secret or credential is committed; RBAC names no wildcard. The remote platform
bases (KFP, Training Operator) are covered by test_manifests_upstream.py.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
REMOTE = re.compile(r"^(https://|git@|ssh://)?github\.com/", re.IGNORECASE)
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl (with its built-in kustomize) is not installed"
)


def kustomization_dirs() -> list[Path]:
    return sorted(p.parent for p in MANIFESTS.rglob("kustomization.yaml"))


def remote_resources(directory: Path) -> list[str]:
    """Remote bases a kustomization (or a local base it includes) pulls in."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text()) or {}
    found = []
    for entry in spec.get("resources", []) + spec.get("components", []):
        if REMOTE.match(entry):
            found.append(entry)
        elif (directory / entry / "kustomization.yaml").exists():
            found += remote_resources((directory / entry).resolve())
    return found


OFFLINE = [d for d in kustomization_dirs() if not remote_resources(d)]


@cache
def build(directory: Path) -> tuple[dict[str, Any], ...]:
    out = subprocess.run([KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, f"kubectl kustomize {directory.relative_to(ROOT)} failed:\n{out.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


def kubernetes_version() -> str:
    """The Kubernetes minor version the manifests target: that of the kind node image."""
    cluster = yaml.safe_load((MANIFESTS / "kind" / "cluster.yaml").read_text())
    tags = {node["image"].split(":")[1].split("@")[0] for node in cluster["nodes"]}
    assert len(tags) == 1, f"kind nodes use different Kubernetes versions: {tags}"
    major, minor = tags.pop().lstrip("v").split(".")[:2]
    return f"{major}.{minor}.0"


def is_builtin(obj: dict[str, Any]) -> bool:
    """Whether Kubernetes itself defines the kind (kubernetes-validate has its schema), not a CRD."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(copy.deepcopy(obj), kubernetes_version(), strict=False)
    except kubernetes_validate.SchemaNotFoundError:
        return False
    except kubernetes_validate.ValidationError:
        return True
    return True


def crd_schemas(directory: Path) -> dict[tuple[str, str], dict[str, Any]]:
    schemas = {}
    for path in sorted(directory.glob("*.y*ml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                schema = structural_to_json_schema(version["schema"]["openAPIV3Schema"])
                schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def structural_to_json_schema(node: Any) -> Any:
    """A CRD's structural schema as JSON Schema, rejecting unknown fields like the API server's strict mode."""
    if isinstance(node, list):
        return [structural_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: structural_to_json_schema(value)
        for key, value in node.items()
        if not key.startswith("x-kubernetes-") and key != "nullable"
    }
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def test_there_are_offline_kustomizations_to_check():
    names = {str(d.relative_to(MANIFESTS)) for d in OFFLINE}
    assert {"object-store", "rbac"} <= names


@needs_kubectl
@pytest.mark.parametrize("directory", OFFLINE, ids=lambda d: str(d.relative_to(MANIFESTS)))
def test_builtin_objects_pass_strict_schema_validation(directory: Path):
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    version = kubernetes_version()
    for obj in build(directory):
        if not is_builtin(obj):
            continue
        try:
            kubernetes_validate.validate(copy.deepcopy(obj), version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(
                f"{directory.name}: {obj['kind']}/{obj['metadata']['name']}: {exc.message} at {list(exc.path)}"
            )


@needs_kubectl
@pytest.mark.parametrize("directory", OFFLINE, ids=lambda d: str(d.relative_to(MANIFESTS)))
def test_custom_resources_match_their_crd_schema(directory: Path):
    pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    custom = [obj for obj in build(directory) if not is_builtin(obj)]
    if not custom:
        pytest.skip(f"{directory.name} builds no custom resources")
    crd_dir = os.environ.get("WSOVVIS_CRD_DIR")
    if not crd_dir:
        pytest.skip(
            "set WSOVVIS_CRD_DIR to a folder holding the CRDs (e.g. the Training Operator v1.9.0 PyTorchJob CRD)"
        )
    import jsonschema

    schemas = crd_schemas(Path(crd_dir))
    for obj in custom:
        key = (obj["apiVersion"], obj["kind"])
        assert key in schemas, f"no CRD for {key} in {crd_dir}"
        errors = list(jsonschema.Draft7Validator(schemas[key]).iter_errors(obj))
        assert not errors, f"{obj['kind']}/{obj['metadata']['name']}: " + "; ".join(
            f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
        )


def test_crd_schema_conversion_rejects_unknown_fields_and_accepts_int_or_string():
    import jsonschema

    crd_schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "port": {"x-kubernetes-int-or-string": True},
                    "note": {"type": "string", "nullable": True},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                },
            }
        },
    }
    validator = jsonschema.Draft7Validator(structural_to_json_schema(crd_schema))
    assert validator.is_valid({"spec": {"port": "http", "note": None, "free": {"anything": 1}}})
    assert validator.is_valid({"spec": {"port": 8080}})
    assert not validator.is_valid({"spec": {"prot": 8080}})


@needs_kubectl
@pytest.mark.parametrize("directory", OFFLINE, ids=lambda d: str(d.relative_to(MANIFESTS)))
def test_roles_name_no_wildcards(directory: Path):
    for obj in build(directory):
        if obj["kind"] not in ("Role", "ClusterRole"):
            continue
        for rule in obj.get("rules", []):
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                assert "*" not in rule.get(field, []), (
                    f"{obj['kind']}/{obj['metadata']['name']}: '*' in {field}"
                )


@needs_kubectl
def test_rbac_grants_exactly_what_the_pytorchjob_launcher_needs():
    objects = build(MANIFESTS / "rbac")
    assert sorted(obj["kind"] for obj in objects) == ["Role", "RoleBinding"], (
        "rbac/ must not grant cluster-wide"
    )
    role = next(obj for obj in objects if obj["kind"] == "Role")
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    expected = {("kubeflow.org", "pytorchjobs", v) for v in ("create", "get", "list", "watch", "delete")}
    expected |= {("", "pods", v) for v in ("get", "list", "watch")} | {("", "pods/log", "get")}
    assert granted == expected
    binding = next(obj for obj in objects if obj["kind"] == "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert [s["kind"] for s in binding["subjects"]] == ["ServiceAccount"]
    assert (
        binding["subjects"][0]["namespace"]
        == binding["metadata"]["namespace"]
        == role["metadata"]["namespace"]
    )


def test_no_secret_is_committed_under_manifests():
    for path in sorted(MANIFESTS.rglob("*.y*ml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict):
                continue
            assert doc.get("kind") != "Secret", (
                f"{path.relative_to(ROOT)} commits a Secret; reference one by name"
            )
            for generator in ("secretGenerator",):
                assert generator not in doc, (
                    f"{path.relative_to(ROOT)} generates a Secret from committed data"
                )


@needs_kubectl
@pytest.mark.parametrize("directory", OFFLINE, ids=lambda d: str(d.relative_to(MANIFESTS)))
def test_credentials_reach_containers_only_from_secrets(directory: Path):
    sensitive = re.compile(r"(PASSWORD|SECRET|ACCESS_KEY|TOKEN|ROOT_USER)", re.IGNORECASE)
    for obj in build(directory):
        for container in _containers(obj):
            for env in container.get("env", []):
                if sensitive.search(env["name"]):
                    assert "secretKeyRef" in env.get("valueFrom", {}), (
                        f"{obj['kind']}/{obj['metadata']['name']}: {env['name']} must come from a Secret"
                    )


@needs_kubectl
def test_object_store_reads_its_credentials_from_the_documented_secret():
    deployment = next(obj for obj in build(MANIFESTS / "object-store") if obj["kind"] == "Deployment")
    refs = {
        env["name"]: env["valueFrom"]["secretKeyRef"]
        for container in _containers(deployment)
        for env in container.get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
    }
    assert refs["MINIO_ROOT_USER"] == {"name": "wsovvis-s3", "key": "accesskey"}
    assert refs["MINIO_ROOT_PASSWORD"] == {"name": "wsovvis-s3", "key": "secretkey"}
    documented = (MANIFESTS / "object-store" / "kustomization.yaml").read_text()
    assert "kubectl -n kubeflow create secret generic wsovvis-s3" in documented
    assert "--from-literal=accesskey=" in documented and "--from-literal=secretkey=" in documented
    assert deployment["metadata"]["namespace"] == "kubeflow"


@needs_kubectl
def test_object_store_pins_its_image_and_runs_as_non_root():
    deployment = next(obj for obj in build(MANIFESTS / "object-store") if obj["kind"] == "Deployment")
    (container,) = _containers(deployment)
    image = container["image"]
    assert ":" in image and not image.endswith(":latest"), image
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_kind_cluster_has_a_control_plane_and_a_worker_for_the_pipeline():
    cluster = yaml.safe_load((MANIFESTS / "kind" / "cluster.yaml").read_text())
    assert cluster["apiVersion"] == "kind.x-k8s.io/v1alpha4" and cluster["kind"] == "Cluster"
    roles = [node["role"] for node in cluster["nodes"]]
    assert roles.count("control-plane") == 1 and roles.count("worker") >= 1
    script = (ROOT / "scripts" / "kind-e2e.sh").read_text()
    for node in cluster["nodes"]:
        for key, value in node.get("labels", {}).items():
            assert f"{key}={value}" in script, f"kind-e2e.sh does not select nodes by {key}={value}"


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec", {})
    pod = (
        spec.get("template", {}).get("spec") if "template" in spec else spec if obj["kind"] == "Pod" else None
    )
    if not pod:
        return []
    return pod.get("initContainers", []) + pod.get("containers", [])


@needs_kubectl
def test_object_store_endpoint_config_map_points_at_its_service():
    objects = build(MANIFESTS / "object-store")
    config = next(obj for obj in objects if obj["kind"] == "ConfigMap")
    service = next(obj for obj in objects if obj["kind"] == "Service")
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    (port,) = (p["port"] for p in service["spec"]["ports"])
    assert config["metadata"]["name"] == "wsovvis-s3"
    assert config["data"]["endpoint"] == f"http://{name}.{namespace}:{port}"
