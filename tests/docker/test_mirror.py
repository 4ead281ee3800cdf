"""The in-cluster pull-through mirror (mirror.enabled) on a real engine: the chart's rendered mirror pod
(Distribution in proxy mode, the stand-in runs the rendered config and command) in front of an
"upstream" registry, and two rendered agent pods whose dockerd pulls a Docker Hub image through it.
The upstream serves the image once (one manifest GET, the "pull" Docker Hub counts; Distribution 2.8
fetched each layer twice for that first pull); the second agent, and later pulls, cost the upstream
nothing but a tag check (HEAD); each agent keeps its own daemon state.

Pulls at the very same instant are not coalesced: Distribution fetches a manifest it has not stored
yet once per concurrent request, and streams a layer still being cached straight to a concurrent
client (registry/proxy/proxyblobstore.go). `tox -e bench` measures that case."""

from __future__ import annotations

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
    overrides = deep_merge(agentpod.standin_overrides(standins), {
        "mirror": {"enabled": True, "upstream": f"http://{reg.address}",
                   "image": agentpod.image_values(standins["registry"])}})
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
