"""Strict validation of custom resources (HTTPRoute, ServiceMonitor, ExternalSecret) against the
openAPIV3Schema recorded from their projects' CRDs (tests/unit/data/upstream/crds.yaml).

Strict as `kubectl apply --validate=strict`: a field the schema does not define is an error, unless the
schema marks the object x-kubernetes-preserve-unknown-fields. metadata is checked as a Kubernetes
ObjectMeta. CEL rules (x-kubernetes-validations) are not evaluated.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import jsonschema
import kubernetes_validate

from jdagent.chart import yamlload
from jdagent.chart.manifest import Obj
from jdagent.paths import REPO_ROOT

FACTS_FILE = REPO_ROOT / "tests" / "unit" / "data" / "upstream" / "crds.yaml"
_SUBSCHEMAS = ("items", "additionalProperties", "not")
_LISTS = ("allOf", "anyOf", "oneOf")


def strict(node: Any) -> Any:
    """The openAPIV3 schema as a JSON schema that refuses unknown fields and honours nullable."""
    if not isinstance(node, dict):
        return node
    out = {k: v for k, v in node.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if "properties" in out:
        out["properties"] = {k: strict(v) for k, v in out["properties"].items()}
    for key in _SUBSCHEMAS:
        if isinstance(out.get(key), dict):
            out[key] = strict(out[key])
    for key in _LISTS:
        if key in out:
            out[key] = [strict(v) for v in out[key]]
    if out.get("type") == "object" and "additionalProperties" not in out \
            and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


@cache
def _facts() -> dict[str, Any]:
    data: dict[str, Any] = yamlload.load(FACTS_FILE.read_text())
    return data


@cache
def _validator(kind: str) -> jsonschema.protocols.Validator:
    schema = strict(copy.deepcopy(_facts()[kind]["schema"]))
    schema["properties"]["metadata"] = {"type": "object"}  # checked as ObjectMeta below
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return cls(schema)


def known(obj: Obj) -> bool:
    entry: dict[str, Any] | None = _facts().get(str(obj.get("kind", "")))
    return entry is not None and entry["apiVersion"] == obj.get("apiVersion")


def errors(obj: Obj, version: str) -> list[str]:
    """Problems of one custom resource (its kind must be `known`)."""
    out = [f"at {'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
           for e in sorted(_validator(obj["kind"]).iter_errors(obj), key=lambda e: list(e.absolute_path))]
    holder = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj.get("metadata", {})}
    try:
        kubernetes_validate.validate(holder, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        out.append(f"at metadata/{'/'.join(str(p) for p in list(exc.path)[1:])}: {exc.message}")
    return out
