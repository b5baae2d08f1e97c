"""The launcher's parts that need no API server: conditions, manifests, settings, log copying, unreachable API."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from wsovvis.errors import UsageError
from wsovvis.k8s import launcher as ln
from wsovvis.k8s import pytorchjob as pj
from wsovvis.k8s import trainjob as tj
from wsovvis.k8s.placement import Placement

ROOT = Path(__file__).resolve().parents[2]


def cond(kind: str, status: str = "True", reason: str = "", message: str = "") -> dict:
    return {"type": kind, "status": status, "reason": reason, "message": message}


def manifest_docs(name: str = "wsovvis-train-u", namespace: str = "") -> list[dict]:
    settings = pj.PyTorchJobSettings(name=name, placement=Placement(image="img:1", namespace=namespace))
    return pj.render_manifest(settings, "output_uri: s3://b/o\n")


# --- job state from conditions ------------------------------------------------------------------------------


def test_a_job_without_status_is_pending():
    assert pj.PYTORCHJOB.state({}) == ("Pending", {})


def test_the_latest_true_condition_is_the_state_until_a_terminal_one():
    job = {"status": {"conditions": [cond("Created"), cond("Running", reason="PyTorchJobRunning")]}}
    assert pj.PYTORCHJOB.state(job)[0] == "Running"
    job["status"]["conditions"] = [cond("Created"), cond("Running", "False"), cond("Restarting", reason="R")]
    assert pj.PYTORCHJOB.state(job)[0] == "Restarting"


@pytest.mark.parametrize("terminal", ["Succeeded", "Failed"])
def test_terminal_conditions_end_the_wait_with_their_reason_and_message(terminal):
    conditions = [
        cond("Created"),
        cond("Running", "False"),
        cond(terminal, reason=f"PyTorchJob{terminal}", message="m"),
    ]
    state, condition = pj.PYTORCHJOB.state({"status": {"conditions": conditions}})
    assert state == terminal
    assert (condition["reason"], condition["message"]) == (f"PyTorchJob{terminal}", "m")


def test_a_terminal_condition_that_is_not_true_does_not_count():
    job = {"status": {"conditions": [cond("Running"), cond("Failed", "False")]}}
    assert pj.PYTORCHJOB.state(job)[0] == "Running"


def test_a_trainjob_succeeds_on_complete_and_fails_on_failed_with_the_reason():
    running = [cond("Suspended", "False", reason="Resumed")]
    assert tj.TRAINJOB.state({"status": {"conditions": running}})[0] == "Pending"
    complete = [*running, cond("Complete", reason="JobSetCompleted", message="jobset completed successfully")]
    state, condition = tj.TRAINJOB.state({"status": {"conditions": complete}})
    assert (state, condition["reason"]) == ("Succeeded", "JobSetCompleted")
    failed = [*running, cond("Failed", reason="DeadlineExceeded", message="past activeDeadlineSeconds")]
    state, condition = tj.TRAINJOB.state({"status": {"conditions": failed}})
    assert (state, condition["reason"], condition["message"]) == (
        "Failed",
        "DeadlineExceeded",
        "past activeDeadlineSeconds",
    )
    # a TrainJob's success condition does not end a PyTorchJob
    assert pj.PYTORCHJOB.state({"status": {"conditions": [cond("Complete")]}})[0] == "Complete"


def test_a_manifest_must_hold_exactly_one_job_of_either_kind(tmp_path):
    trainjob = tj.build_trainjob(
        tj.TrainJobSettings(name="wsovvis-train-u", placement=Placement(image="img:1"))
    )
    with pytest.raises(UsageError, match=r"expected exactly one job \(.*PyTorchJob or .*TrainJob\), found 2"):
        ln.launch_job([*manifest_docs(), trainjob], ln.LaunchSettings(namespace="ns"))
    with pytest.raises(UsageError, match="found 0"):
        ln.launch_job(manifest_docs()[:1], ln.LaunchSettings(namespace="ns"))


# --- settings and manifests ---------------------------------------------------------------------------------


def test_launch_settings_reject_unusable_values():
    with pytest.raises(UsageError, match="namespace is empty"):
        ln.LaunchSettings(namespace="")
    with pytest.raises(UsageError, match="timeout"):
        ln.LaunchSettings(namespace="ns", timeout_s=0)
    with pytest.raises(ValueError, match="sometimes"):
        ln.LaunchSettings(namespace="ns", delete_policy="sometimes")
    assert ln.LaunchSettings(namespace="ns", delete_policy="always").delete_policy is ln.DeletePolicy.ALWAYS


def test_a_manifest_namespace_that_differs_from_the_requested_one_is_a_usage_error():
    docs = manifest_docs(namespace="team-a")
    with pytest.raises(UsageError, match="team-a.*not 'team-b'"):
        ln.launch_job(docs, ln.LaunchSettings(namespace="team-b", kubeconfig="/nonexistent"))


def test_a_manifest_with_other_kinds_is_a_usage_error(tmp_path):
    path = tmp_path / "job.yaml"
    docs = [*manifest_docs(), {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}]
    path.write_text(pj.dump_manifest(docs))
    with pytest.raises(UsageError, match="unsupported 'Secret'"):
        ln.launch_job(str(path), ln.LaunchSettings(namespace="ns"))


def test_missing_credentials_are_a_cluster_error_saying_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ln.ClusterError, match="KUBECONFIG") as info:
        ln.launch_job(manifest_docs(), ln.LaunchSettings(namespace="ns", kubeconfig=str(tmp_path / "none")))
    assert info.value.exit_code == 5


# --- copying the master's log -------------------------------------------------------------------------------


class FakeLog:
    def __init__(self, chunks: list[bytes]):
        self.chunks = chunks

    def stream(self, decode_content: bool = True):
        yield from self.chunks

    def close(self) -> None:
        pass


class FakeKubelet:
    """Stands in for the kubelet behind the API server (none runs here): the first pod's status and container logs,
    as a PyTorchJob's master (read by name) or a TrainJob's node of index 0 (listed by the JobSet's labels)."""

    def __init__(self, kind):
        self.kind = kind
        self.phase = "Pending"
        self.uid = "uid-1"
        self.restarts = 0
        self.logs: dict[int, list[bytes]] = {}
        self.log_reads = 0

    @property
    def pod_name(self) -> str:  # a TrainJob's Job names each new pod anew; a PyTorchJob's keeps its name
        return "job-master-0" if self.kind is pj.PYTORCHJOB else f"job-node-0-0-{self.uid}"

    def _pod(self, index: str = "0"):
        containers = [SimpleNamespace(name=self.kind.container, restart_count=self.restarts)]
        return SimpleNamespace(
            metadata=SimpleNamespace(
                uid=self.uid,
                name=self.pod_name,
                annotations={tj.COMPLETION_INDEX: index},
                labels={},
                creation_timestamp=self.uid,
            ),
            status=SimpleNamespace(phase=self.phase, container_statuses=containers),
        )

    def read_namespaced_pod(self, name, namespace, **kwargs):
        assert name == "job-master-0"
        return self._pod()

    def list_namespaced_pod(self, namespace, label_selector, **kwargs):
        assert label_selector == (
            "jobset.sigs.k8s.io/jobset-name=job,jobset.sigs.k8s.io/replicatedjob-name=node,"
            "jobset.sigs.k8s.io/job-index=0"
        )
        other = self._pod(index="1")  # the second node: never followed
        other.metadata.name += "-rank1"
        return SimpleNamespace(items=[other, self._pod()])

    def read_namespaced_pod_log(self, name, namespace, **kwargs):
        assert (name, kwargs["container"], kwargs["follow"]) == (self.pod_name, self.kind.container, True)
        self.log_reads += 1
        return FakeLog(self.logs[(self.uid, self.restarts)])


def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.parametrize("kind", [pj.PYTORCHJOB, tj.TRAINJOB], ids=lambda k: k.kind)
def test_the_first_pods_log_is_copied_once_per_container_start_and_pod(kind):
    kubelet = FakeKubelet(kind)
    kubelet.logs = {
        ("uid-1", 0): [b"iter 1 loss 2.5\n", b"iter 2 loss 2.1\n"],
        ("uid-1", 1): [b"resumed from model_0000099.pth\n"],
        ("uid-2", 0): [b"new pod\n"],
    }
    out = io.StringIO()
    follower = ln._FirstPodLogFollower(kubelet, kind, "ns", "job", 0.02, out)
    follower.start()
    try:
        time.sleep(0.1)
        assert out.getvalue() == "", "nothing is read while the pod is Pending"
        kubelet.phase = "Running"
        wait_until(lambda: "loss 2.1" in out.getvalue())
        time.sleep(0.1)
        kubelet.restarts = 1  # restartPolicy OnFailure: a new container in the same pod
        wait_until(lambda: "resumed" in out.getvalue())
        time.sleep(0.1)
        kubelet.uid, kubelet.restarts = "uid-2", 0  # the operator (or the Job) re-created the pod
        wait_until(lambda: "new pod" in out.getvalue())
        time.sleep(0.1)
    finally:
        follower.stop()
    assert out.getvalue() == "iter 1 loss 2.5\niter 2 loss 2.1\nresumed from model_0000099.pth\nnew pod\n"
    assert kubelet.log_reads == 3


# --- an unreachable API server ------------------------------------------------------------------------------


def test_unreachable_api_is_retried_a_bounded_number_of_times_then_exits_with_its_own_code(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{closed_port}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    manifest = tmp_path / "job.yaml"
    manifest.write_text(pj.dump_manifest(manifest_docs()))
    started = time.monotonic()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "wsovvis",
            "launch-pytorchjob",
            "--manifest",
            str(manifest),
            "--namespace",
            "ns",
            "--kubeconfig",
            str(kubeconfig),
            "--api-attempts",
            "3",
        ],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 5, out.stderr
    assert out.stderr.count("retrying in") == 2, out.stderr
    assert f"127.0.0.1:{closed_port}" in out.stderr and "3 attempts" in out.stderr
    assert time.monotonic() - started < 30


def test_a_sigterm_handler_is_only_installed_on_the_main_thread():
    results = []
    thread = threading.Thread(target=lambda: results.append(ln._install_sigterm_handler()))
    thread.start()
    thread.join()
    assert results == [None]
