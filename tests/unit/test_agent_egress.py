"""networkPolicy.agentEgress: what agent pods may reach once their egress is restricted (DNS, the
controller's two ports, the mirror, the user's rules), and the render-time refusal of a user rule
whose ipBlock would open the link-local metadata address or a named API server address."""

from __future__ import annotations

import pytest

from jdagent.chart.render import RenderError, render

ON = {"networkPolicy": {"agentEgress": {"enabled": True}}}
SHARED = {"agent": {"namespace": {"sameAsController": True}}}
# the agent policies of each layout: every pod of the agents' own namespace (default), or, beside the
# controller, the chart's agents and separately every pod the Kubernetes plugin starts
LAYOUTS = {"own-namespace": ({}, ("agents",)), "beside-the-controller": (SHARED, ("agents", "agents-plugin-pods"))}


def egress_of(manifest, name: str = "agents") -> dict:
    [policy] = [n for n in manifest.all("NetworkPolicy") if n["metadata"]["name"].endswith(f"-{name}")]
    return policy["spec"]


def fails(overrides) -> str:
    with pytest.raises(RenderError) as err:
        render(overrides=overrides)
    return err.value.stderr


@pytest.mark.parametrize("layout", LAYOUTS)
def test_egress_stays_open_by_default(layout):
    values, names = LAYOUTS[layout]
    for name in names:
        spec = egress_of(render(overrides=values), name)
        assert spec["policyTypes"] == ["Ingress"] and "egress" not in spec


@pytest.mark.parametrize("layout", LAYOUTS)
def test_restricted_egress_allows_dns_the_controller_and_the_mirror_only(layout):
    values, names = LAYOUTS[layout]
    manifest = render(overrides={**ON, **values, "mirror": {"enabled": True}})
    controller = manifest.get("StatefulSet")["spec"]["template"]
    mirror = manifest.get("Deployment", suffix="-mirror")["spec"]["template"]
    for name in names:
        spec = egress_of(manifest, name)
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        dns, to_controller, to_mirror = spec["egress"]
        assert dns == {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}
        [peer] = to_controller["to"]
        assert peer["podSelector"]["matchLabels"].items() <= controller["metadata"]["labels"].items()
        assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "ci"}
        ports = {p["name"] for c in controller["spec"]["containers"] for p in c.get("ports", [])}
        assert {p["port"] for p in to_controller["ports"]} == {"http", "agent-listener"} <= ports
        [peer] = to_mirror["to"]
        assert peer["podSelector"]["matchLabels"].items() <= mirror["metadata"]["labels"].items()
        assert to_mirror["ports"] == [{"port": "registry", "protocol": "TCP"}]
        # nothing else: no rule without a destination beyond port 53, no ipBlock
        assert all("to" in r for r in spec["egress"][1:])
        assert not any("ipBlock" in p for r in spec["egress"] for p in r.get("to", []))


def test_the_users_rules_are_appended_as_written():
    rule = {"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}], "ports": [{"port": 443, "protocol": "TCP"}]}
    manifest = render(overrides={"networkPolicy": {"agentEgress": {"enabled": True, "extraRules": [rule]}}})
    assert egress_of(manifest)["egress"][-1] == rule
    separate = render(overrides={"networkPolicy": {"agentEgress": {"enabled": True, "extraRules": [rule]}},
                                 "agent": {"namespace": {"name": "builds", "create": True}}})
    [policy] = [n for n in separate.all("NetworkPolicy") if n["metadata"]["namespace"] == "builds"]
    assert policy["spec"]["podSelector"] == {} and policy["spec"]["egress"][-1] == rule


@pytest.mark.parametrize("block,covered", [
    ({"cidr": "0.0.0.0/0"}, "169.254.169.254 (the link-local metadata address)"),
    ({"cidr": "169.254.0.0/16", "except": ["169.254.0.0/24"]}, "169.254.169.254"),
    ({"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}, "10.0.0.1 (an API server address)"),
    ({"cidr": "10.0.0.1/32"}, "10.0.0.1 (an API server address)"),
])
def test_a_rule_that_would_open_metadata_or_the_api_server_fails_naming_it(block, covered):
    overrides = {"networkPolicy": {"agentEgress": {"enabled": True, "apiServerAddresses": ["10.0.0.1"],
                                                   "extraRules": [{"to": [{"ipBlock": block}]}]}}}
    message = fails(overrides)
    assert "networkPolicy.agentEgress.extraRules[0].to[0].ipBlock.cidr" in message and covered in message, message


@pytest.mark.parametrize("block", [
    {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16", "10.0.0.0/24"]},
    {"cidr": "10.0.1.0/24"},
    {"cidr": "169.254.170.0/24"},
    {"cidr": "2001:db8::/32"},
])
def test_a_rule_that_excepts_them_renders(block):
    overrides = {"networkPolicy": {"agentEgress": {"enabled": True, "apiServerAddresses": ["10.0.0.1"],
                                                   "extraRules": [{"to": [{"ipBlock": block}]}]}}}
    assert egress_of(render(overrides=overrides))["egress"][-1] == {"to": [{"ipBlock": block}]}
