"""The platform's shell scripts: syntax, shellcheck, and the parts of kind-e2e.sh that run without a cluster."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = [ROOT / "scripts" / name for name in ("kind-e2e.sh", "build-images.sh", "containers.sh")]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_parses(script: Path):
    out = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_passes_shellcheck(script: Path):
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    out = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout


def test_kind_e2e_check_names_what_is_missing(tmp_path: Path):
    """With an empty PATH apart from bash's own tools, --check exits 3 and names kind, docker and kubectl."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sed", "cat", "dirname"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    out = subprocess.run(
        [shutil.which("bash"), str(ROOT / "scripts" / "kind-e2e.sh"), "--check"],
        env={"PATH": str(bin_dir), "PYTHON": sys.executable, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 3, out.stderr
    for tool in ("docker", "kind", "kubectl"):
        assert tool in out.stderr


def test_kind_e2e_rejects_unknown_arguments():
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "kind-e2e.sh"), "--fast"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 2 and "unknown argument: --fast" in out.stderr


def test_kind_e2e_in_cluster_pod_is_valid_and_gets_the_pipelines_s3_settings(tmp_path: Path):
    """The helper pod (dataset upload, metrics check) gets S3 settings the way the pipeline's pods do."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    script = (ROOT / "scripts" / "kind-e2e.sh").read_text()
    start = script.index("in_cluster() {")
    function = script[start : script.index("\n}\n", start) + 3]
    applied = tmp_path / "applied.yaml"
    fake_kubectl = tmp_path / "kubectl"
    fake_kubectl.write_text(f'#!/bin/sh\ncase " $* " in *" apply -f - "*) cat > {applied} ;; esac\nexit 0\n')
    fake_kubectl.chmod(0o755)
    command = "python3 - <<'PY'\nprint('$BUCKET')\nPY"
    harness = f'{function}\nKUBECTL=({fake_kubectl})\nin_cluster e2e-probe "{command}"\n'
    env = dict(os.environ, NAMESPACE="kubeflow", TOOLS_IMAGE="example.com/tools:1", PYTHON=sys.executable)
    env["BUCKET"] = "s3://bucket"
    out = subprocess.run(["bash", "-c", harness], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    pod = yaml.safe_load(applied.read_text())
    kubernetes_validate.validate(copy.deepcopy(pod), "1.32.0", strict=True)
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "example.com/tools:1"
    assert container["command"] == ["sh", "-c", "python3 - <<'PY'\nprint('s3://bucket')\nPY"]
    sources = {e["name"]: e["valueFrom"] for e in container["env"]}
    from pipelines.wsovvis_pipeline import S3_SECRET_KEYS  # what the pipeline's pods use
    from wsovvis.k8s.placement import CONFIG_MAP_KEY_TO_ENV

    access_key, secret_key = S3_SECRET_KEYS
    (endpoint_key,) = [key for key, env in CONFIG_MAP_KEY_TO_ENV.items() if env == "AWS_ENDPOINT_URL"]
    assert sources["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "wsovvis-s3", "key": access_key}}
    assert sources["AWS_SECRET_ACCESS_KEY"] == {"secretKeyRef": {"name": "wsovvis-s3", "key": secret_key}}
    assert sources["AWS_ENDPOINT_URL"] == {"configMapKeyRef": {"name": "wsovvis-s3", "key": endpoint_key}}


def wsovvis_help(*command: str) -> str:
    """`wsovvis <command> --help` of this checkout (the installed command's front door, `python -m pipelines` in a
    checkout; a command that fails to start fails the test)."""
    out = subprocess.run(
        [sys.executable, "-m", "pipelines", *command, "--help"],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, f"`wsovvis {' '.join(command)} --help` failed: {out.stderr}"
    return out.stdout


@pytest.mark.parametrize(
    ("command", "flags"),
    [
        (("synth",), ("--out", "--num_videos", "--min_frames", "--max_frames")),
        (("pipeline", "compile"), ("--out",)),
        (("pipeline", "submit"), ("--host", "--spec", "--experiment", "--run_name", "--param")),
    ],
    ids=["synth", "pipeline compile", "pipeline submit"],
)
def test_kind_e2e_calls_wsovvis_with_flags_it_has(command: tuple[str, ...], flags: tuple[str, ...]):
    script = (ROOT / "scripts" / "kind-e2e.sh").read_text()
    # in the cluster the image's `wsovvis`; on the host this checkout's, `python -m pipelines`
    assert f"wsovvis {' '.join(command)}" in script or f"-m pipelines {' '.join(command)}" in script
    help_text = wsovvis_help(*command)
    for flag in flags:
        assert flag in script, f"kind-e2e.sh no longer passes {flag}; drop it from this test"
        assert flag in help_text, f"`wsovvis {' '.join(command)}` has no {flag}"


def kind_e2e_params(quick: bool, launcher: str = "pytorchjob") -> dict[str, str]:
    """What kind-e2e.sh submits (its run_params function), as a dict; ``launcher`` as --trainjob sets it."""
    script = (ROOT / "scripts" / "kind-e2e.sh").read_text()
    start = script.index("run_params() {")
    function = script[start : script.index("\n}\n", start) + 3]
    env = dict(
        os.environ, QUICK=str(int(quick)), BUCKET="s3://bucket", NAMESPACE="kubeflow", LAUNCHER=launcher
    )
    out = subprocess.run(["bash", "-c", f"{function}\nrun_params"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return dict(line.split("=", 1) for line in out.stdout.splitlines())


@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
def test_kind_e2e_submits_only_parameters_the_pipeline_declares(quick: bool):
    from pipelines.wsovvis_pipeline import wsovvis_pipeline

    declared = set(wsovvis_pipeline.component_spec.inputs)
    used = set(kind_e2e_params(quick))
    assert {"frames_root", "work_root", "mask_backend", "train_launcher"} <= used
    assert used <= declared, f"kind-e2e.sh passes parameters the pipeline lacks: {sorted(used - declared)}"


def test_kind_e2e_trains_as_one_cpu_process():
    """The kind nodes have no GPU: the training PyTorchJob the full run submits must be one process on CPU."""
    from wsovvis.k8s import pytorchjob as pj
    from wsovvis.k8s.placement import Placement

    params = kind_e2e_params(quick=False)
    assert params["train_launcher"] == "pytorchjob"
    placement = Placement(
        image="runtime:test",
        num_workers=int(params["train_workers"]),
        gpus_per_worker=int(params["gpus_per_worker"]),
    )
    job = pj.build_pytorchjob(pj.PyTorchJobSettings(name="wsovvis-train", placement=placement))
    replicas = sum(spec["replicas"] for spec in job["spec"]["pytorchReplicaSpecs"].values())
    assert replicas * int(job["spec"]["nprocPerNode"]) == 1
    for spec in job["spec"]["pytorchReplicaSpecs"].values():
        (container,) = spec["template"]["spec"]["containers"]
        assert placement.gpu_resource not in container["resources"].get("limits", {})
    d2_opts = json.loads(params["d2_opts"])
    assert d2_opts[d2_opts.index("MODEL.DEVICE") + 1] == "cpu"


def test_kind_e2e_with_trainjob_installs_trainer_and_trains_as_one_cpu_process():
    """--trainjob: Trainer's platform folders instead of the Training Operator's, and a one-node TrainJob on CPU."""
    from wsovvis.k8s import trainjob as tj
    from wsovvis.k8s.placement import Placement

    script = (ROOT / "scripts" / "kind-e2e.sh").read_text()
    assert "--trainjob) LAUNCHER=trainjob" in script
    for folder in ("platform/trainer", "platform/trainer-runtimes", "platform/training-operator"):
        assert f'"$ROOT/manifests/{folder}"' in script
    params = kind_e2e_params(quick=False, launcher="trainjob")
    assert params["train_launcher"] == "trainjob"
    placement = Placement(
        image="runtime:test",
        num_workers=int(params["train_workers"]),
        gpus_per_worker=int(params["gpus_per_worker"]),
    )
    trainer = tj.build_trainjob(tj.TrainJobSettings(name="wsovvis-train", placement=placement))["spec"][
        "trainer"
    ]
    assert trainer["numNodes"] * trainer["numProcPerNode"] == 1
    assert placement.gpu_resource not in trainer["resourcesPerNode"].get("limits", {})
