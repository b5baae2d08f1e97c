"""manifests/train (for `kubectl apply -k`) renders exactly what the builder renders for its settings."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from wsovvis.k8s import crd
from wsovvis.k8s import pytorchjob as pj

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "manifests" / "train"
CRD = ROOT / "tests" / "data" / "crds" / "kubeflow.org_pytorchjobs.v1.9.0.yaml"


def builder_docs() -> list[dict]:
    settings = pj.load_settings(str(TRAIN / "job-settings.yaml"))
    return pj.render_manifest(settings, (TRAIN / "train.yaml").read_text())


def by_kind(docs: list[dict]) -> dict[str, dict]:
    assert len({d["kind"] for d in docs}) == len(docs), [d["kind"] for d in docs]
    return {d["kind"]: d for d in docs}


@pytest.fixture(scope="module")
def kustomized() -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not found: it renders manifests/train (`kubectl kustomize`)")
    out = subprocess.run([kubectl, "kustomize", str(TRAIN)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_committed_pytorchjob_is_the_rendering_of_job_settings():
    committed = yaml.safe_load((TRAIN / "pytorchjob.yaml").read_text())
    assert committed == by_kind(builder_docs())["PyTorchJob"], (
        "manifests/train/pytorchjob.yaml is stale: wsovvis render-pytorchjob "
        "--settings manifests/train/job-settings.yaml --out manifests/train/pytorchjob.yaml"
    )


def test_kustomize_output_equals_the_builder_output(kustomized):
    assert by_kind(kustomized) == by_kind(builder_docs())


def test_kustomize_output_validates_strictly_against_the_crd(kustomized):
    crd.validate(kustomized, CRD, strict=True)
    assert "PyTorchJob" in by_kind(kustomized)


def test_the_train_manifest_reads_from_s3_and_writes_to_s3():
    config = yaml.safe_load((TRAIN / "train.yaml").read_text())
    uris = [config["output_uri"], *config["data"].values()]
    assert all(uri.startswith("s3://") for uri in uris), uris
    job = by_kind(builder_docs())["PyTorchJob"]
    env = {
        e["name"]
        for e in job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["env"]
    }
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"} <= env


def test_the_train_manifest_runs_the_runtime_image_make_images_builds():
    from wsovvis.images import RUNTIME_IMAGE

    job = yaml.safe_load((TRAIN / "pytorchjob.yaml").read_text())
    images = {
        container["image"]
        for replica in job["spec"]["pytorchReplicaSpecs"].values()
        for container in replica["template"]["spec"]["containers"]
    }
    assert images == {RUNTIME_IMAGE}
