"""mirror.registries: the chart's mirror for registries other than Docker Hub. Each one gets its own
Distribution in the mirror pod (a proxy has one upstream), reached through the front on a Service port
of its own, and every agent's dind a certs.d/<host>/hosts.toml naming that port, in containerd's
hosts.toml grammar as dockerd 29.7.2 vendors it (data/upstream/containerd-hosts.yaml). Checked on the
rendered chart: the hosts.toml parsed as TOML, its mirror URL resolved to the Service and on to the
container that answers it, the network policies opened for those ports, and bad input refused."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from jdagent.chart.manifest import container, env_of, mounts_of
from jdagent.chart.render import RenderError, render
from jdagent.engine import agentpod

FACTS = yaml.safe_load((Path(__file__).parent / "data" / "upstream" / "containerd-hosts.yaml").read_text())
REGISTRIES = [{"host": "ghcr.io"}, {"host": "registry.corp:5000", "upstream": "http://10.0.0.9:5000",
                                    "upstreamSecret": "corp-pull"}]
ON = {"mirror": {"enabled": True, "registries": REGISTRIES}, "agent": {"dind": {"storageDriver": "native"}}}


def on(**extra):
    values = json.loads(json.dumps(ON))
    for key, value in extra.items():
        values.setdefault(key, {}).update(value)
    return values


def hosts_files(manifest) -> dict[str, dict]:
    """{host: parsed hosts.toml} as dind sees /etc/docker/certs.d."""
    spec = manifest.agent_pod()["spec"]
    mount = mounts_of(container(spec, "dind"))[FACTS["moby"]["certs_dir"]]
    [volume] = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    # the chart's own sources (a user's CA ConfigMap is not in the render)
    chart = [s for s in volume["projected"]["sources"] if s.get("configMap", {}).get("name", "").endswith("-agent")]
    files = agentpod.pod_files(manifest, {"volumes": [{"name": "v", "projected": {"sources": chart}}]})["v"]
    return {path.rsplit("/", 1)[0]: tomllib.loads(data.decode()) for path, data in files.items()
            if path.endswith("/" + FACTS["containerd_hosts"]["file"])}


def test_each_registry_has_a_hosts_toml_that_names_its_mirror_port_for_pulls_only():
    manifest = render(overrides=on())
    files = hosts_files(manifest)
    assert set(files) == {"ghcr.io", "registry.corp:5000"}
    service = manifest.get("Service", suffix="-mirror")
    ports = {p["port"]: p for p in service["spec"]["ports"]}
    spec = manifest.get("Deployment", suffix="-mirror")["spec"]["template"]["spec"]
    config = manifest.get("ConfigMap", suffix="-mirror")["data"]
    upstreams = {}
    for host, doc in files.items():
        assert set(doc) <= set(FACTS["containerd_hosts"]["top_keys"])
        assert "server" not in doc, "the registry itself stays containerd's default, tried last"
        [(url, settings)] = doc["host"].items()
        assert set(settings) <= set(FACTS["containerd_hosts"]["host_keys"])
        assert settings["capabilities"] == ["pull", "resolve"], "a mirror must never take pushes"
        assert set(settings["capabilities"]) <= set(FACTS["containerd_hosts"]["capabilities"])
        parts = urlsplit(url)
        assert parts.scheme == "http" and parts.path == ""
        name, namespace, svc, *domain = parts.hostname.split(".")
        assert (name, svc, ".".join(domain)) == (service["metadata"]["name"], "svc", "cluster.local")
        assert namespace == service["metadata"]["namespace"]
        # Service port -> the front's container port -> nginx server -> a Distribution's port
        target = ports[parts.port]["targetPort"]
        front = {p["name"]: p["containerPort"] for p in container(spec, "front")["ports"]}
        listen = f"listen {front[target]};"
        server = config["nginx.conf"].split(listen, 1)[1].split("server {", 1)[0]
        dist_port = int(server.split("proxy_pass http://127.0.0.1:", 1)[1].split(";", 1)[0])
        [dist] = [c for c in spec["containers"] if any(p["containerPort"] == dist_port for p in c.get("ports", []))]
        dist_config = yaml.safe_load(config[Path(dist["command"][-1]).name])
        assert dist_config["http"]["addr"] == f":{dist_port}"
        root = dist_config["storage"]["filesystem"]["rootdirectory"]
        upstreams[host] = (dist_config["proxy"]["remoteurl"], root, dist)
    assert upstreams["ghcr.io"][0] == "https://ghcr.io"
    assert upstreams["registry.corp:5000"][0] == "http://10.0.0.9:5000"
    roots = [root for _, root, _ in upstreams.values()] + ["/var/lib/registry"]
    assert len(set(roots)) == 3 and all(r.startswith("/var/lib/registry") for r in roots)
    assert not [a for a in roots for b in roots if a != b and a.startswith(b + "/docker")], "caches overlap"
    corp = upstreams["registry.corp:5000"][2]
    assert {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in corp["env"]} == {
        "REGISTRY_PROXY_USERNAME": "corp-pull", "REGISTRY_PROXY_PASSWORD": "corp-pull"}
    assert "env" not in upstreams["ghcr.io"][2]


def test_without_the_front_each_distribution_takes_its_service_port():
    manifest = render(overrides=on(mirror={"front": {"enabled": False}}))
    spec = manifest.get("Deployment", suffix="-mirror")["spec"]["template"]["spec"]
    by_name = {p["name"]: (c["name"], p["containerPort"]) for c in spec["containers"] for p in c["ports"]}
    for port in manifest.get("Service", suffix="-mirror")["spec"]["ports"]:
        assert by_name[port["targetPort"]][1] == port["port"]
    assert [c["name"] for c in spec["containers"]] == ["registry", "registry-1", "registry-2"]
    assert sorted(hosts_files(manifest)) == ["ghcr.io", "registry.corp:5000"]


def test_a_ca_for_a_mirrored_host_is_named_again_because_hosts_toml_replaces_the_implicit_one():
    manifest = render(overrides=on(agent={"dind": {"storageDriver": "native"}, "caCertificates": {
        "configMap": "corp-ca", "hosts": [{"host": "registry.corp:5000", "key": "corp.pem"}]}}))
    files = hosts_files(manifest)
    assert files["registry.corp:5000"]["ca"] == "ca.crt"
    assert "ca" not in files["ghcr.io"]
    agent = manifest.agent_pod()["spec"]
    [vol] = [v for v in agent["volumes"] if v["name"] == "registry-hosts"]
    paths = [i["path"] for s in vol["projected"]["sources"] for i in s.get("configMap", s.get("secret", {}))["items"]]
    assert "registry.corp:5000/ca.crt" in paths and "registry.corp:5000/hosts.toml" in paths


def test_without_registries_dind_keeps_the_plain_ca_volume():
    manifest = render(overrides={"mirror": {"enabled": True}, "agent": {"caCertificates": {
        "configMap": "corp-ca", "hosts": [{"host": "r.corp", "key": "corp.pem"}]}}})
    spec = manifest.agent_pod()["spec"]
    assert mounts_of(container(spec, "dind"))["/etc/docker/certs.d"]["name"] == "registry-ca"
    assert not [v for v in spec["volumes"] if v["name"] == "registry-hosts"]


@pytest.mark.parametrize("driver, store", [("native", "containerd"), ("overlayfs", "containerd"),
                                           ("vfs", "graph"), ("overlay2", "graph")])
def test_snapshotter_names_select_the_containerd_store_and_graph_drivers_stay_pinned(driver, store):
    assert (driver in FACTS["moby"]["snapshotters"]) == (store == "containerd")
    manifest = render(overrides={"agent": {"dind": {"storageDriver": driver}}})
    spec = manifest.agent_pod()["spec"]
    assert f"--storage-driver={driver}" in container(spec, "dind")["args"]
    daemon = json.loads(env_of(container(spec, "docker-setup"))["DAEMON_JSON"])
    features = daemon.get("features", {})
    if store == "graph":
        assert features["containerd-snapshotter"] is False, "a graph driver must not turn into the containerd store"
    else:
        assert "containerd-snapshotter" not in features, "a snapshotter name with the feature off fails dockerd's start"


def test_policies_open_each_mirror_port_to_agents_only():
    manifest = render(overrides=on(networkPolicy={"enabled": True, "agentEgress": {"enabled": True}}))
    names = {p["name"] for p in manifest.get("Service", suffix="-mirror")["spec"]["ports"]}
    assert names == {"registry", "mirror-1", "mirror-2"}
    ingress = manifest.get("NetworkPolicy", suffix="-mirror")["spec"]["ingress"]
    assert {p["port"] for rule in ingress for p in rule["ports"]} == names
    egress = [r for p in manifest.all("NetworkPolicy") for r in p["spec"].get("egress", [])
              if any(t.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component") == "mirror"
                     for t in r.get("to", []))]
    assert egress and {p["port"] for r in egress for p in r["ports"]} == names


@pytest.mark.parametrize("values, key", [
    ({"mirror": {"enabled": True, "registries": [{"host": "ghcr.io"}]}}, "agent.dind.storageDriver"),
    ({"mirror": {"enabled": True, "registries": [{"host": "ghcr.io"}]},
      "agent": {"dind": {"storageDriver": "overlay2"}}}, "agent.dind.storageDriver"),
    ({"mirror": {"registries": [{"host": "ghcr.io"}]},
      "agent": {"dind": {"storageDriver": "native"}}}, "mirror.enabled"),
    ({**ON, "mirror": {"enabled": True, "registries": [{"host": "docker.io"}]}}, "mirror.registries[0].host"),
    ({**ON, "mirror": {"enabled": True, "registries": [{"host": "quay.io"}, {"host": "quay.io"}]}},
     "mirror.registries[1].host"),
    ({**ON, "mirror": {"enabled": True, "registries": [{"host": "https://quay.io"}]}}, "host"),
    ({**ON, "mirror": {"enabled": True, "registries": [{"host": "quay.io", "upstream": "quay.io"}]}}, "upstream"),
])
def test_bad_registry_mirrors_are_refused_naming_the_key(values, key):
    with pytest.raises(RenderError) as err:
        render(overrides=values)
    assert key in str(err.value)
