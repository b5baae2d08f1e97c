"""With every default, the compiled pipeline reads the Secret and ConfigMap that manifests/object-store creates.

The manifests are applied for real to the suite's kube-apiserver and read back; the names and keys the pipeline
uses come from the compiled spec (every executor's secretAsEnv/configMapAsEnv and the training task's inputs: the
names written in, or with --s3-names-as-params the run parameters' defaults).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from wsovvis.k8s.placement import CONFIG_MAP_KEY_TO_ENV

pytestmark = [
    pytest.mark.apiserver,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "pipelines" / "wsovvis_pipeline.yaml"
OBJECT_STORE = ROOT / "manifests" / "object-store"
CHANNEL = "pipelinechannel--"  # how KFP names a root parameter passed into a sub-DAG


def _spec() -> tuple[dict, dict]:
    pipeline, platform = yaml.safe_load_all(SPEC.read_text())
    return pipeline, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def _default(pipeline: dict, reference: dict) -> str:
    """The value a ``{runtimeValue: {constant: value}}`` reference names, or the root default behind a
    ``{componentInputParameter: name}`` one (a spec compiled with --s3-names-as-params)."""
    if "runtimeValue" in reference:
        return reference["runtimeValue"]["constant"]
    name = reference["componentInputParameter"].removeprefix(CHANNEL)
    return pipeline["root"]["inputDefinitions"]["parameters"][name]["defaultValue"]


def compiled_storage() -> tuple[set[tuple[str, str]], set[tuple[str, str]], str]:
    """(secret name, key) and (config map name, key) pairs every step reads with the defaults; the namespace the
    training PyTorchJob (which reads the same Secret and ConfigMap) runs in."""
    pipeline, executors = _spec()
    secrets, config_maps = set(), set()
    for name, executor in executors.items():
        assert executor.get("secretAsEnv") and executor.get("configMapAsEnv"), f"{name} reads no S3 settings"
        for source in executor["secretAsEnv"]:
            secret = _default(pipeline, source["secretNameParameter"])
            secrets |= {(secret, pair["secretKey"]) for pair in source["keyToEnv"]}
        for source in executor["configMapAsEnv"]:
            config_map = _default(pipeline, source["configMapNameParameter"])
            config_maps |= {(config_map, pair["configMapKey"]) for pair in source["keyToEnv"]}
    train = pipeline["root"]["dag"]["tasks"]["train"]["inputs"]["parameters"]
    job_secret = _default(pipeline, train["s3_secret_name"])
    secrets |= {(job_secret, key) for key in train["s3_secret_keys"]["runtimeValue"]["constant"]}
    config_maps |= {(_default(pipeline, train["s3_config_map_name"]), key) for key in CONFIG_MAP_KEY_TO_ENV}
    return secrets, config_maps, _default(pipeline, train["namespace"])


def test_the_default_secret_and_config_map_are_the_object_stores(kube_cluster) -> None:
    built = [
        doc for doc in yaml.safe_load_all(kube_cluster.kubectl("kustomize", str(OBJECT_STORE)).stdout) if doc
    ]
    (namespace,) = {doc["metadata"]["namespace"] for doc in built}
    if kube_cluster.kubectl("get", "namespace", namespace, check=False).returncode:
        kube_cluster.kubectl("create", "namespace", namespace)
    kube_cluster.kubectl("apply", "-k", str(OBJECT_STORE))

    secrets, config_maps, train_namespace = compiled_storage()
    assert train_namespace == namespace, "the training PyTorchJob runs where the object store's Secret is"
    rbac = yaml.safe_load_all(kube_cluster.kubectl("kustomize", str(ROOT / "manifests" / "rbac")).stdout)
    assert {doc["metadata"]["namespace"] for doc in rbac if doc} == {train_namespace}, "the launcher's rights"
    # read back from the server: what the Deployment takes from the Secret, what the ConfigMap holds
    deployment = next(d for d in built if d["kind"] == "Deployment")
    served = kube_cluster.kubectl(
        "get", "deployment", "-n", namespace, deployment["metadata"]["name"], "-o", "yaml"
    ).stdout
    (container,) = yaml.safe_load(served)["spec"]["template"]["spec"]["containers"]
    store_secrets = {
        (ref["name"], ref["key"])
        for env in container["env"]
        if (ref := (env.get("valueFrom") or {}).get("secretKeyRef"))
    }
    assert secrets == store_secrets, (
        f"the pipeline reads {sorted(secrets)}, the store {sorted(store_secrets)}"
    )
    for config_map, key in config_maps:
        found = kube_cluster.core.read_namespaced_config_map(config_map, namespace)
        endpoint = urlsplit(found.data[key])
        service = next(d for d in built if d["kind"] == "Service")
        assert endpoint.hostname == f"{service['metadata']['name']}.{namespace}", endpoint
        assert endpoint.port in {port["port"] for port in service["spec"]["ports"]}, endpoint
