"""values.yaml is fully commented, the README table matches it, and the schema covers every key."""

from __future__ import annotations

import json

import yaml

from jdagent.chart.valuesdoc import deref, described_keys, leaf_keys, readme_block, table
from jdagent.paths import CHART_DIR, REPO_ROOT

VALUES = CHART_DIR / "values.yaml"


def test_readme_values_table_matches_values_yaml():
    assert readme_block(CHART_DIR / "README.md") == table(), "run: python -m jdagent.chart.valuesdoc --write"


def test_every_value_is_described():
    described = described_keys(VALUES)
    values = yaml.safe_load(VALUES.read_text())
    undocumented = [k for k in leaf_keys(values)
                    if not any(k == d or k.startswith(d + ".") for d in described)]
    assert undocumented == []


def test_schema_covers_every_value():
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    values = yaml.safe_load(VALUES.read_text())

    def covered(path: list[str]) -> bool:
        node = schema
        for part in path:
            node = deref(schema, node)
            props = node.get("properties", {})
            if part in props:
                node = props[part]
            else:
                return node.get("additionalProperties") not in (None, False)
        return True

    missing = [k for k in leaf_keys(values) if not covered(k.split("."))]
    assert missing == []


def test_every_object_in_the_schema_refuses_unknown_keys():
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    open_objects = []

    def walk(node, path):
        if isinstance(node, bool):  # `false`: a key that must not be set
            return
        node = deref(schema, node)
        if node.get("type") == "object" and "properties" in node and node.get("additionalProperties") is not False:
            open_objects.append(path)
        for key, child in node.get("properties", {}).items():
            walk(child, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")

    walk(schema, "")
    for name, node in schema.get("definitions", {}).items():
        walk(node, f"#/definitions/{name}")
    # Kubernetes Containers (any field of the API): the schema only pins what the chart relies on; the
    # strict Kubernetes schemas check the rendered containers in test_render_matrix.
    kubernetes_objects = {".agent.extraTemplates[].containers[]",
                          ".agent.extraTemplates[].containers[].securityContext"}
    assert sorted(set(open_objects) - kubernetes_objects) == []
    assert kubernetes_objects <= set(open_objects), "the allowance names what exists"


def test_readmes_name_the_test_command():
    text = (REPO_ROOT / "README.md").read_text()
    assert "\ntox\n" in text
