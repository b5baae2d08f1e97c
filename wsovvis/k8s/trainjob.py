"""The TrainJob (Kubeflow Trainer v2, ``trainer.kubeflow.org/v1alpha1``) that runs the training harness.

The same job as :mod:`wsovvis.k8s.pytorchjob`'s, for the controller the Kubeflow platform installs by default since
its 1.11 release: ``1 + placement.num_workers`` nodes of a torch runtime (``torch-distributed``, the
ClusterTrainingRuntime Trainer ships, unless told otherwise), each running ``wsovvis train with
/etc/wsovvis/train.yaml [key=value ...]`` in the runtime's ``node`` container with the placement's image, GPUs, CPU
and memory (``trainer.resourcesPerNode``) and S3 by reference (``trainer.env``). What the ``trainer`` fields cannot
say (the node selector, tolerations, service account, the ``/dev/shm`` and config volumes, the pods' labels and
annotations) goes through the TrainJob's per-job override of the runtime, whose name and shape Trainer has changed at
each minor release while the API is alpha:

- v2.0: ``spec.podSpecOverrides[]`` (``targetJobs``, then the pod-spec fields);
- v2.1: ``spec.podTemplateOverrides[]`` (``targetJobs``, ``metadata``, ``spec``);
- v2.2 and v2.3: ``spec.runtimePatches[]`` (``manager``, then the JobSet template down to the pod spec).

This module renders the one of :data:`TRAINER_VERSION` (v2.2.1, whose CRDs the tests serve and validate against):
for another Trainer release, change :func:`_runtime_patch` (and the CRDs under ``tests/data/crds``, and the pin in
``manifests/platform/trainer``).

The torch plugin sets ``PET_NNODES``, ``PET_NPROC_PER_NODE``, ``PET_NODE_RANK``, ``PET_MASTER_ADDR`` and
``PET_MASTER_PORT`` in each pod and refuses them in ``trainer.env``; the harness places its processes from them
(:mod:`wsovvis.train.distributed`). ``numProcPerNode`` is always set (one process per GPU, or ``nproc_per_node``):
left to the plugin's ``auto``, a CPU-only node would run one process per requested CPU.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from wsovvis.errors import UsageError
from wsovvis.k8s import jobspec
from wsovvis.k8s.jobspec import HarnessJobSettings, build_config_map, harness_args

API_VERSION = "trainer.kubeflow.org/v1alpha1"
KIND = "TrainJob"
PLURAL = "trainjobs"
TRAINER_VERSION = "v2.2.1"
# The torch runtimes' trainer ReplicatedJob and its container (Trainer's constants.Node).
NODE = "node"
DEFAULT_RUNTIME = "torch-distributed"
RUNTIME_KINDS = ("ClusterTrainingRuntime", "TrainingRuntime")
# What the torch plugin sets in each node and its webhook refuses in trainer.env (constants.TorchRunReservedEnvNames).
TORCH_ENV = ("PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT")
# Who owns this job's entry in spec.runtimePatches (a domain-prefixed path, as Trainer's webhook requires).
PATCH_MANAGER = "wsovvis.io/train-step"
# The labels JobSet gives each pod of the TrainJob's JobSet (named like the TrainJob).
JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
REPLICATED_JOB_LABEL = "jobset.sigs.k8s.io/replicatedjob-name"
JOB_INDEX_LABEL = "jobset.sigs.k8s.io/job-index"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"


class TrainJobKind(jobspec.JobKind):
    """A JobSet with one Indexed Job ``<job>-node-0`` of ``numNodes`` pods, host names ``<job>-node-0-<rank>``;
    conditions Suspended, Complete, Failed (a Failed condition's reason says why, e.g. ``DeadlineExceeded``)."""

    api_version, kind, plural, container = API_VERSION, KIND, PLURAL, NODE
    succeeded = "Complete"
    controller = f"Kubeflow Trainer {TRAINER_VERSION} (the TrainJob CRD, manifests/platform/trainer)"

    def longest_pod_name(self, name: str, num_workers: int) -> str:
        return f"{name}-{NODE}-0-{num_workers}"

    def num_workers(self, job: dict[str, Any]) -> int:
        return (job["spec"].get("trainer") or {}).get("numNodes", 1) - 1

    def pod_specs(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            replicated["template"]["spec"]["template"]["spec"]
            for patch in job["spec"].get("runtimePatches", [])
            for replicated in patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
        ]

    def first_pod(self, core: Any, namespace: str, name: str) -> Any:
        """The newest pod of completion index 0 of the node Job (a retried pod gets a new name)."""
        selector = f"{JOBSET_NAME_LABEL}={name},{REPLICATED_JOB_LABEL}={NODE},{JOB_INDEX_LABEL}=0"
        pods = core.list_namespaced_pod(namespace, label_selector=selector, _request_timeout=30).items
        rank0 = [
            pod
            for pod in pods
            if (pod.metadata.annotations or {}).get(
                COMPLETION_INDEX, (pod.metadata.labels or {}).get(COMPLETION_INDEX)
            )
            == "0"
        ]
        return max(rank0, key=lambda pod: pod.metadata.creation_timestamp, default=None)


TRAINJOB = TrainJobKind()


@dataclass(frozen=True)
class TrainJobSettings(HarnessJobSettings):
    """A TrainJob of the train stage: its name, its pods' placement, the harness's settings, and the runtime it
    references (``runtime``, a ``runtime_kind``: ClusterTrainingRuntime, or a TrainingRuntime in the job's
    namespace)."""

    KIND = TRAINJOB

    runtime: str = DEFAULT_RUNTIME
    runtime_kind: str = "ClusterTrainingRuntime"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.runtime:
            raise UsageError(
                "TrainJob settings: runtime is empty; name the torch runtime (e.g. torch-distributed)"
            )
        reserved = sorted(set(TORCH_ENV) & set(self.env))
        if reserved:
            raise UsageError(
                f"TrainJob settings: env must not set {', '.join(reserved)}; the torch runtime sets them in each node"
            )
        if self.runtime_kind not in RUNTIME_KINDS:
            raise UsageError(
                f"TrainJob settings: runtime_kind {self.runtime_kind!r} is not one of {', '.join(RUNTIME_KINDS)}"
            )


def build_trainjob(settings: TrainJobSettings) -> dict[str, Any]:
    """The TrainJob as a plain dict, ready for YAML or the Kubernetes API."""
    placement = settings.placement
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": jobspec.metadata(settings, settings.name),
        "spec": {
            "runtimeRef": {
                "name": settings.runtime,
                "apiGroup": TRAINJOB.group,
                "kind": settings.runtime_kind,
            },
            "trainer": {
                "image": placement.image,
                "command": list(settings.command),
                "args": harness_args(settings),
                "env": jobspec.container_env(settings),
                "numNodes": 1 + placement.num_workers,
                "numProcPerNode": settings.procs_per_node,
                "resourcesPerNode": placement.container_resources(),
            },
            "runtimePatches": [_runtime_patch(settings)],
        },
    }


def _runtime_patch(settings: TrainJobSettings) -> dict[str, Any]:
    """Trainer v2.2's ``runtimePatches`` entry: the node pods' placement, volumes and metadata."""
    pod_spec: dict[str, Any] = {
        **settings.placement.pod_spec(),
        "volumes": jobspec.volumes(settings),
        "containers": [{"name": NODE, "volumeMounts": jobspec.volume_mounts()}],
    }
    replicated_job = {
        "name": NODE,
        "template": {"spec": {"template": {"metadata": jobspec.pod_metadata(settings), "spec": pod_spec}}},
    }
    return {
        "manager": PATCH_MANAGER,
        "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [replicated_job]}}},
    }


def render_manifest(settings: TrainJobSettings, config_text: str | None) -> list[dict[str, Any]]:
    """The documents the launcher (or ``kubectl apply``) creates: the ConfigMap, then the job (the job alone
    without ``config_text``)."""
    job = build_trainjob(settings)
    return [job] if config_text is None else [build_config_map(settings, config_text), job]


def load_settings(path: str, *, image: str | None = None, namespace: str | None = None) -> TrainJobSettings:
    """TrainJob settings from a YAML mapping (see :func:`wsovvis.k8s.jobspec.load_settings`)."""
    return jobspec.load_settings(TrainJobSettings, path, image=image, namespace=namespace)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    jobspec.add_render_parser(subparsers, "render-trainjob", TrainJobSettings, render_manifest)
