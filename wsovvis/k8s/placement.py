"""Where the training job's pods run and what each gets, whichever job kind runs them; how a pod gets S3.

``Placement`` is the one settings object of the train stage's cluster jobs: the image, the namespace, how many
pods besides the first (``num_workers``) with how many GPUs each, their CPU and memory, the nodes they may run on,
and where their S3 settings come from. It is checked once, when it is made; the job builders
(:mod:`wsovvis.k8s.pytorchjob`) render it and the train step hands it to no other launcher.

``S3Source`` is how every pod of the project gets S3, the pipeline's tasks and the training job's pods alike: the
keys from a Secret and the endpoint from a ConfigMap, by reference (``secretKeyRef``, ``configMapKeyRef``), so no
key or endpoint is ever written into a spec or a manifest. The variables themselves are storage's
(:mod:`wsovvis.storage` reads them in every process).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from wsovvis.errors import UsageError
from wsovvis.storage import ACCESS_KEY_ENV, ENDPOINT_ENV, SECRET_KEY_ENV

# A Kubernetes quantity (k8s.io/apimachinery resource.Quantity) without a sign: 4, 500m, 1.5, 16Gi, 2e3, 64M.
_QUANTITY = re.compile(r"^\+?(\d+(\.\d*)?|\.\d+)([KMGTPE]i|[eE][+-]?\d+|[mkMGTPE])?$")

# The ConfigMap's keys and the variables they become (the endpoint only: the keys are the Secret's).
CONFIG_MAP_KEY_TO_ENV = {"endpoint": ENDPOINT_ENV}


@dataclass(frozen=True)
class PodResources:
    """CPU and memory of a pod, as Kubernetes quantities (e.g. ``4`` and ``16Gi``)."""

    cpu: str
    memory: str

    def __post_init__(self) -> None:
        for name in ("cpu", "memory"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _QUANTITY.match(value):
                raise UsageError(
                    f"pod resources: {name} {value!r} is not a Kubernetes quantity (e.g. cpu 4 or 500m, memory 16Gi)"
                )


# Each pod of the training job asks for this much unless told otherwise (the pipeline's TASK_RESOURCES["train-pod"]).
JOB_POD_RESOURCES = PodResources("4", "16Gi")


@dataclass(frozen=True)
class S3Source:
    """Where a pod's S3 settings come from: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` from the Secret
    ``secret_name`` under its keys ``secret_keys`` (access, secret), ``AWS_ENDPOINT_URL`` from the ConfigMap
    ``config_map_name`` under its key ``endpoint``.

    The defaults are the names manifests/object-store creates and reads; the Secret's keys are those of KFP's own
    ``mlpipeline-minio-artifact``, so that Secret works by name too.
    """

    secret_name: str = "wsovvis-s3"
    secret_keys: tuple[str, str] = ("accesskey", "secretkey")
    config_map_name: str = "wsovvis-s3"

    def __post_init__(self) -> None:
        object.__setattr__(self, "secret_keys", tuple(self.secret_keys))
        if len(self.secret_keys) != 2 or not all(isinstance(k, str) and k for k in self.secret_keys):
            raise UsageError(
                f"s3: secret_keys must be two key names of the Secret (access key, secret key), got {self.secret_keys!r}"
            )
        if not self.secret_name:
            raise UsageError("s3: secret_name is empty; name the Secret the pods read the S3 keys from")
        if not self.config_map_name:
            raise UsageError(
                "s3: config_map_name is empty; name the ConfigMap the pods read the S3 endpoint from"
            )

    @property
    def secret_key_to_env(self) -> dict[str, str]:
        """The Secret's keys and the variables they become."""
        access_key, secret_key = self.secret_keys
        return {access_key: ACCESS_KEY_ENV, secret_key: SECRET_KEY_ENV}

    def pod_env(self) -> list[dict[str, Any]]:
        """A container's ``env`` entries giving it S3: every value by reference, none written out."""
        return [
            *(
                {"name": env, "valueFrom": {"secretKeyRef": {"name": self.secret_name, "key": key}}}
                for key, env in self.secret_key_to_env.items()
            ),
            *(
                {"name": env, "valueFrom": {"configMapKeyRef": {"name": self.config_map_name, "key": key}}}
                for key, env in CONFIG_MAP_KEY_TO_ENV.items()
            ),
        ]

    @property
    def env_names(self) -> frozenset[str]:
        """The variables :meth:`pod_env` sets (no other setting may set them too)."""
        return frozenset({*self.secret_key_to_env.values(), *CONFIG_MAP_KEY_TO_ENV.values()})


@dataclass(frozen=True)
class Placement:
    """Where the training job's pods run and what each gets, whichever job kind runs them.

    One pod runs first (the PyTorchJob's Master) and ``num_workers`` more beside it, each with
    ``gpus_per_worker`` GPUs of ``gpu_resource``; ``resources`` are each pod's CPU and memory requests (no limit
    unless ``limits`` are given: ``/dev/shm`` is memory-backed and counts against a memory limit).
    """

    image: str
    namespace: str = ""
    num_workers: int = 0
    gpus_per_worker: int = 1
    gpu_resource: str = "nvidia.com/gpu"
    resources: PodResources = JOB_POD_RESOURCES
    limits: PodResources | None = None
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    service_account: str = ""
    s3: S3Source = field(default_factory=S3Source)

    def __post_init__(self) -> None:
        object.__setattr__(self, "node_selector", dict(self.node_selector))
        object.__setattr__(self, "tolerations", tuple(self.tolerations))
        if not self.image:
            raise UsageError("job placement: image is empty; give the training image")
        if self.num_workers < 0:
            raise UsageError(f"job placement: num_workers must be >= 0, got {self.num_workers}")
        if self.gpus_per_worker < 0:
            raise UsageError(f"job placement: gpus_per_worker must be >= 0, got {self.gpus_per_worker}")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.node_selector.items()):
            raise UsageError(
                f"job placement: node_selector must map labels to strings, got {self.node_selector!r}"
            )
        if not all(isinstance(t, dict) for t in self.tolerations):
            raise UsageError(
                f"job placement: each toleration must be a mapping, got {list(self.tolerations)!r}"
            )

    def container_resources(self) -> dict[str, Any]:
        """A container's ``resources``: CPU and memory requests, limits when given, the GPUs as a limit."""
        limits: dict[str, str] = {}
        if self.limits is not None:
            limits.update(cpu=self.limits.cpu, memory=self.limits.memory)
        if self.gpus_per_worker:
            limits[self.gpu_resource] = str(self.gpus_per_worker)
        resources: dict[str, Any] = {"requests": {"cpu": self.resources.cpu, "memory": self.resources.memory}}
        if limits:
            resources["limits"] = limits
        return resources

    def pod_spec(self) -> dict[str, Any]:
        """The pod-spec fields that place a pod: service account, node selector, tolerations (only those set)."""
        spec: dict[str, Any] = {}
        if self.service_account:
            spec["serviceAccountName"] = self.service_account
        if self.node_selector:
            spec["nodeSelector"] = dict(self.node_selector)
        if self.tolerations:
            spec["tolerations"] = [dict(t) for t in self.tolerations]
        return spec
