"""NOTES.txt (rendered by `helm install --dry-run=client`, helm 4, no cluster) names the real objects."""

from __future__ import annotations

import os
import subprocess

import pytest

from jdagent.chart.render import render
from jdagent.paths import CHART_DIR
from jdagent.tools import find_helm


def notes(*args: str) -> str:
    proc = subprocess.run([str(find_helm("4")), "install", "ci", str(CHART_DIR), "-n", "tools", "--dry-run=client",
                           *args], capture_output=True, text=True, env={**os.environ, "KUBECONFIG": os.devnull})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split("NOTES:", 1)[1]


def test_notes_point_at_the_rendered_secret_service_and_test():
    text = notes()
    manifest = render(namespace="tools")
    secret = manifest.get("Secret")["metadata"]["name"]
    service = manifest.get("Service", name="ci-jenkins-dind-agent")["metadata"]["name"]
    assert f"kubectl -n tools get secret {secret}" in text
    assert "{.data.jenkins-admin-password}" in text
    assert f"port-forward svc/{service} 8080:8080" in text
    # the test pod runs in the agent namespace, where helm's --logs does not look (it reads the release's)
    assert "helm test ci -n tools\n" in text and "helm test ci -n tools --logs" not in text
    assert "kubectl -n tools-ci-agents logs ci-jenkins-dind-agent-dind-build-test -c jnlp" in text
    assert manifest.test_pod()["metadata"]["namespace"] == "tools-ci-agents"
    shared = notes("--set", "agent.namespace.sameAsController=true")
    assert "helm test ci -n tools --logs" in shared
    assert "storage driver vfs, native sidecar" in text


@pytest.mark.parametrize("args,expected", [
    (("--set", "agent.nativeSidecar=false"), "classic container, agent waits for dockerd"),
    (("--set", "controller.admin.existingSecret=mine"), "get secret mine"),
    (("--set", "exampleJob.enabled=false"), None),
])
def test_notes_follow_the_values(args, expected):
    text = notes(*args)
    if expected:
        assert expected in text
    else:
        assert "Run the example job" not in text


def test_notes_say_who_is_an_administrator_and_what_is_shared():
    default = notes()
    assert "Every signed-in user is an administrator (loggedInUsersCanDoAnything)" in default
    assert "executor(s) on the controller" not in default and "Idle pods are kept" not in default
    realm = notes("--set", "controller.jcasc.securityRealm.ldap.server=ldap.example.internal",
                  "--set", "controller.jcasc.authorizationStrategy.globalMatrix.entries[0].user.name=admin")
    assert "Every signed-in user is an administrator" not in realm
    assert "Permissions: controller.jcasc.authorizationStrategy (globalMatrix)" in realm
    shared = notes("--set", "controller.numExecutors=2", "--set", "controller.allowBuildsOnController=true",
                   "--set", "agent.idleMinutes=15")
    assert "WARNING: 2 executor(s) on the controller (controller.numExecutors)" in shared
    assert "Idle pods are kept 15 min (agent.idleMinutes)" in shared and "~/.docker registry logins" in shared


def test_notes_read_the_test_log_where_the_test_pod_runs():
    """`helm test --logs` looks in the release namespace; with the agents elsewhere the log is fetched
    from the agent namespace instead."""
    text = notes("--set", "agent.namespace.name=ci-agents", "--set", "agent.namespace.create=true")
    assert "helm test ci -n tools\n" in text and "helm test ci -n tools --logs" not in text
    assert "kubectl -n ci-agents logs ci-jenkins-dind-agent-dind-build-test -c jnlp" in text
    agents = {"agent": {"namespace": {"name": "ci-agents", "create": True}}}
    pod = render(namespace="tools", overrides=agents).test_pod()
    assert pod["metadata"]["name"] == "ci-jenkins-dind-agent-dind-build-test"
    assert pod["metadata"]["namespace"] == "ci-agents"
    assert pod["spec"]["containers"][0]["name"] == "jnlp"


def test_notes_warn_when_builds_may_land_on_any_node_and_name_the_pool_when_set():
    warning = "WARNING: build pods may land on any node"
    assert warning in notes()
    pooled = notes("--set", "agent.nodePool.key=ci.example.com/pool", "--set", "agent.nodePool.value=builds")
    assert warning not in pooled
    assert "node pool ci.example.com/pool=builds" in pooled
    assert "(ci.example.com/pool=builds:NoSchedule)" in pooled
    assert warning not in notes("--set", "agent.nodeSelector.role=ci")
