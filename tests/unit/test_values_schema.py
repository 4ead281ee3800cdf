"""Bad values fail at `helm template` time with a message that names the key; edge cases render."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from jdagent.chart.render import RenderError, render

DATA = Path(__file__).parent / "data"
GROUPS = yaml.safe_load((DATA / "invalid-values.yaml").read_text())
INVALID = [{**case, "refused_by": group} for group, cases in GROUPS.items() for case in cases]
VALID = yaml.safe_load((DATA / "valid-values.yaml").read_text())


def names_key(message: str, key: str) -> bool:
    """helm 3 writes dotted paths (agent.dind.mtu), helm 4 JSON pointers (/agent/dind/mtu); for an
    unknown key both name the parent object and the offending property."""
    parts = key.split(".")
    if key in message or "/" + "/".join(parts) in message:
        return True
    parent, leaf = parts[:-1], parts[-1]
    parent_named = ".".join(parent) + ":" in message or "'/" + "/".join(parent) + "'" in message
    return parent_named and f"{leaf}" in message and "ddition" in message


def test_corpus_is_large_enough():
    assert len(INVALID) >= 80
    assert len({c["key"] for c in INVALID}) >= 50
    assert set(GROUPS) == {"dockerd", "api-server", "jenkins", "chart"} and all(GROUPS.values())


@pytest.mark.parametrize("case", INVALID, ids=[f"{c['refused_by']}:{c['key']}={c['values']}" for c in INVALID])
def test_invalid_values_fail_naming_the_key(case, helm_major):
    with pytest.raises(RenderError) as err:
        render(overrides=case["values"], helm=helm_major)
    assert names_key(err.value.stderr, case["key"]), err.value.stderr


@pytest.mark.parametrize("values", VALID, ids=[str(v) for v in VALID])
def test_valid_edge_cases_render(values, helm_major):
    assert render(overrides=values, helm=helm_major).agent_pod()


def test_names_key_is_not_fooled_by_another_key():
    assert not names_key("- at '/agent/dind/mtu': minimum 576", "agent.dind.dataSizeLimit")
