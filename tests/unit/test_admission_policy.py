"""agent.admissionPolicy as rendered: a ValidatingAdmissionPolicy with one validation per rule and a
binding to the agent namespace only, rendered when the agents have a namespace of their own on
Kubernetes 1.30+, and NOTES saying why when it is not. The real API server's verdicts are in
tests/cluster/test_admission.py."""

from __future__ import annotations

import os
import subprocess

import pytest

from jdagent.chart.render import RenderError, render
from jdagent.paths import CHART_DIR
from jdagent.tools import find_helm

OWN = {"agent": {"namespace": {"name": "ci-agents", "create": True}}}


def policy(manifest):
    [vap] = manifest.all("ValidatingAdmissionPolicy")
    [binding] = manifest.all("ValidatingAdmissionPolicyBinding")
    return vap, binding


def test_the_policy_binds_to_the_agent_namespace_and_denies():
    vap, binding = policy(render(overrides=OWN))
    assert binding["spec"]["policyName"] == vap["metadata"]["name"] == "ci-jenkins-dind-agent-ci-agent-pods"
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["matchResources"] == {"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "ci-agents"}}}
    [rule] = vap["spec"]["matchConstraints"]["resourceRules"]
    assert rule["operations"] == ["CREATE", "UPDATE"] and rule["resources"] == ["pods", "pods/ephemeralcontainers"]
    assert vap["spec"]["failurePolicy"] == "Fail"
    messages = [v.get("message", v.get("messageExpression", "")) for v in vap["spec"]["validations"]]
    for rule_text in ("ServiceAccount ci-jenkins-dind-agent-agent", "no ServiceAccount token", "no host namespace",
                      "spec.nodeName", "hostPath", "only the container named dind may be privileged"):
        assert any(rule_text in m for m in messages), rule_text
    assert not any("node pool" in m for m in messages), "no pool, no pool rule"


def test_the_service_accounts_it_allows_are_the_agents_and_what_you_add():
    vap, _ = policy(render(overrides={**OWN, "agent": {**OWN["agent"], "admissionPolicy": {
        "allowedServiceAccounts": ["builder"]}}}))
    sa = vap["spec"]["validations"][0]["expression"]
    assert sa.endswith("in ['ci-jenkins-dind-agent-agent','default','builder']"), sa


def test_with_a_pool_the_pool_selector_is_required():
    vap, _ = policy(render(overrides={"agent": {**OWN["agent"], "nodePool": {"key": "ci.example.com/pool",
                                                                           "value": "builds"}}}))
    [pool] = [v for v in vap["spec"]["validations"] if "node pool" in v.get("message", "")]
    assert pool["expression"] == ("has(object.spec.nodeSelector) && 'ci.example.com/pool' in object.spec.nodeSelector"
                                  " && object.spec.nodeSelector['ci.example.com/pool'] == 'builds'")


SHARED = {"agent": {"namespace": {"sameAsController": True}}}


def test_rendered_by_default_not_beside_the_controller_on_old_clusters_or_when_off():
    _, binding = policy(render())
    assert binding["spec"]["matchResources"]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "ci-agents"}}
    assert not render(overrides=SHARED).all("ValidatingAdmissionPolicy")
    assert not render(overrides=OWN, kube_version="1.29.0").all("ValidatingAdmissionPolicy")
    off = {"agent": {**OWN["agent"], "admissionPolicy": {"enabled": False}}}
    assert not render(overrides=off).all("ValidatingAdmissionPolicy")


def notes(*args: str) -> str:
    proc = subprocess.run([str(find_helm("4")), "install", "ci", str(CHART_DIR), "-n", "ci", "--dry-run=client",
                           *args], capture_output=True, text=True, env={**os.environ, "KUBECONFIG": os.devnull})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split("NOTES:", 1)[1]


def test_notes_say_whether_the_api_server_checks_agent_pods():
    own = notes("--set", "agent.namespace.name=ci-agents", "--set", "agent.namespace.create=true")
    assert "The API server checks every pod in ci-agents" in own
    assert "The API server checks every pod in ci-agents" in notes()
    shared = notes("--set", "agent.namespace.sameAsController=true")
    assert "WARNING: the agents share the controller's namespace (agent.namespace.sameAsController)" in shared
    assert "no admission policy applies" in shared
    # (the old-cluster line cannot be shown here: `helm install --dry-run=client` has no --kube-version)


def test_host_users_false_gives_every_agent_pod_a_user_namespace_and_the_policy_requires_it():
    manifest = render(overrides={"agent": {**OWN["agent"], "hostUsers": False,
                                           "extraTemplates": [{"name": "tools", "containers": [
                                               {"name": "tool", "image": "alpine:3"}]}]}})
    for template in (None, "tools"):
        assert manifest.agent_pod(template)["spec"]["hostUsers"] is False, template
    assert manifest.test_pod()["spec"]["hostUsers"] is False
    vap, _ = policy(manifest)
    [rule] = [v for v in vap["spec"]["validations"] if "user namespace" in v.get("message", "")]
    assert rule["expression"] == "has(object.spec.hostUsers) && !object.spec.hostUsers"
    assert "hostUsers" not in render().agent_pod()["spec"]
    with pytest.raises(RenderError) as err:
        render(overrides={"agent": {"hostUsers": False}}, kube_version="1.32.0")
    assert "agent.hostUsers is false but Kubernetes v1.32.0" in err.value.stderr
