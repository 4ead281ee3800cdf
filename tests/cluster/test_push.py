"""Push credentials only where pushes happen, on the real API server and kubelet (agent.registry.push):

- a pod of the default template, created with the controller's own token in the agent namespace, finds no
  registry credentials in jnlp's ~/.docker, and a pod there that names the registry Secret cannot mount it
  (the Secret lives in the push namespace only);
- the controller's token may not create pods in the push namespace, so no podTemplate on the main cloud
  (whose namespace a Jenkinsfile may override) starts a pod next to the credentials;
- the push cloud's token, read from the ServiceAccount-token Secret the chart creates (as JCasC hands it to
  the Kubernetes plugin), creates the push template's pod in the push namespace, whose jnlp has the
  registry login, and is refused everywhere else and on Secrets.
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from jdagent import tools
from jdagent.chart.render import render
from jdagent.paths import CHART_DIR
from tests.cluster.kube import (
    REGISTRY,
    agent_namespace,
    apply,
    delete_namespace,
    find_json,
    get_json,
    helm,
    namespace,
    service_account_kubeconfig,
    standin_values,
    token_kubeconfig,
    values_file,
    wait_for,
)

RELEASE_NS, RELEASE = "pushing", "pushing"
NS = agent_namespace(RELEASE_NS, RELEASE)
PUSH_NS = f"{NS}-push"
CONTROLLER_SA = f"{RELEASE}-jenkins-dind-agent"
SECRET = "registry-push"
AUTH = base64.b64encode(b"builder:push-only-token").decode()


def as_account(config: Path):
    def kubectl(*args: str, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(tools.find_kubectl()), "--kubeconfig", str(config), *args], capture_output=True,
                              text=True, timeout=300, input=input_text)
    return kubectl


def forbidden(proc: subprocess.CompletedProcess[str]) -> bool:
    return proc.returncode != 0 and "forbidden" in proc.stderr.lower()


@pytest.fixture(scope="module")
def push(cluster, standins, tmp_path_factory):
    namespace(cluster, RELEASE_NS, level="restricted")
    values = standin_values(standins, agent={"registry": {"server": REGISTRY, "push": True, "secretName": SECRET,
                                                          "pushFolders": ["releases"]}},
                            exampleJob={"folder": "releases"})
    tmp = tmp_path_factory.mktemp("push")
    path = values_file(tmp, values)
    helm(cluster, "4", "install", RELEASE, str(CHART_DIR), "-n", RELEASE_NS, "-f", str(path))
    manifest = render(values=[path], namespace=RELEASE_NS, release=RELEASE, kube_version="1.36.3")
    assert manifest.kubernetes_cloud("kubernetes-push")["namespace"] == PUSH_NS
    # the registry login, where the docs say to put it: the push namespace the chart created
    config = json.dumps({"auths": {REGISTRY: {"auth": AUTH}}})
    apply(cluster, [{"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
                     "metadata": {"name": SECRET, "namespace": PUSH_NS}, "stringData": {".dockerconfigjson": config}}])
    # the push cloud's credential: the long-lived token the API server's token controller writes
    token_secret = f"{RELEASE}-jenkins-dind-agent-push-token"
    token = wait_for("the token controller to fill the push cloud's token", lambda: (
        s := find_json(cluster, "-n", RELEASE_NS, "get", "secret", token_secret)) and s.get("data", {}).get("token"))
    yield {
        "manifest": manifest,
        "controller": as_account(service_account_kubeconfig(cluster, RELEASE_NS, CONTROLLER_SA,
                                                            tmp / "controller.kubeconfig", "20m")),
        "push": as_account(token_kubeconfig(cluster, base64.b64decode(token).decode(), tmp / "push.kubeconfig")),
    }
    helm(cluster, "4", "uninstall", RELEASE, "-n", RELEASE_NS, check=False)
    for ns in (PUSH_NS, NS, RELEASE_NS):
        delete_namespace(cluster, ns)


def start(kubectl, pod: dict, ns: str, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:5]}"
    pod = {**pod, "metadata": {**pod.get("metadata", {}), "name": name, "namespace": ns}}
    created = kubectl("create", "-f", "-", input_text=yaml.safe_dump(pod))
    assert created.returncode == 0, created.stderr
    wait_for(f"pod {name} to be ready", lambda: kubectl("-n", ns, "get", "pod", name, "-o",
                                                        "jsonpath={.status.containerStatuses[?(@.name=='jnlp')].ready}")
             .stdout == "true", timeout=300, every=2)
    return name


def docker_config(kubectl, ns: str, pod: str) -> str:
    return kubectl("-n", ns, "exec", pod, "-c", "jnlp", "--", "sh", "-c",
                   "cat /home/jenkins/.docker/config.json 2>/dev/null || echo none").stdout


def test_a_default_agent_pod_finds_no_registry_credentials(cluster, push):
    kubectl = push["controller"]
    name = start(kubectl, push["manifest"].agent_pod(), NS, "build")
    try:
        config = docker_config(kubectl, NS, name)
        assert REGISTRY not in config and AUTH not in config, config
    finally:
        kubectl("-n", NS, "delete", "pod", name, "--grace-period=1", "--wait=false")


def test_a_pod_in_the_agent_namespace_cannot_mount_the_registry_secret(cluster, push):
    kubectl = push["controller"]
    name = f"thief-{uuid.uuid4().hex[:5]}"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
           "spec": {"automountServiceAccountToken": False, "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "main", "image": push["manifest"].agent_pod()["spec"]["containers"][0]
                                    ["image"], "imagePullPolicy": "Never", "command": ["sleep", "600"],
                                    "volumeMounts": [{"name": "creds", "mountPath": "/creds"}]}],
                    "volumes": [{"name": "creds", "secret": {"secretName": SECRET}}]}}
    assert kubectl("create", "-f", "-", input_text=yaml.safe_dump(pod)).returncode == 0
    try:
        def mount_failed() -> str | None:
            events = get_json(cluster, "-n", NS, "get", "events", "--field-selector",
                              f"involvedObject.name={name}")["items"]
            failed = [e["message"] for e in events if e["reason"] == "FailedMount"]
            return failed[0] if failed else None

        message = wait_for("the kubelet to report the mount", mount_failed, timeout=120, every=2)
        assert f'secret "{SECRET}" not found' in message, message
        assert get_json(cluster, "-n", NS, "get", "pod", name)["status"]["phase"] == "Pending"
    finally:
        kubectl("-n", NS, "delete", "pod", name, "--grace-period=1", "--wait=false")


def test_the_controllers_token_cannot_start_pods_next_to_the_credentials(push):
    kubectl = push["controller"]
    pod = {**push["manifest"].push_pod(), "metadata": {"name": "escape", "namespace": PUSH_NS}}
    assert forbidden(kubectl("create", "--dry-run=server", "-f", "-", input_text=yaml.safe_dump(pod)))
    assert forbidden(kubectl("-n", PUSH_NS, "get", "pods"))


def test_the_push_clouds_token_runs_push_pods_with_the_login_and_nothing_else(cluster, push):
    kubectl = push["push"]
    name = start(kubectl, push["manifest"].push_pod(), PUSH_NS, "push")
    try:
        config = json.loads(docker_config(kubectl, PUSH_NS, name))
        assert config["auths"][REGISTRY]["auth"] == AUTH
        # and it cannot reach beyond the push namespace, nor read the Secret itself
        other = {**push["manifest"].agent_pod(), "metadata": {"name": "escape", "namespace": NS}}
        assert forbidden(kubectl("create", "--dry-run=server", "-f", "-", input_text=yaml.safe_dump(other)))
        assert forbidden(kubectl("-n", PUSH_NS, "get", "secret", SECRET))
        assert forbidden(kubectl("-n", RELEASE_NS, "get", "pods"))
    finally:
        kubectl("-n", PUSH_NS, "delete", "pod", name, "--grace-period=1", "--wait=false")
