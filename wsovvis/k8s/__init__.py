"""Kubernetes side of the train stage: the PyTorchJob spec builder, its CRD validator and the launcher.

``pytorchjob`` and ``crd`` need only PyYAML and jsonschema; ``launcher`` needs the ``kubernetes`` client
(the ``k8s`` extra) and imports it lazily.
"""
