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

from wsovvis.k8s import pytorchjob as pj
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
    deadline = time.monotonic() + 120
    try:
        while len(seen) < expected and time.monotonic() < deadline:
            jobs = cluster.custom.list_namespaced_custom_object(pj.GROUP, pj.VERSION, namespace, pj.PLURAL)
            for job in jobs["items"]:
                name = job["metadata"]["name"]
                if name in seen:
                    continue
                config_map = cluster.core.read_namespaced_config_map(f"{name}-config", namespace)
                seen[name] = (job, yaml.safe_load(next(iter(config_map.data.values()))))
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


def _run_step(cluster, tmp_path, run_id: str, expected_jobs: int) -> tuple[str, dict]:
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    cluster.core.create_namespace({"metadata": {"name": namespace}})
    seen: dict = {}
    errors: list = []
    operator = threading.Thread(target=_play_operator, args=(cluster, namespace, expected_jobs, seen, errors))
    operator.start()
    results = train_step(
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
        namespace=namespace,
        num_workers=1,
        gpus_per_worker=2,
        timeout_seconds=300,
        s3_secret_name="wsovvis-s3",
        s3_secret_keys=["id", "key"],
        runtime_available=False,
    )
    operator.join()
    assert not errors, errors
    return results, seen


def test_trains_then_predicts_as_pytorchjobs_named_from_the_run(kube_cluster, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("KUBECONFIG", kube_cluster.kubeconfig)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://seaweedfs.kubeflow:9000")
    results, seen = _run_step(kube_cluster, tmp_path, "0f3c2a9e-run", expected_jobs=2)
    assert results.startswith(str(tmp_path / "work" / "train")) and results.endswith("/results.json")
    (train_name, (train_job, train_config)), (eval_name, (eval_job, eval_config)) = sorted(
        seen.items(), key=lambda item: item[1][1]["eval_only"]
    )
    assert train_name == "wsovvis-train-0f3c2a9e-run" and eval_name == "wsovvis-train-eval-0f3c2a9e-run"
    replicas = train_job["spec"]["pytorchReplicaSpecs"]
    assert replicas["Worker"]["replicas"] == 1 and "Worker" not in eval_job["spec"]["pytorchReplicaSpecs"]
    container = replicas["Master"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    env = {e["name"]: e for e in container["env"]}
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {"name": "wsovvis-s3", "key": "id"}
    assert env["AWS_ENDPOINT_URL"]["value"] == "http://seaweedfs.kubeflow:9000"
    assert train_config["eval_only"] is False and eval_config["eval_only"] is True
    assert train_config["resume"] is True and eval_config["resume"] is True
    assert train_config["output_uri"] == eval_config["output_uri"] == results.rsplit("/", 1)[0]
    assert eval_config["data"]["val_json"] == "s3://data/val.json" and "val_json" not in train_config["data"]


def test_a_rerun_with_the_same_inputs_only_predicts_once_training_is_done(
    kube_cluster, monkeypatch, tmp_path
):
    monkeypatch.setenv("KUBECONFIG", kube_cluster.kubeconfig)
    first, _ = _run_step(kube_cluster, tmp_path, "run-a", expected_jobs=2)
    final = Path(first).with_name("model_final.pth")  # what the finished training leaves (nothing ran here)
    final.parent.mkdir(parents=True)
    final.write_bytes(b"checkpoint")
    second, seen = _run_step(kube_cluster, tmp_path, "run-b", expected_jobs=1)
    assert second == first
    assert list(seen) == ["wsovvis-train-eval-run-b"]
