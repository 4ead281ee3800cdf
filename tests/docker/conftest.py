"""Docker-engine tier: a reachable engine, the stand-in images, and registries the tests start.

Without an engine every test here SKIPS naming what is missing; with JDA_REQUIRE_DOCKER=1 (set by
.ci/run) a missing engine is an error instead, so CI cannot pass by skipping.
"""

from __future__ import annotations

import os

import docker
import pytest

from jdagent.engine import images, registry
from jdagent.engine.podrun import remove_leftovers


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
    registry.seed(docker_client, reg, standins["busybox"], "busybox", "stand-in")
    yield reg
    reg.stop()


def _prewarmed(docker_client, standins, images: list[str], name: str) -> str:
    """A prewarmed stand-in dind (scripts/build-prewarmed-dind), reused while its inputs are unchanged."""
    import hashlib
    import inspect

    from jdagent.engine import prewarm

    key = hashlib.sha256(("|".join([standins["dind"], *images]) + inspect.getsource(prewarm)).encode())
    tag = f"jda-prewarmed-{name}:{key.hexdigest()[:12]}"
    try:
        docker_client.images.get(tag)
    except docker.errors.ImageNotFound:
        prewarm.build(docker_client, standins["dind"], images, tag, pull=False)
    return tag


@pytest.fixture(scope="session")
def prewarmed_dind(docker_client, standins) -> str:
    """The stand-in dind with the busybox stand-in baked in, as a data root for both drivers."""
    return _prewarmed(docker_client, standins, [standins["busybox"]], "dind")


@pytest.fixture(scope="session")
def whiteout_image(docker_client, standins) -> str:
    """A two-layer image whose second layer deletes a file of the first: its layer holds a whiteout."""
    import io

    dockerfile = f"FROM {standins['busybox']}\nRUN rm /bin/wc\n".encode()
    tag = f"jda-whiteout:{standins['busybox'].split(':')[1]}"
    try:
        docker_client.images.get(tag)
    except docker.errors.ImageNotFound:
        docker_client.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, rm=True)
    return tag


@pytest.fixture(scope="session")
def prewarmed_whiteouts(docker_client, standins, whiteout_image) -> str:
    """The stand-in dind with the whiteout image baked in: a vfs data root, archives for overlay2."""
    return _prewarmed(docker_client, standins, [whiteout_image], "whiteouts")


@pytest.fixture(scope="session")
def dind29_standin(docker_client) -> str:
    """The pinned-daemon stand-in (jda-standin-dind29: dockerd 29.7.1, containerd v2.3.3, runc v1.4.3, CLI 29.7.2,
    built from their Go modules). Its Go builds (about 15 minutes cold on two cores) are made here only with
    JDA_BUILD_DIND29=1; otherwise they must be in .tools/go/ already (`python -m jdagent.engine.images --dind29`),
    else the tests that need it skip naming that command, or fail with JDA_REQUIRE_DIND29=1."""
    try:
        return images.ensure_dind29(docker_client, build=os.environ.get("JDA_BUILD_DIND29") == "1")
    except images.Dind29Missing as exc:
        if os.environ.get("JDA_REQUIRE_DIND29") == "1":
            pytest.fail(f"JDA_REQUIRE_DIND29=1 but {exc}")
        pytest.skip(str(exc))
