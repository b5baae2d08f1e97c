"""The compiled pipeline spec: in sync with the code, and the shape the users rely on."""

from __future__ import annotations

import json
import re
import subprocess
import sys
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


COMMITTED_SPEC_COMMAND = "wsovvis pipeline compile --release --out pipelines/wsovvis_pipeline.yaml"


def test_committed_spec_is_in_sync_with_the_code(compiled: tuple[str, dict, dict]) -> None:
    text, _, _ = compiled
    assert SPEC_PATH.read_text() == text, (
        f"pipelines/wsovvis_pipeline.yaml is stale: run `{COMMITTED_SPEC_COMMAND}`"
    )


def _images(spec: dict) -> set[str]:
    named = {
        e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values() if "container" in e
    }
    return named | {
        spec["root"]["dag"]["tasks"]["train"]["inputs"]["parameters"]["runtime_image"]["runtimeValue"][
            "constant"
        ]
    }


def test_the_committed_spec_names_the_fixed_images_whatever_the_environment_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The committed spec changes only with the pipeline's structure: it names the version-tagged images, not a
    digest of the source, and its command writes the same file under any image settings of the environment."""
    from pipelines.cli import main
    from wsovvis import __version__

    spec, _ = yaml.safe_load_all(SPEC_PATH.read_text())
    assert _images(spec) == {
        f"localhost:5001/wsovvis/tools:{__version__}",
        f"localhost:5001/wsovvis/runtime:{__version__}",
    }
    for name, value in {
        "WSOVVIS_IMAGE_REGISTRY": "registry.example.com/team",
        "WSOVVIS_IMAGE_TAG": "mine",
        "WSOVVIS_RUNTIME_IMAGE": "registry.example.com/runtime:x",
    }.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "spec.yaml"
    assert main(COMMITTED_SPEC_COMMAND.split()[1:-1] + [str(out)]) == 0
    assert out.read_text() == SPEC_PATH.read_text()
    # --release names the fixed images: a registry or tag with it is a usage error
    assert main(["pipeline", "compile", "--release", "--tag", "v3", "--out", str(out)]) == 2


def test_a_spec_compiled_for_a_cluster_names_the_images_built_from_this_checkout(tmp_path: Path) -> None:
    """`make images` tags with a digest of the source, so a code fix is a new image and KFP's cache cannot reuse a
    step that ran older code; `pipeline compile` names those images by default."""
    from pipelines.cli import main
    from wsovvis.images import image_names, source_tag

    out = tmp_path / "spec.yaml"
    assert main(["pipeline", "compile", "--out", str(out)]) == 0
    spec, _ = yaml.safe_load_all(out.read_text())
    built = image_names()
    assert _images(spec) == {built.tools, built.runtime}
    assert built.runtime.endswith(f":{source_tag()}")


def test_importing_the_pipeline_and_compiling_the_committed_spec_digest_no_source() -> None:
    """The digest is computed where an image is built or a spec compiled to run, not on import (component pods
    import wsovvis.images) nor for the committed spec."""
    code = (
        "import wsovvis.images as images\n"
        "def digest(*args):\n"
        "    raise AssertionError('the source was digested')\n"
        "images.source_tag = digest\n"
        "import pipelines.cli, pipelines.wsovvis_pipeline\n"
        "from pipelines.compile import compile_pipeline\n"
        "import sys, tempfile, pathlib\n"
        "compile_pipeline(pathlib.Path(tempfile.mkdtemp()) / 'spec.yaml')\n"
        "print('ok')\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert out.returncode == 0 and out.stdout.split() == ["ok"], out.stderr[-2000:]


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
    assert producers == ["pipelinechannel--convert-Output", "pipelinechannel--train-results_json"]
    outputs = spec["components"]["comp-evaluate"]["outputDefinitions"]["artifacts"]
    assert outputs["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
    assert outputs["report"]["artifactType"]["schemaTitle"] == "system.HTML"


def _all_tasks(spec: dict) -> dict[str, tuple[str, dict]]:
    """Every task of every DAG, the root's included: name -> (the DAG's component name, task)."""
    dags = {"root": spec["root"], **spec["components"]}
    return {
        name: (component_name, task)
        for component_name, component in dags.items()
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
    assert sources == ["pipelinechannel--convert-Output"] * 2 + ["pipelinechannel--train-results_json"] * 2
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
            if "train-results_json" in str(task)
            else "pipelinechannel--train_gt_json"
        )
    assert sorted(devices) == ["cpu", "cpu", "cuda", "cuda"]
    outputs = spec["components"]["comp-evaluate"]["outputDefinitions"]
    assert outputs["artifacts"]["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"


def test_credentials_come_from_a_secret_and_no_literal_is_in_the_spec(compiled) -> None:
    text, spec, executors = compiled
    for name, executor in spec["deploymentSpec"]["executors"].items():
        if "importer" in executor:
            continue  # registers the model's URI; no pod
        secrets = executors[name]["secretAsEnv"]
        env = {e["envVar"] for s in secrets for e in s["keyToEnv"]}
        assert env == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}, name
        assert executors[name]["configMapAsEnv"][0]["keyToEnv"][0]["envVar"] == "AWS_ENDPOINT_URL"
    assert "minioadmin" not in text and "AWS_SECRET_ACCESS_KEY:" not in text
    for executor in spec["deploymentSpec"]["executors"].values():
        assert "env" not in executor.get("container", {})


def test_caching_and_retries(compiled) -> None:
    _, spec, _ = compiled
    tasks = _tasks(spec)
    assert tasks["prepare"]["cachingOptions"] == {}  # the image check always runs
    # plan-shards lists the frames every run: a frames root that gained videos must be re-planned.
    assert tasks["plan-shards"]["cachingOptions"] == {}
    for name in ("convert", "make-agnostic", "train"):
        assert tasks[name]["cachingOptions"] == {"enableCache": True}, name
    for name in ("plan-shards", "convert"):
        assert tasks[name]["retryPolicy"]["maxRetryCount"] == 3, name


def test_every_component_folder_is_used_by_the_pipeline(compiled) -> None:
    _, spec, _ = compiled
    folders = {p.parent.name.replace("_", "-") for p in Path("components").glob("*/component.py")}
    used = {
        re.sub(r"-\d+$", "", name.removeprefix("comp-"))
        for name in spec["components"]
        if not name.startswith(("comp-for-loop", "comp-condition", "comp-importer"))
    }
    assert folders == used


def test_secret_key_names_are_a_compile_option_that_reaches_every_pod_and_the_training_job(
    tmp_path: Path,
) -> None:
    from pipelines.cli import main

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


def test_the_model_predicts_on_and_is_scored_against_the_class_agnostic_val_gt(compiled) -> None:
    _, spec, _ = compiled
    tasks = {name: task for name, (_, task) in _all_tasks(spec).items()}
    # make-agnostic runs before train, always (it passes '' through when no val GT is given)...
    agnostic = tasks["make-agnostic"]
    assert agnostic["inputs"]["parameters"]["gt_json"]["componentInputParameter"] == "val_gt_json"
    assert "triggerPolicy" not in agnostic
    val_json = tasks["train"]["inputs"]["parameters"]["val_json"]["taskOutputParameter"]
    # ...its output is the val JSON the eval-only run predicts on, and the GT evaluate scores the model with.
    assert val_json == {"outputParameterKey": "Output", "producerTask": "make-agnostic"}
    (model_eval,) = [t for t in tasks.values() if t.get("taskInfo", {}).get("name") == "evaluate-model"]
    assert model_eval["inputs"]["parameters"]["gt_json"]["componentInputParameter"] == (
        "pipelinechannel--make-agnostic-Output"
    )
    assert "val_gt_json" not in str(tasks["train"]["inputs"])


def test_the_trained_model_is_a_model_artifact_at_the_checkpoint_uri(compiled) -> None:
    _, spec, _ = compiled
    importer = spec["deploymentSpec"]["executors"]["exec-importer"]["importer"]
    assert importer["typeSchema"]["schemaTitle"] == "system.Model"
    assert importer["artifactUri"]["runtimeParameter"] == "uri"
    (task,) = [t for _, t in _all_tasks(spec).values() if t["componentRef"]["name"] == "comp-importer"]
    assert task["inputs"]["parameters"]["uri"]["componentInputParameter"] == "pipelinechannel--train-Output"
    outputs = spec["components"]["comp-train"]["outputDefinitions"]
    assert outputs["artifacts"]["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
    for stage in ("mask-gen", "convert"):
        artifacts = spec["components"][f"comp-{stage}"]["outputDefinitions"]["artifacts"]
        assert artifacts["metrics"]["artifactType"]["schemaTitle"] == "system.Metrics", stage


def test_every_task_has_cpu_and_memory_requests_and_limits(compiled) -> None:
    _, spec, _ = compiled
    from pipelines.wsovvis_pipeline import TASK_RESOURCES, TRAIN_POD

    containers = {
        re.sub(r"-\d+$", "", name.removeprefix("exec-")): executor["container"]
        for name, executor in spec["deploymentSpec"]["executors"].items()
        if "container" in executor
    }
    assert set(containers) == set(TASK_RESOURCES) - {TRAIN_POD}
    for name, container in containers.items():
        resources = container["resources"]
        for key in ("resourceCpuRequest", "resourceCpuLimit", "resourceMemoryRequest", "resourceMemoryLimit"):
            assert resources.get(key), (name, key)
        assert resources["resourceCpuRequest"] == resources["resourceCpuLimit"] == TASK_RESOURCES[name].cpu


def test_training_runs_in_the_runtime_image_with_node_selector_and_tolerations_parameters(compiled) -> None:
    _, spec, _ = compiled
    from wsovvis.images import RUNTIME_IMAGE

    assert spec["deploymentSpec"]["executors"]["exec-train"]["container"]["image"] == RUNTIME_IMAGE
    inputs = spec["root"]["dag"]["tasks"]["train"]["inputs"]["parameters"]
    assert inputs["runtime_image"]["runtimeValue"]["constant"] == RUNTIME_IMAGE
    assert inputs["node_selector"]["componentInputParameter"] == "train_node_selector"
    assert inputs["tolerations"]["componentInputParameter"] == "train_tolerations"


def test_the_training_jobs_pods_get_their_resources_from_the_task_table_and_the_compile_option(
    compiled, tmp_path: Path
) -> None:
    from pipelines.cli import main
    from pipelines.wsovvis_pipeline import TASK_RESOURCES, TRAIN_POD

    _, spec, _ = compiled
    pod_resources = spec["root"]["dag"]["tasks"]["train"]["inputs"]["parameters"]["pod_resources"]
    default = TASK_RESOURCES[TRAIN_POD]
    assert pod_resources["runtimeValue"]["constant"] == {"cpu": default.cpu, "memory": default.memory}
    out = tmp_path / "spec.yaml"
    assert main(["pipeline", "compile", "--out", str(out), "--resources", f"{TRAIN_POD}=16,96Gi"]) == 0
    spec, _ = yaml.safe_load_all(out.read_text())
    pod_resources = spec["root"]["dag"]["tasks"]["train"]["inputs"]["parameters"]["pod_resources"]
    assert pod_resources["runtimeValue"]["constant"] == {"cpu": "16", "memory": "96Gi"}
    train = spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    assert (train["resourceCpuLimit"], train["resourceMemoryLimit"]) == (
        TASK_RESOURCES["train"].cpu,
        TASK_RESOURCES["train"].memory,
    )  # the step's own pod keeps its resources
    assert main(["pipeline", "compile", "--out", str(out), "--resources", f"{TRAIN_POD}=lots,1Gi"]) == 2


def test_compile_registry_and_tag_set_every_image_the_training_job_included(tmp_path: Path) -> None:
    from pipelines.cli import main

    out = tmp_path / "spec.yaml"
    args = [
        "pipeline",
        "compile",
        "--out",
        str(out),
        "--registry",
        "registry.example.com/team",
        "--tag",
        "fix-1",
    ]
    assert main([*args, "--resources", "convert=16,64Gi"]) == 0
    text = out.read_text()
    spec, _ = yaml.safe_load_all(text)
    wanted = {"registry.example.com/team/tools:fix-1", "registry.example.com/team/runtime:fix-1"}
    images = {
        e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values() if "container" in e
    }
    assert images == wanted
    job_image = spec["root"]["dag"]["tasks"]["train"]["inputs"]["parameters"]["runtime_image"]
    assert job_image["runtimeValue"]["constant"] == "registry.example.com/team/runtime:fix-1"
    named = {word.strip("'\"") for word in text.split() if ":fix-1" in word or "localhost:5001" in word}
    assert named == wanted  # no other image name anywhere in the spec
    convert = spec["deploymentSpec"]["executors"]["exec-convert"]["container"]["resources"]
    assert (convert["resourceCpuLimit"], convert["resourceMemoryLimit"]) == ("16", "64Gi")
    with pytest.raises(SystemExit):
        main(["pipeline", "compile", "--out", str(out), "--resources", "convert=16"])


def test_no_task_in_the_tools_image_imports_torch_or_sacred(compiled) -> None:
    _, spec, _ = compiled
    from wsovvis.images import TOOLS_IMAGE

    modules = set()
    for executor in spec["deploymentSpec"]["executors"].values():
        container = executor.get("container", {})
        if container.get("image") == TOOLS_IMAGE:
            modules.update(re.findall(r"from (wsovvis[\w.]*) import", container["command"][-1]))
    assert {"wsovvis.convert.step", "wsovvis.evaluate.step"} <= modules
    code = f"import sys\nfor m in {sorted(modules)!r}: __import__(m)\nprint(sorted({{'torch', 'sacred'}} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True)


def _s3_names(spec: dict, executors: dict) -> tuple[set[str], set[str], dict]:
    """The Secret and ConfigMap name references of every executor (as JSON text), and the training task's."""
    secrets = {_json(s["secretNameParameter"]) for e in executors.values() for s in e["secretAsEnv"]}
    config_maps = {
        _json(c["configMapNameParameter"]) for e in executors.values() for c in e["configMapAsEnv"]
    }
    train = spec["root"]["dag"]["tasks"]["train"]["inputs"]["parameters"]
    return secrets, config_maps, {name: train[name] for name in ("s3_secret_name", "s3_config_map_name")}


def test_the_default_spec_names_the_secret_and_config_map_itself_so_no_sub_dag_reads_a_run_parameter(
    compiled,
) -> None:
    """KFP < 2.16.1 cannot resolve a Secret's name given as a run parameter inside the ParallelFor
    (kubeflow/pipelines#13128): by default the names are literals, the same for every pod and the training job."""
    _, spec, executors = compiled
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert not {"s3_secret_name", "s3_config_map_name"} & set(params)
    literal = {"runtimeValue": {"constant": "wsovvis-s3"}}
    secrets, config_maps, train = _s3_names(spec, executors)
    assert secrets == config_maps == {_json(literal)}
    assert train == {"s3_secret_name": literal, "s3_config_map_name": literal}
    for name, executor in executors.items():
        assert [s["secretName"] for s in executor["secretAsEnv"]] == ["wsovvis-s3"], name
        assert [c["configMapName"] for c in executor["configMapAsEnv"]] == ["wsovvis-s3"], name
    for name, component in spec["components"].items():  # no sub-DAG takes either name as an input
        assert "pipelinechannel--s3_" not in str(component.get("inputDefinitions", {})), name


def test_compile_names_the_secret_and_config_map_or_makes_them_run_parameters(tmp_path: Path) -> None:
    from pipelines.cli import main

    out = tmp_path / "spec.yaml"
    assert main(["pipeline", "compile", "--out", str(out), "--s3-secret", "s3-creds"]) == 0
    spec, platform = yaml.safe_load_all(out.read_text())
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    secrets, config_maps, train = _s3_names(spec, executors)
    assert secrets == {_json({"runtimeValue": {"constant": "s3-creds"}})}
    assert config_maps == {_json({"runtimeValue": {"constant": "wsovvis-s3"}})}
    assert train["s3_secret_name"] == {"runtimeValue": {"constant": "s3-creds"}}
    assert "s3-creds" in str(executors["exec-mask-gen"]["secretAsEnv"])  # inside the ParallelFor too

    # the opt-in: the names as run parameters (defaults: the compile's names), read by every pod and the job
    args = ["--s3-names-as-params", "--s3-secret", "s3-creds", "--s3-config-map", "s3-endpoint"]
    assert main(["pipeline", "compile", "--out", str(out), *args]) == 0
    spec, platform = yaml.safe_load_all(out.read_text())
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["s3_secret_name"]["defaultValue"] == "s3-creds"
    assert params["s3_config_map_name"]["defaultValue"] == "s3-endpoint"
    secrets, config_maps, train = _s3_names(spec, executors)
    assert {json.loads(s)["componentInputParameter"].removeprefix("pipelinechannel--") for s in secrets} == {
        "s3_secret_name"
    }
    assert {
        json.loads(c)["componentInputParameter"].removeprefix("pipelinechannel--") for c in config_maps
    } == {"s3_config_map_name"}
    assert train == {
        "s3_secret_name": {"componentInputParameter": "s3_secret_name"},
        "s3_config_map_name": {"componentInputParameter": "s3_config_map_name"},
    }
    mask_gen = executors["exec-mask-gen"]["secretAsEnv"][0]["secretNameParameter"]
    assert mask_gen == {"componentInputParameter": "pipelinechannel--s3_secret_name"}  # punched into the loop


def test_the_spec_with_the_names_as_parameters_is_the_pipeline_with_every_parameter() -> None:
    """The default pipeline is the full one less the two names: every other parameter and default the same."""
    from pipelines.wsovvis_pipeline import S3_NAME_PARAMS, build_pipeline

    full = build_pipeline(s3_names_as_params=True).component_spec.inputs
    fixed = build_pipeline().component_spec.inputs
    assert set(full) - set(fixed) == set(S3_NAME_PARAMS)
    assert all(fixed[name] == full[name] for name in fixed)
