"""The pipeline's train step on a cluster: a training PyTorchJob, then an eval-only one, against a real API server.

The test plays the Training Operator: it records each job the step creates and marks it Succeeded.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml

from tests.kube import pipeline_account
from wsovvis.k8s import pytorchjob as pj
from wsovvis.k8s.placement import Placement, PodResources, S3Source
from wsovvis.train.step import train_step

pytestmark = [
    pytest.mark.apiserver,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]


def _succeeded() -> dict:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "type": "Succeeded",
        "status": "True",
        "reason": "PyTorchJobSucceeded",
        "message": "done",
        "lastUpdateTime": now,
        "lastTransitionTime": now,
    }


def _play_operator(cluster, namespace: str, expected: int, seen: dict, errors: list) -> None:
    from kubernetes.client.exceptions import ApiException

    deadline = time.monotonic() + 120
    try:
        while len(seen) < expected and time.monotonic() < deadline:
            jobs = cluster.custom.list_namespaced_custom_object(pj.GROUP, pj.VERSION, namespace, pj.PLURAL)
            for job in jobs["items"]:
                name = job["metadata"]["name"]
                if name in seen:
                    continue
                try:
                    config_map = cluster.core.read_namespaced_config_map(f"{name}-config", namespace)
                except ApiException as exc:  # the launcher creates the ConfigMap just after the job
                    if exc.status == 404:
                        continue
                    raise
                config = yaml.safe_load(next(iter(config_map.data.values())))
                seen[name] = (job, config)
                # What the harness leaves: the final checkpoint after training, the results after eval-only.
                output = Path(config["output_uri"])
                output.mkdir(parents=True, exist_ok=True)
                if config["eval_only"]:
                    (output / "results.json").write_text("[]")
                else:
                    (output / "model_final.pth").write_bytes(b"checkpoint")
                    (output / "last_checkpoint").write_text("model_final.pth")
                cluster.custom.patch_namespaced_custom_object_status(
                    pj.GROUP,
                    pj.VERSION,
                    namespace,
                    pj.PLURAL,
                    name,
                    {"status": {"conditions": [_succeeded()]}},
                )
            time.sleep(0.2)
    except Exception as exc:  # surfaced by the test
        errors.append(exc)


def _run_step(
    cluster, monkeypatch, tmp_path, run_id: str, expected_jobs: int
) -> tuple[tuple[str, str], dict]:
    """The step in a fresh namespace, as the pipeline's service account there (bound only to manifests/rbac)."""
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    cluster.core.create_namespace({"metadata": {"name": namespace}})
    monkeypatch.setenv("KUBECONFIG", pipeline_account(cluster, namespace, tmp_path).kubeconfig)
    seen: dict = {}
    errors: list = []
    operator = threading.Thread(target=_play_operator, args=(cluster, namespace, expected_jobs, seen, errors))
    operator.start()
    results_path = tmp_path / f"results-{run_id}"
    checkpoint = train_step(
        run_id=run_id,
        launcher="pytorchjob",
        train_json="s3://data/tubes.json",
        train_img_root="s3://data/frames",
        val_json="s3://data/val.json",
        val_img_root="s3://data/val",
        work_root=str(tmp_path / "work"),
        d2_cfg_path="/opt/src/VNext/projects/SeqFormer/configs/base_ytvis.yaml",
        d2_opts=["SOLVER.MAX_ITER", 4],
        weights="",
        placement=Placement(
            image="registry.example.com/team/runtime:abc",
            namespace=namespace,
            num_workers=1,
            gpus_per_worker=2,
            resources=PodResources("6", "24Gi"),
            node_selector={"gpu": "a100"},
            tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            s3=S3Source(secret_name="wsovvis-s3", secret_keys=("id", "key"), config_map_name="s3-endpoint"),
        ),
        timeout_seconds=300,
        runtime_available=False,
        log_metric=lambda name, value: None,
        results_json_path=str(results_path),
    )
    operator.join()
    assert not errors, errors
    return (results_path.read_text(), checkpoint), seen


def test_trains_then_predicts_as_pytorchjobs_named_from_the_run(kube_cluster, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(
        "AWS_ENDPOINT_URL", "http://seaweedfs.kubeflow:9000"
    )  # the step's own: not copied into the job
    (results, checkpoint), seen = _run_step(
        kube_cluster, monkeypatch, tmp_path, "0f3c2a9e-run", expected_jobs=2
    )
    assert results.startswith(str(tmp_path / "work" / "train")) and results.endswith("/results.json")
    (train_name, (train_job, train_config)), (eval_name, (eval_job, eval_config)) = sorted(
        seen.items(), key=lambda item: item[1][1]["eval_only"]
    )
    assert train_name == "wsovvis-train-0f3c2a9e-run" and eval_name == "wsovvis-train-eval-0f3c2a9e-run"
    replicas = train_job["spec"]["pytorchReplicaSpecs"]
    assert replicas["Worker"]["replicas"] == 1 and "Worker" not in eval_job["spec"]["pytorchReplicaSpecs"]
    pod = replicas["Master"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    # The image the pipeline was compiled with, the nodes its parameters ask for and the pods' resources, in every
    # replica.
    for job in (train_job, eval_job):
        for replica in job["spec"]["pytorchReplicaSpecs"].values():
            spec = replica["template"]["spec"]
            assert spec["containers"][0]["image"] == "registry.example.com/team/runtime:abc"
            assert spec["containers"][0]["resources"]["requests"] == {"cpu": "6", "memory": "24Gi"}
            assert spec["nodeSelector"] == {"gpu": "a100"}
            assert spec["tolerations"] == [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ]
    env = {e["name"]: e for e in container["env"]}
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {"name": "wsovvis-s3", "key": "id"}
    assert env["AWS_ENDPOINT_URL"]["valueFrom"] == {
        "configMapKeyRef": {"name": "s3-endpoint", "key": "endpoint"}
    }
    assert train_config["eval_only"] is False and eval_config["eval_only"] is True
    assert train_config["resume"] is True and eval_config["resume"] is True
    # Eval-only predicts with the finished checkpoint into a folder of its own (keyed by checkpoint and val data).
    assert checkpoint == f"{train_config['output_uri']}/model_final.pth"
    assert eval_config["output_uri"] == results.rsplit("/", 1)[0] != train_config["output_uri"]
    assert eval_config["d2_opts"][-2:] == ["MODEL.WEIGHTS", checkpoint]
    assert eval_config["data"]["val_json"] == "s3://data/val.json" and "val_json" not in train_config["data"]


def test_a_rerun_with_the_same_inputs_only_predicts_once_training_is_done(
    kube_cluster, monkeypatch, tmp_path
):
    first, _ = _run_step(kube_cluster, monkeypatch, tmp_path, "run-a", expected_jobs=2)
    Path(first[0]).unlink()  # predictions lost: the rerun predicts again, with the finished training
    second, seen = _run_step(kube_cluster, monkeypatch, tmp_path, "run-b", expected_jobs=1)
    assert second == first
    assert list(seen) == ["wsovvis-train-eval-run-b"]
    third, seen = _run_step(kube_cluster, monkeypatch, tmp_path, "run-c", expected_jobs=0)
    assert third == first and not seen  # both done: nothing to launch
