"""train component body: every parameter reaches the PyTorchJobs it launches (the cluster call is recorded)."""

from pathlib import Path

import pytest
import yaml

from components.train.component import train
from wsovvis.k8s import launcher


def test_parameters_reach_the_training_and_eval_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    launched = []
    monkeypatch.setattr(
        launcher,
        "launch_pytorchjob",
        lambda docs, settings, run_id: launched.append((docs, settings, run_id)),
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://s3.test:9000")

    results = train.python_func(
        run_id="run-7",
        launcher="pytorchjob",
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
        s3_secret_name="s3-creds",
        s3_secret_keys=["id", "key"],
        runtime_available=False,
    )

    assert results.startswith(str(tmp_path / "work" / "train")) and results.endswith("/results.json")
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
    env = {e["name"]: e for e in container["env"]}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "s3-creds", "key": "key"}
    assert env["AWS_ENDPOINT_URL"]["value"] == "http://s3.test:9000"
    eval_config = yaml.safe_load(next(iter(eval_docs[0]["data"].values())))
    assert eval_config["eval_only"] is True
    assert (eval_config["data"]["val_json"], eval_config["data"]["val_img_root"]) == (
        "s3://d/val.json",
        "s3://d/val-frames",
    )
    assert "Worker" not in eval_docs[1]["spec"]["pytorchReplicaSpecs"] and eval_launch.namespace == "team-a"
