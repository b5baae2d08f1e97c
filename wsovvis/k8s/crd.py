"""Offline validation of custom resources against a CustomResourceDefinition's ``openAPIV3Schema``.

The Kubernetes structural-schema dialect is turned into JSON Schema (draft 7) for ``jsonschema``:
``nullable: true`` lets the type also be null, ``x-kubernetes-int-or-string`` becomes integer-or-string,
``x-kubernetes-preserve-unknown-fields`` leaves an object open. In strict mode every other object with
``properties`` rejects unknown fields, which is what the API server's ``fieldValidation=Strict`` does
(without it the server silently prunes them, and a misspelt field is lost without a word).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable
from typing import Any

import jsonschema
import yaml

from wsovvis.errors import InputError

# CRDs are large (the PyTorchJob one is 8,000 lines): libyaml's loader is 4x faster where available.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_schemas(crd_path: str | os.PathLike[str], *, strict: bool = True) -> dict[tuple[str, str], dict]:
    """JSON Schemas keyed by (apiVersion, kind), one per served version of each CRD in the file."""
    schemas: dict[tuple[str, str], dict] = {}
    with open(crd_path, encoding="utf-8") as handle:
        for doc in yaml.load_all(handle, Loader=_LOADER):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                schema = _to_json_schema(copy.deepcopy(version["schema"]["openAPIV3Schema"]), strict)
                # apiVersion, kind and metadata are checked by the API server itself, not by this schema.
                schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                schemas[(f"{group}/{version['name']}", kind)] = schema
    if not schemas:
        raise InputError(f"{crd_path}: no CustomResourceDefinition in this file")
    return schemas


def validation_errors(resource: dict[str, Any], schemas: dict[tuple[str, str], dict]) -> list[str]:
    """Every schema violation of ``resource`` as ``path: message`` lines; empty when it is valid."""
    key = (resource.get("apiVersion"), resource.get("kind"))
    if key not in schemas:
        known = ", ".join(f"{v} {k}" for v, k in sorted(schemas))
        return [f"<root>: no schema for {key[0]} {key[1]} (this CRD file has {known})"]
    validator = jsonschema.Draft7Validator(schemas[key])
    errors = sorted(validator.iter_errors(resource), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]


def validate(
    resources: Iterable[dict[str, Any]], crd_path: str | os.PathLike[str], *, strict: bool = True
) -> None:
    """Raise InputError listing every violation of the resources the CRD file defines (others are skipped)."""
    schemas = load_schemas(crd_path, strict=strict)
    problems = []
    for resource in resources:
        if (resource.get("apiVersion"), resource.get("kind")) not in schemas:
            continue
        name = f"{resource.get('kind')}/{resource.get('metadata', {}).get('name')}"
        problems += [f"{name}: {line}" for line in validation_errors(resource, schemas)]
    if problems:
        raise InputError(f"invalid against {os.fspath(crd_path)}:\n  " + "\n  ".join(problems))


def _to_json_schema(node: Any, strict: bool) -> Any:
    """Convert one schema node; recurses only where schemas live, so a field named like a keyword is safe."""
    if not isinstance(node, dict):
        return node
    out = {key: value for key, value in node.items() if not key.startswith("x-kubernetes-")}
    if "properties" in out:
        out["properties"] = {name: _to_json_schema(sub, strict) for name, sub in out["properties"].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = _to_json_schema(out["items"], strict)
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _to_json_schema(out["additionalProperties"], strict)
    for keyword in ("allOf", "anyOf", "oneOf"):
        if keyword in out:
            out[keyword] = [_to_json_schema(sub, strict) for sub in out[keyword]]
    if "not" in out:
        out["not"] = _to_json_schema(out["not"], strict)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        strict
        and "properties" in out
        and "additionalProperties" not in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out
