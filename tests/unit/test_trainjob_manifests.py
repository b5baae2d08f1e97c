"""manifests/train-trainjob (for `kubectl apply -k`) is the TrainJob the pipeline's train step creates with
train_launcher=trainjob and every other default, and it is valid for the pinned Trainer release."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from tests.unit.test_pytorchjob_manifests import by_kind, kustomize, step_launch
from wsovvis import images
from wsovvis.k8s import crd
from wsovvis.k8s import trainjob as tj

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "manifests" / "train-trainjob"
CRD = ROOT / "tests" / "data" / "crds" / f"trainer.kubeflow.org_trainjobs.{tj.TRAINER_VERSION}.yaml"


@pytest.fixture(scope="module")
def kustomized() -> list[dict]:
    return kustomize(TRAIN)


def test_committed_trainjob_is_the_rendering_of_job_settings():
    settings = tj.load_settings(str(TRAIN / "job-settings.yaml"))
    committed = yaml.safe_load((TRAIN / "trainjob.yaml").read_text())
    assert committed == tj.build_trainjob(settings), (
        "manifests/train-trainjob/trainjob.yaml is stale: wsovvis render-trainjob "
        "--settings manifests/train-trainjob/job-settings.yaml --out manifests/train-trainjob/trainjob.yaml"
    )


def test_the_harness_config_is_manifests_trains():
    assert (TRAIN / "train.yaml").read_text() == (ROOT / "manifests" / "train" / "train.yaml").read_text()


@pytest.fixture
def step_rendering(monkeypatch, tmp_path) -> list[dict]:
    """The job the train step creates with train_launcher=trainjob, every other default and the data
    manifests/train-trainjob names."""
    return step_launch(monkeypatch, tmp_path, TRAIN / "train.yaml", train_launcher="trainjob")


def without_tags(job: dict) -> dict:
    """The job with its image's tag removed (fixed where the images are built and compiled in: wsovvis.images)."""
    job = copy.deepcopy(job)
    trainer = job["spec"]["trainer"]
    trainer["image"] = trainer["image"].rsplit(":", 1)[0]
    for env in trainer["env"]:
        if env["name"] == "WSOVVIS_IMAGE":
            env["value"] = env["value"].rsplit(":", 1)[0]
    return job


def test_kustomize_output_is_the_trainjob_the_train_step_creates_with_every_default(
    kustomized, step_rendering
):
    for doc in step_rendering:  # manifests/train-trainjob takes the namespace from `kubectl apply -n`
        doc["metadata"].pop("namespace")
    ours, step = by_kind(copy.deepcopy(kustomized)), by_kind(step_rendering)
    assert step["TrainJob"]["kind"] == "TrainJob"
    assert without_tags(ours["TrainJob"]) == without_tags(step["TrainJob"])
    ours_config, step_config = (
        yaml.safe_load(d["ConfigMap"]["data"].pop("train.yaml")) for d in (ours, step)
    )
    assert ours["ConfigMap"] == step["ConfigMap"]
    # the output location is the one value the user sets (the step derives its own under work_root)
    assert {**ours_config, "output_uri": None} == {**step_config, "output_uri": None}


def test_kustomize_output_validates_strictly_against_the_pinned_trainer_crd(kustomized):
    crd.validate(kustomized, CRD, strict=True)
    job = by_kind(kustomized)["TrainJob"]
    assert job["spec"]["trainer"]["image"] == images.RUNTIME_IMAGE
    assert job["spec"]["runtimeRef"]["name"] == tj.DEFAULT_RUNTIME
