"""The values table of the chart README, generated from values.yaml's `# --` comments.

`python -m jdagent.chart.valuesdoc` prints the table; `--write` replaces the block between the
`<!-- values:start -->` and `<!-- values:end -->` markers in the chart README.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from jdagent.chart.docblocks import read_block, write_block
from jdagent.paths import CHART_DIR

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?P<rest>.*)$")


def described_keys(values_file: Path) -> dict[str, str]:
    """dotted key -> description, for every key preceded by a `# -- ...` comment line."""
    described: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    pending: str | None = None
    for line in values_file.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            pending = stripped[4:].strip()
            continue
        if stripped.startswith("#") or not stripped or stripped.startswith("- "):
            continue
        match = _KEY.match(line)
        if not match:
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        if pending is not None:
            described[".".join(k for _, k in stack)] = pending
            pending = None
    return described


def deref(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """A schema node with its local "$ref" ("#/definitions/x") followed."""
    while "$ref" in node:
        target: Any = schema
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def lookup(values: dict[str, Any], dotted: str) -> Any:
    node: Any = values
    for part in dotted.split("."):
        node = node[part]
    return node


def leaf_keys(values: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys of leaves (scalars, lists, empty maps)."""
    out: list[str] = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out += leaf_keys(value, path + ".")
        else:
            out.append(path)
    return out


def _type(value: Any) -> str:
    return {bool: "bool", int: "int", float: "float", str: "string", list: "list", dict: "object"}.get(
        type(value), type(value).__name__
    )


def table(chart: Path = CHART_DIR) -> str:
    values_file = chart / "values.yaml"
    values = yaml.safe_load(values_file.read_text())
    rows = ["| Key | Type | Default | Description |", "|-----|------|---------|-------------|"]
    for key, desc in described_keys(values_file).items():
        default = lookup(values, key)
        shown = json.dumps(default, separators=(", ", ": ")).replace("|", "\\|")
        rows.append(f"| `{key}` | {_type(default)} | `{shown}` | {desc} |")
    return "\n".join(rows) + "\n"


def readme_block(readme: Path) -> str:
    return read_block(readme, "values")


def write(chart: Path = CHART_DIR) -> None:
    write_block(chart / "README.md", "values", table(chart))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the chart README values table from values.yaml")
    parser.add_argument("--write", action="store_true", help="update charts/jenkins-dind-agent/README.md in place")
    args = parser.parse_args(argv)
    if args.write:
        write()
    else:
        sys.stdout.write(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
