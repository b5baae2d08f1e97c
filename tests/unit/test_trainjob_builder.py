"""The TrainJob spec builder (Trainer v2.2.1): what it renders from the placement, the override of the runtime, names,
and strict validity against the pinned Trainer release's CRD."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from wsovvis import cli
from wsovvis.errors import UsageError
from wsovvis.k8s import crd
from wsovvis.k8s import trainjob as tj
from wsovvis.k8s.placement import Placement, PodResources, S3Source

CRD = (
    Path(__file__).resolve().parents[1]
    / "data"
    / "crds"
    / f"trainer.kubeflow.org_trainjobs.{tj.TRAINER_VERSION}.yaml"
)
PLACEMENT_FIELDS = {f.name for f in dataclasses.fields(Placement)}


@pytest.fixture(scope="module")
def strict_schemas() -> dict:
    return crd.load_schemas(CRD, strict=True)


def settings(**overrides) -> tj.TrainJobSettings:
    """A job named wsovvis-train-abc in the example image; overrides of the placement's fields go to the placement."""
    placement = {"image": "registry.example/wsovvis-runtime:1.2.3"}
    placement.update({k: v for k, v in overrides.items() if k in PLACEMENT_FIELDS})
    job = {k: v for k, v in overrides.items() if k not in PLACEMENT_FIELDS}
    return tj.TrainJobSettings(**{"name": "wsovvis-train-abc", **job, "placement": Placement(**placement)})


def node_patch(job: dict) -> dict:
    """The pod template patch of the runtime's node ReplicatedJob."""
    (patch,) = job["spec"]["runtimePatches"]
    assert patch["manager"] == tj.PATCH_MANAGER
    (node,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert node["name"] == "node"
    return node["template"]["spec"]["template"]


def test_the_job_references_the_torch_runtime_and_runs_the_harness_on_every_node():
    job = tj.build_trainjob(settings(num_workers=2, gpus_per_worker=4))
    assert (job["apiVersion"], job["kind"], job["metadata"]["name"]) == (
        "trainer.kubeflow.org/v1alpha1",
        "TrainJob",
        "wsovvis-train-abc",
    )
    assert job["spec"]["runtimeRef"] == {
        "name": "torch-distributed",
        "apiGroup": "trainer.kubeflow.org",
        "kind": "ClusterTrainingRuntime",
    }
    trainer = job["spec"]["trainer"]
    assert trainer["image"] == "registry.example/wsovvis-runtime:1.2.3"
    assert trainer["command"] == ["wsovvis", "train"]
    assert trainer["args"] == ["with", "/etc/wsovvis/train.yaml"]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (3, 4)
    assert trainer["resourcesPerNode"] == {
        "requests": {"cpu": "4", "memory": "16Gi"},
        "limits": {"nvidia.com/gpu": "4"},
    }


def test_cpu_only_jobs_ask_for_no_gpu_and_set_one_process_per_node_not_the_plugins_auto():
    trainer = tj.build_trainjob(settings(gpus_per_worker=0, resources=PodResources("8", "4Gi")))["spec"][
        "trainer"
    ]
    assert trainer["resourcesPerNode"] == {"requests": {"cpu": "8", "memory": "4Gi"}}
    assert trainer["numProcPerNode"] == 1, "auto would start one process per requested CPU"
    assert tj.build_trainjob(settings(nproc_per_node=2))["spec"]["trainer"]["numProcPerNode"] == 2


def test_s3_comes_by_reference_and_no_torch_variable_is_set():
    s3 = S3Source(secret_name="creds", secret_keys=("id", "key"), config_map_name="endpoint")
    env = {e["name"]: e for e in tj.build_trainjob(settings(s3=s3, env={"X": "1"}))["spec"]["trainer"]["env"]}
    assert env["AWS_ACCESS_KEY_ID"] == {
        "name": "AWS_ACCESS_KEY_ID",
        "valueFrom": {"secretKeyRef": {"name": "creds", "key": "id"}},
    }
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "creds", "key": "key"}}
    assert env["AWS_ENDPOINT_URL"]["valueFrom"] == {
        "configMapKeyRef": {"name": "endpoint", "key": "endpoint"}
    }
    assert env["WSOVVIS_IMAGE"]["value"] == "registry.example/wsovvis-runtime:1.2.3"
    assert env["X"]["value"] == "1"
    assert not {name for name in env if name.startswith("PET_") or name in ("MASTER_ADDR", "RANK")}


@pytest.mark.parametrize("name", tj.TORCH_ENV)
def test_torch_variables_in_env_are_refused_as_the_webhook_would(name):
    with pytest.raises(UsageError, match=f"env must not set {name}; the torch runtime sets them"):
        settings(env={name: "1"})


def test_node_selector_tolerations_service_account_volumes_and_metadata_go_through_the_runtime_patch():
    tolerations = ({"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},)
    job = tj.build_trainjob(
        settings(
            node_selector={"pool": "a100"},
            tolerations=tolerations,
            service_account="trainer",
            shm_size="2Gi",
            labels={"team": "vis"},
        )
    )
    template = node_patch(job)
    assert template["metadata"] == {
        "annotations": {"sidecar.istio.io/inject": "false"},
        "labels": {"team": "vis"},
    }
    spec = template["spec"]
    assert spec["nodeSelector"] == {"pool": "a100"} and spec["tolerations"] == list(tolerations)
    assert spec["serviceAccountName"] == "trainer"
    assert spec["volumes"] == [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}},
        {"name": "config", "configMap": {"name": "wsovvis-train-abc-config"}},
    ]
    assert spec["containers"] == [
        {
            "name": "node",
            "volumeMounts": [
                {"name": "dshm", "mountPath": "/dev/shm"},
                {"name": "config", "mountPath": "/etc/wsovvis", "readOnly": True},
            ],
        }
    ]
    assert "env" not in spec["containers"][0], "Trainer refuses env on the node container's patch"
    assert job["metadata"]["labels"] == {"team": "vis"}


def test_a_namespaced_runtime_can_be_referenced():
    job = tj.build_trainjob(
        settings(runtime="torch-cuda", runtime_kind="TrainingRuntime", namespace="team-a")
    )
    assert job["spec"]["runtimeRef"]["name"] == "torch-cuda"
    assert job["spec"]["runtimeRef"]["kind"] == "TrainingRuntime"
    assert job["metadata"]["namespace"] == "team-a"
    with pytest.raises(
        UsageError, match="runtime_kind 'Runtime' is not one of ClusterTrainingRuntime, TrainingRuntime"
    ):
        settings(runtime_kind="Runtime")
    with pytest.raises(UsageError, match="runtime is empty"):
        settings(runtime="")


def test_the_node_count_counts_towards_the_name_length():
    name = "a" * (63 - len("-node-0-9"))
    settings(name=name, num_workers=9)
    with pytest.raises(UsageError, match="TrainJob name .* must be <= 63"):
        settings(name=name, num_workers=10)
    with pytest.raises(UsageError, match="lower-case letters"):
        settings(name="Train")


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"num_workers": 3, "gpus_per_worker": 8},
        {"gpus_per_worker": 0, "limits": PodResources("8", "32Gi")},
        {"node_selector": {"pool": "gpu"}, "tolerations": ({"key": "gpu", "operator": "Exists"},)},
        {"service_account": "trainer", "namespace": "ns", "labels": {"a": "b"}, "env": {"X": "1"}},
        {"config_updates": ("SOLVER.MAX_ITER=10",), "runtime_kind": "TrainingRuntime"},
    ],
    ids=["default", "multi-node", "cpu-limits", "placement", "account", "updates"],
)
def test_generated_jobs_validate_strictly_against_the_pinned_trainer_crd(variant, strict_schemas):
    docs = tj.render_manifest(settings(**variant), "output_uri: s3://b/o\n")
    assert crd.validation_errors(docs[1], strict_schemas) == []


def test_strict_validation_catches_the_override_field_of_another_trainer_release(strict_schemas):
    job = tj.build_trainjob(settings())
    job["spec"]["podTemplateOverrides"] = job["spec"].pop("runtimePatches")  # Trainer v2.1's name
    assert any("podTemplateOverrides" in line for line in crd.validation_errors(job, strict_schemas))


def test_render_manifest_puts_the_config_in_the_configmap_the_job_mounts():
    config_map, job = tj.render_manifest(settings(namespace="ns1"), "output_uri: s3://b/o\n")
    assert config_map["metadata"] == {"name": "wsovvis-train-abc-config", "namespace": "ns1"}
    assert config_map["data"] == {"train.yaml": "output_uri: s3://b/o\n"}
    assert {"name": "config", "configMap": {"name": "wsovvis-train-abc-config"}} in node_patch(job)["spec"][
        "volumes"
    ]
    assert tj.render_manifest(settings(), None) == [job | {"metadata": {"name": "wsovvis-train-abc"}}]


def test_with_job_name_renames_the_job_and_the_configmap_its_patch_mounts():
    docs = tj.TRAINJOB.with_job_name(
        tj.render_manifest(settings(num_workers=1), "x: 1\n"), "wsovvis-train-run-2"
    )
    config_map, job = docs
    assert job["metadata"]["name"] == "wsovvis-train-run-2"
    assert config_map["metadata"]["name"] == "wsovvis-train-run-2-config"
    assert {"name": "config", "configMap": {"name": "wsovvis-train-run-2-config"}} in node_patch(job)["spec"][
        "volumes"
    ]
    assert tj.TRAINJOB.num_workers(job) == 1


def test_settings_files_load_and_reject_unknown_keys(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text(
        "name: wsovvis-train\nruntime: torch-cuda\nplacement: {image: img:1, num_workers: 1, gpus_per_worker: 2}\n"
    )
    loaded = tj.load_settings(str(path), namespace="team-b")
    assert (loaded.runtime, loaded.placement.num_workers, loaded.placement.namespace) == (
        "torch-cuda",
        1,
        "team-b",
    )
    path.write_text("name: wsovvis-train\nrestart_policy: Never\n")
    with pytest.raises(UsageError, match="unknown key\\(s\\) restart_policy"):
        tj.load_settings(str(path))


def test_render_cli_renders_the_job_alone_without_a_config_in_the_namespace_given(tmp_path, capsys):
    settings_path = tmp_path / "settings.yaml"
    settings_path.write_text("name: wsovvis-train\nruntime: torch-cuda\nplacement: {image: img:1}\n")
    command = [
        "render-trainjob",
        "--settings",
        str(settings_path),
        "--namespace",
        "team-c",
        "--run-id",
        "Run 9",
    ]
    assert cli.main(command) == 0
    text = capsys.readouterr().out
    assert text.startswith("# Rendered by `wsovvis render-trainjob --settings")
    (job,) = yaml.safe_load_all(text)
    settings = tj.load_settings(str(settings_path), namespace="team-c")
    name = tj.jobspec.job_name_for_run("Run 9", prefix="wsovvis-train")
    assert job == tj.build_trainjob(dataclasses.replace(settings, name=name))
    assert (job["metadata"]["namespace"], job["spec"]["runtimeRef"]["name"]) == ("team-c", "torch-cuda")
