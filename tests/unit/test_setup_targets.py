"""The set-up the README documents: `make test-runtime` and what `make test`'s set-up installs.

Run with fakes for the runtime's python and for apt-get: what is checked is which commands the targets run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.kube import TOOLS

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_TESTS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "tests" / "runtime").glob("test_*.py"))


def fake_runtime_python(tmp_path: Path, failing: str, skipped: str) -> tuple[Path, Path]:
    """A "python" that records each call (its PYTHONPATH and arguments), fails when given ``failing`` and exits as
    pytest does for a file skipped whole (5) when given ``skipped``."""
    log = tmp_path / "calls.log"
    python = tmp_path / "python"
    python.write_text(
        f'#!/bin/sh\necho "$PYTHONPATH|$*" >> {log}\n'
        f'case "$*" in *{failing}*) exit 1 ;; *{skipped}*) exit 5 ;; esac\nexit 0\n'
    )
    python.chmod(0o755)
    return python, log


def test_make_test_runtime_runs_each_runtime_test_file_in_its_own_process(tmp_path: Path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    python, log = fake_runtime_python(
        tmp_path, failing="test_maskgen_videocutler.py", skipped="test_prepare_build_ops.py"
    )
    out = subprocess.run(
        ["make", "-C", str(ROOT), "test-runtime", f"RUNTIME_PY={python}"], capture_output=True, text=True
    )
    calls = [line.split("|", 1) for line in log.read_text().splitlines()]
    assert {path for path, _ in calls} == {str(ROOT)}, "the runtime's python must import this checkout"
    assert [args.split() for _, args in calls] == [["-m", "pytest", test] for test in RUNTIME_TESTS]
    assert "tests/runtime/test_train_seqformer.py" in RUNTIME_TESTS  # run even after an earlier file failed
    assert out.returncode != 0, "a failing runtime test file must fail the target"
    assert (
        "runtime tests failed: tests/runtime/test_maskgen_videocutler.py\n" in out.stdout
    )  # not the skipped one


def test_the_runtime_image_has_pytest_for_its_tests():
    lock = (ROOT / "images" / "runtime" / "requirements.lock").read_text()
    assert re.search(r"^pytest==\S+ \\$", lock, flags=re.MULTILINE), (
        "images/runtime/requirements.lock lacks pytest"
    )


# the binary each apt package the set-up may install provides
PROVIDES = {"etcd-server": "etcd", "kubectl": "kubectl", "kubernetes-client": "kubectl", "curl": "curl"}
PROVIDES["openssl"] = "openssl"


def run_build_script(
    tmp_path: Path, present: set[str], apt_has_kubectl: bool = True
) -> tuple[list[str], Path]:
    """scripts/kube-apiserver/build.sh on a machine where the apiserver is already built and only the tools in
    ``present`` are installed, with a fake apt-get that records what it installs and provides those binaries;
    returns (the packages installed, in order, and the bin folder)."""
    bin_dir, out_dir, log = tmp_path / "bin", tmp_path / "out", tmp_path / "apt.log"
    bin_dir.mkdir()
    out_dir.mkdir()
    for tool in ("realpath", "mkdir", "flock", "head", "chmod"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    for tool in present:
        (bin_dir / tool).write_text("#!/bin/sh\n")
        (bin_dir / tool).chmod(0o755)
    (out_dir / "kube-apiserver").write_text('#!/bin/sh\necho "Kubernetes v1.20.2"\n')
    (out_dir / "kube-apiserver").chmod(0o755)
    cases = "".join(
        f"    {package}) : > {bin_dir}/{binary}; chmod +x {bin_dir}/{binary} ;;\n"
        for package, binary in PROVIDES.items()
    )
    refuse = "" if apt_has_kubectl else '[ "$package" = kubectl ] && exit 100\n'
    (bin_dir / "apt-get").write_text(
        '#!/bin/bash\n[ "$3" = install ] || exit 0\nfor package in "${@:6}"; do\n'
        f'  {refuse}  echo "$package" >> {log}\n  case "$package" in\n{cases}  esac\ndone\n'
    )
    (bin_dir / "apt-get").chmod(0o755)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "OUT": str(out_dir), "WORK": str(tmp_path / "work")}
    done = subprocess.run(
        [shutil.which("bash"), str(ROOT / "scripts" / "kube-apiserver" / "build.sh")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return (log.read_text().split() if log.exists() else []), bin_dir


@pytest.mark.parametrize("absent", TOOLS)
def test_the_apiserver_set_up_installs_each_tool_the_apiserver_tests_need(tmp_path: Path, absent: str):
    installed, bin_dir = run_build_script(tmp_path, present=set(TOOLS) - {absent})
    assert [PROVIDES.get(package) for package in installed if package in PROVIDES] == [absent]
    assert os.access(bin_dir / absent, os.X_OK)


def test_kubectl_falls_back_to_debians_kubernetes_client(tmp_path: Path):
    installed, _ = run_build_script(tmp_path, present=set(TOOLS) - {"kubectl"}, apt_has_kubectl=False)
    assert installed == ["kubernetes-client"]


def test_the_apiserver_set_up_leaves_installed_tools_alone(tmp_path: Path):
    assert run_build_script(tmp_path, present=set(TOOLS))[0] == []


def readme_section(title: str) -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index(f"## {title}")
    return readme[start : readme.find("\n## ", start + 1)]


def test_the_readme_names_every_tool_make_test_needs():
    set_up = readme_section("Set-up")
    assert [tool for tool in TOOLS if f"`{tool}`" not in set_up] == []


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.lstrip("v").split("."))


@pytest.mark.parametrize(
    ("component", "platform"),
    [("KFP backend", "kfp"), ("Training Operator", "training-operator")],
)
def test_the_readme_states_minimum_cluster_versions_that_the_pinned_platform_meets(
    component: str, platform: str
):
    stated = re.search(rf"\*\*(?:Kubeflow )?{component} >= (v?[\d.]+)\*\*", readme_section("The pipeline"))
    assert stated, f"README states no minimum {component} version"
    kustomization = (ROOT / "manifests" / "platform" / platform / "kustomization.yaml").read_text()
    (pinned,) = re.findall(r"\?ref=(v?[\d.]+)", kustomization)
    assert version(pinned) >= version(stated.group(1)), f"{platform} pins {pinned}, below the stated minimum"
