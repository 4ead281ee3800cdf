"""On kind: helm install --wait, helm test, then the example pipeline builds the multi-stage sample
with --network host in a dind agent pod and pushes it to the in-cluster registry."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from jdagent import kind

JOB = "dind-example"


def connect(cluster, port: int):
    """python-jenkins client (it fetches CSRF crumbs itself), once Jenkins answers as admin. Imported here
    so that collecting this module (and skipping it) needs no e2e extras."""
    import jenkins

    client = jenkins.Jenkins(f"http://127.0.0.1:{port}", username="admin",
                             password=kind.admin_password(cluster), timeout=30)
    deadline = time.monotonic() + 600
    while True:
        try:
            client.get_whoami()
            return client
        except Exception:
            assert time.monotonic() < deadline, "Jenkins did not answer within 10 minutes"
            print("[e2e] waiting for Jenkins", flush=True)
            time.sleep(5)


@pytest.fixture(scope="module")
def jenkins_client(cluster):
    with kind.port_forward(cluster, kind.NAMESPACE, f"svc/{kind.RELEASE}-jenkins-dind-agent", 8080) as port:
        yield connect(cluster, port)


def run_job(client, request, timeout: int = 1200) -> dict:
    queue_id = client.build_job(JOB, {"PUSH": True})
    deadline = time.monotonic() + timeout
    number = None
    while number is None:
        item = client.get_queue_item(queue_id)
        number = (item.get("executable") or {}).get("number")
        assert time.monotonic() < deadline, f"{JOB} never left the queue: {item.get('why')}"
        if number is None:
            print(f"[e2e] queued: {item.get('why')}", flush=True)
            time.sleep(5)
    while True:
        info = client.get_build_info(JOB, number)
        if not info["building"] and info["result"]:
            break
        assert time.monotonic() < deadline, f"{JOB} #{number} still running after {timeout}s"
        print(f"[e2e] {JOB} #{number} building", flush=True)
        time.sleep(10)
    console = client.get_build_console_output(JOB, number)
    request.node.jda_artifacts = {f"{JOB}-{number}-console.txt": console}
    return {"number": number, "result": info["result"], "console": console}


def registry_manifest(cluster, repository: str, tag: str) -> dict:
    with kind.port_forward(cluster, "registry", "svc/registry", 5000) as port:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/{repository}/manifests/{tag}",
                                     headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                                                        "application/vnd.oci.image.manifest.v1+json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())


def test_helm_test_builds_in_the_agent_pod_spec(cluster):
    out = cluster.helm("test", kind.RELEASE, "-n", kind.NAMESPACE, "--logs", "--timeout", "10m")
    assert "PASS: multi-stage build works in the dind agent pod" in out.stdout


def test_pipeline_builds_on_vfs_and_pushes(cluster, jenkins_client, request):
    build = run_job(jenkins_client, request)
    assert build["result"] == "SUCCESS", build["console"][-3000:]
    assert "storage driver: vfs" in build["console"]
    assert "built in stage one" in build["console"]
    manifest = registry_manifest(cluster, "dind-example", "build")
    assert manifest["layers"]


def test_second_build_gets_a_fresh_agent_pod(cluster, jenkins_client, request):
    first = run_job(jenkins_client, request)
    second = run_job(jenkins_client, request)
    assert first["result"] == second["result"] == "SUCCESS"
    pod = [line for line in first["console"].splitlines() if "Agent " in line and "is provisioned" in line]
    pod2 = [line for line in second["console"].splitlines() if "Agent " in line and "is provisioned" in line]
    assert pod and pod2 and pod != pod2, "each build must run in its own pod"
    # podRetention never: no agent pod outlives its build
    leftover = cluster.kubectl("-n", kind.AGENT_NAMESPACE, "get", "pods", "-l",
                               "app.kubernetes.io/component=agent", "-o", "name").stdout.split()
    assert [p for p in leftover if "dind-build-test" not in p] == []


def test_controller_restart_keeps_job_and_history(cluster, jenkins_client):
    before = jenkins_client.get_job_info(JOB)["lastCompletedBuild"]["number"]
    cluster.kubectl("-n", kind.NAMESPACE, "delete", "pod", f"{kind.RELEASE}-jenkins-dind-agent-0")
    cluster.kubectl("-n", kind.NAMESPACE, "rollout", "status", f"statefulset/{kind.RELEASE}-jenkins-dind-agent",
                    "--timeout=600s")
    with kind.port_forward(cluster, kind.NAMESPACE, f"svc/{kind.RELEASE}-jenkins-dind-agent", 8080) as port:
        client = connect(cluster, port)
        info = client.get_job_info(JOB)
        assert info["lastCompletedBuild"]["number"] == before
        assert client.get_build_info(JOB, before)["result"] == "SUCCESS"
