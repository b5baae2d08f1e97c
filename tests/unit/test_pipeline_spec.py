"""The compiled pipeline spec: in sync with the code, and the shape the users rely on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from pipelines.compile import SPEC_PATH, compile_pipeline


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict, dict]:
    path = compile_pipeline(tmp_path_factory.mktemp("spec") / "wsovvis_pipeline.yaml")
    text = path.read_text()
    spec, platform = yaml.safe_load_all(text)
    return text, spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_committed_spec_is_in_sync_with_the_code(compiled: tuple[str, dict, dict]) -> None:
    text, _, _ = compiled
    assert SPEC_PATH.read_text() == text, (
        "pipelines/wsovvis_pipeline.yaml is stale: run `wsovvis pipeline compile`"
    )


def _tasks(spec: dict, dag: str | None = None) -> dict:
    if dag is None:
        return spec["root"]["dag"]["tasks"]
    return spec["components"][dag]["dag"]["tasks"]


def test_mask_gen_runs_in_a_parallel_for_over_the_shard_indices_with_a_gpu_each(compiled) -> None:
    _, spec, _ = compiled
    (loop_name,) = [name for name in _tasks(spec) if name.startswith("for-loop")]
    loop = _tasks(spec)[loop_name]
    assert loop["iteratorPolicy"]["parallelismLimit"] == 4
    assert loop["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--plan-shards-Output"
    assert "mask-gen" in _tasks(spec, loop["componentRef"]["name"])
    container = spec["deploymentSpec"]["executors"]["exec-mask-gen"]["container"]
    accelerator = container["resources"]["accelerator"]
    assert accelerator["resourceType"] == "nvidia.com/gpu" and accelerator["resourceCount"] == "1"
    from wsovvis.images import RUNTIME_IMAGE

    assert container["image"] == RUNTIME_IMAGE


def test_convert_fans_in_every_shard_and_training_and_evaluation_follow(compiled) -> None:
    _, spec, _ = compiled
    tasks = _tasks(spec)
    mask_roots = tasks["convert"]["inputs"]["parameters"]["mask_roots"]["taskOutputParameter"]
    assert mask_roots["outputParameterKey"] == "pipelinechannel--mask-gen-Output"
    assert mask_roots["producerTask"].startswith("for-loop")
    assert (
        tasks["train"]["inputs"]["parameters"]["train_json"]["taskOutputParameter"]["producerTask"]
        == "convert"
    )
    assert (
        tasks["train"]["inputs"]["parameters"]["run_id"]["runtimeValue"]["constant"]
        == "{{$.pipeline_job_uuid}}"
    )
    evaluations = {
        name: task
        for component in spec["components"].values()
        for name, task in component.get("dag", {}).get("tasks", {}).items()
        if name.startswith("evaluate")
    }
    producers = sorted(
        t["inputs"]["parameters"]["results_json"]["componentInputParameter"]
        for t in evaluations.values()
        if t["inputs"]["parameters"]["class_agnostic"]["runtimeValue"]["constant"]
    )
    assert producers == ["pipelinechannel--convert-Output", "pipelinechannel--train-Output"]
    outputs = spec["components"]["comp-evaluate"]["outputDefinitions"]["artifacts"]
    assert outputs["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
    assert outputs["report"]["artifactType"]["schemaTitle"] == "system.HTML"


def _all_tasks(spec: dict) -> dict[str, tuple[str, dict]]:
    """Every task of every DAG: name -> (the DAG's component name, task)."""
    return {
        name: (component_name, task)
        for component_name, component in spec["components"].items()
        for name, task in component.get("dag", {}).get("tasks", {}).items()
    }


def _condition_chain(spec: dict, component_name: str) -> list[str]:
    """The trigger conditions that lead to a DAG component, outermost first."""
    tasks = _all_tasks(spec)
    chain = []
    while True:
        parents = [(c, t) for c, t in tasks.values() if t["componentRef"]["name"] == component_name]
        if not parents:
            return chain[::-1]
        component_name, task = parents[0]
        if "condition" in task.get("triggerPolicy", {}):
            chain.append(task["triggerPolicy"]["condition"])


def test_attribution_labels_pseudo_tubes_and_model_results_then_scores_lvvis(compiled) -> None:
    from wsovvis.images import RUNTIME_IMAGE

    _, spec, _ = compiled
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["clip_weights"]["defaultValue"] == "" and params["clip_model"]["defaultValue"] == "ViT-B-32"
    assert params["topk"]["defaultValue"] == 5 and params["alpha"]["defaultValue"] == 0.5
    tasks = _all_tasks(spec)
    attributes = {
        n: (c, t) for n, (c, t) in tasks.items() if t["componentRef"]["name"].startswith("comp-attribute")
    }
    sources = sorted(
        t["inputs"]["parameters"]["results_json"]["componentInputParameter"] for _, t in attributes.values()
    )
    assert sources == ["pipelinechannel--convert-Output"] * 2 + ["pipelinechannel--train-Output"] * 2
    devices = []
    for name, (dag, task) in attributes.items():
        chain = _condition_chain(spec, dag)
        assert (
            "inputs.parameter_values['pipelinechannel--clip_weights'] != ''" in chain
        )  # no weights: skipped
        device = task["inputs"]["parameters"]["device"]["runtimeValue"]["constant"]
        devices.append(device)
        on_gpu = "inputs.parameter_values['pipelinechannel--clip_device'] == 'cuda'" in chain
        assert on_gpu == (device == "cuda")
        container = spec["deploymentSpec"]["executors"][f"exec-{task['componentRef']['name'][5:]}"][
            "container"
        ]
        assert container["image"] == RUNTIME_IMAGE
        assert ("accelerator" in container.get("resources", {})) == on_gpu
        if on_gpu:
            assert container["resources"]["accelerator"]["resourceCount"] == "1"
        (scored,) = [
            t for c, t in tasks.values() if c == dag and t["componentRef"]["name"].startswith("comp-evaluate")
        ]
        inputs = scored["inputs"]["parameters"]
        assert inputs["results_json"]["taskOutputParameter"]["producerTask"] == name
        assert inputs["lvvis"]["runtimeValue"]["constant"] is True
        assert inputs["class_agnostic"]["runtimeValue"]["constant"] is False
        gt = inputs["gt_json"]["componentInputParameter"]
        assert gt == (
            "pipelinechannel--val_gt_json"
            if "train-Output" in str(task)
            else "pipelinechannel--train_gt_json"
        )
    assert sorted(devices) == ["cpu", "cpu", "cuda", "cuda"]
    outputs = spec["components"]["comp-evaluate"]["outputDefinitions"]
    assert outputs["artifacts"]["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"


def test_credentials_come_from_a_secret_and_no_literal_is_in_the_spec(compiled) -> None:
    text, spec, executors = compiled
    for name in spec["deploymentSpec"]["executors"]:
        secrets = executors[name]["secretAsEnv"]
        env = {e["envVar"] for s in secrets for e in s["keyToEnv"]}
        assert env == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}, name
        assert executors[name]["configMapAsEnv"][0]["keyToEnv"][0]["envVar"] == "AWS_ENDPOINT_URL"
    assert "minioadmin" not in text and "AWS_SECRET_ACCESS_KEY:" not in text
    for executor in spec["deploymentSpec"]["executors"].values():
        assert "env" not in executor["container"]


def test_caching_and_retries(compiled) -> None:
    _, spec, _ = compiled
    tasks = _tasks(spec)
    assert tasks["prepare"]["cachingOptions"] == {}  # the image check always runs
    for name in ("plan-shards", "convert", "train"):
        assert tasks[name]["cachingOptions"] == {"enableCache": True}, name
    for name in ("plan-shards", "convert"):
        assert tasks[name]["retryPolicy"]["maxRetryCount"] == 3, name


def test_every_component_folder_is_used_by_the_pipeline(compiled) -> None:
    _, spec, _ = compiled
    folders = {p.parent.name.replace("_", "-") for p in Path("components").glob("*/component.py")}
    used = {
        re.sub(r"-\d+$", "", name.removeprefix("comp-"))
        for name in spec["components"]
        if not name.startswith(("comp-for-loop", "comp-condition"))
    }
    assert folders == used


def test_secret_key_names_are_a_compile_option_that_reaches_every_pod_and_the_training_job(
    tmp_path: Path,
) -> None:
    from wsovvis.cli import main

    out = tmp_path / "spec.yaml"
    assert main(["pipeline", "compile", "--out", str(out), "--s3-secret-keys", "id,key"]) == 0
    spec, platform = yaml.safe_load_all(out.read_text())
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name, executor in executors.items():
        pairs = {(e["secretKey"], e["envVar"]) for s in executor["secretAsEnv"] for e in s["keyToEnv"]}
        assert pairs == {("id", "AWS_ACCESS_KEY_ID"), ("key", "AWS_SECRET_ACCESS_KEY")}, name
    keys = spec["root"]["dag"]["tasks"]["train"]["inputs"]["parameters"]["s3_secret_keys"]
    assert keys["runtimeValue"]["constant"] == ["id", "key"]
    with pytest.raises(SystemExit):
        main(["pipeline", "compile", "--out", str(out), "--s3-secret-keys", "only-one"])
