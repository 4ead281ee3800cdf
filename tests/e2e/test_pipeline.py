"""On kind: helm install --wait, helm test, then the example pipeline builds the multi-stage sample
with --network host in a dind agent pod and pushes it to the in-cluster registry."""

from __future__ import annotations

import contextlib
import json
import re
import urllib.request

import pytest

from jdagent.cluster import jenkinsjob, release
from jdagent.cluster.portforward import port_forward
from jdagent.engine.registry import MANIFEST_TYPES

# in the folder that may use the push template (tests/e2e/kind-values.yaml)
JOB = "releases/dind-example"
# The line the built image prints (docker run), not BuildKit's echo of the RUN instruction.
IMAGE_OUTPUT = re.compile(r"(?m)^built in stage one on (x86_64|aarch64)$")


def connect(cluster, port: int):
    """python-jenkins client (it fetches CSRF crumbs itself). Imported here so that collecting this module
    (and skipping it) needs no e2e extras."""
    import jenkins

    password = release.admin_password(cluster)
    return jenkinsjob.connect(lambda: jenkins.Jenkins(f"http://127.0.0.1:{port}", username="admin",
                                                      password=password, timeout=30))


@contextlib.contextmanager
def forwarded_client(cluster):
    with port_forward(cluster, release.NAMESPACE, f"svc/{release.FULLNAME}", 8080) as port:
        yield connect(cluster, port)


@pytest.fixture(scope="module")
def jenkins_client(cluster):
    """One client for the module's ~20 minutes: a call whose port-forward died opens a new one and retries."""
    client = jenkinsjob.Reconnecting(lambda: forwarded_client(cluster))
    yield client
    client.close()


def run_job(client, request, cluster=None) -> jenkinsjob.Build:
    """One build; its console joins the test's artifacts (every build's, also one that timed out). A build
    that never started or never finished carries the agent namespace's events in its error (an agent pod
    that cannot be scheduled or pulled says why there)."""
    saved = request.node.__dict__.setdefault("jda_artifacts", {})
    stem = JOB.replace("/", "-")
    try:
        build = jenkinsjob.run_job(client, JOB, {"PUSH": True})
    except jenkinsjob.JobError as exc:
        if exc.number is not None:
            saved[f"{stem}-{exc.number}-console.txt"] = exc.console
        if cluster is None:
            raise
        # the example job pushes, so its pod is the push template's, in the push namespace
        events = release.recent_events(cluster, release.PUSH_NAMESPACE)
        raise jenkinsjob.JobError(f"{exc}\nevents in {release.PUSH_NAMESPACE}:\n{events}", exc.number,
                                  exc.console) from exc
    saved[f"{stem}-{build.number}-console.txt"] = build.console
    return build


def registry_digest(cluster, repository: str, tag: str) -> tuple[str, dict]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with port_forward(cluster, "registry", "svc/registry", 5000) as port:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/{repository}/manifests/{tag}",
                                     headers={"Accept": MANIFEST_TYPES})
        with opener.open(req, timeout=10) as resp:
            return resp.headers["Docker-Content-Digest"], json.loads(resp.read())


def test_helm_test_builds_in_the_agent_pod_spec(cluster):
    logs = release.helm_test(cluster)
    assert "PASS: multi-stage build works in the dind agent pod" in logs
    assert "dockerd storage driver: vfs (expected: vfs)" in logs


def test_pipeline_builds_on_vfs_and_pushes(cluster, jenkins_client, request):
    build = run_job(jenkins_client, request, cluster)
    assert build.result == "SUCCESS", build.console[-3000:]
    assert "storage driver: vfs" in build.console
    assert IMAGE_OUTPUT.search(build.console), "the built image's own output line is missing"
    pushed = jenkinsjob.push_digest(build.console)
    assert pushed, "no digest from `docker push` in the console"
    digest, manifest = registry_digest(cluster, "dind-example", "build")
    assert digest == pushed, "the registry holds another push than this build's"
    assert manifest.get("layers") or manifest.get("manifests")


def test_second_build_gets_a_fresh_agent_pod(cluster, jenkins_client, request):
    first = run_job(jenkins_client, request, cluster)
    second = run_job(jenkins_client, request, cluster)
    assert first.result == second.result == "SUCCESS"
    pod = [line for line in first.console.splitlines() if "Agent " in line and "is provisioned" in line]
    pod2 = [line for line in second.console.splitlines() if "Agent " in line and "is provisioned" in line]
    assert pod and pod2 and pod != pod2, "each build must run in its own pod"
    # podRetention never: the plugin deletes each agent pod (asynchronously) after its build
    assert release.pods_left(cluster) == []


def test_controller_restart_keeps_job_and_history(cluster, jenkins_client, request):
    if not (jenkins_client.get_job_info(JOB).get("lastCompletedBuild") or {}).get("number"):
        run_job(jenkins_client, request, cluster)  # this test must not depend on the order of the others
    before = jenkins_client.get_job_info(JOB)["lastCompletedBuild"]["number"]
    release.restart_controller(cluster)
    with port_forward(cluster, release.NAMESPACE, f"svc/{release.FULLNAME}", 8080) as port:
        client = connect(cluster, port)
        info = client.get_job_info(JOB)
        assert info["lastCompletedBuild"]["number"] == before
        assert client.get_build_info(JOB, before)["result"] == "SUCCESS"
