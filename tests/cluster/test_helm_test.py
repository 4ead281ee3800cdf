"""`helm test` on the real kubelet: the chart's dind build pod (the agent pod spec itself) runs a
multi-stage build with `--network host`, with dind as a native sidecar that the kubelet started
(and probed) before jnlp, pushes the image to an in-cluster registry (a Deployment of the registry
stand-in) and pulls it back by digest. The answers come from the pod's own log, the kubelet's pod
status and the registry's API."""

from __future__ import annotations

import urllib.request
from datetime import datetime

import pytest

from jdagent.cluster.portforward import port_forward
from jdagent.paths import CHART_DIR
from tests.cluster.kube import agent_namespace, delete_namespace, get_json, helm, namespace, standin_values, values_file

# the default layout: the release namespace enforces restricted; the test pod runs in the agent namespace
RELEASE, RELEASE_NS = "ci", "ci-helmtest"
NS = agent_namespace(RELEASE_NS, RELEASE)
TEST_POD = f"{RELEASE}-jenkins-dind-agent-dind-build-test"
MANIFEST_TYPES = ", ".join(("application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
                            "application/vnd.docker.distribution.manifest.v2+json",
                            "application/vnd.docker.distribution.manifest.list.v2+json"))


@pytest.fixture(scope="module")
def helm_test(cluster, standins, in_cluster_registry, tmp_path_factory):
    namespace(cluster, RELEASE_NS, level="restricted")
    values = values_file(tmp_path_factory.mktemp("helmtest"),
                         standin_values(standins, helmTest={"registry": in_cluster_registry}))
    helm(cluster, "4", "install", RELEASE, str(CHART_DIR), "-n", RELEASE_NS, "-f", str(values))
    proc = helm(cluster, "4", "test", RELEASE, "-n", RELEASE_NS, "--timeout", "10m", check=False, timeout=720)
    log = cluster.kubectl("-n", NS, "logs", f"pod/{TEST_POD}", "-c", "jnlp", check=False).stdout
    pod = get_json(cluster, "-n", NS, "get", "pod", TEST_POD)
    yield proc, log, pod, cluster
    helm(cluster, "4", "uninstall", RELEASE, "-n", RELEASE_NS, "--wait", check=False)
    delete_namespace(cluster, NS)
    delete_namespace(cluster, RELEASE_NS)


def test_helm_test_passes_with_a_real_multi_stage_build(helm_test):
    proc, log, _, _ = helm_test
    assert proc.returncode == 0, f"helm test failed: {proc.stderr[-2000:]}\ntest pod log:\n{log}"
    assert "PASS: multi-stage build works in the dind agent pod" in log, log
    assert "image says:" in log and "built in stage one" in log, log


def test_dockerd_runs_on_vfs_in_the_real_pod(helm_test):
    _, log, _, _ = helm_test
    assert "dockerd storage driver: vfs (expected: vfs)" in log, log


def test_dind_is_a_native_sidecar_started_and_probed_before_jnlp(helm_test):
    _, _, pod, _ = helm_test
    sidecars = {c["name"]: c for c in pod["spec"].get("initContainers", []) if c.get("restartPolicy") == "Always"}
    assert "dind" in sidecars, "dind is not a native sidecar (initContainer with restartPolicy Always)"
    status = {s["name"]: s for s in pod["status"]["initContainerStatuses"]}["dind"]
    jnlp = {s["name"]: s for s in pod["status"]["containerStatuses"]}["jnlp"]
    dind_state = status["state"].get("terminated")
    jnlp_state = jnlp["state"].get("terminated")
    assert dind_state and jnlp_state, (status, jnlp)

    def at(stamp: str) -> datetime:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))

    # the kubelet starts jnlp only after the sidecar's startupProbe passed; dind outlives the build
    assert at(dind_state["startedAt"]) < at(jnlp_state["startedAt"]), (dind_state, jnlp_state)
    assert at(dind_state["finishedAt"]) >= at(jnlp_state["finishedAt"]), (dind_state, jnlp_state)
    assert jnlp_state["exitCode"] == 0 and dind_state["exitCode"] == 0, (dind_state, jnlp_state)
    assert status["restartCount"] == 0, status
    assert pod["status"]["phase"] == "Succeeded", pod["status"]


def test_the_image_is_pushed_to_the_in_cluster_registry_and_pulled_back_by_digest(helm_test):
    proc, log, _, cluster = helm_test
    assert proc.returncode == 0, log
    passed = [line for line in log.splitlines() if line.startswith("PASS: pushed to ")]
    assert passed, log
    digest = passed[0].rsplit("@", 1)[1].rstrip(")")
    assert digest.startswith("sha256:"), passed
    # the registry's own answer: it serves that manifest by digest
    with port_forward(cluster, "registry", "svc/registry", 5000) as port:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v2/jda-helm-test/manifests/{digest}", method="HEAD",
                                         headers={"Accept": MANIFEST_TYPES})
        with urllib.request.urlopen(request, timeout=20) as answer:
            assert answer.status == 200
            assert answer.headers["Docker-Content-Digest"] == digest
