"""RBAC as the Kubernetes plugin uses it: with the controller ServiceAccount's own token (TokenRequest),
the API server lets it create, watch, read logs of, exec into and delete pods in the agent namespace,
and refuses Secrets and pods anywhere else, its own (release) namespace included."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from jdagent import tools
from jdagent.paths import CHART_DIR
from tests.cluster.kube import agent_namespace, delete_namespace, helm, namespace, service_account_kubeconfig, wait_for

# the default layout: the controller in the release namespace, the agents in the chart's default agent namespace
RELEASE_NS, RELEASE = "rbac", "ci"
NS = agent_namespace(RELEASE_NS, RELEASE)
CONTROLLER_SA = f"{RELEASE}-jenkins-dind-agent"


@pytest.fixture(scope="module")
def as_controller(cluster, standins, tmp_path_factory):
    namespace(cluster, RELEASE_NS, level="restricted")
    helm(cluster, "4", "install", RELEASE, str(CHART_DIR), "-n", RELEASE_NS)
    config = service_account_kubeconfig(cluster, RELEASE_NS, CONTROLLER_SA,
                                        tmp_path_factory.mktemp("rbac") / "controller.kubeconfig", "10m")

    def kubectl(*args: str, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(tools.find_kubectl()), "--kubeconfig", str(config), *args], capture_output=True,
                              text=True, timeout=120, input=input_text)

    yield kubectl, standins["busybox"]
    helm(cluster, "4", "uninstall", RELEASE, "-n", RELEASE_NS, check=False)
    delete_namespace(cluster, NS)
    delete_namespace(cluster, RELEASE_NS)


def pod(name: str, image: str, namespace: str) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
                           "spec": {"automountServiceAccountToken": False,  # the agent namespace's policy
                                    "containers": [{"name": "main", "image": image, "imagePullPolicy": "Never",
                                                    "command": ["sh", "-c", "echo agent-up; sleep 600"]}],
                                    "terminationGracePeriodSeconds": 1}})


def forbidden(proc: subprocess.CompletedProcess[str]) -> bool:
    return proc.returncode != 0 and "forbidden" in proc.stderr.lower()


def test_the_controller_manages_agent_pods_in_its_namespace(as_controller):
    kubectl, image = as_controller
    created = kubectl("create", "-f", "-", input_text=pod("agent-rbac", image, NS))
    assert created.returncode == 0, created.stderr
    wait_for("the agent pod to run", lambda: kubectl("-n", NS, "get", "pod", "agent-rbac", "-o",
                                                      "jsonpath={.status.phase}").stdout == "Running")
    watch = kubectl("get", "--raw", f"/api/v1/namespaces/{NS}/pods?watch=1&timeoutSeconds=2")
    assert watch.returncode == 0 and '"type":"ADDED"' in watch.stdout.replace(" ", ""), watch.stderr
    logs = wait_for("the pod's log", lambda: kubectl("-n", NS, "logs", "agent-rbac").stdout)
    assert "agent-up" in logs
    execd = kubectl("-n", NS, "exec", "agent-rbac", "--", "sh", "-c", "echo exec-works")
    assert execd.returncode == 0 and "exec-works" in execd.stdout, execd.stderr
    deleted = kubectl("-n", NS, "delete", "pod", "agent-rbac", "--wait=true", "--timeout=60s")
    assert deleted.returncode == 0, deleted.stderr


@pytest.mark.parametrize("ns", [NS, RELEASE_NS], ids=["agent-namespace", "release-namespace"])
def test_the_controller_cannot_read_secrets(as_controller, ns):
    kubectl, _ = as_controller
    assert forbidden(kubectl("-n", ns, "get", "secrets"))
    listed = kubectl("-n", ns, "get", "--raw", f"/api/v1/namespaces/{ns}/secrets")
    assert forbidden(listed) or "Forbidden" in listed.stderr


def test_the_controller_cannot_touch_pods_elsewhere(as_controller):
    kubectl, image = as_controller
    assert forbidden(kubectl("create", "-f", "-", input_text=pod("escape", image, "default")))
    # not even beside itself: its Role is in the agent namespace only
    assert forbidden(kubectl("create", "-f", "-", input_text=pod("beside", image, RELEASE_NS)))
    assert forbidden(kubectl("-n", RELEASE_NS, "get", "pods"))
    assert forbidden(kubectl("-n", "kube-system", "get", "pods"))
    request = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
               "spec": {"namespace": "default"}}
    listed = kubectl("create", "--validate=false", "-f", "-", "-o", "json", input_text=json.dumps(request))
    assert listed.returncode == 0, listed.stderr
    review = json.loads(listed.stdout)["status"]
    assert review["resourceRules"], review  # the API server's own answer (discovery rules at least)
    pod_rules = [r for r in review["resourceRules"] if "pods" in r.get("resources", [])]
    assert not pod_rules, pod_rules
