"""The controller on the real node: its StatefulSet is admitted, its pod is scheduled onto the node,
and its JENKINS_HOME claim binds to one of the local PersistentVolumes the provider pre-makes (no
provisioner runs). The Jenkins image cannot exist on these machines: the test reads the kubelet's own
report of the failed pull and then skips the rest, naming the image."""

from __future__ import annotations

import pytest

from jdagent.paths import CHART_DIR
from tests.cluster.kube import agent_namespace, delete_namespace, find_json, get_json, helm, namespace, wait_for

NS, RELEASE = "controller", "ci"
POD = f"{RELEASE}-jenkins-dind-agent-0"
CLAIM = f"jenkins-home-{POD}"


@pytest.fixture(scope="module")
def installed(cluster):
    # the default layout: the controller alone in a namespace that enforces Pod Security restricted
    namespace(cluster, NS, level="restricted")
    helm(cluster, "4", "install", RELEASE, str(CHART_DIR), "-n", NS)
    yield cluster
    helm(cluster, "4", "uninstall", RELEASE, "-n", NS, check=False)
    cluster.kubectl("-n", NS, "delete", "pvc", CLAIM, "--ignore-not-found", check=False)
    delete_namespace(cluster, agent_namespace(NS, RELEASE))
    delete_namespace(cluster, NS)


def test_the_controller_pod_is_scheduled_with_its_home_claim_bound(installed):
    cluster = installed
    claim = wait_for("the JENKINS_HOME claim to bind", lambda: (
        c := find_json(cluster, "-n", NS, "get", "pvc", CLAIM)) and c["status"].get("phase") == "Bound" and c)
    volume = get_json(cluster, "get", "pv", claim["spec"]["volumeName"])
    assert volume["spec"]["local"]["path"], volume["spec"]
    assert volume["spec"]["claimRef"]["name"] == CLAIM
    pod = wait_for("the scheduler to place the controller pod", lambda: (
        p := find_json(cluster, "-n", NS, "get", "pod", POD)) and p["spec"].get("nodeName") and p)
    assert pod["spec"]["nodeName"] == cluster.name
    scheduled = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert scheduled and scheduled[0]["status"] == "True", pod["status"]


def test_the_kubelet_reports_the_missing_jenkins_image(installed):
    cluster = installed
    pod = get_json(cluster, "-n", NS, "get", "pod", POD)
    images = {c["image"] for c in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]}
    jenkins = sorted(i for i in images if i.startswith("jenkins/jenkins"))
    assert jenkins, images

    def failed_pull() -> list[dict]:
        events = get_json(cluster, "-n", NS, "get", "events", "--field-selector",
                          f"involvedObject.name={POD}")["items"]
        return [e for e in events if e["reason"] in ("Failed", "ErrImagePull", "BackOff")
                and any(i in e["message"] for i in jenkins)]

    reported = wait_for("the kubelet's report of the failed pull", failed_pull, timeout=180, every=3)
    assert any(e["source"].get("component") == "kubelet" or e.get("reportingComponent") == "kubelet"
               for e in reported), reported
    pytest.skip(f"{jenkins[0]} cannot be pulled on this machine (the kubelet says: {reported[0]['message'][:160]}); "
                f"Jenkins itself is checked against recorded upstream facts instead")
