"""What the train stage's cluster jobs share, whichever kind runs them: a PyTorchJob (Training Operator v1,
:mod:`wsovvis.k8s.pytorchjob`) or a TrainJob (Trainer v2, :mod:`wsovvis.k8s.trainjob`).

- :class:`HarnessJobSettings`: the job's name, its pods' :class:`~wsovvis.k8s.placement.Placement` and the harness's
  own settings (command, config, processes per pod, ``/dev/shm``, environment, labels); each kind adds its own fields.
- the pieces every kind renders alike: the ConfigMap holding the harness config (``train.yaml``, mounted at
  ``/etc/wsovvis``), the harness's arguments, its environment (S3 by reference, the image), its volumes and mounts,
  and the pod annotation that turns Istio's sidecar off (a sidecar keeps a finished pod running and intercepts the
  rendezvous traffic between pods);
- job names derived from a pipeline run id, settings read from YAML, the ``render-*`` command;
- :class:`JobKind`: what the launcher (:mod:`wsovvis.k8s.launcher`) needs to know of a kind: its resource (group,
  version, plural), where its pod templates are, which condition means it ended, and how to find its first pod.

``/dev/shm`` is a memory-backed emptyDir because NCCL and DataLoader workers need more than the container runtime's
64 MiB default.
"""

from __future__ import annotations

import abc
import argparse
import copy
import dataclasses
import hashlib
import logging
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import yaml

from wsovvis import config, storage
from wsovvis.cliutil import add_flag
from wsovvis.errors import UsageError
from wsovvis.k8s.placement import Placement

log = logging.getLogger(__name__)

CONFIG_DIR = "/etc/wsovvis"
DEFAULT_JOB_PREFIX = "wsovvis-train"
ISTIO_INJECT = "sidecar.istio.io/inject"

# Pod host names (and the operators' Services of the same name) must be DNS-1035 labels (<= 63 characters).
DNS_LABEL_MAX = 63
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# Room kept for the longest pod suffix of either kind ("-worker-9999", "-node-0-9999") when deriving names from run ids.
RUN_JOB_NAME_MAX = DNS_LABEL_MAX - len("-worker-9999")

S = TypeVar("S", bound="HarnessJobSettings")


class JobKind(abc.ABC):
    """One kind of training job, as the launcher and the builders see it."""

    api_version: str
    kind: str
    plural: str
    container: str  # the harness's container in every pod
    succeeded: str  # the condition type that says the job succeeded (its Failed condition is "Failed")
    controller: str  # what must run in the cluster for this kind, for error messages

    @property
    def group(self) -> str:
        return self.api_version.split("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.split("/")[1]

    @abc.abstractmethod
    def longest_pod_name(self, name: str, num_workers: int) -> str:
        """The longest host name of the job's pods (``num_workers`` pods besides the first)."""

    @abc.abstractmethod
    def num_workers(self, job: dict[str, Any]) -> int:
        """How many pods the job runs besides the first."""

    @abc.abstractmethod
    def pod_specs(self, job: dict[str, Any]) -> list[dict[str, Any]]:
        """The job's pod specs (or pod-spec patches) that name its volumes."""

    @abc.abstractmethod
    def first_pod(self, core: Any, namespace: str, name: str) -> Any:
        """The job's first pod (rank 0: its log is the training's), a ``V1Pod``, or None while there is none."""

    def check_name(self, name: str, num_workers: int = 0) -> None:
        """Raise UsageError unless ``name`` and its pods' host names are valid DNS-1035 labels."""
        longest = self.longest_pod_name(name, num_workers)
        if not _DNS_1035.match(name) or len(longest) > DNS_LABEL_MAX:
            raise UsageError(
                f"{self.kind} name {name!r} is not usable: it must be lower-case letters, digits and '-', start "
                f"with a letter, and leave room for the pod suffix ({longest!r} must be <= {DNS_LABEL_MAX} "
                "characters)"
            )

    def find_job(self, docs: Sequence[dict[str, Any]], source: str = "manifest") -> dict[str, Any]:
        """The one job of this kind among ``docs``; UsageError if there is none or more than one."""
        jobs = [d for d in docs if d.get("kind") == self.kind and d.get("apiVersion") == self.api_version]
        if len(jobs) != 1:
            raise UsageError(
                f"{source}: expected exactly one {self.api_version} {self.kind}, found {len(jobs)}"
            )
        return jobs[0]

    def with_job_name(self, docs: Sequence[dict[str, Any]], name: str) -> list[dict[str, Any]]:
        """Copies of ``docs`` with the job renamed to ``name`` and its own ConfigMap to ``<name>-config``.

        The ConfigMap is renamed only when it is one the job mounts, so concurrent runs do not overwrite each
        other's config.
        """
        docs = copy.deepcopy(list(docs))
        job = self.find_job(docs)
        self.check_name(name, self.num_workers(job))
        volumes = [
            volume
            for spec in self.pod_specs(job)
            for volume in spec.get("volumes", [])
            if "configMap" in volume
        ]
        mounted = {volume["configMap"]["name"] for volume in volumes}
        for doc in docs:
            if doc.get("kind") == "ConfigMap" and doc["metadata"]["name"] in mounted:
                old = doc["metadata"]["name"]
                doc["metadata"]["name"] = f"{name}-config"
                for volume in volumes:
                    if volume["configMap"]["name"] == old:
                        volume["configMap"]["name"] = f"{name}-config"
        job["metadata"]["name"] = name
        return docs

    def state(self, job: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """("Succeeded"|"Failed", condition) once a terminal condition is True, else (latest True type, it)."""
        conditions = (job.get("status") or {}).get("conditions") or []
        for condition in reversed(conditions):
            if condition.get("status") != "True":
                continue
            if condition.get("type") == self.succeeded:
                return "Succeeded", condition
            if condition.get("type") == "Failed":
                return "Failed", condition
        current = [c for c in conditions if c.get("status") == "True"]
        latest = current[-1] if current else {}
        return latest.get("type", "Pending"), latest


@dataclass(frozen=True)
class HarnessJobSettings:
    """A training job of the train stage: its name, its pods' placement, and how each pod runs the harness
    (``wsovvis train with /etc/wsovvis/train.yaml [key=value ...]``). Each kind subclasses it with its own fields."""

    KIND: ClassVar[JobKind]

    name: str
    placement: Placement
    command: tuple[str, ...] = ("wsovvis", "train")
    config_updates: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()
    config_map: str = ""
    config_key: str = "train.yaml"
    nproc_per_node: int | None = None
    shm_size: str = "8Gi"
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        kind = self.KIND.kind
        self.KIND.check_name(self.name, self.placement.num_workers)
        if self.nproc_per_node is not None and self.nproc_per_node < 1:
            raise UsageError(f"{kind} settings: nproc_per_node must be >= 1, got {self.nproc_per_node}")
        reserved = self.placement.s3.env_names & set(self.env)
        if reserved:
            raise UsageError(
                f"{kind} settings: env must not set {', '.join(sorted(reserved))}; the S3 keys and endpoint "
                "come from the Secret and ConfigMap named in placement.s3"
            )

    @property
    def config_map_name(self) -> str:
        return self.config_map or f"{self.name}-config"

    @property
    def procs_per_node(self) -> int:
        """Processes per pod: one per GPU unless given (detectron2's launch spawns them itself)."""
        return self.nproc_per_node or max(self.placement.gpus_per_worker, 1)


def metadata(settings: HarnessJobSettings, name: str) -> dict[str, Any]:
    """An object's metadata: ``name``, the placement's namespace and the settings' labels (those set)."""
    meta: dict[str, Any] = {"name": name}
    if settings.placement.namespace:
        meta["namespace"] = settings.placement.namespace
    if settings.labels:
        meta["labels"] = dict(settings.labels)
    return meta


def build_config_map(settings: HarnessJobSettings, config_text: str) -> dict[str, Any]:
    """The ConfigMap mounted at ``/etc/wsovvis``: the harness config under ``settings.config_key``."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(settings, settings.config_map_name),
        "data": {settings.config_key: config_text},
    }


def harness_args(settings: HarnessJobSettings) -> list[str]:
    """Arguments after ``settings.command``: Sacred's ``with CONFIG [key=value ...]`` and any extras."""
    return ["with", f"{CONFIG_DIR}/{settings.config_key}", *settings.config_updates, *settings.extra_args]


def container_env(settings: HarnessJobSettings) -> list[dict[str, Any]]:
    """The harness container's ``env``: S3 by reference, the image, then the settings' own variables."""
    env = settings.placement.s3.pod_env()
    # A pod cannot read its own image reference; the harness records this one in the Sacred run.
    env.append({"name": "WSOVVIS_IMAGE", "value": settings.placement.image})
    env.extend({"name": key, "value": value} for key, value in sorted(settings.env.items()))
    return env


def pod_metadata(settings: HarnessJobSettings) -> dict[str, Any]:
    """Each pod's metadata: no Istio sidecar, the settings' labels."""
    meta: dict[str, Any] = {"annotations": {ISTIO_INJECT: "false"}}
    if settings.labels:
        meta["labels"] = dict(settings.labels)
    return meta


def volumes(settings: HarnessJobSettings) -> list[dict[str, Any]]:
    """The pod's volumes: a memory-backed ``/dev/shm`` and the harness config."""
    return [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": settings.shm_size}},
        {"name": "config", "configMap": {"name": settings.config_map_name}},
    ]


def volume_mounts() -> list[dict[str, Any]]:
    """Where the harness container mounts :func:`volumes`."""
    return [
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
    ]


def job_name_for_run(run_id: str, prefix: str = DEFAULT_JOB_PREFIX) -> str:
    """A deterministic job name for a pipeline run: ``<prefix>-<run id>``, valid for either operator.

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


def dump_manifest(docs: Sequence[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(list(docs), sort_keys=False, default_flow_style=False)


def load_settings(cls: type[S], path: str, *, image: str | None = None, namespace: str | None = None) -> S:
    """Settings of kind ``cls`` from a YAML mapping (path or s3:// URI); unknown keys are rejected, naming them.

    ``image`` and ``namespace``, when given, replace the placement's. Without an image, the job runs the project's
    runtime image (:mod:`wsovvis.images`, the name ``make images`` builds).
    """
    from wsovvis.images import RUNTIME_IMAGE

    data = yaml.safe_load(storage.read_text(path)) or {}
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping of {cls.KIND.kind} settings")
    placement = data.setdefault("placement", {})
    if not isinstance(placement, dict):
        raise UsageError(f"{path}: placement: expected a mapping, got {placement!r}")
    placement.update(
        {key: value for key, value in (("image", image), ("namespace", namespace)) if value is not None}
    )
    placement.setdefault("image", RUNTIME_IMAGE)
    return config.from_mapping(cls, data, source=path)


def add_render_parser(
    subparsers: argparse._SubParsersAction,
    command: str,
    settings_type: type[HarnessJobSettings],
    render: Callable[[Any, str | None], list[dict[str, Any]]],
) -> None:
    """Register ``command``, which renders a job of ``settings_type`` (and its ConfigMap) as YAML.

    ``render(settings, config_text)`` returns the documents: the ConfigMap then the job, or the job alone when
    ``config_text`` is None.
    """
    kind = settings_type.KIND.kind
    fields = ", ".join(
        f.name for f in dataclasses.fields(settings_type) if f.name not in ("name", "placement")
    )
    parser = subparsers.add_parser(
        command,
        help=f"render the train stage's {kind} (and its config ConfigMap) as YAML",
        description=(
            f"Render the {kind} that runs `wsovvis train` from a settings YAML: `name`, the pods' `placement` "
            "(image, namespace, num_workers, gpus_per_worker, resources {cpu, memory}, node_selector, tolerations, "
            f"s3 {{secret_name, secret_keys, config_map_name}}, ...) and {fields}. With --config, the ConfigMap "
            "holding that harness config comes first."
        ),
    )
    add_flag(parser, "--settings", required=True, help=f"{kind} settings YAML (path or s3:// URI)")
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

    def run(args: argparse.Namespace) -> int:
        settings = load_settings(settings_type, args.settings, image=args.image, namespace=args.namespace)
        if args.run_id:
            settings = dataclasses.replace(settings, name=job_name_for_run(args.run_id, prefix=settings.name))
        config_text = storage.read_text(args.config) if args.config else None
        text = (
            f"# Rendered by `wsovvis {command} --settings {args.settings}`: edit that file and re-render.\n"
        )
        text += dump_manifest(render(settings, config_text))
        if args.out:
            storage.write_text(args.out, text)
            log.info("wrote %s (%s %s)", args.out, kind, settings.name)
        else:
            sys.stdout.write(text)
        return 0

    parser.set_defaults(func=run)
