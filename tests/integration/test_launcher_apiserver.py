"""launch-pytorchjob against a real kube-apiserver (+ etcd) with the real PyTorchJob CRD (Training Operator v1.9.0)
and TrainJob CRDs (Trainer v2.2.1) installed.

Nothing runs pods here (no scheduler, kubelet, Training Operator or Trainer): each test plays the controller by
patching the job's status conditions the way it does.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import logging
import os
import re
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.kube import Account, Cluster, kubeconfig_for, pipeline_account, wait_for
from wsovvis.k8s import launcher as ln
from wsovvis.k8s import pytorchjob as pj
from wsovvis.k8s import trainjob as tj
from wsovvis.k8s.jobspec import JobKind
from wsovvis.k8s.placement import Placement

pytestmark = [
    pytest.mark.apiserver,
    # the test API server has a self-signed certificate
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

ROOT = Path(__file__).resolve().parents[2]
POLL = 0.2


@pytest.fixture
def cluster(kube_cluster: Cluster) -> Cluster:
    return kube_cluster


@pytest.fixture
def namespace(cluster: Cluster) -> str:
    """A fresh namespace with the `default` ServiceAccount (no controller-manager here to create it)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.core.create_namespace({"metadata": {"name": name}})
    cluster.core.create_namespaced_service_account(name, {"metadata": {"name": "default"}})
    return name


@pytest.fixture
def account(cluster: Cluster, namespace: str, tmp_path: Path) -> Account:
    """The pipeline's service account in ``namespace``, bound only to manifests/rbac: the launcher's identity."""
    return pipeline_account(cluster, namespace, tmp_path)


def job_settings(name: str = "wsovvis-train-t", settings_type: type = pj.PyTorchJobSettings):
    """A job of one Master and one Worker (or two TrainJob nodes, with ``tj.TrainJobSettings``)."""
    return settings_type(name=name, placement=Placement(image="wsovvis-runtime:test", num_workers=1))


def write_manifest(tmp_path: Path, settings) -> Path:
    """The job's manifest (ConfigMap and job) in a file, as the launcher's command line takes it."""
    render = tj.render_manifest if isinstance(settings, tj.TrainJobSettings) else pj.render_manifest
    path = tmp_path / "job.yaml"
    path.write_text(pj.dump_manifest(render(settings, "output_uri: s3://bucket/run\n")))
    return path


def launch_settings(account: Account, **overrides) -> ln.LaunchSettings:
    """The launcher acting as ``account`` in its namespace; the timeout keeps a test from hanging when its operator
    thread fails."""
    values = {
        "namespace": account.namespace,
        "poll_interval_s": POLL,
        "api_backoff_s": 0.1,
        "kubeconfig": account.kubeconfig,
        "timeout_s": 30,
        **overrides,
    }
    return ln.LaunchSettings(**values)


def condition(kind: str, reason: str, message: str, status: str = "True") -> dict:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
    }


CREATED = condition("Created", "PyTorchJobCreated", "PyTorchJob wsovvis-train-t is created.")
RUNNING = [CREATED, condition("Running", "PyTorchJobRunning", "PyTorchJob wsovvis-train-t is running.")]
SUCCEEDED = [
    CREATED,
    condition("Running", "PyTorchJobRunning", "PyTorchJob wsovvis-train-t is running.", status="False"),
    condition("Succeeded", "PyTorchJobSucceeded", "PyTorchJob t is successfully completed."),
]
FAILED_MESSAGE = "PyTorchJob wsovvis-train-t is failed because 1 Master replica(s) failed."
FAILED = [
    CREATED,
    condition("Running", "PyTorchJobRunning", "PyTorchJob wsovvis-train-t is running.", status="False"),
    condition("Failed", "PyTorchJobFailed", FAILED_MESSAGE),
]


def get_job(cluster: Cluster, namespace: str, name: str, kind: JobKind = pj.PYTORCHJOB) -> dict | None:
    from kubernetes.client.exceptions import ApiException

    try:
        return cluster.custom.get_namespaced_custom_object(
            kind.group, kind.version, namespace, kind.plural, name
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def set_conditions(
    cluster: Cluster, namespace: str, name: str, conditions: list[dict], kind: JobKind = pj.PYTORCHJOB
) -> None:
    cluster.custom.patch_namespaced_custom_object_status(
        kind.group, kind.version, namespace, kind.plural, name, {"status": {"conditions": conditions}}
    )


def operator(
    cluster: Cluster, namespace: str, name: str, *steps: list[dict], kind: JobKind = pj.PYTORCHJOB
) -> threading.Thread:
    """A thread playing the controller: once the job exists, apply each condition list in turn."""
    errors: list[BaseException] = []

    def play() -> None:
        try:
            wait_for(lambda: get_job(cluster, namespace, name, kind), f"job {name} to be created")
            for conditions in steps:
                time.sleep(2 * POLL)
                set_conditions(cluster, namespace, name, conditions, kind)
        except BaseException as exc:  # reported by the test through .errors
            errors.append(exc)

    thread = threading.Thread(target=play, daemon=True)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    return thread


def create_job_directly(cluster: Cluster, namespace: str, settings: pj.PyTorchJobSettings) -> dict:
    body = pj.build_pytorchjob(settings)
    body["metadata"]["namespace"] = namespace
    return cluster.custom.create_namespaced_custom_object(pj.GROUP, pj.VERSION, namespace, pj.PLURAL, body)


def run_cli(*args: str, **popen) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "wsovvis", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def launch_cli(account: Account, manifest: Path) -> subprocess.Popen:
    """``wsovvis launch-pytorchjob`` on ``manifest`` against the test cluster as ``account``, polling fast."""
    return run_cli(
        "launch-pytorchjob",
        "--manifest",
        str(manifest),
        "--namespace",
        account.namespace,
        "--kubeconfig",
        account.kubeconfig,
        "--poll-interval",
        str(POLL),
    )


# --- scenarios ------------------------------------------------------------------------------------------------


def test_succeeded_job_returns_and_is_deleted_by_default(cluster, namespace, account, tmp_path):
    manifest = write_manifest(tmp_path, job_settings())
    op = operator(cluster, namespace, "wsovvis-train-t", RUNNING, SUCCEEDED)
    outcome = ln.launch_job(manifest, launch_settings(account))
    op.join(5)
    assert not op.errors
    assert (outcome.name, outcome.attached, outcome.deleted) == ("wsovvis-train-t", False, True)
    assert outcome.reason == "PyTorchJobSucceeded"
    assert get_job(cluster, namespace, "wsovvis-train-t") is None


def test_the_configmap_is_created_owned_by_the_job(cluster, namespace, account, tmp_path):
    manifest = write_manifest(tmp_path, job_settings())
    op = operator(cluster, namespace, "wsovvis-train-t", SUCCEEDED)
    ln.launch_job(manifest, launch_settings(account, delete_policy="never"))
    op.join(5)
    job = get_job(cluster, namespace, "wsovvis-train-t")
    config_map = cluster.core.read_namespaced_config_map("wsovvis-train-t-config", namespace)
    assert config_map.data == {"train.yaml": "output_uri: s3://bucket/run\n"}
    (owner,) = config_map.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid) == ("PyTorchJob", "wsovvis-train-t", job["metadata"]["uid"])


def test_failed_job_exits_non_zero_printing_reason_and_message_and_is_kept(
    cluster, namespace, account, tmp_path
):
    manifest = write_manifest(tmp_path, job_settings())
    op = operator(cluster, namespace, "wsovvis-train-t", RUNNING, FAILED)
    proc = launch_cli(account, manifest)
    _, stderr = proc.communicate(timeout=60)
    op.join(5)
    assert proc.returncode == 1, stderr
    assert "PyTorchJobFailed" in stderr and FAILED_MESSAGE in stderr
    assert get_job(cluster, namespace, "wsovvis-train-t") is not None, "on-success must keep failed jobs"


def test_attaches_to_an_existing_job_instead_of_creating_a_second(
    cluster, namespace, account, tmp_path, caplog
):
    settings = job_settings()
    existing = create_job_directly(cluster, namespace, settings)
    set_conditions(cluster, namespace, settings.name, RUNNING)
    op = operator(cluster, namespace, settings.name, SUCCEEDED)
    with caplog.at_level(logging.INFO, logger="wsovvis"):
        outcome = ln.launch_job(
            write_manifest(tmp_path, settings), launch_settings(account, delete_policy="never")
        )
    op.join(5)
    assert outcome.attached is True
    job = get_job(cluster, namespace, settings.name)
    assert job["metadata"]["uid"] == existing["metadata"]["uid"]
    assert job["metadata"]["generation"] == 1, "the job must not be replaced or updated"
    assert "attaching to existing PyTorchJob" in caplog.text
    # its ConfigMap was missing (the job was created by hand): the launcher adds it, owned by that job
    config_map = cluster.core.read_namespaced_config_map(settings.config_map_name, namespace)
    assert config_map.metadata.owner_references[0].uid == existing["metadata"]["uid"]


def test_attaching_to_a_finished_job_reports_how_it_ended(cluster, namespace, account, tmp_path):
    settings = job_settings()
    create_job_directly(cluster, namespace, settings)
    set_conditions(cluster, namespace, settings.name, FAILED)
    started = time.monotonic()
    with pytest.raises(ln.JobFailedError, match=re.escape("PyTorchJobFailed: " + FAILED_MESSAGE)):
        ln.launch_job(write_manifest(tmp_path, settings), launch_settings(account))
    assert time.monotonic() - started < 10


def test_sigterm_deletes_the_job_and_exits(cluster, namespace, account, tmp_path):
    manifest = write_manifest(tmp_path, job_settings())
    proc = launch_cli(account, manifest)
    try:
        wait_for(lambda: get_job(cluster, namespace, "wsovvis-train-t"), "the launcher to create the job", 60)
        set_conditions(cluster, namespace, "wsovvis-train-t", RUNNING)
        time.sleep(3 * POLL)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr
    assert "SIGTERM" in stderr
    assert get_job(cluster, namespace, "wsovvis-train-t") is None


def test_timeout_exits_non_zero_with_the_last_condition_and_stops_the_job(
    cluster, namespace, account, tmp_path
):
    manifest = write_manifest(tmp_path, job_settings())
    op = operator(cluster, namespace, "wsovvis-train-t", RUNNING)
    started = time.monotonic()
    with pytest.raises(
        ln.JobTimeoutError, match=r"within 2 s; last condition Running: PyTorchJobRunning"
    ) as info:
        ln.launch_job(manifest, launch_settings(account, timeout_s=2))
    op.join(5)
    assert 2 <= time.monotonic() - started < 10
    assert info.value.exit_code == 4
    assert "the job was deleted" in str(info.value)
    assert get_job(cluster, namespace, "wsovvis-train-t") is None


def test_timeout_with_delete_policy_never_leaves_the_job_running(cluster, namespace, account, tmp_path):
    manifest = write_manifest(tmp_path, job_settings())
    with pytest.raises(ln.JobTimeoutError, match="left running"):
        ln.launch_job(manifest, launch_settings(account, timeout_s=1, delete_policy="never"))
    assert get_job(cluster, namespace, "wsovvis-train-t") is not None


@pytest.mark.parametrize(
    ("policy", "end", "kept"),
    [
        ("always", FAILED, False),
        ("never", SUCCEEDED, True),
        ("on-success", SUCCEEDED, False),
    ],
)
def test_delete_policy(cluster, namespace, account, tmp_path, policy, end, kept):
    manifest = write_manifest(tmp_path, job_settings())
    op = operator(cluster, namespace, "wsovvis-train-t", end)
    settings = launch_settings(account, delete_policy=policy)
    if end is FAILED:
        with pytest.raises(ln.JobFailedError):
            ln.launch_job(manifest, settings)
    else:
        ln.launch_job(manifest, settings)
    op.join(5)
    assert (get_job(cluster, namespace, "wsovvis-train-t") is not None) == kept


def test_run_id_names_the_job_and_its_configmap(cluster, namespace, account, tmp_path):
    manifest = write_manifest(tmp_path, job_settings(name="wsovvis-train"))
    expected = pj.job_name_for_run("Run 42", prefix="wsovvis-train")
    op = operator(cluster, namespace, expected, SUCCEEDED)
    outcome = ln.launch_job(manifest, launch_settings(account, delete_policy="never"), run_id="Run 42")
    op.join(5)
    assert outcome.name == expected
    job = get_job(cluster, namespace, expected)
    volumes = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["volumes"]
    assert {"name": "config", "configMap": {"name": f"{expected}-config"}} in volumes
    assert cluster.core.read_namespaced_config_map(f"{expected}-config", namespace).data


def fake_node(cluster: Cluster, namespace: str, kubelet: FakeKubelet) -> str:
    """A Node whose kubelet endpoint is ``kubelet``: the API server proxies its pods' logs there."""
    node = f"node-{namespace}"
    cluster.core.create_node({"metadata": {"name": node}})
    cluster.core.patch_node_status(
        node,
        {
            "status": {
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet.port}},
            }
        },
    )
    return node


def running_pod(cluster: Cluster, namespace: str, node: str, metadata: dict, container: str) -> None:
    """Create a pod on ``node`` and mark its ``container`` running, as a scheduler and kubelet would."""
    pod = {
        "metadata": metadata,
        "spec": {
            "nodeName": node,
            # no token controller runs here to give the service account a token to mount
            "automountServiceAccountToken": False,
            "containers": [{"name": container, "image": "x"}],
        },
    }
    cluster.core.create_namespaced_pod(namespace, pod)
    status = {"name": container, "ready": True, "restartCount": 0, "image": "x", "imageID": ""}
    cluster.core.patch_namespaced_pod_status(
        metadata["name"], namespace, {"status": {"phase": "Running", "containerStatuses": [status]}}
    )


def launch_with_controller(
    manifest: Path, account: Account, kubelet: FakeKubelet, play
) -> tuple[ln.JobOutcome, str]:
    """Launch the job while ``play()`` (the controller: pods, conditions) runs in a thread; stop the fake kubelet
    after; return the outcome and the log the launcher copied."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            play()
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    out = io.StringIO()
    try:
        outcome = ln.launch_job(manifest, launch_settings(account), log_stream=out)
    finally:
        kubelet.stop()
    thread.join(5)
    assert not errors, errors
    return outcome, out.getvalue()


def test_the_master_log_is_streamed_through_the_api_server(cluster, namespace, account, tmp_path):
    """A fake kubelet serves the master's log; the real API server proxies it to the launcher."""
    kubelet = FakeKubelet(
        tmp_path, ["[d2] iter: 19 total_loss: 2.731\n", "[d2] iter: 39 total_loss: 2.402\n"]
    )
    node = fake_node(cluster, namespace, kubelet)

    def operator_with_pod() -> None:
        wait_for(lambda: get_job(cluster, namespace, "wsovvis-train-t"), "the job")
        running_pod(cluster, namespace, node, {"name": "wsovvis-train-t-master-0"}, "pytorch")
        set_conditions(cluster, namespace, "wsovvis-train-t", RUNNING)
        wait_for(kubelet.served.is_set, "the log to be read")
        time.sleep(3 * POLL)
        set_conditions(cluster, namespace, "wsovvis-train-t", SUCCEEDED)

    manifest = write_manifest(tmp_path, job_settings())
    outcome, copied = launch_with_controller(manifest, account, kubelet, operator_with_pod)
    assert outcome.reason == "PyTorchJobSucceeded"
    assert copied == "".join(kubelet.lines)
    assert kubelet.paths == [f"/containerLogs/{namespace}/wsovvis-train-t-master-0/pytorch?follow=true"]


def test_connection_errors_are_retried_until_the_api_comes_back(
    cluster, namespace, account, tmp_path, caplog
):
    """The API port refuses connections for the first second, then forwards to the real API server."""
    port = free_port()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(kubeconfig_for(port, account.token))
    forwarder = DelayedForwarder(port, cluster.port, delay_s=1.0)
    forwarder.start()
    try:
        op = operator(cluster, namespace, "wsovvis-train-t", SUCCEEDED)
        settings = ln.LaunchSettings(
            namespace=namespace,
            poll_interval_s=POLL,
            api_backoff_s=0.2,
            api_attempts=8,
            kubeconfig=str(kubeconfig),
            timeout_s=30,
        )
        with caplog.at_level(logging.WARNING, logger="wsovvis"):
            outcome = ln.launch_job(write_manifest(tmp_path, job_settings()), settings)
        op.join(5)
    finally:
        forwarder.stop()
    assert outcome.reason == "PyTorchJobSucceeded"
    assert "creating PyTorchJob" in caplog.text and "retrying in" in caplog.text


def test_kubectl_server_dry_run_accepts_manifests_train(cluster, namespace):
    out = cluster.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-k", str(ROOT / "manifests" / "train")
    )
    assert "pytorchjob.kubeflow.org/wsovvis-train created (server dry run)" in out.stdout
    assert "configmap/wsovvis-train-config created (server dry run)" in out.stdout


def test_kubectl_server_dry_run_accepts_manifests_train_trainjob(cluster, namespace):
    out = cluster.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-k", str(ROOT / "manifests" / "train-trainjob")
    )
    assert "trainjob.trainer.kubeflow.org/wsovvis-train created (server dry run)" in out.stdout
    assert "configmap/wsovvis-train-config created (server dry run)" in out.stdout


# --- the same launcher on a TrainJob (Trainer v2) ---------------------------------------------------------------


def trainjob_settings(name: str = "wsovvis-train-t") -> tj.TrainJobSettings:
    return job_settings(name, tj.TrainJobSettings)


def trainjob_condition(kind: str, reason: str, message: str, status: str = "True") -> dict:
    """A metav1.Condition, as Trainer's controller writes them (no lastUpdateTime)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": now}


TRAINJOB_RUNNING = [trainjob_condition("Suspended", "Resumed", "TrainJob is resumed", status="False")]
TRAINJOB_COMPLETE = [
    *TRAINJOB_RUNNING,
    trainjob_condition("Complete", "JobSetCompleted", "jobset completed successfully"),
]
TRAINJOB_FAILED_MESSAGE = "jobset failed due to the node job failing"
TRAINJOB_FAILED = [*TRAINJOB_RUNNING, trainjob_condition("Failed", "FailedJobs", TRAINJOB_FAILED_MESSAGE)]


def test_the_rendered_trainjob_is_accepted_as_is_by_the_api_server(cluster, namespace):
    job = tj.build_trainjob(trainjob_settings())
    created = cluster.custom.create_namespaced_custom_object(
        tj.TRAINJOB.group, tj.TRAINJOB.version, namespace, tj.PLURAL, job
    )
    # nothing was pruned: every field we set is a field of the pinned Trainer's schema
    assert {k: created["spec"][k] for k in job["spec"]} == job["spec"]


def test_a_trainjob_that_completes_returns_and_is_deleted_by_default(cluster, namespace, account, tmp_path):
    op = operator(cluster, namespace, "wsovvis-train-t", TRAINJOB_COMPLETE, kind=tj.TRAINJOB)
    outcome = ln.launch_job(write_manifest(tmp_path, trainjob_settings()), launch_settings(account))
    op.join(5)
    assert not op.errors
    assert (outcome.kind, outcome.attached, outcome.deleted) == ("TrainJob", False, True)
    assert outcome.reason == "JobSetCompleted"
    assert get_job(cluster, namespace, "wsovvis-train-t", tj.TRAINJOB) is None


def test_a_failed_trainjob_exits_1_with_its_reason_and_is_kept(cluster, namespace, account, tmp_path):
    op = operator(cluster, namespace, "wsovvis-train-t", TRAINJOB_RUNNING, TRAINJOB_FAILED, kind=tj.TRAINJOB)
    proc = launch_cli(account, write_manifest(tmp_path, trainjob_settings()))
    _, stderr = proc.communicate(timeout=60)
    op.join(5)
    assert proc.returncode == 1, stderr
    assert f"TrainJob {namespace}/wsovvis-train-t Failed: FailedJobs: {TRAINJOB_FAILED_MESSAGE}" in stderr
    assert "kubectl -n" in stderr and "describe trainjob wsovvis-train-t" in stderr
    assert get_job(cluster, namespace, "wsovvis-train-t", tj.TRAINJOB) is not None


def test_a_retried_step_attaches_to_its_trainjob_instead_of_creating_a_second(
    cluster, namespace, account, tmp_path, caplog
):
    settings = trainjob_settings()
    manifest = write_manifest(tmp_path, settings)
    existing = cluster.custom.create_namespaced_custom_object(
        tj.TRAINJOB.group,
        tj.TRAINJOB.version,
        namespace,
        tj.PLURAL,
        {**tj.build_trainjob(settings), "metadata": {"name": settings.name, "namespace": namespace}},
    )
    op = operator(cluster, namespace, settings.name, TRAINJOB_COMPLETE, kind=tj.TRAINJOB)
    with caplog.at_level(logging.INFO, logger="wsovvis"):
        outcome = ln.launch_job(manifest, launch_settings(account, delete_policy="never"))
    op.join(5)
    assert outcome.attached is True
    job = get_job(cluster, namespace, settings.name, tj.TRAINJOB)
    assert job["metadata"]["uid"] == existing["metadata"]["uid"]
    assert job["metadata"]["generation"] == 1, "the job must not be replaced or updated"
    assert "attaching to existing TrainJob" in caplog.text
    config_map = cluster.core.read_namespaced_config_map(settings.config_map_name, namespace)
    (owner,) = config_map.metadata.owner_references
    assert (owner.api_version, owner.kind, owner.uid) == (
        tj.API_VERSION,
        "TrainJob",
        existing["metadata"]["uid"],
    )


def test_sigterm_deletes_the_trainjob_and_exits(cluster, namespace, account, tmp_path):
    proc = launch_cli(account, write_manifest(tmp_path, trainjob_settings()))
    try:
        wait_for(
            lambda: get_job(cluster, namespace, "wsovvis-train-t", tj.TRAINJOB),
            "the launcher to create the job",
            60,
        )
        set_conditions(cluster, namespace, "wsovvis-train-t", TRAINJOB_RUNNING, tj.TRAINJOB)
        time.sleep(3 * POLL)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr
    assert "SIGTERM: deleting TrainJob" in stderr
    assert get_job(cluster, namespace, "wsovvis-train-t", tj.TRAINJOB) is None


def test_a_trainjob_times_out_with_exit_4(cluster, namespace, account, tmp_path):
    with pytest.raises(ln.JobTimeoutError, match="TrainJob .* did not finish within 1 s") as info:
        ln.launch_job(write_manifest(tmp_path, trainjob_settings()), launch_settings(account, timeout_s=1))
    assert info.value.exit_code == 4
    assert get_job(cluster, namespace, "wsovvis-train-t", tj.TRAINJOB) is None


def test_the_rank0_node_log_is_streamed_through_the_api_server(cluster, namespace, account, tmp_path):
    """A fake kubelet serves the logs of the TrainJob's pods; the launcher follows the node of index 0 only."""
    kubelet = FakeKubelet(
        tmp_path, ["[d2] iter: 19 total_loss: 2.731\n", "[d2] iter: 39 total_loss: 2.402\n"]
    )
    node = fake_node(cluster, namespace, kubelet)
    name = "wsovvis-train-t"

    def node_pod(index: int, suffix: str) -> dict:
        """Metadata JobSet and the Job controller give a node pod (its name ends in a random suffix)."""
        labels = {
            tj.JOBSET_NAME_LABEL: name,
            tj.REPLICATED_JOB_LABEL: "node",
            tj.JOB_INDEX_LABEL: "0",
            tj.COMPLETION_INDEX: str(index),
        }
        return {
            "name": f"{name}-node-0-{index}-{suffix}",
            "labels": labels,
            "annotations": {tj.COMPLETION_INDEX: str(index)},
        }

    def trainer_with_pods() -> None:
        wait_for(lambda: get_job(cluster, namespace, name, tj.TRAINJOB), "the job")
        running_pod(cluster, namespace, node, node_pod(1, "b7x2q"), "node")
        running_pod(cluster, namespace, node, node_pod(0, "k4m9z"), "node")
        set_conditions(cluster, namespace, name, TRAINJOB_RUNNING, tj.TRAINJOB)
        wait_for(kubelet.served.is_set, "the log to be read")
        time.sleep(3 * POLL)
        set_conditions(cluster, namespace, name, TRAINJOB_COMPLETE, tj.TRAINJOB)

    manifest = write_manifest(tmp_path, trainjob_settings())
    outcome, copied = launch_with_controller(manifest, account, kubelet, trainer_with_pods)
    assert outcome.reason == "JobSetCompleted"
    assert copied == "".join(kubelet.lines)
    assert kubelet.paths == [f"/containerLogs/{namespace}/{name}-node-0-0-k4m9z/node?follow=true"]


# --- least privilege: the launcher's account has what manifests/rbac grants and nothing more ------------------


def core_api_as(account: Account) -> object:
    """A CoreV1Api authenticating with the account's token."""
    from kubernetes import client
    from kubernetes import config as kube_config

    configuration = client.Configuration()
    kube_config.load_kube_config(config_file=account.kubeconfig, client_configuration=configuration)
    return client.CoreV1Api(client.ApiClient(configuration))


def _delete_pod(core, namespace: str, other: str) -> None:
    core.delete_namespaced_pod("victim", namespace)


def _read_secret(core, namespace: str, other: str) -> None:
    core.read_namespaced_secret("s3", namespace)


def _list_secrets(core, namespace: str, other: str) -> None:
    core.list_namespaced_secret(namespace)


def _read_configmap_elsewhere(core, namespace: str, other: str) -> None:
    core.read_namespaced_config_map("settings", other)


DENIED = [_delete_pod, _read_secret, _list_secrets, _read_configmap_elsewhere]


@pytest.mark.parametrize("action", DENIED, ids=lambda action: action.__name__.strip("_"))
def test_the_pipeline_account_is_denied_what_the_role_does_not_grant(cluster, namespace, account, action):
    from kubernetes.client.exceptions import ApiException

    other = f"t-{uuid.uuid4().hex[:10]}"
    cluster.core.create_namespace({"metadata": {"name": other}})
    cluster.core.create_namespaced_config_map(other, {"metadata": {"name": "settings"}, "data": {"a": "b"}})
    cluster.core.create_namespaced_secret(namespace, {"metadata": {"name": "s3"}, "stringData": {"k": "v"}})
    cluster.core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "victim"},
            "spec": {"automountServiceAccountToken": False, "containers": [{"name": "c", "image": "x"}]},
        },
    )
    with pytest.raises(ApiException) as denied:
        action(core_api_as(account), namespace, other)
    assert denied.value.status == 403, denied.value.body
    assert f"system:serviceaccount:{namespace}:{account.name}" in denied.value.body
    assert cluster.core.read_namespaced_pod("victim", namespace).metadata.deletion_timestamp is None


def custom_api_as(account: Account) -> object:
    """A CustomObjectsApi authenticating with the account's token."""
    from kubernetes import client
    from kubernetes import config as kube_config

    configuration = client.Configuration()
    kube_config.load_kube_config(config_file=account.kubeconfig, client_configuration=configuration)
    return client.CustomObjectsApi(client.ApiClient(configuration))


TRAINER = (tj.TRAINJOB.group, tj.TRAINJOB.version)


def _runtime(kind: str) -> dict:
    return {
        "apiVersion": tj.API_VERSION,
        "kind": kind,
        "metadata": {"name": "mine"},
        "spec": {"template": {}},
    }


def _create_cluster_training_runtime(custom, namespace: str, other: str) -> None:
    custom.create_cluster_custom_object(
        *TRAINER, "clustertrainingruntimes", _runtime("ClusterTrainingRuntime")
    )


def _create_training_runtime(custom, namespace: str, other: str) -> None:
    custom.create_namespaced_custom_object(
        *TRAINER, namespace, "trainingruntimes", _runtime("TrainingRuntime")
    )


def _list_trainjobs(custom, namespace: str, other: str) -> None:
    custom.list_namespaced_custom_object(*TRAINER, namespace, tj.PLURAL)


def _patch_a_trainjob(custom, namespace: str, other: str) -> None:
    custom.patch_namespaced_custom_object(
        *TRAINER, namespace, tj.PLURAL, "victim", {"spec": {"suspend": True}}
    )


def _patch_a_trainjob_status(custom, namespace: str, other: str) -> None:
    custom.patch_namespaced_custom_object_status(
        *TRAINER, namespace, tj.PLURAL, "victim", {"status": {"conditions": TRAINJOB_COMPLETE}}
    )


def _create_a_trainjob_elsewhere(custom, namespace: str, other: str) -> None:
    body = tj.build_trainjob(trainjob_settings())
    custom.create_namespaced_custom_object(*TRAINER, other, tj.PLURAL, body)


TRAINJOB_DENIED = [
    _create_cluster_training_runtime,
    _create_training_runtime,
    _list_trainjobs,
    _patch_a_trainjob,
    _patch_a_trainjob_status,
    _create_a_trainjob_elsewhere,
]


@pytest.mark.parametrize("action", TRAINJOB_DENIED, ids=lambda action: action.__name__.strip("_"))
def test_the_pipeline_account_is_denied_what_the_trainjob_path_does_not_need(
    cluster, namespace, account, action
):
    from kubernetes.client.exceptions import ApiException

    other = f"t-{uuid.uuid4().hex[:10]}"
    cluster.core.create_namespace({"metadata": {"name": other}})
    victim = tj.build_trainjob(trainjob_settings("victim"))
    cluster.custom.create_namespaced_custom_object(*TRAINER, namespace, tj.PLURAL, victim)
    with pytest.raises(ApiException) as denied:
        action(custom_api_as(account), namespace, other)
    assert denied.value.status == 403, denied.value.body
    assert f"system:serviceaccount:{namespace}:{account.name}" in denied.value.body
    job = get_job(cluster, namespace, "victim", tj.TRAINJOB)
    assert job["metadata"]["generation"] == 1 and not job.get("status")


def test_the_launcher_outside_its_namespace_is_refused_with_a_hint(cluster, namespace, account, tmp_path):
    other = f"t-{uuid.uuid4().hex[:10]}"
    cluster.core.create_namespace({"metadata": {"name": other}})
    with pytest.raises(ln.ClusterError, match=r"HTTP 403 .*the service account needs RBAC") as info:
        ln.launch_job(write_manifest(tmp_path, job_settings()), launch_settings(account, namespace=other))
    assert info.value.exit_code == 5
    assert get_job(cluster, other, "wsovvis-train-t") is None


# --- helpers for the connectivity tests ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DelayedForwarder:
    """Listens on ``port`` only after ``delay_s`` (connections are refused until then), then relays TCP to
    ``target``: an API server that is briefly unreachable, as during a control-plane restart."""

    def __init__(self, port: int, target: int, delay_s: float):
        self.port, self.target, self.delay_s = port, target, delay_s
        self.server: socketserver.ThreadingTCPServer | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def _serve(self) -> None:
        time.sleep(self.delay_s)
        target = self.target

        class Relay(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with socket.create_connection(("127.0.0.1", target)) as upstream:
                    pump = threading.Thread(target=_copy, args=(upstream, self.request), daemon=True)
                    pump.start()
                    _copy(self.request, upstream)
                    pump.join(5)

        self.server = _ReusableServer(("127.0.0.1", self.port), Relay)
        self.server.serve_forever(poll_interval=0.05)


class FakeKubelet:
    """Serves ``/containerLogs/...`` over HTTPS (self-signed) the way a kubelet does, for the API server's
    log proxy; nothing else of a kubelet."""

    def __init__(self, workdir: Path, lines: list[str]):
        self.lines, self.paths, self.served = lines, [], threading.Event()
        cert, key = workdir / "kubelet.crt", workdir / "kubelet.key"
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
        )
        kubelet = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                kubelet.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                for line in kubelet.lines:
                    self.wfile.write(line.encode())
                    self.wfile.flush()
                    time.sleep(0.05)
                kubelet.served.set()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _ReusableServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def _copy(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
