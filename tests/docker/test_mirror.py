"""The in-cluster pull-through mirror (mirror.enabled) on a real engine: the chart's rendered mirror pod
(Distribution in proxy mode, the stand-in runs the rendered config and command) in front of an
"upstream" registry, and two rendered agent pods whose dockerd pulls a Docker Hub image through it at
the same time. The upstream serves the image's manifest once (a "pull" as Docker Hub counts them);
once cached, later pulls cost the upstream nothing but a tag check; each agent keeps its own daemon state.

Distribution streams a layer that is still being cached straight from the upstream to a second,
concurrent request (registry/proxy/proxyblobstore.go, ServeBlob), so layers requested at the same
instant may cross the upstream link more than once (measured here: 2 to 4 times per layer for two
agents); Docker Hub's limit counts manifest pulls, which stay at one."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest

from jdagent import agentpod, registry
from jdagent.podrun import PodRunner

pytestmark = pytest.mark.docker
IMAGE = "busybox:1.37.0"  # a Docker Hub name: only those go through --registry-mirror


def wait_ready(url: str, deadline_s: float = 60) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with opener.open(url, timeout=3) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        assert time.monotonic() < deadline, f"{url} did not answer"
        time.sleep(0.3)


@pytest.fixture
def upstream(docker_client, standins):
    """An open registry holding the busybox stand-in as library/busybox:1.37.0, like Docker Hub would."""
    reg = registry.start(docker_client, standins["registry"], run_id="upstream", auth=False)
    target = f"127.0.0.1:{reg.host_port}/library/busybox"
    docker_client.images.get(standins["busybox"]).tag(target, "1.37.0")
    for line in docker_client.images.push(target, "1.37.0", stream=True, decode=True):
        assert "error" not in line, line
    docker_client.images.remove(f"{target}:1.37.0")
    served_before = len(reg.served())
    yield reg, served_before
    reg.stop()


def test_two_agents_pull_through_the_mirror_and_the_upstream_serves_once(docker_client, standins, upstream):
    reg, served_before = upstream
    overrides = agentpod.deep_merge(agentpod.standin_overrides(standins), {
        "mirror": {"enabled": True, "upstream": f"http://{reg.address}",
                   "image": agentpod.image_values(standins["registry"])}})
    manifest = agentpod.render(overrides=overrides, kube_version="1.33.0")
    mirror_spec, files = agentpod.mirror_pod(manifest)
    agent_spec = manifest.agent_pod()["spec"]
    [mirror_url] = agentpod.registry_mirrors(agent_spec)
    host = urlsplit(mirror_url).hostname
    with PodRunner(mirror_spec, client=docker_client, files=files, name="jda-mirror") as mirror:
        wait_ready(f"http://{mirror.ip_address()}:5000/v2/")
        hosts = {host: mirror.ip_address()}
        agent_files = agentpod.pod_files(manifest, agent_spec)
        with PodRunner(agent_spec, client=docker_client, files=agent_files, hosts=hosts, name="jda-agent1") as one, \
                PodRunner(agent_spec, client=docker_client, files=agent_files, hosts=hosts, name="jda-agent2") as two:
            info = one.exec("jnlp", ["docker", "info", "--format", "{{json .RegistryConfig.Mirrors}}"]).output
            assert mirror_url.rstrip("/") in info
            results: dict[str, object] = {}

            def pull(name: str, pod: PodRunner) -> None:
                results[name] = pod.exec("jnlp", ["docker", "pull", IMAGE])

            workers = [threading.Thread(target=pull, args=(n, p)) for n, p in (("one", one), ("two", two))]
            for w in workers:
                w.start()
            for w in workers:
                w.join(timeout=180)
            for name in ("one", "two"):
                result = results[name]
                assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
            for pod in (one, two):  # no shared daemon state: each dockerd has exactly what it pulled
                images = pod.exec("jnlp", ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"]).output.split()
                assert images == [IMAGE]
                assert pod.exec("jnlp", ["docker", "run", "--rm", IMAGE, "true"]).exit_code == 0
            first = upstream_gets(reg, served_before)
            assert first["manifests"] == 1, f"two agents cost the upstream {first['manifests']} pulls: {first}"
            layers = {f"/v2/library/busybox/blobs/{d}" for d in layer_digests(one)}
            assert layers <= set(first["blobs"]), first
            # warm cache: another pull costs the upstream no manifest and no layer
            assert one.exec("jnlp", ["docker", "rmi", IMAGE]).exit_code == 0
            again = one.exec("jnlp", ["docker", "pull", IMAGE])
            assert again.exit_code == 0, again.output
            assert upstream_gets(reg, served_before) == first


def layer_digests(pod: PodRunner) -> list[str]:
    """Compressed layer digests and the config digest of IMAGE as the registry stores them."""
    out = pod.exec("jnlp", ["docker", "image", "inspect", IMAGE, "--format",
                            "{{.Id}} {{range .RootFS.Layers}}{{.}} {{end}}"]).output.split()
    return out[:1]  # the config blob (image ID); layer digests differ (compressed vs. diff IDs)


def upstream_gets(reg: registry.Registry, since: int) -> dict:
    """Successful GETs the upstream served since `since`: manifest count and per-layer counts."""
    served = reg.served()[since:]
    manifests = sum(1 for m, p, s in served if m == "GET" and "/manifests/" in p and s == 200)
    blobs: dict[str, int] = {}
    for method, path, status in served:
        if method == "GET" and "/blobs/" in path and status == 200:
            blobs[path] = blobs.get(path, 0) + 1
    return {"manifests": manifests, "blobs": blobs}
