"""mirror.registries on a real engine: the chart's rendered mirror pod (the front plus one Distribution
per upstream) before three local upstream registries standing in for Docker Hub, ghcr.io and quay.io,
and two rendered agent pods on the containerd image store (storageDriver native) whose dockerd pulls
one image from each through it. ghcr.io and quay.io cannot be reached from here, so a pull that did
not go through the mirror fails; each upstream's own access log shows the image served once, for the
first agent, and nothing more for the second.

The classic graph driver is the control: the same pull of a ghcr.io image from a vfs dockerd with the
same certs.d never reaches the mirror (dockerd 29.7 consults mirrors for Docker Hub only there), which
is why the chart refuses mirror.registries without a snapshotter. Both run on the pinned daemon (the
dind29 stand-in, whatever JDA_DIND_STANDIN says): the containerd store's behaviour is dockerd 29.7's.
"""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import pytest

from jdagent.chart.manifest import container, mounts_of
from jdagent.chart.render import deep_merge
from jdagent.engine import agentpod, registry
from jdagent.engine.podrun import PodRunner

pytestmark = pytest.mark.docker
HUB_IMAGE = "busybox:1.37.0"
# (host the image names, repository, tag): the hosts are the registries users list; their pulls can
# only succeed through the mirror
MIRRORED = {"ghcr.io": ("jda/one", "1"), "quay.io": ("jda/two", "1")}


@pytest.fixture
def upstreams(docker_client, standins):
    """{host: (registry, requests before the test)}: Docker Hub's stand-in holds library/busybox, the two
    others an image of their own (a distinct layer each, so no blob is shared between them)."""
    regs = {}
    try:
        hub = registry.start(docker_client, standins["registry"], run_id="up-hub", auth=False)
        regs["docker.io"] = hub
        registry.seed(docker_client, hub, standins["busybox"], "library/busybox", "1.37.0")
        for host, (repository, tag) in MIRRORED.items():
            reg = registry.start(docker_client, standins["registry"], run_id=f"up-{host.split('.')[0]}", auth=False)
            regs[host] = reg
            local = f"jda-test-{host.split('.')[0]}:{tag}"
            dockerfile = f"FROM {standins['busybox']}\nRUN echo {host} > /from\n"
            docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=local, rm=True, forcerm=True)
            try:
                registry.seed(docker_client, reg, local, repository, tag)
            finally:
                docker_client.images.remove(local, force=True)
        yield {host: (reg, len(reg.served())) for host, reg in regs.items()}
    finally:
        for reg in regs.values():
            reg.stop()


def values(standins, upstreams, driver: str) -> dict:
    hub, _ = upstreams["docker.io"]
    registries = [{"host": host, "upstream": f"http://{upstreams[host][0].address}"} for host in MIRRORED]
    return deep_merge(agentpod.standin_overrides(standins, dind={"storageDriver": driver}),
                      agentpod.mirror_values(standins, f"http://{hub.address}", registries=registries))


def test_two_agents_pull_every_registry_through_the_mirror_and_each_upstream_serves_once(
        docker_client, standins, dind29_standin, upstreams):
    standins = {**standins, "dind": dind29_standin}
    manifest = agentpod.render(overrides=values(standins, upstreams, "native"), kube_version="1.33.0")
    mirror_spec, files = agentpod.mirror_pod(manifest)
    agent_spec = manifest.agent_pod()["spec"]
    [hub_url] = agentpod.registry_mirrors(agent_spec)
    hosts_toml = agentpod.pod_files(manifest, agent_spec)["registry-hosts"]
    assert sorted(hosts_toml) == [f"{host}/hosts.toml" for host in sorted(MIRRORED)]
    with PodRunner(mirror_spec, client=docker_client, files=files, name="jda-mirrors") as mirror:
        registry.wait_http(f"http://{mirror.ip_address()}:5000/v2/")
        for port in (5101, 5102):
            registry.wait_http(f"http://{mirror.ip_address()}:{port}/v2/")
        hosts = {urlsplit(hub_url).hostname: mirror.ip_address()}
        agent_files = agentpod.pod_files(manifest, agent_spec)
        with PodRunner(agent_spec, client=docker_client, files=agent_files, hosts=hosts, name="jda-agent-m1") as one, \
                PodRunner(agent_spec, client=docker_client, files=agent_files, hosts=hosts, name="jda-agent-m2") as two:
            assert agentpod.storage_driver(one) == "native"
            images = [HUB_IMAGE] + [f"{host}/{repo}:{tag}" for host, (repo, tag) in MIRRORED.items()]
            costs = []
            for pod in (one, two):
                for image in images:
                    pulled = pod.exec("jnlp", ["docker", "pull", image])
                    assert pulled.exit_code == 0, f"{image}: {pulled.output}\n{pod.logs('dind')[-3000:]}"
                costs.append({host: reg.gets_since(before) for host, (reg, before) in upstreams.items()})
            for host, (repo, _) in MIRRORED.items():
                made = one.exec("jnlp", ["docker", "run", "--rm", f"{host}/{repo}:1", "cat", "/from"])
                assert made.output.strip() == host, made.output
            for pod in (one, two):
                listed = pod.exec("jnlp", ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"]).output.split()
                assert sorted(listed) == sorted(images)
        logs = {c["name"]: mirror.logs(c["name"]) for c in mirror_spec["containers"]}
    first, second = costs
    print("\nupstream GETs for the first agent (none for the second): " + "; ".join(
        f"{host}: {c['manifests']} manifest(s), blobs {sorted(c['blobs'].values())}" for host, c in first.items()))
    for host, cost in first.items():
        assert cost["manifests"] >= 1 and cost["blobs"], f"{host}: the upstream served nothing: {cost}"
        # Distribution 2.8 (the stand-in) fetches each blob of a first miss once or twice, never more
        assert max(cost["blobs"].values()) <= 2, f"{host}: {cost}"
        assert second[host] == cost, f"{host}: the second agent cost the upstream {second[host]} after {cost}"
    for n, (host, (repo, _)) in enumerate(MIRRORED.items(), start=1):
        assert f"/v2/{repo}/manifests/" in logs[f"registry-{n}"], f"{host}: its Distribution was not asked for {repo}"


def test_a_graph_driver_dockerd_never_asks_the_mirror_for_other_registries(docker_client, standins, dind29_standin,
                                                                           upstreams):
    """The control: storageDriver vfs with the same certs.d (bypassing the chart's refusal by taking the
    native render's volume): the ghcr.io pull fails and the mirror's ghcr Distribution sees nothing."""
    standins = {**standins, "dind": dind29_standin}
    native = agentpod.render(overrides=values(standins, upstreams, "native"), kube_version="1.33.0")
    mirror_spec, files = agentpod.mirror_pod(native)
    plain = agentpod.render(overrides=deep_merge(values(standins, upstreams, "vfs"), {"mirror": {"registries": []}}),
                            kube_version="1.33.0")
    agent_spec = plain.agent_pod()["spec"]
    certs = next(v for v in native.agent_pod()["spec"]["volumes"] if v["name"] == "registry-hosts")
    agent_spec["volumes"].append(certs)
    container(agent_spec, "dind")["volumeMounts"].append(
        {"name": "registry-hosts", "mountPath": "/etc/docker/certs.d", "readOnly": True})
    assert "/etc/docker/certs.d" in mounts_of(container(agent_spec, "dind"))
    [hub_url] = agentpod.registry_mirrors(agent_spec)
    files_agent = agentpod.pod_files(native, agent_spec)
    with PodRunner(mirror_spec, client=docker_client, files=files, name="jda-mirrors-ctl") as mirror:
        registry.wait_http(f"http://{mirror.ip_address()}:5101/v2/")
        hosts = {urlsplit(hub_url).hostname: mirror.ip_address()}
        with PodRunner(agent_spec, client=docker_client, files=files_agent, hosts=hosts, name="jda-agent-ctl") as pod:
            assert agentpod.storage_driver(pod) == "vfs"
            repo, tag = MIRRORED["ghcr.io"]
            pulled = pod.exec("jnlp", ["docker", "pull", f"ghcr.io/{repo}:{tag}"])
            assert pulled.exit_code != 0, pulled.output
            hub = pod.exec("jnlp", ["docker", "pull", HUB_IMAGE])
            assert hub.exit_code == 0, hub.output
            log = mirror.logs("registry-1")
    assert f"/v2/{repo}/" not in log, "a graph-driver dockerd asked the mirror for a ghcr.io image"
    ghcr, before = upstreams["ghcr.io"]
    assert ghcr.gets_since(before) == {"manifests": 0, "blobs": {}}
