"""The in-cluster pull-through mirror (mirror.enabled) on a real engine: the chart's rendered mirror pod
(Distribution in proxy mode behind the nginx front; the stand-ins run the rendered configs and commands)
in front of an "upstream" registry, and two rendered agent pods whose dockerd pulls a Docker Hub image
through it. The upstream serves the image once (one manifest GET, the "pull" Docker Hub counts;
Distribution 2.8, the stand-in here, fetches each layer twice for that first miss, 3.x once); the second
agent, and later pulls, cost the upstream nothing but a tag check (HEAD); each agent keeps its own
daemon state.

Requests for one blob at the very same instant: Distribution alone streams a blob it is still fetching
from the upstream again for every concurrent request (registry/proxy/proxyblobstore.go); the front's
cache lock lets one of them through and serves the rest from its cache, which the second test shows
with eight requests racing for a 48 MiB layer. The cluster tier repeats this with whole agent pods.
"""

from __future__ import annotations

import hashlib
import io
import threading
import urllib.request
from urllib.parse import urlsplit

import pytest

from jdagent.chart.render import deep_merge
from jdagent.engine import agentpod, registry
from jdagent.engine.podrun import PodRunner

pytestmark = pytest.mark.docker
IMAGE = "busybox:1.37.0"  # a Docker Hub name: only those go through --registry-mirror


@pytest.fixture
def upstream(docker_client, standins):
    """An open registry holding the busybox stand-in as library/busybox:1.37.0, like Docker Hub would."""
    reg = registry.start(docker_client, standins["registry"], run_id="upstream", auth=False)
    registry.seed(docker_client, reg, standins["busybox"], "library/busybox", "1.37.0")
    served_before = len(reg.served())
    yield reg, served_before
    reg.stop()


def test_two_agents_pull_through_the_mirror_and_the_upstream_serves_once(docker_client, standins, upstream):
    reg, served_before = upstream
    overrides = deep_merge(agentpod.standin_overrides(standins),
                           agentpod.mirror_values(standins, f"http://{reg.address}"))
    manifest = agentpod.render(overrides=overrides, kube_version="1.33.0")
    mirror_spec, files = agentpod.mirror_pod(manifest)
    agent_spec = manifest.agent_pod()["spec"]
    [mirror_url] = agentpod.registry_mirrors(agent_spec)
    host = urlsplit(mirror_url).hostname
    with PodRunner(mirror_spec, client=docker_client, files=files, name="jda-mirror") as mirror:
        registry.wait_http(f"http://{mirror.ip_address()}:5000/v2/")
        hosts = {host: mirror.ip_address()}
        agent_files = agentpod.pod_files(manifest, agent_spec)
        with PodRunner(agent_spec, client=docker_client, files=agent_files, hosts=hosts, name="jda-agent1") as one, \
                PodRunner(agent_spec, client=docker_client, files=agent_files, hosts=hosts, name="jda-agent2") as two:
            info = one.exec("jnlp", ["docker", "info", "--format", "{{json .RegistryConfig.Mirrors}}"]).output
            assert mirror_url.rstrip("/") in info
            # one agent pulls, then the other: the second costs the upstream nothing
            costs = []
            for pod in (one, two):
                pulled = pod.exec("jnlp", ["docker", "pull", IMAGE])
                assert pulled.exit_code == 0, pulled.output
                costs.append(reg.gets_since(served_before))
            for pod in (one, two):  # no shared daemon state: each dockerd has exactly what it pulled
                images = pod.exec("jnlp", ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"]).output.split()
                assert images == [IMAGE]
                assert pod.exec("jnlp", ["docker", "run", "--rm", IMAGE, "true"]).exit_code == 0
            first = costs[0]
            assert first["manifests"] == 1, first
            assert f"/v2/library/busybox/blobs/{config_blob(one)}" in first["blobs"], first
            assert costs[1] == first, f"the second agent cost the upstream {costs[1]} after {first}"
            # warm cache: another pull costs the upstream no manifest and no layer
            assert one.exec("jnlp", ["docker", "rmi", IMAGE]).exit_code == 0
            again = one.exec("jnlp", ["docker", "pull", IMAGE])
            assert again.exit_code == 0, again.output
            assert reg.gets_since(served_before) == first


def config_blob(pod: PodRunner) -> str:
    """The digest of IMAGE's config blob (its image ID), as the registry serves it."""
    return pod.exec("jnlp", ["docker", "image", "inspect", IMAGE, "--format", "{{.Id}}"]).output.strip()


@pytest.fixture
def big_layer(docker_client, standins, upstream):
    """library/big:1 in the upstream: the busybox stand-in plus one 48 MiB layer of random bytes (big
    enough that requests racing for it overlap the mirror's fetch). Returns the layer's digest."""
    reg, _ = upstream
    dockerfile = f"FROM {standins['busybox']}\nRUN dd if=/dev/urandom of=/big bs=1048576 count=48\n"
    tag = "jda-test-mirror-big:1"
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, forcerm=True)
    try:
        registry.seed(docker_client, reg, tag, "library/big", "1")
    finally:
        docker_client.images.remove(tag, force=True)
    _, manifest = reg.manifest("library/big", "1")
    return max(manifest["layers"], key=lambda layer: layer["size"])["digest"]


def test_requests_racing_for_one_blob_cost_the_upstream_one_fetch(docker_client, standins, upstream, big_layer):
    reg, served_before = upstream
    overrides = deep_merge(agentpod.standin_overrides(standins),
                           agentpod.mirror_values(standins, f"http://{reg.address}"))
    mirror_spec, files = agentpod.mirror_pod(agentpod.render(overrides=overrides, kube_version="1.33.0"))
    racers = 8
    with PodRunner(mirror_spec, client=docker_client, files=files, name="jda-mirror-race") as mirror:
        base = f"http://{mirror.ip_address()}:5000"
        registry.wait_http(f"{base}/v2/")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        start = threading.Barrier(racers)
        answers: list[tuple[str, str]] = []

        def fetch() -> None:
            start.wait()
            with opener.open(f"{base}/v2/library/big/blobs/{big_layer}", timeout=300) as resp:
                body = resp.read()
            answers.append((resp.headers.get("X-Jda-Front-Cache", ""), "sha256:" + hashlib.sha256(body).hexdigest()))

        threads = [threading.Thread(target=fetch) for _ in range(racers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
        fetched = reg.gets_since(served_before)["blobs"].get(f"/v2/library/big/blobs/{big_layer}", 0)
        log = mirror.logs("front")
    assert len(answers) == racers, f"only {len(answers)} of {racers} requests were answered; front log:\n{log}"
    assert {digest for _, digest in answers} == {big_layer}, "a client got other bytes than the blob it asked for"
    statuses = sorted(status for status, _ in answers)
    # one request went through the lock to Distribution; the others waited for it and read the cache
    assert statuses == ["HIT"] * (racers - 1) + ["MISS"], statuses
    # Distribution 2.8 (the stand-in) fetches a miss twice, once to store it and once to stream it;
    # without the front every racer that came while it was fetching would add one more
    assert 1 <= fetched <= 2, f"the upstream served the blob {fetched} times for {racers} racing requests"
