"""agent.admissionPolicy on the real API server: with the controller ServiceAccount's own token, as the
Kubernetes plugin calls it, the chart's agent pod and an extraTemplates pod are admitted into the agent
namespace (server-side dry run: admission runs, nothing is scheduled), and each forbidden variant of
that pod is refused by the ValidatingAdmissionPolicy with the rule's own message, one case per rule.
Pod Security in that namespace is `privileged`, so every refusal here is the policy's."""

from __future__ import annotations

import copy
import subprocess

import pytest
import yaml

from jdagent import tools
from jdagent.chart.render import render
from jdagent.paths import CHART_DIR
from tests.cluster.kube import (
    agent_namespace,
    delete_namespace,
    find_json,
    helm,
    namespace,
    service_account_kubeconfig,
    standin_values,
    values_file,
)

# the default layout: the policy binds to the chart's default agent namespace, which the chart creates
NS, RELEASE = "adm", "ci"
AGENTS = agent_namespace(NS, RELEASE)
CONTROLLER_SA = f"{RELEASE}-jenkins-dind-agent"
POOL = {"key": "jda.test/pool", "value": "builds"}


@pytest.fixture(scope="module")
def admission(cluster, standins, tmp_path_factory):
    namespace(cluster, NS, level="restricted")
    tools_template = {"name": "tools", "containers": [{"name": "tool", "image": standins["jnlp"],
                                                       "imagePullPolicy": "Never", "command": ["sleep", "3600"]}]}
    values = standin_values(standins, agent={"nodePool": POOL, "extraTemplates": [tools_template]})
    path = values_file(tmp_path_factory.mktemp("admission"), values)
    helm(cluster, "4", "install", RELEASE, str(CHART_DIR), "-n", NS, "-f", str(path))
    manifest = render(values=[path], namespace=NS, release=RELEASE, kube_version="1.36.3")
    # a ServiceAccount that exists, so the ServiceAccount admission plugin passes and the policy decides
    cluster.kubectl("-n", AGENTS, "create", "serviceaccount", "other")
    config = service_account_kubeconfig(cluster, NS, CONTROLLER_SA, path.parent / "controller.kubeconfig", "10m")

    def create(pod: dict) -> subprocess.CompletedProcess[str]:
        pod = {**pod, "metadata": {**pod.get("metadata", {}), "name": "probe", "namespace": AGENTS}}
        return subprocess.run([str(tools.find_kubectl()), "--kubeconfig", str(config), "create", "--dry-run=server",
                               "-f", "-"], input=yaml.safe_dump(pod), capture_output=True, text=True, timeout=120)

    yield manifest, create
    helm(cluster, "4", "uninstall", RELEASE, "-n", NS, check=False)
    for ns in (AGENTS, NS):
        delete_namespace(cluster, ns)


def policy_name() -> str:
    return f"{RELEASE}-jenkins-dind-agent-{NS}-agent-pods"


def test_the_policy_and_its_binding_are_live(cluster, admission):
    policy = find_json(cluster, "get", "validatingadmissionpolicy", policy_name())
    assert policy is not None
    conditions = policy.get("status", {}).get("typeChecking", {})
    assert not conditions.get("expressionWarnings"), conditions
    binding = find_json(cluster, "get", "validatingadmissionpolicybinding", policy_name())
    assert binding["spec"]["matchResources"]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": AGENTS}


@pytest.mark.parametrize("template", [None, "tools"])
def test_the_charts_own_agent_pods_are_admitted(admission, template):
    manifest, create = admission
    admitted = create(manifest.agent_pod(template))
    assert admitted.returncode == 0, admitted.stderr


def _other_sa(spec):
    spec["serviceAccountName"] = "other"


def _token(spec):
    spec["automountServiceAccountToken"] = True


def _host_network(spec):
    spec["hostNetwork"] = True


def _host_pid(spec):
    spec["hostPID"] = True


def _node_name(spec):
    spec["nodeName"] = "any-node"


def _host_path(spec):
    spec["volumes"].append({"name": "node-root", "hostPath": {"path": "/"}})
    spec["containers"][0].setdefault("volumeMounts", []).append({"name": "node-root", "mountPath": "/host"})


def _privileged_jnlp(spec):
    jnlp = next(c for c in spec["containers"] if c["name"] == "jnlp")
    jnlp["securityContext"] = {"privileged": True}


def _off_the_pool(spec):
    spec["nodeSelector"].pop(POOL["key"])


@pytest.mark.parametrize("change,message", [
    (_other_sa, "agent pods run as ServiceAccount ci-jenkins-dind-agent-agent"),
    (_token, "agent pods get no ServiceAccount token"),
    (_host_network, "agent pods use no host namespace"),
    (_host_pid, "agent pods use no host namespace"),
    (_node_name, "spec.nodeName is refused"),
    (_host_path, "agent pods mount no hostPath volume"),
    (_privileged_jnlp, "only the container named dind may be privileged"),
    (_off_the_pool, f"agent pods select the build node pool: nodeSelector {POOL['key']}={POOL['value']}"),
], ids=lambda v: v.__name__.strip("_") if callable(v) else "")
def test_each_forbidden_variant_is_refused_by_the_api_server(admission, change, message):
    manifest, create = admission
    pod = copy.deepcopy(manifest.agent_pod(None))
    change(pod["spec"])
    refused = create(pod)
    assert refused.returncode != 0, f"admitted: {pod['spec']}"
    assert f"ValidatingAdmissionPolicy '{policy_name()}'" in refused.stderr, refused.stderr
    assert message in refused.stderr, refused.stderr
