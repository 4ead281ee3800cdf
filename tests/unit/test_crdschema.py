"""The custom resources the chart renders are checked against their projects' CRD schemas
(data/upstream/crds.yaml), as strictly as built-in kinds: the checker must catch what the API
server would refuse."""

from __future__ import annotations

import copy

import pytest

from jdagent.chart import crdschema
from jdagent.chart.kubeschema import validation_errors
from jdagent.chart.render import render

ROUTE = render(overrides={"controller": {"url": "https://ci.example/", "httpRoute": {"enabled": True, "force": True,
                                                        "parentRefs": [{"name": "gw"}], "hostnames": ["ci.example"]}}}
               ).get("HTTPRoute")


def test_the_rendered_route_is_valid():
    assert crdschema.known(ROUTE)
    assert validation_errors([ROUTE], "1.33.0") == []


@pytest.mark.parametrize("mutate,where", [
    (lambda r: r["spec"].update(hostname=["typo"]), "'hostname' was unexpected"),
    (lambda r: r["spec"]["rules"][1]["backendRefs"][0].update(port="http"), "rules/1/backendRefs/0/port"),
    (lambda r: r["spec"]["rules"][0]["matches"][0]["path"].update(type="Glob"), "matches/0/path/type"),
    (lambda r: r["spec"].update(hostnames=["UPPER_case"]), "hostnames/0"),
    (lambda r: r["metadata"].update(labelz={"a": "b"}), "metadata"),
])
def test_what_the_api_server_would_refuse_is_caught(mutate, where):
    route = copy.deepcopy(ROUTE)
    mutate(route)
    errors = validation_errors([route], "1.33.0")
    assert errors and any(where in e for e in errors), errors


def test_an_unknown_kind_is_an_error_not_a_pass():
    thing = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert validation_errors([thing], "1.33.0") == [
        "Widget/w: no schema for example.com/v1 Widget (not a built-in kind, not in data/upstream/crds.yaml)"]


def test_every_recorded_crd_names_its_source():
    facts = crdschema._facts()
    assert set(facts) == {"HTTPRoute", "ServiceMonitor", "ExternalSecret"}
    for entry in facts.values():
        assert set(entry["source"]) == {"repo", "tag", "path", "commit"} and len(entry["source"]["commit"]) == 40
        assert entry["schema"]["type"] == "object"
