"""The agent pod's start on a real engine: a dind that never answers stops jnlp within
agent.dind.readyTimeoutSeconds, with a message naming the dind container (the Kubernetes plugin fails the
build when jnlp terminates), and agent.dind.minAPIVersion reaches dockerd (DOCKER_MIN_API_VERSION)."""

from __future__ import annotations

import copy
import time

import pytest

from jdagent.chart.manifest import container
from jdagent.engine import agentpod
from jdagent.engine.podrun import PodRunner

pytestmark = pytest.mark.docker


def test_a_dind_that_dies_stops_jnlp_within_the_timeout(docker_client, standins):
    overrides = agentpod.standin_overrides(standins, dind={"readyTimeoutSeconds": 5})
    manifest, spec = agentpod.render_agent_pod(overrides=overrides, kube_version="1.28.0")  # both regular containers
    spec = copy.deepcopy(spec)
    dind = container(spec, "dind")
    dind["command"] = ["/bin/sh", "-c", "echo 'failed to start daemon: (a broken dind)' >&2; exit 1"]
    dind.pop("args", None)
    with PodRunner(spec, client=docker_client, files=agentpod.pod_files(manifest, spec), name="jda-broken") as pod:
        started = time.monotonic()
        status = pod.container("jnlp").wait(timeout=60)
        took = time.monotonic() - started
        log = pod.logs("jnlp")
        assert status["StatusCode"] == 1, log
        assert took < 5 + 10, took
        assert "dockerd did not answer on tcp://localhost:2375 within 5s (agent.dind.readyTimeoutSeconds)" in log
        assert "-c dind" in log and "jenkins-agent" not in log
        assert "a broken dind" in pod.logs("dind")


@pytest.mark.parametrize("minimum", ["", "1.30"], ids=["dockerd-default", "raised"])
def test_min_api_version_reaches_dockerd(docker_client, standins, minimum):
    """dockerd's own minimum is 1.24 up to 26.1 and 1.40 from 29 on (tests/unit/data/upstream/dockerd-pin.yaml),
    which refuses old docker-java and Testcontainers clients; agent.dind.minAPIVersion sets it: raised to
    1.30, a 1.29 client is refused."""
    overrides = agentpod.standin_overrides(standins, dind={"minAPIVersion": minimum})
    manifest, spec = agentpod.render_agent_pod(overrides=overrides)
    with PodRunner(spec, client=docker_client, files=agentpod.pod_files(manifest, spec), name="jda-api") as pod:
        reported = pod.exec("jnlp", ["docker", "version", "--format", "{{.Server.MinAPIVersion}}"]).output.strip()
        server = pod.exec("jnlp", ["docker", "version", "--format", "{{.Server.Version}}"]).output.strip()
        own = "1.40" if int(server.split(".")[0]) >= 29 else "1.24"
        assert reported == (minimum or own), server
        old = pod.exec("jnlp", ["docker", "version"], environment={"DOCKER_API_VERSION": "1.29"})
        if minimum or own == "1.40":
            assert old.exit_code != 0 and "client version 1.29 is too old" in old.output, old.output
        else:
            assert old.exit_code == 0, old.output
        floor = minimum or own
        assert pod.exec("jnlp", ["docker", "version"], environment={"DOCKER_API_VERSION": floor}).exit_code == 0
