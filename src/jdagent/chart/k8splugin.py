"""What the Kubernetes plugin makes of a pod template's `yaml:`, for the parts the chart relies on, per
the facts recorded from its source (tests/unit/data/upstream/kubernetes-plugin.yaml):

- a template with `inheritFrom` gets its parent's yamls followed by its own, and with yamlMergeStrategy
  `merge` they are combined in that order (PodTemplateUtils.combine(List<Pod>)); `override` keeps only
  the last one;
- combining a parent and a child pod: labels, annotations and nodeSelector merged with the child
  winning, containers and init containers by name (the parent's first, in order; a child container of
  a new name is appended), volumes by name with the child winning, tolerations and imagePullSecrets
  concatenated, every other spec field the parent's.

The chart's extra templates only add containers (with new names) and a nodeSelector; `merge_pods`
refuses anything else, so this stays a faithful model of what it handles.
"""

from __future__ import annotations

import copy
from typing import Any

Obj = dict[str, Any]
CHILD_SPEC_FIELDS = {"containers", "initContainers", "volumes", "nodeSelector", "tolerations", "imagePullSecrets"}


class MergeError(ValueError):
    """The child pod uses a field this model does not cover, or reuses a container name."""


def _by_name(parent: list[Obj], child: list[Obj], what: str, replace: bool) -> list[Obj]:
    out = {item["name"]: item for item in parent}
    for item in child:
        if item["name"] in out and not replace:
            raise MergeError(f"{what} {item['name']!r} exists in the parent: the plugin would merge it field by field")
        out[item["name"]] = item
    return list(out.values())


def merge_pods(parent: Obj, child: Obj) -> Obj:
    """The pod the plugin builds from a parent pod yaml and a child pod yaml (merge strategy)."""
    extra = set(child.get("spec", {})) - CHILD_SPEC_FIELDS
    if extra:
        raise MergeError(f"child spec fields outside the model: {sorted(extra)}")
    out = copy.deepcopy(parent)
    spec, cspec = out.setdefault("spec", {}), child.get("spec", {})
    meta, cmeta = out.setdefault("metadata", {}), child.get("metadata", {})
    for key in ("labels", "annotations"):
        if cmeta.get(key):
            meta[key] = {**meta.get(key, {}), **cmeta[key]}
    if cspec.get("nodeSelector"):
        spec["nodeSelector"] = {**spec.get("nodeSelector", {}), **cspec["nodeSelector"]}
    for key in ("containers", "initContainers"):
        if cspec.get(key):
            spec[key] = _by_name(spec.get(key, []), copy.deepcopy(cspec[key]), key[:-1], replace=False)
    if cspec.get("volumes"):
        spec["volumes"] = _by_name(spec.get("volumes", []), copy.deepcopy(cspec["volumes"]), "volume", replace=True)
    for key in ("tolerations", "imagePullSecrets"):
        if cspec.get(key):
            merged = spec.get(key, []) + [v for v in cspec[key] if v not in spec.get(key, [])]
            spec[key] = copy.deepcopy(merged)
    return out


def effective_pod(templates: list[Obj], name: str, parse: Any) -> Obj:
    """The pod of template `name` among a cloud's JCasC templates (`parse` turns a yaml text into a
    dict): its own yaml, or with inheritFrom its parent's merged with its own."""
    by_name = {t["name"]: t for t in templates}
    template = by_name[name]
    own = parse(template["yaml"])
    parent_name = template.get("inheritFrom")
    if not parent_name:
        return own
    if template.get("yamlMergeStrategy") != "merge":
        return own  # override: the last yaml, the template's own
    parent = by_name[parent_name]
    if parent.get("inheritFrom"):
        raise MergeError(f"{parent_name} inherits from another template: chains are outside the model")
    return merge_pods(parse(parent["yaml"]), own)
