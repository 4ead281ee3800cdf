"""Docker-engine tier: a reachable engine, the stand-in images, and registries the tests start.

Without an engine every test here SKIPS naming what is missing; with JDA_REQUIRE_DOCKER=1 (set by
.ci/run) a missing engine is an error instead, so CI cannot pass by skipping.
"""

from __future__ import annotations

import os

import docker
import pytest

from jdagent import images, registry
from jdagent.podrun import remove_leftovers


def _engine() -> docker.DockerClient | str:
    try:
        client = docker.from_env(version="auto", timeout=600)
        client.ping()
        return client
    except Exception as exc:  # any failure means: no usable engine
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        return f"no Docker engine reachable at {host} ({type(exc).__name__}: {exc})"


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    engine = _engine()
    if isinstance(engine, str):
        if os.environ.get("JDA_REQUIRE_DOCKER") == "1":
            pytest.fail(f"JDA_REQUIRE_DOCKER=1 but {engine}")
        pytest.skip(engine)
    remove_leftovers(engine)
    return engine


@pytest.fixture(scope="session")
def standins(docker_client) -> dict[str, str]:
    return images.ensure_all(docker_client)


@pytest.fixture(scope="session")
def auth_registry(docker_client, standins):
    reg = registry.start(docker_client, standins["registry"], auth=True)
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def open_registry(docker_client, standins):
    """A registry without auth holding the busybox base image, for dockerds that must pull it."""
    reg = registry.start(docker_client, standins["registry"], auth=False)
    image = docker_client.images.get(standins["busybox"])
    target = f"127.0.0.1:{reg.host_port}/busybox"
    image.tag(target, "stand-in")
    for line in docker_client.images.push(target, "stand-in", stream=True, decode=True):
        if "error" in line:
            pytest.fail(f"seeding the open registry failed: {line['error']}")
    docker_client.images.remove(f"{target}:stand-in")
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def prewarmed_dind(docker_client, standins) -> str:
    """The stand-in dind with the busybox stand-in baked in (scripts/build-prewarmed-dind)."""
    from jdagent import prewarm

    tag = f"jda-prewarmed-dind:{standins['dind'].split(':')[1]}-{standins['busybox'].split(':')[1]}"
    try:
        docker_client.images.get(tag)
    except docker.errors.ImageNotFound:
        prewarm.build(docker_client, standins["dind"], [standins["busybox"]], tag, pull=False)
    return tag
