"""manifests/train (for `kubectl apply -k`) is the job the pipeline's train step creates with every default, and every
path it names is in the image it names."""

from __future__ import annotations

import copy
import importlib.metadata
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from kfp import dsl

from components.train.component import train
from wsovvis import images
from wsovvis.k8s import crd
from wsovvis.k8s import pytorchjob as pj
from wsovvis.prepare.runtime import REQUIRED_FILES

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "manifests" / "train"
CRD = ROOT / "tests" / "data" / "crds" / "kubeflow.org_pytorchjobs.v1.9.0.yaml"
SPEC = ROOT / "pipelines" / "wsovvis_pipeline.yaml"
DOCKERFILE = ROOT / "images" / "runtime" / "Dockerfile"


def builder_docs() -> list[dict]:
    settings = pj.load_settings(str(TRAIN / "job-settings.yaml"))
    return pj.render_manifest(settings, (TRAIN / "train.yaml").read_text())


def by_kind(docs: list[dict]) -> dict[str, dict]:
    assert len({d["kind"] for d in docs}) == len(docs), [d["kind"] for d in docs]
    return {d["kind"]: d for d in docs}


def kustomize(directory: Path) -> list[dict]:
    """``kubectl kustomize DIRECTORY``'s documents; skips without kubectl."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip(f"kubectl not found: it renders manifests/{directory.name} (`kubectl kustomize`)")
    out = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module")
def kustomized() -> list[dict]:
    return kustomize(TRAIN)


def test_committed_pytorchjob_is_the_rendering_of_job_settings():
    committed = yaml.safe_load((TRAIN / "pytorchjob.yaml").read_text())
    assert committed == by_kind(builder_docs())["PyTorchJob"], (
        "manifests/train/pytorchjob.yaml is stale: wsovvis render-pytorchjob "
        "--settings manifests/train/job-settings.yaml --out manifests/train/pytorchjob.yaml"
    )


def train_arguments(work_root: str, frames_root: str, train_json: str, **parameters: str) -> dict:
    """The train component's arguments as the compiled pipeline passes them with every default, given the required
    parameters, any other pipeline ``parameters`` and the producing steps' outputs (convert's tubes; prepare found the
    runtime)."""
    pipeline = next(yaml.safe_load_all(SPEC.read_text()))
    defaults = pipeline["root"]["inputDefinitions"]["parameters"]
    types = pipeline["components"]["comp-train"]["inputDefinitions"]["parameters"]
    given = {"work_root": work_root, "frames_root": frames_root, **parameters}
    produced = {"convert": train_json, "prepare": True, "make-agnostic": ""}  # make-agnostic: no val GT given
    arguments = {}
    for name, source in pipeline["root"]["dag"]["tasks"]["train"]["inputs"]["parameters"].items():
        if "componentInputParameter" in source:
            parameter = source["componentInputParameter"]
            value = given[parameter] if parameter in given else defaults[parameter]["defaultValue"]
        elif "taskOutputParameter" in source:
            value = produced[source["taskOutputParameter"]["producerTask"]]
        else:
            value = source["runtimeValue"]["constant"]
        if value == "{{$.pipeline_job_uuid}}":
            value = "0f3c2a9e-run"
        arguments[name] = int(value) if types[name]["parameterType"] == "NUMBER_INTEGER" else value
    return {
        **arguments,
        "metrics": dsl.Metrics(name="metrics", uri=str(Path(work_root, "metrics"))),
        "results_json": str(Path(work_root, "results")),
    }


def step_launch(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, train_yaml: Path, **parameters: str
) -> list[dict]:
    """What the pipeline's train step hands the launcher when it runs with every default but ``parameters`` and the
    data ``train_yaml`` names."""
    launched = []

    def launch(docs, settings, run_id) -> None:  # records the job and leaves the checkpoint a training leaves
        launched.append(docs)
        output = Path(yaml.safe_load(docs[0]["data"]["train.yaml"])["output_uri"])
        output.mkdir(parents=True)
        (output / "model_final.pth").write_bytes(b"weights")
        (output / "last_checkpoint").write_text("model_final.pth")

    monkeypatch.setattr("wsovvis.k8s.launcher.launch_job", launch)
    data = yaml.safe_load(train_yaml.read_text())["data"]
    work = str(tmp_path / "work")
    train.python_func(**train_arguments(work, data["train_img_root"], data["train_json"], **parameters))
    (docs,) = launched
    return docs


@pytest.fixture
def step_rendering(monkeypatch, tmp_path) -> list[dict]:
    """The job the train step creates with every default and the data manifests/train names."""
    return step_launch(monkeypatch, tmp_path, TRAIN / "train.yaml")


def test_kustomize_output_is_the_job_the_train_step_creates_with_every_default(kustomized, step_rendering):
    kustomized = copy.deepcopy(kustomized)
    for doc in step_rendering:  # manifests/train takes the namespace from `kubectl apply -n`
        doc["metadata"].pop("namespace")
    ours, step = by_kind(kustomized), by_kind(step_rendering)
    ours_image = ours["PyTorchJob"]["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"][
        "containers"
    ][0]
    step_image = step["PyTorchJob"]["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"][
        "containers"
    ][0]
    # the image's tag is fixed where the images are built and compiled in (wsovvis.images); its name is the same
    assert ours_image["image"].rsplit(":", 1)[0] == step_image["image"].rsplit(":", 1)[0]
    for doc in (*kustomized, *step_rendering):
        for replica in doc.get("spec", {}).get("pytorchReplicaSpecs", {}).values():
            for container in replica["template"]["spec"]["containers"]:
                container["image"] = container["image"].rsplit(":", 1)[0]
                for env in container.get("env", []):
                    if env["name"] == "WSOVVIS_IMAGE":
                        env["value"] = env["value"].rsplit(":", 1)[0]
    assert ours["PyTorchJob"] == step["PyTorchJob"]
    ours_config, step_config = (
        yaml.safe_load(d["ConfigMap"]["data"].pop("train.yaml")) for d in (ours, step)
    )
    assert ours["ConfigMap"] == step["ConfigMap"]
    # the output location is the one value the user sets (the step derives its own under work_root)
    assert {**ours_config, "output_uri": None} == {**step_config, "output_uri": None}


def test_every_path_manifests_train_names_is_in_the_image_it_names(kustomized):
    dockerfile = DOCKERFILE.read_text()
    # the image gives `wsovvis prepare` its trees at these paths, and prepare fails the build without REQUIRED_FILES
    for tree, path in images.RUNTIME_SOURCES.items():
        assert re.search(rf'--{tree}"?,?\s+"?{re.escape(path)}["\s]', dockerfile), (
            f"Dockerfile: {tree} not at {path}"
        )
    job, config_map = by_kind(kustomized)["PyTorchJob"], by_kind(kustomized)["ConfigMap"]
    config = yaml.safe_load(config_map["data"]["train.yaml"])
    (tree, root) = next(
        (t, r) for t, r in images.RUNTIME_SOURCES.items() if config["d2_cfg_path"].startswith(r + "/")
    )
    assert config["d2_cfg_path"].removeprefix(root + "/") in REQUIRED_FILES[tree], config["d2_cfg_path"]
    scripts = {
        e.name
        for e in importlib.metadata.distribution("wsovvis").entry_points
        if e.group == "console_scripts"
    }
    for replica in job["spec"]["pytorchReplicaSpecs"].values():
        pod = replica["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"].rsplit(":", 1)[0] == images.RUNTIME_IMAGE.rsplit(":", 1)[0]
        assert container["command"][0] in scripts  # the console script the image installs with the package
        # the config file is the ConfigMap's key where its volume is mounted
        config_path = Path(container["args"][container["args"].index("with") + 1])
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        volume = volumes[mounts[str(config_path.parent)]]
        assert volume["configMap"]["name"] == config_map["metadata"]["name"]
        assert config_path.name in config_map["data"]


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
