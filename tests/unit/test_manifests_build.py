"""Every kustomization under manifests/ that needs no network builds, and what it builds is valid and safe.

Built-in objects pass strict schema validation (``kubernetes-validate --strict``) for the Kubernetes version of the
kind node image; custom resources validate against their CRD's schema with unknown fields rejected (CRDs from the
folder in ``WSOVVIS_CRD_DIR``); no Secret or credential is committed; RBAC names no wildcard.

The platform kustomizations (KFP standalone, Training Operator, Trainer) name GitHub bases, which `kubectl kustomize`
fetches over the network. Offline, point ``WSOVVIS_UPSTREAM_MANIFESTS`` at a folder holding checkouts named
``<repo>-<ref>`` (``pipelines-2.17.0``, ``training-operator-v1.9.0``, ``trainer-v2.2.1`` and
``argo-workflows-v4.0.5``, which KFP's manifests pull in themselves; Trainer's JobSet comes from a release URL, which
still needs the network), e.g. ``git clone --depth 1 -b 2.17.0 https://github.com/kubeflow/pipelines DIR/pipelines-2.17.0``;
the tests copy the kustomizations, rewrite every GitHub base (theirs included) to the local checkout, build, and
validate the result.
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
    assert out.returncode == 0, f"kubectl kustomize {directory} failed:\n{out.stderr[-3000:]}"
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
    crd_dir = os.environ.get("WSOVVIS_CRD_DIR") or str(ROOT / "tests" / "data" / "crds")
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
def test_rbac_grants_exactly_what_the_job_launcher_needs():
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
    expected |= {("trainer.kubeflow.org", "trainjobs", v) for v in ("create", "get", "delete")}
    expected |= {("", "pods", v) for v in ("get", "list", "watch")} | {("", "pods/log", "get")}
    expected |= {("", "configmaps", v) for v in ("create", "update")}
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


# --- manifests/platform: pinned remote bases, built offline from local checkouts ---

PLATFORM = ROOT / "manifests" / "platform"
GITHUB_BASE = re.compile(
    r"^(?:https://)?github\.com/(?P<owner>[^/]+)/(?P<repo>[^/?]+?)(?:\.git)?/+(?P<path>[^?]+)\?ref=(?P<ref>[^&]+)"
)
RESOURCE_LINE = re.compile(r"^(?P<indent>\s*-\s+)(?P<url>(?:https://)?github\.com/\S+)\s*$")
RELEASE_TAG = re.compile(r"^v?\d+\.\d+\.\d+$")


def remote_entries(directory: Path) -> list[str]:
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    return [
        entry
        for entry in spec.get("resources", [])
        if entry.startswith(("github.com/", "https://github.com/"))
    ]


PLATFORM_DIRS = sorted(p.parent for p in PLATFORM.rglob("kustomization.yaml"))


@pytest.mark.parametrize("directory", PLATFORM_DIRS, ids=lambda d: d.name)
def test_platform_bases_are_pinned_to_release_tags(directory: Path):
    entries = remote_entries(directory)
    assert entries, f"{directory.name}: expected a pinned remote base"
    for entry in entries:
        match = GITHUB_BASE.match(entry)
        assert match, f"{directory.name}: {entry} is not a github.com/<owner>/<repo>/<path>?ref=<tag> base"
        assert RELEASE_TAG.match(match["ref"]), (
            f"{directory.name}: {entry} must pin a release tag, not a branch"
        )


def test_platform_installs_kfp_standalone_and_the_training_operator():
    bases = {GITHUB_BASE.match(e)["path"]: e for d in PLATFORM_DIRS for e in remote_entries(d)}
    assert "manifests/kustomize/env/platform-agnostic" in bases
    assert "manifests/kustomize/cluster-scoped-resources" in bases
    assert "manifests/overlays/standalone" in bases
    kfp_refs = {GITHUB_BASE.match(e)["ref"] for p, e in bases.items() if p.startswith("manifests/kustomize/")}
    assert len(kfp_refs) == 1, f"KFP's two parts must come from one release: {kfp_refs}"
    assert GITHUB_BASE.match(bases["manifests/overlays/standalone"])["ref"].startswith("v1.9.")


def test_platform_installs_the_trainer_release_the_trainjob_builder_renders_for():
    from wsovvis.k8s.trainjob import TRAINER_VERSION

    bases = [GITHUB_BASE.match(e) for d in PLATFORM_DIRS for e in remote_entries(d)]
    trainer = {m["path"]: m["ref"] for m in bases if (m["owner"], m["repo"]) == ("kubeflow", "trainer")}
    assert trainer == {
        "manifests/overlays/manager": TRAINER_VERSION,
        "manifests/overlays/runtimes": TRAINER_VERSION,
    }
    assert (
        ROOT / "tests" / "data" / "crds" / f"trainer.kubeflow.org_trainjobs.{TRAINER_VERSION}.yaml"
    ).exists()


class Localizer:
    """Copies kustomizations and rewrites their GitHub bases to local checkouts, recursively."""

    def __init__(self, upstream: Path, work: Path) -> None:
        self.upstream = upstream
        self.work = work
        self.copied: set[str] = set()

    def tree(self, repo: str, ref: str) -> Path:
        name = f"{repo}-{ref}"
        target = self.work / "upstream" / name
        if name not in self.copied:
            source = self.upstream / name
            if not source.is_dir():
                pytest.skip(
                    f"{source} is missing: check out {repo} at {ref} there to build this base offline"
                )
            shutil.copytree(source, target, ignore=shutil.ignore_patterns(".git"), symlinks=True)
            self.copied.add(name)
            self.rewrite(target)
        return target

    def rewrite(self, tree: Path) -> None:
        # line-wise, not through a YAML round trip: upstream files hold values PyYAML cannot load (a bare `=`)
        for path in sorted(tree.rglob("kustomization.yaml")):
            lines = path.read_text().splitlines(keepends=True)
            for i, line in enumerate(lines):
                entry = RESOURCE_LINE.match(line)
                match = GITHUB_BASE.match(entry["url"]) if entry else None
                if match:
                    local = self.tree(match["repo"], match["ref"]) / match["path"]
                    lines[i] = f"{entry['indent']}{os.path.relpath(local, path.parent)}\n"
            path.write_text("".join(lines))


@pytest.fixture(scope="module")
def localized_platform(tmp_path_factory: pytest.TempPathFactory) -> Path:
    upstream = os.environ.get("WSOVVIS_UPSTREAM_MANIFESTS")
    if not upstream:
        pytest.skip(
            "the platform bases live on GitHub: set WSOVVIS_UPSTREAM_MANIFESTS to local checkouts to build them"
        )
    if KUBECTL is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    work = tmp_path_factory.mktemp("platform")
    shutil.copytree(PLATFORM, work / "platform")
    Localizer(Path(upstream), work).rewrite(work / "platform")
    return work / "platform"


@pytest.fixture(scope="module")
def built_platform(localized_platform: Path) -> dict[str, list[dict[str, Any]]]:
    return {d.name: list(build(localized_platform / d.relative_to(PLATFORM))) for d in PLATFORM_DIRS}


def test_platform_builds_the_kfp_api_and_the_pytorchjob_operator(built_platform):
    kinds = {(o["kind"], o["metadata"]["name"]) for objects in built_platform.values() for o in objects}
    assert ("Deployment", "ml-pipeline") in kinds
    assert ("Deployment", "training-operator") in kinds
    assert ("CustomResourceDefinition", "pytorchjobs.kubeflow.org") in kinds
    assert ("Deployment", "kubeflow-trainer-controller-manager") in kinds
    assert ("CustomResourceDefinition", "trainjobs.trainer.kubeflow.org") in kinds
    assert ("ClusterTrainingRuntime", "torch-distributed") in kinds
    namespaces = {o["metadata"].get("namespace") for objects in built_platform.values() for o in objects}
    assert namespaces <= {None, "kubeflow", "kubeflow-system"}  # Trainer's own namespace


def test_platform_builtin_objects_pass_strict_schema_validation(built_platform):
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    failures = []
    for name, objects in built_platform.items():
        for obj in objects:
            try:
                kubernetes_validate.validate(copy.deepcopy(obj), kubernetes_version(), strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                continue
            except kubernetes_validate.ValidationError as exc:
                failures.append(f"{name}: {obj['kind']}/{obj['metadata']['name']}: {exc.message}")
    assert not failures, "\n".join(failures)


def test_platform_custom_resources_match_the_crds_it_installs(built_platform):
    import jsonschema

    objects = [o for objs in built_platform.values() for o in objs]
    schemas = {}
    for crd in (o for o in objects if o["kind"] == "CustomResourceDefinition"):
        for version in crd["spec"]["versions"]:
            schema = structural_to_json_schema((version.get("schema") or {}).get("openAPIV3Schema") or {})
            schema.setdefault("properties", {})["metadata"] = {"type": "object"}
            schemas[(f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])] = schema
    assert ("kubeflow.org/v1", "PyTorchJob") in schemas
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"])
        if key in schemas:
            errors = [e.message for e in jsonschema.Draft7Validator(schemas[key]).iter_errors(obj)]
            assert not errors, f"{obj['kind']}/{obj['metadata']['name']}: {errors}"
