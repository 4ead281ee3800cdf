"""mirror.registries on a real engine: the chart's rendered mirrors (one pod each, the front before
Distribution) before four local upstream registries standing in for Docker Hub, ghcr.io, quay.io and a
company registry serving HTTPS with a private CA (trusted by the mirror through mirror.caCertificates),
and two rendered agent pods on the containerd image store (storageDriver native). The agents cannot
resolve ghcr.io, quay.io or registry.corp.test, so anything that did not go through the mirror fails.
The first agent pulls one image from each registry; the second gets them the three other ways a build does: `docker
run` of an image it does not have, `docker build` with `FROM` (the daemon's own BuildKit) and a pull.
Each upstream's own access log shows one manifest GET for both agents and each blob fetched for one
miss only (a base layer the first agent already had from Docker Hub is fetched when the second asks).

The classic graph driver is the control: the same pull of a ghcr.io image from a vfs dockerd with the
same certs.d never reaches the mirror (dockerd 29.7 pulls through mirrors for Docker Hub only there),
which is why the chart refuses mirror.registries without a snapshotter. Both run on the pinned daemon
(the dind29 stand-in, whatever JDA_DIND_STANDIN says): the containerd store's behaviour is dockerd 29.7's.
"""

from __future__ import annotations

import io
import tomllib
from contextlib import ExitStack
from urllib.parse import urlsplit

import pytest

from jdagent.chart.manifest import container, mounts_of
from jdagent.chart.render import deep_merge
from jdagent.engine import agentpod, registry, tlsca
from jdagent.engine.podrun import PodRunner

pytestmark = pytest.mark.docker
HUB_IMAGE = "busybox:1.37.0"
# (host the image names, repository, tag): the hosts are the registries users list; their pulls can
# only succeed through the mirror
MIRRORED = {"ghcr.io": ("jda/one", "1"), "quay.io": ("jda/two", "1"), "registry.corp.test": ("jda/three", "1")}
# the company registry serves HTTPS with a certificate of a private CA, which only mirror.caCertificates
# makes its mirror trust; the upstream URL names it (with its port), image references the host alone
CORP = "registry.corp.test"
CERT = tlsca.issue([CORP], ips=["127.0.0.1"])


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
            reg = registry.start(docker_client, standins["registry"], run_id=f"up-{host.split('.')[0]}", auth=False,
                                 tls=CERT if host == CORP else None)
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
    registries = [{"host": host, "upstream": f"http://{upstreams[host][0].address}"}
                  for host in MIRRORED if host != CORP]
    registries.append({"host": CORP, "upstream": f"https://{CORP}:5000"})
    return deep_merge(agentpod.standin_overrides(standins, dind={"storageDriver": driver}),
                      agentpod.mirror_values(standins, f"http://{hub.address}", registries=registries,
                                             caCertificates={"secret": "corp-ca", "keys": ["corp.pem"]}))


def start_mirrors(stack: ExitStack, docker_client, manifest, agent_spec,
                  corp_ip: str) -> tuple[dict[str, str], dict[str, PodRunner]]:
    """Run every rendered mirror (CORP resolving to its upstream); returns ({Service host name: pod IP},
    {registry host: its mirror pod}), the Service names as the agent's --registry-mirror and hosts.toml
    files give them."""
    secrets = {"corp-ca": {"corp.pem": CERT.ca_pem}}
    pods = {name: stack.enter_context(PodRunner(spec, client=docker_client, files=files, name=f"jda-mirror{n}",
                                                hosts={CORP: corp_ip}))
            for n, (name, (spec, files)) in enumerate(agentpod.mirror_pods(manifest, secrets).items())}
    names = {"docker.io": urlsplit(agentpod.registry_mirrors(agent_spec)[0]).hostname}
    for path, data in agentpod.pod_files(manifest, agent_spec)["registry-hosts"].items():
        [url] = tomllib.loads(data.decode())["host"]
        names[path.split("/")[0]] = urlsplit(url).hostname
    by_host = {host: pods[name.split(".")[0]] for host, name in names.items()}
    for pod in by_host.values():
        registry.wait_http(f"http://{pod.ip_address()}:5000/v2/")
    return {name: by_host[host].ip_address() for host, name in names.items()}, by_host


def corp_ip(upstreams) -> str:
    return upstreams[CORP][0].address.split(":")[0]


def test_two_agents_get_every_registry_through_its_mirror_and_each_upstream_serves_once(
        docker_client, standins, dind29_standin, upstreams):
    standins = {**standins, "dind": dind29_standin}
    manifest = agentpod.render(overrides=values(standins, upstreams, "native"), kube_version="1.33.0")
    agent_spec = manifest.agent_pod()["spec"]
    ghcr, quay, corp = (f"{host}/{repo}:{tag}" for host, (repo, tag) in MIRRORED.items())
    with ExitStack() as stack:
        hosts, mirrors = start_mirrors(stack, docker_client, manifest, agent_spec, corp_ip(upstreams))
        assert len({id(pod) for pod in mirrors.values()}) == 4, "one mirror pod per upstream"
        agent_files = agentpod.pod_files(manifest, agent_spec)
        one, two = (stack.enter_context(PodRunner(agent_spec, client=docker_client, files=agent_files, hosts=hosts,
                                                  name=f"jda-agent-m{n}")) for n in (1, 2))
        assert agentpod.storage_driver(one) == "native"
        costs = []
        for image in (HUB_IMAGE, ghcr, quay, corp):
            pulled = one.exec("jnlp", ["docker", "pull", image])
            assert pulled.exit_code == 0, f"{image}: {pulled.output}\n{one.logs('dind')[-3000:]}"
        costs.append({host: reg.gets_since(before) for host, (reg, before) in upstreams.items()})
        ran = two.exec("jnlp", ["docker", "run", "--rm", ghcr, "cat", "/from"])
        assert ran.exit_code == 0 and ran.output.strip().endswith("ghcr.io"), ran.output
        two.copy_in("jnlp", "/tmp", {"Dockerfile": f"FROM {quay}\nRUN cat /from > /seen\n".encode()})
        built = two.exec("jnlp", ["docker", "build", "-t", "jda-from-quay", "/tmp"])
        assert built.exit_code == 0, f"{built.output}\n{two.logs('dind')[-3000:]}"
        seen = two.exec("jnlp", ["docker", "run", "--rm", "jda-from-quay", "cat", "/seen"])
        assert seen.output.strip() == "quay.io", seen.output
        for image in (HUB_IMAGE, corp):
            assert two.exec("jnlp", ["docker", "pull", image]).exit_code == 0, image
        costs.append({host: reg.gets_since(before) for host, (reg, before) in upstreams.items()})
        logs = {host: pod.logs("registry") for host, pod in mirrors.items()}
    first, second = costs
    print("\nupstream GETs after the first agent: " + "; ".join(
        f"{host}: {c['manifests']} manifest(s), blobs {sorted(c['blobs'].values())}" for host, c in first.items())
        + "\nafter the second: " + "; ".join(
        f"{host}: {c['manifests']} manifest(s), blobs {sorted(c['blobs'].values())}" for host, c in second.items()))
    _, base = upstreams["docker.io"][0].manifest("library/busybox", "1.37.0")
    base_layers = {x["digest"] for x in base["layers"]}
    for host, (reg, _) in upstreams.items():
        repository, tag = MIRRORED.get(host, ("library/busybox", "1.37.0"))
        _, image = reg.manifest(repository, tag)
        digests = {image["config"]["digest"], *(x["digest"] for x in image["layers"])}
        served = {path.rsplit("/", 1)[1] for path in second[host]["blobs"]}
        # one manifest GET for both agents: the second one's tag lookups were answered by the mirror
        assert first[host]["manifests"] == second[host]["manifests"] == 1, f"{host}: {first[host]}, then {second[host]}"
        # the first agent's blobs were not fetched again for the second; a blob the first agent's content
        # store already had from another registry (the shared base layer) is fetched once, when the second
        # agent needs it; Distribution 2.8 (the stand-in) fetches a blob once or twice for its miss
        for blob, count in first[host]["blobs"].items():
            assert second[host]["blobs"][blob] == count, f"{host}: {blob} fetched again for the second agent"
        # every blob of the image came through this registry's mirror, but a base layer an agent already
        # had (containerd's content store is keyed by digest, whichever registry it came from)
        assert served <= digests and digests - served <= base_layers, f"{host}: served {served} of {digests}"
        assert max(second[host]["blobs"].values()) <= 2, f"{host}: {second[host]}"
    for host, (repo, _) in MIRRORED.items():
        assert f"/v2/{repo}/manifests/" in logs[host], f"{host}: its mirror was not asked for {repo}"
        for other in (h for h in MIRRORED if h != host):
            assert f"/v2/{repo}/" not in logs[other], f"{other}'s mirror was asked for {host}'s {repo}"


def test_a_graph_driver_dockerd_never_asks_the_mirror_for_other_registries(docker_client, standins, dind29_standin,
                                                                           upstreams):
    """The control: storageDriver vfs with the same certs.d (bypassing the chart's refusal by taking the
    native render's volume): the ghcr.io pull fails and ghcr.io's mirror sees nothing."""
    standins = {**standins, "dind": dind29_standin}
    native = agentpod.render(overrides=values(standins, upstreams, "native"), kube_version="1.33.0")
    plain = agentpod.render(overrides=deep_merge(values(standins, upstreams, "vfs"), {"mirror": {"registries": []}}),
                            kube_version="1.33.0")
    agent_spec = plain.agent_pod()["spec"]
    certs = next(v for v in native.agent_pod()["spec"]["volumes"] if v["name"] == "registry-hosts")
    agent_spec["volumes"].append(certs)
    container(agent_spec, "dind")["volumeMounts"].append(
        {"name": "registry-hosts", "mountPath": "/etc/docker/certs.d", "readOnly": True})
    assert "/etc/docker/certs.d" in mounts_of(container(agent_spec, "dind"))
    with ExitStack() as stack:
        hosts, mirrors = start_mirrors(stack, docker_client, native, native.agent_pod()["spec"], corp_ip(upstreams))
        pod = stack.enter_context(PodRunner(agent_spec, client=docker_client, hosts=hosts, name="jda-agent-ctl",
                                            files=agentpod.pod_files(native, agent_spec)))
        assert agentpod.storage_driver(pod) == "vfs"
        repo, tag = MIRRORED["ghcr.io"]
        pulled = pod.exec("jnlp", ["docker", "pull", f"ghcr.io/{repo}:{tag}"])
        assert pulled.exit_code != 0, pulled.output
        hub = pod.exec("jnlp", ["docker", "pull", HUB_IMAGE])
        assert hub.exit_code == 0, hub.output
        log = mirrors["ghcr.io"].logs("registry")
    assert f"/v2/{repo}/" not in log, "a graph-driver dockerd asked the mirror for a ghcr.io image"
    ghcr, before = upstreams["ghcr.io"]
    assert ghcr.gets_since(before) == {"manifests": 0, "blobs": {}}


def test_without_mirror_ca_certificates_the_private_ca_upstream_is_refused(docker_client, standins, upstreams):
    """The control for mirror.caCertificates: the company registry's mirror without it cannot verify the
    upstream's certificate (Distribution asks the upstream for /v2/ when it starts, and stops there)."""
    manifest = agentpod.render(overrides=deep_merge(values(standins, upstreams, "native"),
                                                    {"mirror": {"caCertificates": {"secret": "", "keys": []}}}),
                               kube_version="1.33.0")
    [(spec, files)] = [pod for name, pod in agentpod.mirror_pods(manifest).items() if name.endswith("corp-test")]
    assert "SSL_CERT_DIR" not in {e["name"] for e in container(spec, "registry").get("env", [])}
    with PodRunner(spec, client=docker_client, files=files, name="jda-mirror-noca",
                   hosts={CORP: corp_ip(upstreams)}) as mirror:
        registry_container = mirror.containers["registry"]
        registry_container.wait(timeout=60)
        log = mirror.logs("registry")
    assert "certificate signed by unknown authority" in log, log[-2000:]
