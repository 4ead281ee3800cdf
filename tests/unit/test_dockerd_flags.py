"""Every dockerd flag the chart or dind-start.sh puts on the command line exists in the pinned dockerd
(data/upstream/dockerd.yaml, read from moby's source), and the schema's agent.dind.extraArgs rule is the
one generated from those facts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from jdagent.chart.manifest import container
from jdagent.chart.render import render
from jdagent.facts.dockerd import OWNED, extra_args_schema
from jdagent.paths import CHART_DIR
from tests.conftest import CI_VALUES, ci_ids

FACTS = yaml.safe_load((Path(__file__).parent / "data" / "upstream" / "dockerd.yaml").read_text())
SCRIPT = (CHART_DIR / "files" / "dind-start.sh").read_text()


def flag_name(arg: str) -> str:
    return arg.removeprefix("--").split("=", 1)[0]


@pytest.mark.parametrize("values", CI_VALUES, ids=ci_ids(CI_VALUES))
def test_rendered_dind_flags_exist_in_the_pinned_dockerd(values):
    manifest = render(values=values)
    for spec in (manifest.agent_pod()["spec"], manifest.test_pod()["spec"]):
        args = container(spec, "dind")["args"]
        assert args[0] == "dockerd"
        for arg in args[1:]:
            assert arg.startswith("--") and flag_name(arg) in FACTS["flags"], arg
            if FACTS["flags"][flag_name(arg)]["kind"] == "bool" and "=" in arg:
                assert arg.split("=", 1)[1] in ("true", "false"), arg


def test_flags_added_at_start_exist_too():
    code = "\n".join(line for line in SCRIPT.splitlines() if not line.lstrip().startswith("#"))
    added = set(re.findall(r"--([a-z0-9-]+)=", code))
    assert added == {"cgroup-parent", "mtu", "default-network-opt", "data-root"}
    assert added <= set(FACTS["flags"])


def test_the_schema_rule_is_generated_from_the_facts():
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    node = schema["properties"]["agent"]["properties"]["dind"]["properties"]["extraArgs"]
    assert node == extra_args_schema(FACTS), "run: python -m jdagent.facts.dockerd --write-schema"


def test_owned_flags_are_real_flags_and_the_chart_sets_or_replaces_them():
    assert set(OWNED) <= set(FACTS["flags"])
    rendered = {flag_name(a) for a in container(render().agent_pod()["spec"], "dind")["args"][1:]}
    assert rendered <= set(OWNED), "every flag the chart sets is refused in extraArgs"
