"""manifests/platform: pinned remote bases (KFP standalone, Training Operator), built offline from local copies.

The platform kustomizations name GitHub bases, which `kubectl kustomize` fetches over the network. Offline, point
``WSOVVIS_UPSTREAM_MANIFESTS`` at a folder holding checkouts named ``<repo>-<ref>`` (``pipelines-2.17.0``,
``training-operator-v1.9.0`` and ``argo-workflows-v4.0.5``, which KFP's manifests pull in themselves), e.g.
``git clone --depth 1 -b 2.17.0 https://github.com/kubeflow/pipelines DIR/pipelines-2.17.0``. The test copies the
kustomizations, rewrites every GitHub base (theirs included) to the local checkout, builds, and validates the result.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PLATFORM = ROOT / "manifests" / "platform"
GITHUB_BASE = re.compile(
    r"^(?:https://)?github\.com/(?P<owner>[^/]+)/(?P<repo>[^/?]+?)(?:\.git)?/+(?P<path>[^?]+)\?ref=(?P<ref>[^&]+)"
)
RESOURCE_LINE = re.compile(r"^(?P<indent>\s*-\s+)(?P<url>(?:https://)?github\.com/\S+)\s*$")
RELEASE_TAG = re.compile(r"^v?\d+\.\d+\.\d+$")
KUBECTL = shutil.which("kubectl")


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


def build(directory: Path) -> list[dict[str, Any]]:
    out = subprocess.run([KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, f"kubectl kustomize {directory.name} failed:\n{out.stderr[-3000:]}"
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module")
def built_platform(localized_platform: Path) -> dict[str, list[dict[str, Any]]]:
    return {d.name: build(localized_platform / d.relative_to(PLATFORM)) for d in PLATFORM_DIRS}


def test_platform_builds_the_kfp_api_and_the_pytorchjob_operator(built_platform):
    kinds = {(o["kind"], o["metadata"]["name"]) for objects in built_platform.values() for o in objects}
    assert ("Deployment", "ml-pipeline") in kinds
    assert ("Deployment", "training-operator") in kinds
    assert ("CustomResourceDefinition", "pytorchjobs.kubeflow.org") in kinds
    namespaces = {o["metadata"].get("namespace") for objects in built_platform.values() for o in objects}
    assert namespaces <= {None, "kubeflow"}


def test_platform_builtin_objects_pass_strict_schema_validation(built_platform):
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    from test_manifests_build import kubernetes_version

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
    from test_manifests_build import structural_to_json_schema

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
