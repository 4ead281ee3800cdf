"""agent.nodePool and controller.agentAntiAffinity as the real scheduler applies them on the node: an
agent pod waits for a node with the pool's label, is placed once the node has label and taint, while
a pod without the toleration is refused; the controller's required anti-affinity term refuses the node
while a pod carrying the Kubernetes plugin's label runs there, and takes it once that pod is gone."""

from __future__ import annotations

import pytest

from jdagent.chart.render import render
from tests.cluster.kube import agent_namespace, apply, delete_namespace, find_json, namespace, standin_values, wait_for

# the default layout: the controller in NS, build pods in the chart's the chart's default agent namespace
NS = "pool"
AGENT_NS = agent_namespace(NS, "ci")
KEY, VALUE = "jda.test/pool", "builds"
# the label the Kubernetes plugin puts on every pod it starts (tests/unit/data/upstream/jenkins-runtime.yaml,
# kubernetes.pod_labels.default); the test's pods carry it as the plugin would
PLUGIN_LABELS = {"jenkins": "slave"}


def sleeper(name: str, image: str, ns: str = NS, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"terminationGracePeriodSeconds": 1, "restartPolicy": "Never", **spec,
                     "containers": [{"name": "main", "image": image, "imagePullPolicy": "Never",
                                     "command": ["sleep", "600"]}]}}


def scheduling(cluster, name: str, ns: str = NS) -> tuple[str, str]:
    """(node the scheduler chose or "", its PodScheduled message)."""
    pod = find_json(cluster, "-n", ns, "get", "pod", name) or {}
    cond = [c for c in pod.get("status", {}).get("conditions", []) if c["type"] == "PodScheduled"]
    return pod.get("spec", {}).get("nodeName", ""), (cond[0].get("message", "") if cond else "")


def refused(cluster, name: str, why: str, ns: str = NS) -> str:
    return wait_for(f"the scheduler to refuse {name} ({why})",
                    lambda: (m := scheduling(cluster, name, ns)[1]) and why in m and m, timeout=120)


def placed(cluster, name: str, node: str, ns: str = NS) -> None:
    wait_for(f"the scheduler to place {name}", lambda: scheduling(cluster, name, ns)[0] == node, timeout=120)


@pytest.fixture
def node(cluster):
    name = cluster.kubectl("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}").stdout.strip()
    namespace(cluster, NS, privileged=True)
    namespace(cluster, AGENT_NS, privileged=True)
    yield name
    cluster.kubectl("taint", "nodes", name, f"{KEY}={VALUE}:NoSchedule-", check=False)
    cluster.kubectl("label", "node", name, f"{KEY}-", check=False)
    delete_namespace(cluster, AGENT_NS)
    delete_namespace(cluster, NS)


def test_agents_wait_for_the_pool_and_only_they_tolerate_its_taint(cluster, standins, node):
    values = standin_values(standins, agent={"nodePool": {"key": KEY, "value": VALUE}})
    agent = render(overrides=values, namespace=NS).agent_pod(None)
    # what is checked is where the scheduler puts the chart's pod spec: no release installs its
    # ServiceAccount and ConfigMaps here, so the pod runs as the namespace's default account
    agent["spec"].pop("serviceAccountName", None)
    agent["metadata"] = {"name": "agent", "namespace": AGENT_NS,
                         "labels": {**agent["metadata"].get("labels", {}), **PLUGIN_LABELS}}
    apply(cluster, [agent])
    message = refused(cluster, "agent", "node affinity/selector", AGENT_NS)
    print(f"\nwithout the pool's label: {message}")
    cluster.kubectl("label", "node", node, f"{KEY}={VALUE}")
    cluster.kubectl("taint", "nodes", node, f"{KEY}={VALUE}:NoSchedule")
    placed(cluster, "agent", node, AGENT_NS)
    apply(cluster, [sleeper("bystander", standins["jnlp"])])
    message = refused(cluster, "bystander", "untolerated taint")
    print(f"a pod without the toleration: {message}")


def test_the_controllers_anti_affinity_refuses_a_node_that_runs_a_build_pod(cluster, standins, node):
    manifest = render(overrides={"controller": {"agentAntiAffinity": "required"}}, namespace=NS)
    affinity = manifest.get("StatefulSet")["spec"]["template"]["spec"]["affinity"]
    assert affinity["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["namespaces"] == [AGENT_NS]
    build = sleeper("build", standins["jnlp"], AGENT_NS)
    build["metadata"]["labels"] = PLUGIN_LABELS
    apply(cluster, [build])
    placed(cluster, "build", node, AGENT_NS)
    apply(cluster, [sleeper("controller", standins["jnlp"], affinity=affinity)])
    message = refused(cluster, "controller", "anti-affinity")
    print(f"\nthe controller beside a build pod: {message}")
    cluster.kubectl("-n", AGENT_NS, "delete", "pod", "build", "--grace-period=1", "--wait=true", "--timeout=60s")
    placed(cluster, "controller", node)
