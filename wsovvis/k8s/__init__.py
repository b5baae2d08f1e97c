"""Kubernetes side of the train stage: the PyTorchJob spec builder, its CRD validator and the launcher.

``pytorchjob`` and ``crd`` need only PyYAML and jsonschema; ``launcher`` needs the ``kubernetes`` client
(the ``k8s`` extra) and imports it lazily.
"""

import os


def in_kubernetes_pod() -> bool:
    """True inside a Kubernetes pod (the kubelet sets ``KUBERNETES_SERVICE_HOST`` in every container)."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
