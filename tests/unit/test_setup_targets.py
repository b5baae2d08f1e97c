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

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_TESTS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "tests" / "runtime").glob("test_*.py"))


def fake_runtime_python(tmp_path: Path, failing: str) -> tuple[Path, Path]:
    """A "python" that records each call (its PYTHONPATH and arguments) and fails when given ``failing``."""
    log = tmp_path / "calls.log"
    python = tmp_path / "python"
    python.write_text(
        f'#!/bin/sh\necho "$PYTHONPATH|$*" >> {log}\ncase "$*" in *{failing}*) exit 1 ;; esac\nexit 0\n'
    )
    python.chmod(0o755)
    return python, log


def test_make_test_runtime_runs_each_runtime_test_file_in_its_own_process(tmp_path: Path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    python, log = fake_runtime_python(tmp_path, failing="test_maskgen_videocutler.py")
    out = subprocess.run(
        ["make", "-C", str(ROOT), "test-runtime", f"RUNTIME_PY={python}"], capture_output=True, text=True
    )
    calls = [line.split("|", 1) for line in log.read_text().splitlines()]
    assert {path for path, _ in calls} == {str(ROOT)}, "the runtime's python must import this checkout"
    assert [args.split() for _, args in calls] == [["-m", "pytest", test] for test in RUNTIME_TESTS]
    assert "tests/runtime/test_train_seqformer.py" in RUNTIME_TESTS  # run even after an earlier file failed
    assert out.returncode != 0, "a failing runtime test file must fail the target"
    assert "runtime tests failed: tests/runtime/test_maskgen_videocutler.py" in out.stdout


def test_the_runtime_image_has_pytest_for_its_tests():
    lock = (ROOT / "images" / "runtime" / "requirements.lock").read_text()
    assert re.search(r"^pytest==\S+ \\$", lock, flags=re.MULTILINE), (
        "images/runtime/requirements.lock lacks pytest"
    )


def run_build_script(tmp_path: Path, *, kubectl_present: bool, apt_has_kubectl: bool) -> tuple[str, Path]:
    """scripts/kube-apiserver/build.sh on a machine where the apiserver is already built, with a fake apt-get
    that records its calls and "installs" kubectl; returns (the apt-get calls, the bin folder)."""
    bin_dir, out_dir, log = tmp_path / "bin", tmp_path / "out", tmp_path / "apt.log"
    bin_dir.mkdir()
    out_dir.mkdir()
    for tool in ("realpath", "mkdir", "flock", "head", "chmod", "cat"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    fake_kubectl = '#!/bin/sh\necho "Client Version: v1.32.0"\n'
    for name, body in (("etcd", "#!/bin/sh\n"), ("kube-apiserver", '#!/bin/sh\necho "Kubernetes v1.20.2"\n')):
        target = out_dir / name if name == "kube-apiserver" else bin_dir / name
        target.write_text(body)
        target.chmod(0o755)
    if kubectl_present:
        (bin_dir / "kubectl").write_text(fake_kubectl)
        (bin_dir / "kubectl").chmod(0o755)
    missing = "" if apt_has_kubectl else "*' install '*' kubectl'*) exit 100 ;;"
    (bin_dir / "apt-get").write_text(
        f'#!/bin/sh\necho "$*" >> {log}\ncase " $* " in {missing}\n'
        f"*' install '*kube*) printf '{fake_kubectl}' > {bin_dir}/kubectl; chmod +x {bin_dir}/kubectl ;;\nesac\n"
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
    return (log.read_text() if log.exists() else ""), bin_dir


@pytest.mark.parametrize(("apt_has_kubectl", "package"), [(True, "kubectl"), (False, "kubernetes-client")])
def test_the_apiserver_set_up_installs_kubectl_when_absent(
    tmp_path: Path, apt_has_kubectl: bool, package: str
):
    calls, bin_dir = run_build_script(tmp_path, kubectl_present=False, apt_has_kubectl=apt_has_kubectl)
    installs = [line.split()[-1] for line in calls.splitlines() if " install " in f" {line} "]
    assert installs[-1] == package, calls
    assert os.access(bin_dir / "kubectl", os.X_OK)


def test_the_apiserver_set_up_leaves_an_installed_kubectl_alone(tmp_path: Path):
    calls, _ = run_build_script(tmp_path, kubectl_present=True, apt_has_kubectl=True)
    assert calls == ""
