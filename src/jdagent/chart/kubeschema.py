"""Strict validation of rendered objects against the real Kubernetes OpenAPI-derived JSON schemas
(kubernetes-validate ships them per minor version), and of the custom resources the chart knows
against their projects' CRD schemas (jdagent.chart.crdschema). An object of any other kind is an error."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

import jsonschema
import kubernetes_validate
from kubernetes_validate import utils as kv_utils
from packaging.version import Version
from referencing import Registry, Resource

from jdagent.chart import crdschema
from jdagent.chart.manifest import Obj

# Oldest supported (the chart's kubeVersion floor, classic sidecar path), first native-sidecar
# release, a middle one and the newest the schema package ships.
CLASSIC_VERSIONS = ("1.27.0", "1.28.0")
NATIVE_VERSIONS = ("1.29.0", "1.33.0", "1.37.0")


def validation_errors(objects: Iterable[Obj], version: str) -> list[str]:
    """One line per object that fails strict validation for this Kubernetes version."""
    errors: list[str] = []
    for obj in objects:
        where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        if crdschema.known(obj):
            errors.extend(f"{where} {e}" for e in crdschema.errors(obj, version))
            continue
        try:
            validator = strict_validator(version, str(obj.get("apiVersion")), str(obj.get("kind")))
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{where}: no schema for {obj.get('apiVersion')} {obj.get('kind')} (not a built-in "
                          "kind, not in data/upstream/crds.yaml)")
            continue
        try:
            validator.validate(obj)
        except jsonschema.ValidationError as exc:
            path = "/".join(str(p) for p in exc.path)
            errors.append(f"{where} at {path or '<root>'}: {exc.message}")
    return errors


def schema_version(version: str) -> str:
    """The newest schema set kubernetes-validate ships that is not newer than `version` (its own rule)."""
    wanted = Version(kv_utils.major_minor(version.removeprefix("v")))
    usable = [v for v in kv_utils.all_versions() if Version(kv_utils.major_minor(v)) <= wanted]
    if not usable or wanted > Version(kv_utils.major_minor(kv_utils.latest_version())):
        raise kubernetes_validate.VersionNotSupportedError(version=str(wanted))
    return usable[-1]


@functools.cache
def _schema(schema_dir: str, name: str, version: str) -> Any:
    return kv_utils.schema_contents(f"kubernetes-json-schema/{schema_dir}/{name}.json", version)


@functools.cache
def strict_validator(version: str, api_version: str, kind: str) -> jsonschema.Draft202012Validator:
    """kubernetes_validate.validate(obj, version, strict=True), with the schema files read once.

    The library parses the kind's schema and the whole _definitions.json on every call (about 6 ms an
    object, most of the unit tier's schema time); the files, the schema choice and the validator class
    are the library's own, so the answers are the same (tests/unit/test_render_matrix.py compares them)."""
    schema_dir = f"v{schema_version(version)}-local-strict"
    # rbac.authorization.k8s.io/v1 -> rbac-v1, as the library names its files
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = _schema(schema_dir, f"{kind.lower()}-{api}", version)
    except FileNotFoundError:
        raise kubernetes_validate.SchemaNotFoundError(
            version=kv_utils.major_minor(version), kind=kind, api_version=api_version) from None
    registry: Registry[Any] = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(_schema(schema_dir, "_definitions", version)) @ registry
    return jsonschema.Draft202012Validator(schema, registry=registry)
