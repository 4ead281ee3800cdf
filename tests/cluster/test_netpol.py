"""The chart's NetworkPolicies, enforced by the node's enforcer (kube-router's firewall): a pod in
another namespace reaches neither an agent pod nor the controller's agent port (but does reach its UI
port), an agent reaches the agent port and the mirror, and dockerd's 2375 answers no other pod, with
the policies and without them.

The controller's own image (Jenkins) cannot exist on these machines, so the agent port is served by a
listener pod that wears the rendered controller pod's labels and named ports: the policy selects pods
and resolves ports by exactly those. Agents and the outsider probe with busybox `nc` and report what
the network answered; every "blocked" is paired with the same probe succeeding where it should.
"""

from __future__ import annotations

import uuid

import pytest
import yaml

from jdagent.chart.manifest import container
from jdagent.chart.render import render
from jdagent.engine.agentpod import mirror_values, registry_mirrors
from jdagent.paths import CHART_DIR
from tests.cluster.kube import (
    BASE_IMAGE,
    agent_namespace,
    delete_namespace,
    find_json,
    get_json,
    helm,
    listener,
    namespace,
    standin_values,
    values_file,
    wait_for,
)

# the default layout: the controller (and mirror) in the release namespace, enforcing restricted, the
# agents in the chart's default agent namespace
RELEASE_NS, OUTSIDE, RELEASE = "np", "np-outsider", "np"
NS = agent_namespace(RELEASE_NS, RELEASE)
# what Pod Security restricted asks of a container
RESTRICTED = {"runAsNonRoot": True, "runAsUser": 65534, "allowPrivilegeEscalation": False,
              "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
BUILD_PORT = 8081  # what a build inside the agent pod listens on
ENFORCED_WITHIN_S = 60


@pytest.fixture(scope="module")
def net(cluster, standins, mirror_registry, in_cluster_registry, tmp_path_factory):
    namespace(cluster, RELEASE_NS, level="restricted")
    namespace(cluster, OUTSIDE)
    values = standin_values(standins, **mirror_values(
        standins, f"http://{in_cluster_registry}", registry_image=mirror_registry, persistence={"size": "1Gi"}))
    path = values_file(tmp_path_factory.mktemp("netpol"), values)
    helm(cluster, "4", "install", RELEASE, str(CHART_DIR), "-n", RELEASE_NS, "-f", str(path))
    manifest = render(values=[path], namespace=RELEASE_NS, release=RELEASE, kube_version="1.36.3")
    busybox = standins["busybox"]

    # the controller's agent and UI ports, on a pod the chart's policy selects as the controller
    sts = manifest.get("StatefulSet")["spec"]["template"]
    jenkins = container(sts["spec"], "jenkins")
    ports = {p["name"]: p["containerPort"] for p in jenkins["ports"]}
    served = " & ".join(listener(port) for port in ports.values())
    pods = [{"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": "controller-ports", "namespace": RELEASE_NS, "labels": sts["metadata"]["labels"]},
             "spec": {"containers": [{"name": "ports", "image": busybox, "imagePullPolicy": "Never",
                                      "command": ["sh", "-c", f"{served} & wait"], "securityContext": RESTRICTED,
                                      "ports": [{"name": n, "containerPort": p} for n, p in ports.items()]}]}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "outsider", "namespace": OUTSIDE},
             "spec": {"containers": [{"name": "probe", "image": busybox, "imagePullPolicy": "Never",
                                      "command": ["sleep", "3600"]}]}}]
    agent = manifest.agent_pod(None)
    agent_name = f"agent-{uuid.uuid4().hex[:5]}"
    agent["metadata"] = {**agent.get("metadata", {}), "name": agent_name, "namespace": NS}
    cluster.kubectl("apply", "-f", "-", input_text=yaml.safe_dump_all([*pods, agent]))
    for ns, name in ((RELEASE_NS, "controller-ports"), (OUTSIDE, "outsider"), (NS, agent_name)):
        cluster.kubectl_wait(300, "-n", ns, "wait", "--for=condition=Ready", f"pod/{name}")
    # a build that serves a port inside the agent pod (dind's containers on the pod's network)
    served_by_build = cluster.kubectl(
        "-n", NS, "exec", agent_name, "-c", "jnlp", "--", "docker", "run", "-d", "--network", "host",
        BASE_IMAGE, "sh", "-c", listener(BUILD_PORT))
    assert served_by_build.returncode == 0, served_by_build.stderr

    def ip(ns: str, name: str) -> str:
        return get_json(cluster, "-n", ns, "get", "pod", name)["status"]["podIP"]

    mirrors = registry_mirrors(agent["spec"])
    assert len(mirrors) == 1 and ".svc." in mirrors[0], mirrors
    yield {"agent": agent_name, "agent_ip": ip(NS, agent_name), "controller_ip": ip(RELEASE_NS, "controller-ports"),
           "ports": ports, "mirror_url": mirrors[0], "values": path}
    helm(cluster, "4", "uninstall", RELEASE, "-n", RELEASE_NS, check=False)
    delete_namespace(cluster, OUTSIDE)
    delete_namespace(cluster, NS)
    delete_namespace(cluster, RELEASE_NS)


def from_outsider(cluster, ip: str, port: int) -> str:
    probe = cluster.kubectl("-n", OUTSIDE, "exec", "outsider", "--", "sh", "-c",
                            f"busybox timeout 8 busybox nc -w 4 {ip} {port} </dev/null 2>&1; echo rc=$?",
                            check=False)
    return probe.stdout.strip()


def from_agent(cluster, agent: str, ip: str, port: int) -> str:
    """A probe from a container a build starts in dind, on the agent pod's own network."""
    probe = cluster.kubectl("-n", NS, "exec", agent, "-c", "jnlp", "--", "sh", "-c",
                            f"docker run --rm --network host {BASE_IMAGE} sh -c "
                            f"'busybox timeout 8 busybox nc -w 4 {ip} {port} </dev/null 2>&1; echo rc=$?'",
                            check=False)
    return (probe.stdout + probe.stderr).strip()


def reached(answer: str) -> bool:
    return answer.startswith("open") and answer.endswith("rc=0")


def test_a_pod_in_another_namespace_reaches_neither_an_agent_nor_the_agent_port(cluster, net):
    # the outsider has a path to the controller at all: the UI port is open to the cluster
    ui = wait_for("the outsider to reach the controller's UI port",
                  lambda: reached(a := from_outsider(cluster, net["controller_ip"], net["ports"]["http"])) and a,
                  timeout=ENFORCED_WITHIN_S, every=3)
    assert reached(ui)
    agent_port = wait_for("the policy to close the agent port to the outsider",
                          lambda: not reached(a := from_outsider(cluster, net["controller_ip"],
                                                                 net["ports"]["agent-listener"])) and a,
                          timeout=ENFORCED_WITHIN_S, every=3)
    build = from_outsider(cluster, net["agent_ip"], BUILD_PORT)
    print(f"\noutsider -> controller http: {ui!r}; -> agent-listener: {agent_port!r}; -> agent :{BUILD_PORT}: "
          f"{build!r}")
    assert not reached(build), build
    assert not reached(from_outsider(cluster, net["controller_ip"], net["ports"]["agent-listener"]))


def test_an_agent_reaches_the_controllers_agent_port_and_the_mirror(cluster, net):
    answer = wait_for("the agent to reach the agent port",
                      lambda: reached(a := from_agent(cluster, net["agent"], net["controller_ip"],
                                                      net["ports"]["agent-listener"])) and a,
                      timeout=ENFORCED_WITHIN_S, every=3)
    assert reached(answer)
    cluster.kubectl_wait(300, "-n", RELEASE_NS, "rollout", "status", f"deployment/{RELEASE}-jenkins-dind-agent-mirror")
    # by the name dockerd is given (--registry-mirror), so cluster DNS answers too
    v2 = cluster.kubectl("-n", NS, "exec", net["agent"], "-c", "jnlp", "--", "sh", "-c",
                         f"docker run --rm --network host {BASE_IMAGE} busybox wget -q -S -O /dev/null "
                         f"{net['mirror_url']}/v2/ 2>&1", check=False)
    assert "HTTP/1.1 200" in v2.stdout, (v2.stdout, v2.stderr)
    assert "Docker-Distribution-Api-Version: registry/2.0" in v2.stdout, v2.stdout


def test_dockerd_answers_no_other_pod_with_or_without_policies(cluster, net, tmp_path):
    # inside the pod, 2375 is dockerd (jnlp's DOCKER_HOST); from the outsider, nothing answers
    inside = cluster.kubectl("-n", NS, "exec", net["agent"], "-c", "jnlp", "--", "docker", "version", "--format",
                             "{{.Server.Version}}", check=False)
    assert inside.returncode == 0 and inside.stdout.strip(), inside.stderr
    with_policies = from_outsider(cluster, net["agent_ip"], 2375)
    assert not reached(with_policies) and "rc=0" not in with_policies, with_policies

    upgraded = yaml.safe_load(net["values"].read_text())
    upgraded["networkPolicy"] = {"enabled": False}
    path = tmp_path / "no-policies.yaml"
    path.write_text(yaml.safe_dump(upgraded))
    helm(cluster, "4", "upgrade", RELEASE, str(CHART_DIR), "-n", RELEASE_NS, "-f", str(path))
    assert find_json(cluster, "-n", NS, "get", "networkpolicy", f"{RELEASE}-jenkins-dind-agent-agents") is None
    # the policy was what closed the build's port: without it the outsider gets in ...
    opened = wait_for("the build's port to open without policies",
                      lambda: reached(a := from_outsider(cluster, net["agent_ip"], BUILD_PORT)) and a,
                      timeout=ENFORCED_WITHIN_S, every=3)
    assert reached(opened)
    # ... and still not to dockerd, which listens on the pod's loopback only
    without = from_outsider(cluster, net["agent_ip"], 2375)
    print(f"\noutsider -> agent :2375 with policies: {with_policies!r}; without: {without!r}; "
          f"-> agent :{BUILD_PORT} without policies: {opened!r}")
    assert "Connection refused" in without and not reached(without), without
