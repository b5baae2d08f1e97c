"""train component body: every parameter reaches the PyTorchJobs or TrainJobs it launches (the cluster call is
recorded)."""

from pathlib import Path

import pytest
import yaml
from kfp import dsl

from components.train.component import train
from wsovvis.k8s import launcher


def _launch(launched: list, docs: list, settings, run_id: str) -> None:
    """Records the launch and leaves what the job would: the final checkpoint of a training run."""
    launched.append((docs, settings, run_id))
    config = yaml.safe_load(next(iter(docs[0]["data"].values())))
    if not config["eval_only"]:
        output = Path(config["output_uri"])
        output.mkdir(parents=True, exist_ok=True)
        (output / "model_final.pth").write_bytes(b"weights")
        (output / "last_checkpoint").write_text("model_final.pth")


def run_component(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, job_launcher: str) -> tuple[str, list]:
    """The component with every parameter set, launching ``job_launcher`` jobs; (checkpoint, launches)."""
    launched = []
    monkeypatch.setattr(
        launcher,
        "launch_job",
        lambda docs, settings, run_id: _launch(launched, docs, settings, run_id),
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://s3.test:9000")  # the step's own: not copied into the jobs
    results_path = tmp_path / "results_json"

    checkpoint = train.python_func(
        run_id="run-7",
        launcher=job_launcher,
        train_json="s3://d/tubes.json",
        train_img_root="s3://d/frames",
        val_json="s3://d/val.json",
        val_img_root="s3://d/val-frames",
        work_root=str(tmp_path / "work"),
        d2_cfg_path="/opt/seqformer.yaml",
        d2_opts=["SOLVER.MAX_ITER", 8],
        weights="s3://d/w.pth",
        namespace="team-a",
        num_workers=3,
        gpus_per_worker=4,
        timeout_seconds=600,
        trainjob_runtime="torch-gpu",
        runtime_image="registry.example.com/runtime:t",
        node_selector={"pool": "gpu"},
        tolerations=[{"key": "gpu", "operator": "Exists"}],
        pod_resources={"cpu": "12", "memory": "48Gi"},
        s3_secret_name="s3-creds",
        s3_secret_keys=["id", "key"],
        s3_config_map_name="s3-endpoint",
        runtime_available=False,
        metrics=dsl.Metrics(name="metrics", uri=str(tmp_path / "metrics")),
        results_json=str(results_path),
    )
    results = results_path.read_text()
    assert results.startswith(str(tmp_path / "work" / "train")) and results.endswith("/results.json")
    return checkpoint, launched


def test_parameters_reach_the_training_and_eval_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkpoint, launched = run_component(tmp_path, monkeypatch, "pytorchjob")
    assert checkpoint.startswith(str(tmp_path / "work" / "train")) and checkpoint.endswith("/model_final.pth")
    (train_docs, train_launch, train_run), (eval_docs, eval_launch, _) = launched
    assert train_run == "run-7" and (train_launch.namespace, train_launch.timeout_s) == ("team-a", 600)
    (config_map, job) = train_docs
    config = yaml.safe_load(next(iter(config_map["data"].values())))
    assert config["data"] == {"train_json": "s3://d/tubes.json", "train_img_root": "s3://d/frames"}
    assert config["d2_opts"] == ["SOLVER.MAX_ITER", "8", "MODEL.WEIGHTS", "s3://d/w.pth"]
    assert config["d2_cfg_path"] == "/opt/seqformer.yaml" and config["eval_only"] is False
    assert job["metadata"]["namespace"] == "team-a"
    assert job["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 3
    container = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert container["resources"]["requests"] == {"cpu": "12", "memory": "48Gi"}
    assert container["image"] == "registry.example.com/runtime:t"
    pod = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "gpu"} and pod["tolerations"] == [
        {"key": "gpu", "operator": "Exists"}
    ]
    env = {e["name"]: e for e in container["env"]}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "s3-creds", "key": "key"}
    assert env["AWS_ENDPOINT_URL"]["valueFrom"]["configMapKeyRef"] == {
        "name": "s3-endpoint",
        "key": "endpoint",
    }
    assert "http://s3.test:9000" not in str(launched)
    eval_config = yaml.safe_load(next(iter(eval_docs[0]["data"].values())))
    assert eval_config["eval_only"] is True and eval_config["d2_opts"][-1] == checkpoint
    assert (eval_config["data"]["val_json"], eval_config["data"]["val_img_root"]) == (
        "s3://d/val.json",
        "s3://d/val-frames",
    )
    assert "Worker" not in eval_docs[1]["spec"]["pytorchReplicaSpecs"] and eval_launch.namespace == "team-a"


def test_parameters_reach_the_training_and_eval_trainjobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint, launched = run_component(tmp_path, monkeypatch, "trainjob")
    (train_docs, train_launch, train_run), (eval_docs, _, _) = launched
    assert train_run == "run-7" and (train_launch.namespace, train_launch.timeout_s) == ("team-a", 600)
    (config_map, job) = train_docs
    assert yaml.safe_load(next(iter(config_map["data"].values())))["eval_only"] is False
    assert (job["kind"], job["metadata"]["namespace"]) == ("TrainJob", "team-a")
    assert job["spec"]["runtimeRef"] == {
        "name": "torch-gpu",
        "apiGroup": "trainer.kubeflow.org",
        "kind": "ClusterTrainingRuntime",
    }
    trainer = job["spec"]["trainer"]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (4, 4)
    assert trainer["resourcesPerNode"] == {
        "requests": {"cpu": "12", "memory": "48Gi"},
        "limits": {"nvidia.com/gpu": "4"},
    }
    assert trainer["image"] == "registry.example.com/runtime:t"
    (patch,) = job["spec"]["runtimePatches"]
    (node,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    pod = node["template"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "gpu"} and pod["tolerations"] == [
        {"key": "gpu", "operator": "Exists"}
    ]
    assert {"name": "config", "configMap": {"name": config_map["metadata"]["name"]}} in pod["volumes"]
    env = {e["name"]: e for e in trainer["env"]}
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {"name": "s3-creds", "key": "id"}
    assert env["AWS_ENDPOINT_URL"]["valueFrom"]["configMapKeyRef"] == {
        "name": "s3-endpoint",
        "key": "endpoint",
    }
    assert "http://s3.test:9000" not in str(launched)
    assert eval_docs[1]["spec"]["trainer"]["numNodes"] == 1, "the eval-only prediction runs on one node"
    eval_config = yaml.safe_load(next(iter(eval_docs[0]["data"].values())))
    assert eval_config["eval_only"] is True and eval_config["d2_opts"][-1] == checkpoint
