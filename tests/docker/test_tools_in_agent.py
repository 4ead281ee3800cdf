"""Docker tools as users run them from the jnlp container, on the chart's agent pod on a Docker engine.

Testcontainers: testcontainers-python 4.15.0 (from PyPI, installed offline into a jnlp image built FROM the
jnlp stand-in) against the pod's dockerd, with the reaper on and pointed at Ryuk 0.14.0 built here from its
Go module. The session starts a service from a local image, waits for it over HTTP, asks it through the
mapped port, and is then killed like an aborted build: the reaper alone removes its container. It sets what
the chart README's Jenkinsfile sets, TESTCONTAINERS_CONNECTION_MODE=gateway_ip (here the library would pick it
by itself: jnlp has /.dockerenv on a Docker engine); a second test shows why with docker_host, the library's
choice on Kubernetes, where registrations with the reaper get lost in dockerd's userland proxy.

Compose: compose v5.5.0, the plugin of the pinned docker:29.7.2-dind (here the dind29 stand-in, built from
its module), which docker-setup copies into jnlp beside the CLI as it copies buildx: `docker compose up
--wait` of two services with healthchecks on a named network, then `docker compose down -v` leaves nothing.
Debian's dind stand-in has no compose plugin: without the dind29 build the compose test skips naming it
(JDA_REQUIRE_DIND29=1 makes that a failure).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from jdagent import gobuild
from jdagent.chart.render import deep_merge
from jdagent.engine import agentpod, dockerd, images, toolimages
from jdagent.engine.podrun import PodRunner
from tests.agenttools import (
    CONNECTION_MODE,
    check_compose,
    check_registrations,
    check_testcontainers,
    compose_up_and_down,
    reaper_registrations,
    run_testcontainers_session,
)

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def tool_images(docker_client, standins) -> dict[str, str]:
    """Ryuk (Go build cached in .tools/go/) and the jnlp stand-in with testcontainers-python."""
    try:
        return {"ryuk": toolimages.ensure_ryuk(docker_client),
                "jnlp": toolimages.ensure_jnlp_tools(docker_client, standins["jnlp"])}
    except gobuild.GoBuildError as exc:
        if os.environ.get("JDA_REQUIRE_DOCKER") == "1":
            pytest.fail(f"JDA_REQUIRE_DOCKER=1 but Ryuk cannot be built: {exc}")
        pytest.skip(f"Ryuk cannot be built from its Go module here: {exc}")



def agent_pod(docker_client, standins, **agent) -> PodRunner:
    overrides = deep_merge(agentpod.standin_overrides(standins), {"agent": agent})
    manifest, spec = agentpod.render_agent_pod(overrides=overrides)
    return PodRunner(spec, client=docker_client, files=agentpod.pod_files(manifest, spec), name="jda-tools")


@pytest.fixture(scope="module")
def testcontainers_pod(docker_client, standins, tool_images) -> Iterator[PodRunner]:
    with agent_pod(docker_client, standins, jnlp={"image": agentpod.image_values(tool_images["jnlp"])}) as pod:
        for image in (tool_images["ryuk"], standins["busybox"]):
            agentpod.load_image(pod, docker_client, image)
        yield pod


def test_testcontainers_from_jnlp_runs_a_service_and_its_reaper_removes_it(testcontainers_pod, standins,
                                                                           tool_images):
    sh, put = agentpod.shell_callables(testcontainers_pod)
    result = run_testcontainers_session(sh, put, standins["busybox"], tool_images["ryuk"])
    lines = check_testcontainers(result, tool_images["ryuk"])
    assert result.facts["mode"] == CONNECTION_MODE, result.facts
    assert result.facts["ryuk_socket"] == "/var/run/docker.sock", result.facts
    print("\n" + "\n".join(lines))


def test_testcontainers_sessions_register_with_their_reaper_through_the_bridge_gateway(testcontainers_pod,
                                                                                      standins, tool_images):
    """Six sessions with the README's TESTCONTAINERS_CONNECTION_MODE=gateway_ip all get the reaper's ACK. Six with
    docker_host (the library's choice on Kubernetes, where jnlp has no /.dockerenv; on a Docker engine it picks
    gateway_ip by itself) go to localhost, through dockerd's userland proxy: their tally is printed."""
    sh, put = agentpod.shell_callables(testcontainers_pod)
    args = (sh, put, standins["busybox"], tool_images["ryuk"])
    recommended = reaper_registrations(*args, CONNECTION_MODE, runs=6)
    other = reaper_registrations(*args, "docker_host", runs=6)
    print("\n" + check_registrations(recommended, other, "docker_host"))
    left = sh("docker ps -aq", 60)
    assert left == (0, ""), left


@pytest.fixture(scope="module")
def compose_dind(docker_client) -> str:
    """The pinned-daemon stand-in, the dind image whose CLI plugins include compose (as dind29_standin finds
    or, with JDA_BUILD_DIND29=1, builds it); the skip says why compose needs it."""
    try:
        return images.ensure_dind29(docker_client, build=os.environ.get("JDA_BUILD_DIND29") == "1")
    except images.Dind29Missing as exc:
        message = f"compose needs the pinned-daemon stand-in (Debian's dind stand-in has no compose plugin): {exc}"
        if os.environ.get("JDA_REQUIRE_DIND29") == "1":
            pytest.fail(f"JDA_REQUIRE_DIND29=1 but {message}")
        pytest.skip(message)


@pytest.fixture
def compose_pod(docker_client, standins, compose_dind) -> Iterator[PodRunner]:
    with agent_pod(docker_client, standins, dind={"image": agentpod.image_values(compose_dind)}) as pod:
        agentpod.load_image(pod, docker_client, standins["busybox"])
        yield pod


def test_compose_up_wait_and_down_leave_nothing_behind(compose_pod, standins):
    sh, _ = agentpod.shell_callables(compose_pod)
    code, version = sh("docker compose version --short", 60)
    assert code == 0 and version.strip().lstrip("v") == dockerd.COMPOSE.lstrip("v"), version
    plugin = sh("ls /usr/local/lib/docker/cli-plugins", 60)[1].split()
    assert "docker-compose" in plugin and "docker-buildx" in plugin, plugin
    result = compose_up_and_down(*agentpod.shell_callables(compose_pod), standins["busybox"])
    print("\n" + "\n".join(check_compose(result)))
