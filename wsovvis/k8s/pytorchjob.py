"""The PyTorchJob (Kubeflow Training Operator v1, ``kubeflow.org/v1``) that runs the training harness.

One frozen settings object renders two documents: a ConfigMap holding the harness config (``train.yaml``)
and a PyTorchJob with one Master and ``placement.num_workers`` Workers, each pod running
``wsovvis train with /etc/wsovvis/train.yaml [key=value ...]`` in a container named ``pytorch`` (the name
the operator requires). The same rendering is committed as ``manifests/train`` for ``kubectl apply -k``
and handed to the launcher by the pipeline, so the two cannot drift apart (a test compares them).

Where the pods run and what they get is the job's :class:`~wsovvis.k8s.placement.Placement`; what every job kind
renders alike (the ConfigMap, the harness's command, environment and volumes, names from run ids) is
:mod:`wsovvis.k8s.jobspec`'s; what is left here is the PyTorchJob's own. The operator sets ``MASTER_ADDR``,
``MASTER_PORT`` and the ``PET_*`` variables in each pod (see :mod:`wsovvis.train.distributed`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from wsovvis.errors import UsageError
from wsovvis.k8s import jobspec
from wsovvis.k8s.jobspec import (  # noqa: F401 - also known by these names here
    HarnessJobSettings,
    build_config_map,
    dump_manifest,
    harness_args,
    job_name_for_run,
)

API_VERSION = "kubeflow.org/v1"
KIND = "PyTorchJob"
GROUP, VERSION = API_VERSION.split("/")
PLURAL = "pytorchjobs"
CONTAINER_NAME = "pytorch"


class PyTorchJobKind(jobspec.JobKind):
    """Pods ``<job>-master-0`` and ``<job>-worker-<i>``; conditions Created, Running, Restarting, Succeeded,
    Failed."""

    api_version, kind, plural, container = API_VERSION, KIND, PLURAL, CONTAINER_NAME
    succeeded = "Succeeded"
    controller = "the Training Operator (the PyTorchJob CRD, manifests/platform/training-operator)"

    def longest_pod_name(self, name: str, num_workers: int) -> str:
        return f"{name}-worker-{num_workers - 1}" if num_workers > 0 else f"{name}-master-0"

    def num_workers(self, job: dict[str, Any]) -> int:
        return job["spec"]["pytorchReplicaSpecs"].get("Worker", {}).get("replicas", 0)

    def pod_specs(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        return [replica["template"]["spec"] for replica in job["spec"]["pytorchReplicaSpecs"].values()]

    def first_pod(self, core: Any, namespace: str, name: str) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return core.read_namespaced_pod(f"{name}-master-0", namespace, _request_timeout=30)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise


PYTORCHJOB = PyTorchJobKind()
check_job_name = PYTORCHJOB.check_name
find_job = PYTORCHJOB.find_job
with_job_name = PYTORCHJOB.with_job_name


@dataclass(frozen=True)
class RunPolicy:
    """The job's ``runPolicy``. ``clean_pod_policy`` Running removes pods still running after the job
    finished (a worker stuck in a collective) and keeps finished pods, so their logs stay readable."""

    clean_pod_policy: str = "Running"
    backoff_limit: int = 3
    ttl_seconds_after_finished: int | None = None


@dataclass(frozen=True)
class PyTorchJobSettings(HarnessJobSettings):
    """A PyTorchJob of the train stage: its name, its pods' placement, the harness's settings, and what only a
    PyTorchJob has (the image pull policy, the pods' restart policy, the run policy)."""

    KIND = PYTORCHJOB

    image_pull_policy: str = "IfNotPresent"
    restart_policy: str = "OnFailure"
    run_policy: RunPolicy = field(default_factory=RunPolicy)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.restart_policy not in ("Always", "OnFailure", "Never", "ExitCode"):
            raise UsageError(
                f"PyTorchJob settings: restart_policy {self.restart_policy!r} is not one of "
                "Always, OnFailure, Never, ExitCode"
            )
        if self.run_policy.clean_pod_policy not in ("None", "Running", "All"):
            raise UsageError(
                f"PyTorchJob settings: clean_pod_policy {self.run_policy.clean_pod_policy!r} is not one of "
                "None, Running, All"
            )


def build_pytorchjob(settings: PyTorchJobSettings) -> dict[str, Any]:
    """The PyTorchJob as a plain dict, ready for YAML or the Kubernetes API."""
    replicas: dict[str, Any] = {"Master": _replica_spec(settings, 1)}
    if settings.placement.num_workers:
        replicas["Worker"] = _replica_spec(settings, settings.placement.num_workers)
    run_policy: dict[str, Any] = {
        "cleanPodPolicy": settings.run_policy.clean_pod_policy,
        "backoffLimit": settings.run_policy.backoff_limit,
    }
    if settings.run_policy.ttl_seconds_after_finished is not None:
        run_policy["ttlSecondsAfterFinished"] = settings.run_policy.ttl_seconds_after_finished
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": jobspec.metadata(settings, settings.name),
        "spec": {
            "nprocPerNode": str(settings.procs_per_node),
            "runPolicy": run_policy,
            "pytorchReplicaSpecs": replicas,
        },
    }


def render_manifest(settings: PyTorchJobSettings, config_text: str | None) -> list[dict[str, Any]]:
    """The documents the launcher (or ``kubectl apply``) creates: the ConfigMap, then the job (the job alone
    without ``config_text``)."""
    job = build_pytorchjob(settings)
    return [job] if config_text is None else [build_config_map(settings, config_text), job]


def load_settings(path: str, *, image: str | None = None, namespace: str | None = None) -> PyTorchJobSettings:
    """PyTorchJob settings from a YAML mapping (see :func:`wsovvis.k8s.jobspec.load_settings`)."""
    return jobspec.load_settings(PyTorchJobSettings, path, image=image, namespace=namespace)


def _replica_spec(settings: PyTorchJobSettings, replicas: int) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {
        "containers": [_container(settings)],
        "volumes": jobspec.volumes(settings),
        **settings.placement.pod_spec(),
    }
    return {
        "replicas": replicas,
        "restartPolicy": settings.restart_policy,
        "template": {"metadata": jobspec.pod_metadata(settings), "spec": pod_spec},
    }


def _container(settings: PyTorchJobSettings) -> dict[str, Any]:
    return {
        "name": CONTAINER_NAME,
        "image": settings.placement.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": list(settings.command),
        "args": harness_args(settings),
        "env": jobspec.container_env(settings),
        "resources": settings.placement.container_resources(),
        "volumeMounts": jobspec.volume_mounts(),
    }


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    jobspec.add_render_parser(subparsers, "render-pytorchjob", PyTorchJobSettings, render_manifest)
