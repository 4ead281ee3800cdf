"""mirror.registries: the chart's mirror for registries other than Docker Hub. Each one gets a mirror of
its own (a Distribution proxy has one upstream, and one upstream that fails must not take the others
down): ConfigMap, claim, Deployment with the front, Service and NetworkPolicy named after the host, and
every agent's dind a certs.d/<host>/hosts.toml naming that Service, in containerd's
hosts.toml grammar as dockerd 29.7.2 vendors it (data/upstream/containerd-hosts.yaml). Checked on the
rendered chart: the hosts.toml parsed as TOML, its mirror URL resolved to the Service and on to the
container that answers it, the network policies opened for those ports, and bad input refused."""

from __future__ import annotations

import json
import re
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


def mirror_of(manifest, name: str) -> tuple[dict, dict, dict, dict]:
    """(Service, pod spec, ConfigMap data, claim) of the mirror whose objects are called `name`."""
    deployment = manifest.get("Deployment", name=name)
    spec = deployment["spec"]["template"]["spec"]
    claim = next(v for v in spec["volumes"] if "persistentVolumeClaim" in v)["persistentVolumeClaim"]["claimName"]
    return (manifest.get("Service", name=name), spec, manifest.get("ConfigMap", name=name)["data"],
            manifest.get("PersistentVolumeClaim", name=claim))


def mirror_names(manifest) -> list[str]:
    """The object names of the mirrors the agents' hosts.toml files name."""
    return sorted(urlsplit(next(iter(doc["host"]))).hostname.split(".")[0] for doc in hosts_files(manifest).values())


def test_each_registry_has_a_mirror_of_its_own_and_a_hosts_toml_that_names_it_for_pulls_only():
    manifest = render(overrides=on())
    files = hosts_files(manifest)
    assert set(files) == {"ghcr.io", "registry.corp:5000"}
    hub = manifest.get("Deployment", suffix="-mirror")
    seen = {}
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
        assert (svc, ".".join(domain)) == ("svc", "cluster.local")
        service, spec, data, claim = mirror_of(manifest, name)
        assert service["metadata"]["namespace"] == namespace
        # the Service selects this mirror's pods, and Docker Hub's Deployment does not select them
        labels = manifest.get("Deployment", name=name)["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        assert not hub["spec"]["selector"]["matchLabels"].items() <= labels.items()
        [port] = service["spec"]["ports"]
        assert port["port"] == parts.port
        front = {p["name"]: p["containerPort"] for p in container(spec, "front")["ports"]}
        assert front[port["targetPort"]] == 5000
        dist = container(spec, "registry")
        config = yaml.safe_load(data[Path(dist["command"][-1]).name])
        assert f"proxy_pass http://127.0.0.1:{config['http']['addr'].lstrip(':')};" in data["nginx.conf"]
        seen[host] = (config["proxy"]["remoteurl"], claim["metadata"]["name"], dist)
    assert seen["ghcr.io"][0] == "https://ghcr.io"
    assert seen["registry.corp:5000"][0] == "http://10.0.0.9:5000"
    hub_claim = next(v for v in hub["spec"]["template"]["spec"]["volumes"] if "persistentVolumeClaim" in v)
    claims = {c for _, c, _ in seen.values()} | {hub_claim["persistentVolumeClaim"]["claimName"]}
    assert len(claims) == 3, "each upstream keeps its own cache"
    corp = seen["registry.corp:5000"][2]
    assert {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in corp["env"]} == {
        "REGISTRY_PROXY_USERNAME": "corp-pull", "REGISTRY_PROXY_PASSWORD": "corp-pull"}
    assert "env" not in seen["ghcr.io"][2]


def test_mirror_names_follow_the_host_so_a_reordered_list_keeps_each_cache():
    swapped = on()
    swapped["mirror"]["registries"] = list(reversed(REGISTRIES))
    one, two = render(overrides=on()), render(overrides=swapped)
    assert mirror_names(one) == mirror_names(two) == [
        "ci-jenkins-dind-agent-mirror-ghcr-io", "ci-jenkins-dind-agent-mirror-registry-corp-5000"]
    assert hosts_files(one) == hosts_files(two)


@pytest.mark.parametrize("release", ["ci", "abcdefghijabcdefghijabcdefghijabcdef", "r" * 53])
def test_long_hosts_and_release_names_still_give_every_mirror_a_valid_name_of_its_own(release):
    hosts = ["registry.very-long-company-name.example.com:5000", "registry.very-long-company-name.example.org:5000",
             "ghcr.io", "a" * 60 + ".example.com"]
    manifest = render(release=release, overrides=on(mirror={"registries": [{"host": h} for h in hosts]},
                                                     networkPolicy={"enabled": True}))
    mirrors = ("mirror", "registry-mirror")
    deployments = [d for d in manifest.all("Deployment")
                   if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") in mirrors]
    names = [d["metadata"]["name"] for d in deployments]
    assert len(names) == len(set(names)) == len(hosts) + 1
    for kind in ("Service", "ConfigMap", "PersistentVolumeClaim", "NetworkPolicy"):
        # a mirror's objects are its own, and no other object of the chart has a mirror's name
        of_kind = [o["metadata"]["name"] for o in manifest.all(kind) if o["metadata"]["name"] in names]
        assert sorted(of_kind) == sorted(names), kind
    dns1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    label = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
    for d in deployments:
        assert len(d["metadata"]["name"]) <= 63 and dns1035.match(d["metadata"]["name"])
        for value in d["spec"]["selector"]["matchLabels"].values():
            assert len(value) <= 63 and label.match(value), value
    files = hosts_files(manifest)
    assert sorted(files) == sorted(hosts)
    assert len({urlsplit(next(iter(doc["host"]))).hostname for doc in files.values()}) == len(hosts)


def test_an_upstream_with_a_trailing_slash_is_asked_for_v2_once():
    manifest = render(overrides=on(mirror={"upstream": "https://hub.example/",
                                           "registries": [{"host": "ghcr.io", "upstream": "https://ghcr.example/"}]}))
    for name in ["ci-jenkins-dind-agent-mirror", *mirror_names(manifest)]:
        _, spec, data, _ = mirror_of(manifest, name)
        config = yaml.safe_load(data[Path(container(spec, "registry")["command"][-1]).name])
        assert not config["proxy"]["remoteurl"].endswith("/"), "Distribution asks <remoteurl>/v2/"


def test_without_the_front_each_distribution_takes_its_service_port():
    manifest = render(overrides=on(mirror={"front": {"enabled": False}}))
    for name in mirror_names(manifest):
        service, spec, data, _ = mirror_of(manifest, name)
        assert [c["name"] for c in spec["containers"]] == ["registry"]
        [port] = service["spec"]["ports"]
        assert {p["name"]: p["containerPort"] for p in spec["containers"][0]["ports"]}[port["targetPort"]] == 5000
        assert "nginx.conf" not in data


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


def test_policies_let_agents_and_only_agents_reach_every_mirror():
    manifest = render(overrides=on(networkPolicy={"enabled": True, "agentEgress": {"enabled": True}}))
    agent_egress = [p for p in manifest.all("NetworkPolicy") if "Egress" in p["spec"].get("policyTypes", [])]
    assert agent_egress
    for name in mirror_names(manifest):
        template = manifest.get("Deployment", name=name)["spec"]["template"]
        labels = template["metadata"]["labels"]
        ports = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
        ingress = manifest.get("NetworkPolicy", name=name)["spec"]
        assert ingress["podSelector"]["matchLabels"].items() <= labels.items()
        assert {p["port"] for rule in ingress["ingress"] for p in rule["ports"]} <= ports
        for policy in agent_egress:
            reach = [r for r in policy["spec"]["egress"] for t in r.get("to", [])
                     if t.get("podSelector", {}).get("matchLabels")
                     and t["podSelector"]["matchLabels"].items() <= labels.items()]
            assert reach and {p["port"] for r in reach for p in r["ports"]} <= ports, policy["metadata"]["name"]


def test_mirror_ca_certificates_reach_every_distribution_beside_the_system_roots():
    manifest = render(overrides=on(mirror={"caCertificates": {"configMap": "corp-ca", "keys": ["a.pem", "b.pem"]}}))
    mirrors = [manifest.get("Deployment", suffix="-mirror")] + [manifest.get("Deployment", name=n)
                                                               for n in mirror_names(manifest)]
    for deployment in mirrors:
        spec = deployment["spec"]["template"]["spec"]
        registry = container(spec, "registry")
        dirs = env_of(registry)["SSL_CERT_DIR"].split(":")
        assert dirs[0] == "/etc/ssl/certs", "the system roots stay"
        mount = mounts_of(registry)[dirs[1]]
        volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
        assert volume["configMap"]["name"] == "corp-ca"
        assert [i["path"] for i in volume["configMap"]["items"]] == ["a.pem", "b.pem"]
        assert "/" not in "".join(i["path"] for i in volume["configMap"]["items"]), "Go reads the directory's files"
        assert "SSL_CERT_DIR" not in env_of(container(spec, "front"))
    plain = render(overrides=on())
    assert "SSL_CERT_DIR" not in env_of(container(plain.get("Deployment", suffix="-mirror")["spec"]["template"]["spec"],
                                                  "registry"))


@pytest.mark.parametrize("values, key", [
    ({"mirror": {"caCertificates": {"configMap": "a", "secret": "b", "keys": ["k"]}}}, "mirror.caCertificates"),
    ({"mirror": {"caCertificates": {"keys": ["k"]}}}, "mirror.caCertificates.keys"),
    ({"mirror": {"caCertificates": {"secret": "b"}}}, "mirror.caCertificates.keys"),
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
    ({**ON, "agent": {"dind": {"storageDriver": "native", "insecureRegistries": ["ghcr.io"]}}},
     "agent.dind.insecureRegistries"),
    ({**ON, "mirror": {"enabled": True, "registries": [{"host": "a.b"}, {"host": "a-b"}]}},
     "mirror.registries[1].host"),
])
def test_bad_registry_mirrors_are_refused_naming_the_key(values, key):
    with pytest.raises(RenderError) as err:
        render(overrides=values)
    assert key in str(err.value)
