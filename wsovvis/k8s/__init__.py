"""Kubernetes side of the project: how pods get S3 and where the training job's pods run (``placement``), the
PyTorchJob spec builder, its CRD validator and the launcher.

``placement`` needs no third-party package of its own; ``pytorchjob`` and ``crd`` need only PyYAML and
jsonschema; ``launcher`` needs the ``kubernetes`` client (the ``k8s`` extra) and imports it lazily.
"""

import os


def in_kubernetes_pod() -> bool:
    """True inside a Kubernetes pod (the kubelet sets ``KUBERNETES_SERVICE_HOST`` in every container)."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
