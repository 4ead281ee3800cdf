"""Builds on a node pool of their own (agent.nodePool: the pool's label selected and its taint tolerated
by every agent pod, Jenkinsfile-merged or not) and the controller kept away from build pods
(controller.agentAntiAffinity, on the label the Kubernetes plugin puts on every pod it starts)."""

from __future__ import annotations

import yaml

from jdagent.chart.render import render
from jdagent.paths import REPO_ROOT

RUNTIME = yaml.safe_load((REPO_ROOT / "tests/unit/data/upstream/jenkins-runtime.yaml").read_text())
POOL = {"key": "ci.example.com/pool", "value": "builds", "taintEffect": "NoSchedule"}
EXTRA = [{"name": "tools", "containers": [{"name": "tool", "image": "alpine:3"}]},
         {"name": "plain", "dind": False, "nodeSelector": {"disk": "ssd"},
          "containers": [{"name": "tool", "image": "alpine:3"}]}]


def controller_affinity(manifest) -> dict:
    return manifest.get("StatefulSet")["spec"]["template"]["spec"].get("affinity", {})


def test_every_agent_pod_selects_the_pool_and_tolerates_its_taint():
    manifest = render(overrides={"agent": {"nodePool": POOL, "extraTemplates": EXTRA,
                                           "tolerations": [{"key": "spot", "operator": "Exists"}]}})
    toleration = {"key": POOL["key"], "operator": "Equal", "value": "builds", "effect": "NoSchedule"}
    for template in ("dind", "tools", "plain"):
        spec = manifest.agent_pod(template)["spec"]
        assert spec["nodeSelector"][POOL["key"]] == "builds", (template, spec.get("nodeSelector"))
        assert toleration in spec["tolerations"], (template, spec.get("tolerations"))
        assert {"key": "spot", "operator": "Exists"} in spec["tolerations"], template
    assert manifest.agent_pod("plain")["spec"]["nodeSelector"]["disk"] == "ssd"
    # the helm test pod is the agent pod too
    test_pod = [p for p in manifest.all("Pod") if "helm.sh/hook" in p["metadata"].get("annotations", {})]
    assert test_pod and all(toleration in p["spec"]["tolerations"] for p in test_pod)
    # the controller neither selects the pool nor tolerates its taint: it cannot land there
    sts = manifest.get("StatefulSet")["spec"]["template"]["spec"]
    assert POOL["key"] not in (sts.get("nodeSelector") or {}) and not sts.get("tolerations")


def test_without_a_pool_agents_get_neither_selector_nor_toleration_of_one():
    spec = render().agent_pod("dind")["spec"]
    assert "nodeSelector" not in spec and "tolerations" not in spec


def test_the_controller_prefers_nodes_without_build_pods_by_the_plugins_own_label():
    """The term selects KubernetesCloud.DEFAULT_POD_LABELS, which the plugin puts on every pod it starts
    while the cloud has no podLabels, and the chart sets none: Jenkinsfile pods are avoided too."""
    manifest = render(overrides={"agent": {"namespace": {"name": "ci-agents", "create": True}}})
    assert "podLabels" not in manifest.kubernetes_cloud()
    [preferred] = controller_affinity(manifest)["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    term = preferred["podAffinityTerm"]
    assert term["labelSelector"] == {"matchLabels": RUNTIME["kubernetes"]["pod_labels"]["default"]}
    assert term["namespaces"] == ["ci-agents"] and term["topologyKey"] == "kubernetes.io/hostname"
    assert preferred["weight"] == 100


def test_the_anti_affinity_joins_the_users_affinity_and_can_be_required_or_off():
    own = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
               {"matchExpressions": [{"key": "role", "operator": "In", "values": ["ci"]}]}]}},
           "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
               {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    merged = controller_affinity(render(overrides={"controller": {"affinity": own,
                                                                  "agentAntiAffinity": "required"}}))
    assert merged["nodeAffinity"] == own["nodeAffinity"]
    required = merged["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required[0] == own["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert required[1]["labelSelector"] == {"matchLabels": {"jenkins": "slave"}} and len(required) == 2
    assert "preferredDuringSchedulingIgnoredDuringExecution" not in merged["podAntiAffinity"]
    assert controller_affinity(render(overrides={"controller": {"agentAntiAffinity": "none"}})) == {}
    off = render(overrides={"controller": {"agentAntiAffinity": "none", "affinity": own}})
    assert controller_affinity(off) == own
