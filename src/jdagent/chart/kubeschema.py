"""Strict validation of rendered objects against the real Kubernetes OpenAPI-derived JSON schemas
(kubernetes-validate ships them per minor version), and of the custom resources the chart knows
against their projects' CRD schemas (jdagent.chart.crdschema). An object of any other kind is an error."""

from __future__ import annotations

from collections.abc import Iterable

import kubernetes_validate

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
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(p) for p in exc.path)
            errors.append(f"{where} at {path or '<root>'}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{where}: no schema for {obj.get('apiVersion')} {obj.get('kind')} (not a built-in "
                          "kind, not in data/upstream/crds.yaml)")
    return errors
