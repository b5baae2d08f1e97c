"""The PyTorchJob (Kubeflow Training Operator v1, ``kubeflow.org/v1``) that runs the training harness.

One frozen settings object renders two documents: a ConfigMap holding the harness config (``train.yaml``)
and a PyTorchJob with one Master and ``placement.num_workers`` Workers, each pod running
``wsovvis train with /etc/wsovvis/train.yaml [key=value ...]`` in a container named ``pytorch`` (the name
the operator requires). The same rendering is committed as ``manifests/train`` for ``kubectl apply -k``
and handed to the launcher by the pipeline, so the two cannot drift apart (a test compares them).

Where the pods run and what they get is the job's :class:`~wsovvis.k8s.placement.Placement`; what is left here is
the PyTorchJob's own. S3 keys and endpoint come from the Secret and ConfigMap the placement names, by reference
(never literal values), as for every task of the pipeline. ``/dev/shm`` is a memory-backed emptyDir because NCCL
and DataLoader workers need more than the container runtime's 64 MiB default. Istio sidecar injection is turned
off: a sidecar keeps a finished pod running and intercepts the rendezvous traffic between pods.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import logging
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from wsovvis import config, storage
from wsovvis.cliutil import add_flag
from wsovvis.errors import UsageError
from wsovvis.k8s.placement import Placement

log = logging.getLogger(__name__)

API_VERSION = "kubeflow.org/v1"
KIND = "PyTorchJob"
GROUP, VERSION = API_VERSION.split("/")
PLURAL = "pytorchjobs"
CONTAINER_NAME = "pytorch"
CONFIG_DIR = "/etc/wsovvis"
DEFAULT_JOB_PREFIX = "wsovvis-train"
ISTIO_INJECT = "sidecar.istio.io/inject"

# Pods are named <job>-<replica type>-<index> and the operator gives each a Service of the same name,
# which must be a DNS-1035 label (<= 63 characters, starting with a letter).
DNS_LABEL_MAX = 63
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# Room kept for "-worker-<index>" with up to 4-digit indexes when deriving names from run ids.
RUN_JOB_NAME_MAX = DNS_LABEL_MAX - len("-worker-9999")


@dataclass(frozen=True)
class RunPolicy:
    """The job's ``runPolicy``. ``clean_pod_policy`` Running removes pods still running after the job
    finished (a worker stuck in a collective) and keeps finished pods, so their logs stay readable."""

    clean_pod_policy: str = "Running"
    backoff_limit: int = 3
    ttl_seconds_after_finished: int | None = None


@dataclass(frozen=True)
class PyTorchJobSettings:
    """A PyTorchJob of the train stage: its name, its pods' placement, and what only a PyTorchJob has."""

    name: str
    placement: Placement
    image_pull_policy: str = "IfNotPresent"
    command: tuple[str, ...] = ("wsovvis", "train")
    config_updates: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()
    config_map: str = ""
    config_key: str = "train.yaml"
    nproc_per_node: int | None = None
    shm_size: str = "8Gi"
    restart_policy: str = "OnFailure"
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    run_policy: RunPolicy = field(default_factory=RunPolicy)

    def __post_init__(self) -> None:
        check_job_name(self.name, self.placement.num_workers)
        if self.nproc_per_node is not None and self.nproc_per_node < 1:
            raise UsageError(f"PyTorchJob settings: nproc_per_node must be >= 1, got {self.nproc_per_node}")
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
        reserved = self.placement.s3.env_names & set(self.env)
        if reserved:
            raise UsageError(
                f"PyTorchJob settings: env must not set {', '.join(sorted(reserved))}; the S3 keys and endpoint "
                "come from the Secret and ConfigMap named in placement.s3"
            )

    @property
    def config_map_name(self) -> str:
        return self.config_map or f"{self.name}-config"

    @property
    def procs_per_node(self) -> int:
        """Processes per pod: one per GPU unless given (detectron2's launch spawns them itself)."""
        return self.nproc_per_node or max(self.placement.gpus_per_worker, 1)


def check_job_name(name: str, num_workers: int = 0) -> None:
    """Raise UsageError unless ``name`` and its pods' names are valid DNS-1035 labels."""
    longest = f"{name}-worker-{num_workers - 1}" if num_workers > 0 else f"{name}-master-0"
    if not _DNS_1035.match(name) or len(longest) > DNS_LABEL_MAX:
        raise UsageError(
            f"PyTorchJob name {name!r} is not usable: it must be lower-case letters, digits and '-', start "
            f"with a letter, and leave room for the pod suffix ({longest!r} must be <= {DNS_LABEL_MAX} "
            "characters)"
        )


def job_name_for_run(run_id: str, prefix: str = DEFAULT_JOB_PREFIX) -> str:
    """A deterministic job name for a pipeline run: ``<prefix>-<run id>``, valid for the operator.

    A run id that is already a clean DNS label is used as is (a KFP run's UUID fits); anything else is
    lower-cased, stripped of other characters and shortened, with 8 hex digits of its SHA-1 appended so
    distinct run ids keep distinct names.
    """
    if not run_id:
        raise UsageError("run id is empty: pass the pipeline run id (e.g. {{$.pipeline_job_uuid}})")
    prefix = re.sub(r"[^a-z0-9-]+", "-", prefix.lower()).strip("-")
    if not prefix or not prefix[0].isalpha():
        raise UsageError(f"job name prefix {prefix!r} must start with a letter")
    clean = re.sub(r"[^a-z0-9]+", "-", run_id.lower()).strip("-")
    name = f"{prefix}-{clean}"
    if clean == run_id and len(name) <= RUN_JOB_NAME_MAX:
        return name
    digest = hashlib.sha1(run_id.encode()).hexdigest()[:8]
    keep = RUN_JOB_NAME_MAX - len(prefix) - len(digest) - 2
    if keep < 0:
        raise UsageError(f"job name prefix {prefix!r} is too long (max {RUN_JOB_NAME_MAX - 10} characters)")
    head = clean[:keep].strip("-")
    return f"{prefix}-{head}-{digest}" if head else f"{prefix}-{digest}"


def build_config_map(settings: PyTorchJobSettings, config_text: str) -> dict[str, Any]:
    """The ConfigMap mounted at ``/etc/wsovvis``: the harness config under ``settings.config_key``."""
    metadata: dict[str, Any] = {"name": settings.config_map_name}
    if settings.placement.namespace:
        metadata["namespace"] = settings.placement.namespace
    if settings.labels:
        metadata["labels"] = dict(settings.labels)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": {settings.config_key: config_text},
    }


def build_pytorchjob(settings: PyTorchJobSettings) -> dict[str, Any]:
    """The PyTorchJob as a plain dict, ready for YAML or the Kubernetes API."""
    metadata: dict[str, Any] = {"name": settings.name}
    if settings.placement.namespace:
        metadata["namespace"] = settings.placement.namespace
    if settings.labels:
        metadata["labels"] = dict(settings.labels)
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
        "metadata": metadata,
        "spec": {
            "nprocPerNode": str(settings.procs_per_node),
            "runPolicy": run_policy,
            "pytorchReplicaSpecs": replicas,
        },
    }


def render_manifest(settings: PyTorchJobSettings, config_text: str) -> list[dict[str, Any]]:
    """The documents the launcher (or ``kubectl apply``) creates: the ConfigMap, then the job."""
    return [build_config_map(settings, config_text), build_pytorchjob(settings)]


def harness_args(settings: PyTorchJobSettings) -> list[str]:
    """Arguments after ``settings.command``: Sacred's ``with CONFIG [key=value ...]`` and any extras."""
    return ["with", f"{CONFIG_DIR}/{settings.config_key}", *settings.config_updates, *settings.extra_args]


def _replica_spec(settings: PyTorchJobSettings, replicas: int) -> dict[str, Any]:
    pod_metadata: dict[str, Any] = {"annotations": {ISTIO_INJECT: "false"}}
    if settings.labels:
        pod_metadata["labels"] = dict(settings.labels)
    pod_spec: dict[str, Any] = {
        "containers": [_container(settings)],
        "volumes": [
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": settings.shm_size}},
            {"name": "config", "configMap": {"name": settings.config_map_name}},
        ],
        **settings.placement.pod_spec(),
    }
    return {
        "replicas": replicas,
        "restartPolicy": settings.restart_policy,
        "template": {"metadata": pod_metadata, "spec": pod_spec},
    }


def _container(settings: PyTorchJobSettings) -> dict[str, Any]:
    return {
        "name": CONTAINER_NAME,
        "image": settings.placement.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": list(settings.command),
        "args": harness_args(settings),
        "env": _env(settings),
        "resources": settings.placement.container_resources(),
        "volumeMounts": [
            {"name": "dshm", "mountPath": "/dev/shm"},
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        ],
    }


def _env(settings: PyTorchJobSettings) -> list[dict[str, Any]]:
    env = settings.placement.s3.pod_env()
    # A pod cannot read its own image reference; the harness records this one in the Sacred run.
    env.append({"name": "WSOVVIS_IMAGE", "value": settings.placement.image})
    env.extend({"name": key, "value": value} for key, value in sorted(settings.env.items()))
    return env


def load_settings(path: str, *, image: str | None = None, namespace: str | None = None) -> PyTorchJobSettings:
    """Settings from a YAML mapping (path or s3:// URI); unknown keys are rejected, naming them.

    ``image`` and ``namespace``, when given, replace the placement's. Without an image, the job runs the project's
    runtime image (:mod:`wsovvis.images`, the name ``make images`` builds).
    """
    from wsovvis.images import RUNTIME_IMAGE

    data = yaml.safe_load(storage.read_text(path)) or {}
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping of PyTorchJob settings")
    placement = data.setdefault("placement", {})
    if not isinstance(placement, dict):
        raise UsageError(f"{path}: placement: expected a mapping, got {placement!r}")
    placement.update(
        {key: value for key, value in (("image", image), ("namespace", namespace)) if value is not None}
    )
    placement.setdefault("image", RUNTIME_IMAGE)
    return config.from_mapping(PyTorchJobSettings, data, source=path)


def with_job_name(docs: Sequence[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """Copies of ``docs`` with the PyTorchJob renamed to ``name`` and its own ConfigMap to ``<name>-config``.

    The ConfigMap is renamed only when it is the one the job mounts, so concurrent runs do not overwrite
    each other's config.
    """
    docs = copy.deepcopy(list(docs))
    job = find_job(docs)
    check_job_name(name, job["spec"]["pytorchReplicaSpecs"].get("Worker", {}).get("replicas", 0))
    mounted = {
        volume["configMap"]["name"]: volume
        for replica in job["spec"]["pytorchReplicaSpecs"].values()
        for volume in replica["template"]["spec"].get("volumes", [])
        if "configMap" in volume
    }
    for doc in docs:
        if doc.get("kind") == "ConfigMap" and doc["metadata"]["name"] in mounted:
            old = doc["metadata"]["name"]
            doc["metadata"]["name"] = f"{name}-config"
            for replica in job["spec"]["pytorchReplicaSpecs"].values():
                for volume in replica["template"]["spec"].get("volumes", []):
                    if volume.get("configMap", {}).get("name") == old:
                        volume["configMap"]["name"] = f"{name}-config"
    job["metadata"]["name"] = name
    return docs


def find_job(docs: Sequence[dict[str, Any]], source: str = "manifest") -> dict[str, Any]:
    """The one PyTorchJob among ``docs``; UsageError if there is none or more than one."""
    jobs = [d for d in docs if d.get("kind") == KIND and d.get("apiVersion") == API_VERSION]
    if len(jobs) != 1:
        raise UsageError(f"{source}: expected exactly one {API_VERSION} {KIND}, found {len(jobs)}")
    return jobs[0]


def dump_manifest(docs: Sequence[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(list(docs), sort_keys=False, default_flow_style=False)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "render-pytorchjob",
        help="render the train stage's PyTorchJob (and its config ConfigMap) as YAML",
        description=(
            "Render the PyTorchJob that runs `wsovvis train` from a settings YAML (the fields of "
            "PyTorchJobSettings, the pods' under `placement`: image, namespace, num_workers, gpus_per_worker, "
            "resources {cpu, memory}, node_selector, tolerations, s3 {secret_name, secret_keys, config_map_name}, "
            "...). With --config, the ConfigMap holding that harness config comes first."
        ),
    )
    add_flag(parser, "--settings", required=True, help="PyTorchJob settings YAML (path or s3:// URI)")
    add_flag(
        parser, "--config", help="harness config YAML to put in the ConfigMap; omit to render the job only"
    )
    add_flag(
        parser, "--run_id", help="derive the job name from this pipeline run id (prefix: the settings' name)"
    )
    add_flag(
        parser,
        "--image",
        help="override the placement's image (default there: the runtime image of wsovvis.images)",
    )
    add_flag(parser, "--namespace", help="override the placement's namespace")
    add_flag(parser, "--out", help="write here (path or s3:// URI) instead of stdout")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    settings = load_settings(args.settings, image=args.image, namespace=args.namespace)
    if args.run_id:
        name = job_name_for_run(args.run_id, prefix=settings.name)
        settings = dataclasses.replace(settings, name=name)
    if args.config:
        docs = render_manifest(settings, storage.read_text(args.config))
    else:
        docs = [build_pytorchjob(settings)]
    text = f"# Rendered by `wsovvis render-pytorchjob --settings {args.settings}`: edit that file and re-render.\n"
    text += dump_manifest(docs)
    if args.out:
        storage.write_text(args.out, text)
        log.info("wrote %s (PyTorchJob %s)", args.out, settings.name)
    else:
        sys.stdout.write(text)
    return 0
