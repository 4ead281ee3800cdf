"""networkPolicy.agentEgress on the real node's enforcer (kube-router's firewall), with addresses the
test owns: two listener pods stand for an allowed and a denied destination (the denied one is the
`except` of the rule's ipBlock, as the link-local metadata range is in a real rule; no test traffic
goes to a real metadata address). From the agent pod and from a pod without any of the chart's labels
in the agent namespace (as a Jenkinsfile podTemplate makes), the allowed one answers and the denied one, the API server
and everything else does not, while DNS and the controller's agent port still work; a pod without the
policy reaches all of them, so each "blocked" is the policy's doing."""

from __future__ import annotations

import ipaddress

import pytest

from jdagent.chart.manifest import container
from jdagent.chart.render import render
from jdagent.paths import CHART_DIR
from tests.cluster.kube import (
    agent_namespace,
    apply,
    delete_namespace,
    get_json,
    helm,
    listener,
    namespace,
    standin_values,
    values_file,
    wait_for,
)

# the default layout: the release namespace enforces restricted, the agents run in the chart's default agent namespace
RELEASE_NS, TARGETS, RELEASE = "eg", "eg-targets", "eg"
NS = agent_namespace(RELEASE_NS, RELEASE)
# what Pod Security restricted asks of a container (the controller's namespace enforces it)
RESTRICTED = {"runAsNonRoot": True, "runAsUser": 65534, "allowPrivilegeEscalation": False,
              "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
PORT = 8443
ENFORCED_WITHIN_S = 60
PROBE = "probe"


def sleeper(name: str, ns: str, image: str, labels: dict | None = None, command: str = "sleep 3600",
            restricted: bool = False) -> dict:
    """A busybox pod; no ServiceAccount token (the agent namespace's admission policy refuses one)."""
    probe = {"name": PROBE, "image": image, "imagePullPolicy": "Never", "command": ["sh", "-c", command]}
    if restricted:
        probe["securityContext"] = RESTRICTED
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": {"terminationGracePeriodSeconds": 1, "automountServiceAccountToken": False,
                     "containers": [probe]}}


@pytest.fixture(scope="module")
def egress(cluster, standins, tmp_path_factory):
    busybox = standins["busybox"]
    namespace(cluster, RELEASE_NS, level="restricted")
    namespace(cluster, TARGETS)
    apply(cluster, [sleeper(n, TARGETS, busybox, command=listener(PORT)) for n in ("allowed", "denied")]
          + [sleeper("unrestricted", TARGETS, busybox)])
    for name in ("allowed", "denied", "unrestricted"):
        cluster.kubectl_wait(180, "-n", TARGETS, "wait", "--for=condition=Ready", f"pod/{name}")
    ip = {n: get_json(cluster, "-n", TARGETS, "get", "pod", n)["status"]["podIP"] for n in ("allowed", "denied")}
    network = ipaddress.ip_network(f"{ip['allowed']}/24", strict=False)
    assert ipaddress.ip_address(ip["denied"]) in network, ip
    api = get_json(cluster, "-n", "default", "get", "endpointslice", "-l", "kubernetes.io/service-name=kubernetes")
    api_addresses = [a for s in api["items"] for e in s["endpoints"] for a in e["addresses"]]
    service_ip = get_json(cluster, "-n", "default", "get", "service", "kubernetes")["spec"]["clusterIP"]
    egress_values = {"enabled": True, "apiServerAddresses": api_addresses, "extraRules": [
        {"to": [{"ipBlock": {"cidr": str(network), "except": [f"{ip['denied']}/32"]}}],
         "ports": [{"port": PORT, "protocol": "TCP"}]}]}
    values = standin_values(standins, networkPolicy={"agentEgress": egress_values})
    path = values_file(tmp_path_factory.mktemp("egress"), values)
    helm(cluster, "4", "install", RELEASE, str(CHART_DIR), "-n", RELEASE_NS, "-f", str(path))
    manifest = render(values=[path], namespace=RELEASE_NS, release=RELEASE, kube_version="1.36.3")

    # the controller's ports on a pod the policies select as the controller (Jenkins cannot run here)
    sts = manifest.get("StatefulSet")["spec"]["template"]
    ports = {p["name"]: p["containerPort"] for p in container(sts["spec"], "jenkins")["ports"]}
    controller = sleeper("controller-ports", RELEASE_NS, busybox, sts["metadata"]["labels"],
                         " & ".join(listener(p) for p in ports.values()) + " & wait", restricted=True)
    controller["spec"]["containers"][0]["ports"] = [{"name": n, "containerPort": p} for n, p in ports.items()]
    # the chart's agent pod with a probe container beside jnlp: same pod, same network, same policy
    agent = manifest.agent_pod(None)
    agent["metadata"] = {**agent.get("metadata", {}), "name": "agent", "namespace": NS}
    agent["spec"]["containers"].append({"name": PROBE, "image": busybox, "imagePullPolicy": "Never",
                                        "command": ["sleep", "3600"]})
    # a pod as a Jenkinsfile podTemplate may define it: none of the chart's labels, not even the plugin's
    jenkinsfile = sleeper("jenkinsfile-pod", NS, busybox)
    apply(cluster, [controller, agent, jenkinsfile])
    cluster.kubectl_wait(300, "-n", RELEASE_NS, "wait", "--for=condition=Ready", "pod/controller-ports")
    for name in ("agent", "jenkinsfile-pod"):
        cluster.kubectl_wait(300, "-n", NS, "wait", "--for=condition=Ready", f"pod/{name}")
    controller_ip = get_json(cluster, "-n", RELEASE_NS, "get", "pod", "controller-ports")["status"]["podIP"]
    yield {"ip": ip, "api": (service_ip, 443), "controller": (controller_ip, ports["agent-listener"])}
    helm(cluster, "4", "uninstall", RELEASE, "-n", RELEASE_NS, check=False)
    delete_namespace(cluster, NS)
    delete_namespace(cluster, RELEASE_NS)
    delete_namespace(cluster, TARGETS)


def probe(cluster, ns: str, pod: str, host: str, port: int) -> str:
    out = cluster.kubectl("-n", ns, "exec", pod, "-c", PROBE, "--", "sh", "-c",
                          f"busybox timeout 8 busybox nc -w 4 {host} {port} </dev/null 2>&1; echo rc=$?", check=False)
    return out.stdout.strip()


def reached(answer: str) -> bool:
    return answer.endswith("rc=0")


@pytest.mark.parametrize("pod", ["agent", "jenkinsfile-pod"])
def test_restricted_egress_reaches_only_what_the_rules_allow(cluster, egress, pod):
    ip = egress["ip"]
    allowed = wait_for(f"{pod} to reach the allowed destination",
                       lambda: reached(a := probe(cluster, NS, pod, ip["allowed"], PORT)) and a,
                       timeout=ENFORCED_WITHIN_S, every=3)
    assert allowed.startswith("open"), allowed
    denied = wait_for(f"the policy to refuse {pod} the excepted destination",
                      lambda: not reached(a := probe(cluster, NS, pod, ip["denied"], PORT)) and a,
                      timeout=ENFORCED_WITHIN_S, every=3)
    api = probe(cluster, NS, pod, *egress["api"])
    assert not reached(api), api
    listener_port = probe(cluster, NS, pod, *egress["controller"])
    assert reached(listener_port), listener_port
    dns = cluster.kubectl("-n", NS, "exec", pod, "-c", PROBE, "--", "busybox", "nslookup",
                          "kubernetes.default.svc.cluster.local", check=False)
    assert dns.returncode == 0 and egress["api"][0] in dns.stdout, (dns.stdout, dns.stderr)
    # the same destinations answer a pod no policy selects: the refusals above are the policy's
    for host, port in ((ip["denied"], PORT), egress["api"]):
        control = probe(cluster, TARGETS, "unrestricted", host, port)
        assert reached(control), (host, port, control)
    print(f"\n{pod}: allowed {allowed!r}; excepted {denied!r}; API server {api!r}; agent port {listener_port!r}")
