"""mirror.registries on the real cluster: the chart installed with its mirror for Docker Hub plus ghcr.io
and quay.io, each of the three with an upstream of its own in the cluster (local registries: the Docker
Hub stand-in at the fixed ClusterIP, two more in a namespace of their own, reached by Service name);
each registry has a mirror Deployment of its own.
Two agent pods (the pinned daemon, storageDriver native: the containerd image store reads hosts.toml)
get one image per registry, one pod after the other: the first pulls, the second runs one, builds FROM
another (dockerd's own BuildKit) and pulls the third. ghcr.io and quay.io do not resolve here, so
anything that skipped the mirror fails. Each upstream's own access log counts what it served: one
manifest GET for both pods, and each blob once."""

from __future__ import annotations

import io

import docker
import pytest
import yaml

from jdagent.chart.render import render
from jdagent.cluster import fanin
from jdagent.cluster.portforward import port_forward
from jdagent.engine import agentpod, images, registry
from jdagent.engine.agentpod import mirror_values
from jdagent.paths import CHART_DIR
from tests.cluster.kube import (
    REGISTRY,
    agent_namespace,
    apply,
    delete_namespace,
    helm,
    namespace,
    standin_values,
    values_file,
)

RELEASE_NS, RELEASE = "regmirrors", "regmirrors"
NS = agent_namespace(RELEASE_NS, RELEASE)
UPSTREAM_NS = "mirror-upstreams"
HUB = ("library/jda-hub", "1")  # pulled as docker.io/library/jda-hub:1 (jda-hub:1)
MIRRORED = {"ghcr.io": ("jda/one", "1"), "quay.io": ("jda/two", "1")}
# each registry's mirror, as the chart names it (<fullname>-mirror, then -<host>)
MIRRORS = {"docker.io": f"{RELEASE}-jenkins-dind-agent-mirror",
           **{h: f"{RELEASE}-jenkins-dind-agent-mirror-{h.replace('.', '-')}" for h in MIRRORED}}


def upstream_docs(name: str, image: str) -> list[dict]:
    labels = {"app": name}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": UPSTREAM_NS},
         "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
             "containers": [{"name": "registry", "image": image, "imagePullPolicy": "Never",
                             "command": ["/usr/bin/docker-registry", "serve", "/etc/docker/registry/config-open.yml"],
                             "ports": [{"containerPort": 5000}],
                             "readinessProbe": {"httpGet": {"path": "/v2/", "port": 5000}}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": UPSTREAM_NS},
         "spec": {"selector": labels, "ports": [{"port": 5000, "targetPort": 5000}]}},
    ]


def marked_image(client: docker.DockerClient, base: str, marker: str) -> str:
    tag = f"jda-test-regmirror-{marker.split('.')[0]}:1"
    dockerfile = f"FROM {base}\nRUN echo {marker} > /from\n"
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, forcerm=True)
    return tag


@pytest.fixture(scope="module")
def upstreams(cluster, standins, in_cluster_registry):
    """{host: (upstream URL for the mirror, namespace, deployment, repository)}, each holding its image."""
    client = docker.from_env(version="auto", timeout=600)
    namespace(cluster, UPSTREAM_NS)
    apply(cluster, [d for host in MIRRORED for d in upstream_docs(host.split(".")[0], standins["registry"])])
    found = {"docker.io": (f"http://{REGISTRY}", "registry", "registry", HUB[0])}
    try:
        for host, (repository, tag) in MIRRORED.items():
            name = host.split(".")[0]
            cluster.kubectl_wait(180, "-n", UPSTREAM_NS, "rollout", "status", f"deployment/{name}")
            image = marked_image(client, standins["busybox"], host)
            try:
                with port_forward(cluster, UPSTREAM_NS, f"svc/{name}", 5000) as port:
                    registry.push_to_loopback(client, image, port, repository, tag)
            finally:
                client.images.remove(image, force=True)
            found[host] = (f"http://{name}.{UPSTREAM_NS}.svc.cluster.local:5000", UPSTREAM_NS, name, repository)
        image = marked_image(client, standins["busybox"], "docker.io")
        try:
            with port_forward(cluster, "registry", "svc/registry", 5000) as port:
                registry.push_to_loopback(client, image, port, *HUB)
        finally:
            client.images.remove(image, force=True)
        yield found
    finally:
        delete_namespace(cluster, UPSTREAM_NS)


@pytest.fixture(scope="module")
def release(cluster, standins, mirror_registry, upstreams, node_images, tmp_path_factory):
    """The rendered agent pod of a release with the three mirrors, on the pinned daemon."""
    try:
        dind = images.ensure_dind29(docker.from_env(version="auto", timeout=600))
    except images.Dind29Missing as exc:
        pytest.skip(f"the containerd image store's hosts.toml is dockerd 29.7's: {exc}")
    if dind != standins["dind"]:
        node_images(dind)
    namespace(cluster, RELEASE_NS, level="restricted")
    registries = [{"host": host, "upstream": upstreams[host][0]} for host in MIRRORED]
    values = standin_values(standins, agent={**fanin.SMALL_REQUESTS, "dind": {
        **fanin.SMALL_REQUESTS["dind"], "image": agentpod.image_values(dind), "storageDriver": "native"}},
        **mirror_values(standins, upstreams["docker.io"][0], registry_image=mirror_registry,
                        persistence={"size": "1Gi"}, registries=registries))
    path = values_file(tmp_path_factory.mktemp("regmirrors"), values)
    helm(cluster, "4", "install", RELEASE, str(CHART_DIR), "-n", RELEASE_NS, "-f", str(path))
    try:
        for deployment in MIRRORS.values():
            cluster.kubectl_wait(300, "-n", RELEASE_NS, "rollout", "status", f"deployment/{deployment}")
        yield render(values=[path], namespace=RELEASE_NS, release=RELEASE, kube_version="1.36.3").agent_pod(None)
    finally:
        helm(cluster, "4", "uninstall", RELEASE, "-n", RELEASE_NS, check=False)
        delete_namespace(cluster, NS)
        delete_namespace(cluster, RELEASE_NS)


def served(cluster, upstreams) -> dict[str, tuple[dict[str, int], int]]:
    out = {}
    for host, (_, ns, deployment, repository) in upstreams.items():
        log = cluster.kubectl("-n", ns, "logs", f"deployment/{deployment}", "--tail=-1").stdout
        out[host] = fanin.upstream_fetches(log, repository)
    return out


def exec_jnlp(cluster, pod: str, script: str) -> str:
    proc = cluster.kubectl("-n", NS, "exec", pod, "-c", "jnlp", "--", "sh", "-c", script, check=False, timeout=300)
    assert proc.returncode == 0, f"{pod}: {script}: {proc.stdout[-1000:]}{proc.stderr[-2000:]}"
    return proc.stdout


def test_agents_get_every_registry_through_its_mirror_and_each_upstream_serves_once(cluster, upstreams, release):
    names = fanin.start_agents(cluster, release, NS, 2, "regmirror")
    fanin.wait_ready(cluster, NS, names)
    one, two = names
    hosts = cluster.kubectl("-n", NS, "exec", one, "-c", "dind", "--", "cat",
                            "/etc/docker/certs.d/ghcr.io/hosts.toml").stdout
    assert f"{MIRRORS['ghcr.io']}.{RELEASE_NS}.svc.cluster.local:5000" in hosts, hosts
    driver = exec_jnlp(cluster, one, "docker info --format '{{.Driver}} {{json .DriverStatus}}'")
    assert driver.startswith("native ") and "io.containerd.snapshotter.v1" in driver, driver
    hub = f"{HUB[0].removeprefix('library/')}:{HUB[1]}"
    ghcr, quay = (f"{h}/{r}:{t}" for h, (r, t) in MIRRORED.items())
    before = served(cluster, upstreams)
    for image in (hub, ghcr, quay):
        exec_jnlp(cluster, one, f"docker pull -q {image}")
    first = served(cluster, upstreams)
    # the second agent the other ways a build gets images: run, build FROM (dockerd's BuildKit), pull
    assert exec_jnlp(cluster, two, f"docker run --rm {ghcr} cat /from").strip().endswith("ghcr.io")
    exec_jnlp(cluster, two, f"mkdir -p /tmp/b && printf 'FROM {quay}\\nRUN cat /from > /seen\\n' > /tmp/b/Dockerfile"
                            " && docker build -q -t jda-from-quay /tmp/b")
    assert exec_jnlp(cluster, two, "docker run --rm jda-from-quay cat /seen").strip() == "quay.io"
    exec_jnlp(cluster, two, f"docker pull -q {hub}")
    second = served(cluster, upstreams)
    def since(now: dict, host: str) -> tuple[dict[str, int], int]:
        blobs = {d: n - before[host][0].get(d, 0) for d, n in now[host][0].items() if n > before[host][0].get(d, 0)}
        return blobs, now[host][1] - before[host][1]

    print("\nupstream GETs (blobs per digest, manifests) after the first agent: "
          + "; ".join(f"{h}: {since(first, h)}" for h in upstreams)
          + "\nafter the second: " + "; ".join(f"{h}: {since(second, h)}" for h in upstreams))
    for host in upstreams:
        (blobs1, manifests1), (blobs2, manifests2) = since(first, host), since(second, host)
        # one manifest GET for both agents: the mirror answered the second agent's tag lookups
        assert manifests1 == manifests2 == 1, f"{host}: {since(first, host)}, then {since(second, host)}"
        # the config and the image's own layer at least; a base layer an agent already had from another
        # registry is fetched only when an agent without it asks (containerd's content store is by digest)
        assert len(blobs2) >= 2, f"{host}: {blobs2}"
        # each blob once (Distribution 3.1.1 behind the front), none again for the second agent
        assert set(blobs2.values()) == {1} and blobs2.items() >= blobs1.items(), f"{host}: {blobs1}, then {blobs2}"
    for host, (repository, _) in MIRRORED.items():
        log = cluster.kubectl("-n", RELEASE_NS, "logs", f"deployment/{MIRRORS[host]}", "-c", "registry",
                              "--tail=-1").stdout
        assert f"/v2/{repository}/manifests/" in log, f"{host}'s mirror was not asked for {repository}"
    events = yaml.safe_load(cluster.kubectl("-n", NS, "get", "events", "-o", "yaml").stdout)["items"]
    assert not [e for e in events if e.get("reason") in ("Failed", "BackOff") and e["involvedObject"]["name"] in names]
