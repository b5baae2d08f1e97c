"""The PyTorchJob spec builder: names, environment, resources, volumes, and strict CRD validity."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from wsovvis import cli
from wsovvis.errors import InputError, UsageError
from wsovvis.k8s import crd
from wsovvis.k8s import pytorchjob as pj
from wsovvis.k8s.placement import Placement, PodResources, S3Source

CRD = Path(__file__).resolve().parents[1] / "data" / "crds" / "kubeflow.org_pytorchjobs.v1.9.0.yaml"
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


@pytest.fixture(scope="module")
def strict_schemas() -> dict:
    return crd.load_schemas(CRD, strict=True)


PLACEMENT_FIELDS = {f.name for f in dataclasses.fields(Placement)}


def settings(**overrides) -> pj.PyTorchJobSettings:
    """A job named wsovvis-train-abc in the example image; overrides of the placement's fields go to the placement."""
    placement = {"image": "registry.example/wsovvis-runtime:1.2.3"}
    placement.update({k: v for k, v in overrides.items() if k in PLACEMENT_FIELDS})
    job = {k: v for k, v in overrides.items() if k not in PLACEMENT_FIELDS}
    return pj.PyTorchJobSettings(**{"name": "wsovvis-train-abc", **job, "placement": Placement(**placement)})


def replicas(job: dict) -> dict:
    return job["spec"]["pytorchReplicaSpecs"]


def container(job: dict, replica: str = "Master") -> dict:
    (only,) = replicas(job)[replica]["template"]["spec"]["containers"]
    return only


def env_of(job: dict, replica: str = "Master") -> dict[str, dict]:
    return {e["name"]: e for e in container(job, replica)["env"]}


# --- names -------------------------------------------------------------------------------------------------


def test_a_kfp_run_uuid_becomes_the_job_name_unchanged():
    run_id = "0f8fad5b-d9cb-469f-a165-70867728950e"
    assert pj.job_name_for_run(run_id) == f"wsovvis-train-{run_id}"
    assert pj.job_name_for_run(run_id) == pj.job_name_for_run(run_id)


@pytest.mark.parametrize(
    "run_id",
    ["Run_42/Retry", "RUN-UPPER", "x" * 200, "--leading-dashes--", "ünïcode run", "12345678901234567890"],
)
def test_any_run_id_gives_a_valid_deterministic_name_with_room_for_pod_suffixes(run_id):
    name = pj.job_name_for_run(run_id)
    assert DNS_1035.match(name), name
    assert len(f"{name}-worker-9999") <= 63
    assert pj.job_name_for_run(run_id) == name
    pj.check_job_name(name, num_workers=9999)


def test_run_ids_that_sanitise_alike_keep_distinct_names():
    names = {pj.job_name_for_run(r) for r in ("Run_1", "run-1", "RUN 1", "run--1")}
    assert len(names) == 4


def test_long_run_ids_sharing_a_prefix_keep_distinct_names():
    assert pj.job_name_for_run("a" * 80 + "1") != pj.job_name_for_run("a" * 80 + "2")


def test_empty_run_id_is_a_usage_error():
    with pytest.raises(UsageError, match="run id is empty"):
        pj.job_name_for_run("")


@pytest.mark.parametrize("name", ["Wsovvis", "1train", "train_job", "train-", "x" * 55])
def test_unusable_job_names_are_rejected_naming_the_rule(name):
    with pytest.raises(UsageError, match="must be lower-case"):
        settings(name=name)


def test_worker_count_counts_towards_the_name_length():
    name = "w" * 54  # 63 characters with "-master-0" or "-worker-9", 64 with "-worker-10"
    settings(name=name, num_workers=10)
    with pytest.raises(UsageError, match="pod suffix"):
        settings(name=name, num_workers=11)


# --- replicas, command, resources ---------------------------------------------------------------------------


def test_master_only_without_workers_and_master_plus_workers_with_them():
    alone = pj.build_pytorchjob(settings())
    assert set(replicas(alone)) == {"Master"}
    assert replicas(alone)["Master"]["replicas"] == 1
    ddp = pj.build_pytorchjob(settings(num_workers=3))
    assert replicas(ddp)["Master"]["replicas"] == 1
    assert replicas(ddp)["Worker"]["replicas"] == 3


def test_the_container_is_named_pytorch_and_runs_the_harness_with_the_mounted_config():
    job = pj.build_pytorchjob(
        settings(num_workers=1, config_updates=("resume=True", "d2_opts=['SOLVER.MAX_ITER', 10]"))
    )
    for replica in ("Master", "Worker"):
        c = container(job, replica)
        assert c["name"] == "pytorch"
        assert c["image"] == "registry.example/wsovvis-runtime:1.2.3"
        assert c["command"] + c["args"] == [
            "wsovvis",
            "train",
            "with",
            "/etc/wsovvis/train.yaml",
            "resume=True",
            "d2_opts=['SOLVER.MAX_ITER', 10]",
        ]
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        assert mounts["/etc/wsovvis"]["readOnly"] is True
        volumes = {v["name"]: v for v in replicas(job)[replica]["template"]["spec"]["volumes"]}
        assert volumes[mounts["/etc/wsovvis"]["name"]]["configMap"] == {"name": "wsovvis-train-abc-config"}


def test_gpu_limits_and_procs_per_node_follow_the_gpu_count():
    job = pj.build_pytorchjob(settings(gpus_per_worker=4, num_workers=1))
    for replica in ("Master", "Worker"):
        assert container(job, replica)["resources"]["limits"] == {"nvidia.com/gpu": "4"}
    assert job["spec"]["nprocPerNode"] == "4"
    explicit = pj.build_pytorchjob(settings(gpus_per_worker=4, nproc_per_node=2))
    assert explicit["spec"]["nprocPerNode"] == "2"


def test_cpu_only_jobs_ask_for_no_gpu_and_run_one_process_per_pod():
    job = pj.build_pytorchjob(settings(gpus_per_worker=0, resources=PodResources("2", "4Gi")))
    resources = container(job)["resources"]
    assert resources == {"requests": {"cpu": "2", "memory": "4Gi"}}
    assert job["spec"]["nprocPerNode"] == "1"


def test_other_gpu_resources_and_limits_are_configurable():
    job = pj.build_pytorchjob(
        settings(gpus_per_worker=1, gpu_resource="amd.com/gpu", limits=PodResources("8", "32Gi"))
    )
    assert container(job)["resources"]["limits"] == {"cpu": "8", "memory": "32Gi", "amd.com/gpu": "1"}


@pytest.mark.parametrize(("cpu", "memory"), [("four", "16Gi"), ("4", "16 GB"), ("-1", "1Gi"), ("4", "")])
def test_pod_resources_that_are_not_quantities_are_usage_errors_naming_the_value(cpu, memory):
    with pytest.raises(UsageError, match="not a Kubernetes quantity"):
        PodResources(cpu, memory)


def test_pod_resources_take_every_quantity_form():
    for cpu, memory in [("500m", "512Mi"), ("1.5", "2G"), ("2", "1e9"), (".5", "64Ki")]:
        assert PodResources(cpu, memory).memory == memory


def test_dev_shm_is_a_memory_backed_empty_dir_of_the_configured_size():
    job = pj.build_pytorchjob(settings(shm_size="32Gi", num_workers=2))
    for replica in ("Master", "Worker"):
        mounts = {m["mountPath"]: m["name"] for m in container(job, replica)["volumeMounts"]}
        volumes = {v["name"]: v for v in replicas(job)[replica]["template"]["spec"]["volumes"]}
        assert volumes[mounts["/dev/shm"]]["emptyDir"] == {"medium": "Memory", "sizeLimit": "32Gi"}


def test_istio_injection_is_off_on_every_pod():
    job = pj.build_pytorchjob(settings(num_workers=2))
    for spec in replicas(job).values():
        assert spec["template"]["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"


def test_scheduling_settings_reach_every_pod():
    toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    job = pj.build_pytorchjob(
        settings(
            num_workers=1,
            node_selector={"cloud.google.com/gke-accelerator": "nvidia-l4"},
            tolerations=(toleration,),
            service_account="trainer",
            labels={"team": "vision"},
        )
    )
    assert job["metadata"]["labels"] == {"team": "vision"}
    for spec in replicas(job).values():
        pod = spec["template"]["spec"]
        assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
        assert pod["tolerations"] == [toleration]
        assert pod["serviceAccountName"] == "trainer"
        assert spec["template"]["metadata"]["labels"] == {"team": "vision"}


def test_run_policy_is_rendered_with_ttl_only_when_set():
    plain = pj.build_pytorchjob(settings())
    assert plain["spec"]["runPolicy"] == {"cleanPodPolicy": "Running", "backoffLimit": 3}
    policy = pj.RunPolicy(clean_pod_policy="All", backoff_limit=0, ttl_seconds_after_finished=3600)
    job = pj.build_pytorchjob(settings(run_policy=policy))
    assert job["spec"]["runPolicy"] == {
        "cleanPodPolicy": "All",
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": 3600,
    }


def test_invalid_policies_are_usage_errors():
    with pytest.raises(UsageError, match="clean_pod_policy"):
        settings(run_policy=pj.RunPolicy(clean_pod_policy="Sometimes"))
    with pytest.raises(UsageError, match="restart_policy"):
        settings(restart_policy="Maybe")
    with pytest.raises(UsageError, match="image is empty"):
        settings(image="")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Placement(image="img:1", num_workers=-1), "num_workers must be >= 0"),
        (lambda: Placement(image="img:1", gpus_per_worker=-2), "gpus_per_worker must be >= 0"),
        (
            lambda: Placement(image="img:1", node_selector={"pool": 1}),
            "node_selector must map labels to strings",
        ),
        (lambda: Placement(image="img:1", tolerations=["gpu"]), "each toleration must be a mapping"),
        (lambda: S3Source(secret_keys=("only-one",)), "secret_keys must be two key names"),
        (lambda: S3Source(config_map_name=""), "config_map_name is empty"),
    ],
)
def test_an_unusable_placement_is_refused_when_it_is_made(make, message):
    with pytest.raises(UsageError, match=message):
        make()


# --- S3 environment -----------------------------------------------------------------------------------------


def test_s3_keys_come_from_the_secret_and_the_endpoint_from_the_config_map_by_reference():
    job = pj.build_pytorchjob(settings(num_workers=1))
    for replica in ("Master", "Worker"):
        env = env_of(job, replica)
        assert env["AWS_ACCESS_KEY_ID"] == {
            "name": "AWS_ACCESS_KEY_ID",
            "valueFrom": {"secretKeyRef": {"name": "wsovvis-s3", "key": "accesskey"}},
        }
        assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"] == {
            "secretKeyRef": {"name": "wsovvis-s3", "key": "secretkey"}
        }
        assert env["AWS_ENDPOINT_URL"] == {
            "name": "AWS_ENDPOINT_URL",
            "valueFrom": {"configMapKeyRef": {"name": "wsovvis-s3", "key": "endpoint"}},
        }


def test_secret_name_keys_and_config_map_are_configurable():
    s3 = S3Source(
        secret_name="my-s3",
        secret_keys=("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
        config_map_name="my-endpoint",
    )
    env = env_of(pj.build_pytorchjob(settings(s3=s3)))
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {
        "name": "my-s3",
        "key": "AWS_ACCESS_KEY_ID",
    }
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "my-s3",
        "key": "AWS_SECRET_ACCESS_KEY",
    }
    assert env["AWS_ENDPOINT_URL"]["valueFrom"] == {
        "configMapKeyRef": {"name": "my-endpoint", "key": "endpoint"}
    }


def test_credentials_and_endpoint_cannot_be_given_as_literal_environment_values():
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_ENDPOINT_URL"):
        with pytest.raises(UsageError, match=f"env must not set {name}; the S3 keys and endpoint come from"):
            settings(env={name: "minioadmin"})


def test_no_rendered_env_variable_carries_a_credential_as_a_value():
    job = pj.build_pytorchjob(settings(num_workers=1, env={"NCCL_DEBUG": "INFO"}))
    for replica in ("Master", "Worker"):
        for entry in container(job, replica)["env"]:
            if entry["name"] in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
                assert "value" not in entry
    assert env_of(job)["NCCL_DEBUG"] == {"name": "NCCL_DEBUG", "value": "INFO"}
    assert env_of(job)["WSOVVIS_IMAGE"]["value"] == "registry.example/wsovvis-runtime:1.2.3"


# --- CRD schema, strict -------------------------------------------------------------------------------------

VARIANTS = {
    "defaults": {},
    "ddp-4x8": {"num_workers": 3, "gpus_per_worker": 8, "shm_size": "64Gi"},
    "cpu": {"gpus_per_worker": 0, "restart_policy": "Never"},
    "everything": {
        "namespace": "team-a",
        "num_workers": 2,
        "nproc_per_node": 2,
        "resources": PodResources("8", "32Gi"),
        "limits": PodResources("16", "64Gi"),
        "node_selector": {"gpu": "a100"},
        "tolerations": ({"key": "gpu", "operator": "Equal", "value": "a100", "effect": "NoSchedule"},),
        "service_account": "trainer",
        "env": {"NCCL_DEBUG": "INFO"},
        "labels": {"app.kubernetes.io/name": "wsovvis"},
        "s3": S3Source(secret_name="s3-creds", config_map_name="s3-endpoint"),
        "run_policy": pj.RunPolicy(clean_pod_policy="All", backoff_limit=1, ttl_seconds_after_finished=60),
        "config_updates": ("eval_only=True",),
    },
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_generated_jobs_validate_strictly_against_the_real_crd(variant, strict_schemas):
    job = pj.build_pytorchjob(settings(**VARIANTS[variant]))
    assert crd.validation_errors(job, strict_schemas) == []


def test_strict_validation_rejects_an_unknown_field_that_lax_validation_lets_through(strict_schemas):
    job = pj.build_pytorchjob(settings())
    job["spec"]["nprocsPerNode"] = "1"  # misspelt: the API server would silently prune it
    replicas(job)["Master"]["restartPolicy"] = "OnFailure"
    assert crd.validation_errors(job, crd.load_schemas(CRD, strict=False)) == []
    errors = crd.validation_errors(job, strict_schemas)
    assert len(errors) == 1 and errors[0].startswith("spec:") and "nprocsPerNode" in errors[0]


def test_validation_names_the_path_of_a_wrongly_typed_field():
    job = pj.build_pytorchjob(settings())
    replicas(job)["Master"]["replicas"] = "one"
    with pytest.raises(InputError, match=r"spec\.pytorchReplicaSpecs\.Master\.replicas"):
        crd.validate([job], CRD)


def test_a_crd_file_without_crds_is_an_input_error(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("kind: ConfigMap\n")
    with pytest.raises(InputError, match="no CustomResourceDefinition"):
        crd.load_schemas(path)


# --- manifest documents, renaming, settings files -----------------------------------------------------------


def test_render_manifest_puts_the_config_in_the_configmap_the_job_mounts():
    config_text = "output_uri: s3://bucket/run\n"
    config_map, job = pj.render_manifest(settings(namespace="ns1"), config_text)
    assert config_map["kind"] == "ConfigMap"
    assert config_map["metadata"] == {"name": "wsovvis-train-abc-config", "namespace": "ns1"}
    assert config_map["data"] == {"train.yaml": config_text}
    assert job["metadata"]["namespace"] == "ns1"


def test_with_job_name_renames_the_job_and_its_own_configmap_together():
    docs = pj.render_manifest(settings(num_workers=1), "x: 1\n")
    renamed = pj.with_job_name(docs, "wsovvis-train-run-7")
    config_map, job = renamed
    assert job["metadata"]["name"] == "wsovvis-train-run-7"
    assert config_map["metadata"]["name"] == "wsovvis-train-run-7-config"
    for spec in replicas(job).values():
        volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
        assert volumes["config"]["configMap"]["name"] == "wsovvis-train-run-7-config"
    assert docs[1]["metadata"]["name"] == "wsovvis-train-abc"  # the input is left alone


def test_find_job_wants_exactly_one_pytorchjob():
    job = pj.build_pytorchjob(settings())
    with pytest.raises(UsageError, match="found 2"):
        pj.find_job([job, job], source="two.yaml")
    with pytest.raises(UsageError, match="found 0"):
        pj.find_job([], source="none.yaml")


def test_settings_files_reject_unknown_keys_naming_them(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text("name: wsovvis-train\nimage: img:1\ngpus: 2\n")
    with pytest.raises(UsageError, match="unknown key.*gpus"):
        pj.load_settings(str(path))


def test_settings_files_load_nested_settings(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "wsovvis-train",
                "placement": {
                    "image": "img:1",
                    "node_selector": {"gpu": "l4"},
                    "tolerations": [{"key": "gpu", "operator": "Exists"}],
                    "resources": {"cpu": "2", "memory": "8Gi"},
                    "s3": {"secret_name": "s3-creds", "secret_keys": ["id", "key"]},
                },
                "run_policy": {"backoff_limit": 0},
            }
        )
    )
    loaded = pj.load_settings(str(path), image="img:2", namespace="team-a")
    assert (loaded.placement.image, loaded.placement.namespace) == ("img:2", "team-a")
    assert loaded.placement.node_selector == {"gpu": "l4"}
    assert loaded.placement.tolerations == ({"key": "gpu", "operator": "Exists"},)
    assert loaded.placement.resources == PodResources("2", "8Gi")
    assert loaded.placement.s3 == S3Source(secret_name="s3-creds", secret_keys=("id", "key"))
    assert loaded.run_policy.backoff_limit == 0


def test_settings_files_reject_unknown_placement_keys_and_unusable_resources_naming_them(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text("name: wsovvis-train\nplacement: {image: img:1, cpus: 2}\n")
    with pytest.raises(UsageError, match=r"placement: unknown key.*cpus"):
        pj.load_settings(str(path))
    path.write_text("name: wsovvis-train\nplacement: {resources: {cpu: lots, memory: 1Gi}}\n")
    with pytest.raises(UsageError, match="cpu 'lots' is not a Kubernetes quantity"):
        pj.load_settings(str(path))


def test_render_cli_writes_the_manifest_named_after_the_run(tmp_path):
    settings_path = tmp_path / "settings.yaml"
    settings_path.write_text("name: wsovvis-train\nplacement: {image: img:1, num_workers: 1}\n")
    config_path = tmp_path / "train.yaml"
    config_path.write_text("output_uri: s3://b/out\n")
    out = tmp_path / "job.yaml"
    code = cli.main(
        [
            "render-pytorchjob",
            "--settings",
            str(settings_path),
            "--config",
            str(config_path),
            "--run-id",
            "Run 9",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    docs = list(yaml.safe_load_all(out.read_text()))
    name = pj.job_name_for_run("Run 9", prefix="wsovvis-train")
    expected = pj.render_manifest(
        dataclasses.replace(pj.load_settings(str(settings_path)), name=name), "output_uri: s3://b/out\n"
    )
    assert docs == expected
