"""The pull-through mirror (mirror.enabled): its objects wire to each other and to the agents, its
config uses only keys Distribution reads (data/upstream/distribution.yaml), and it is reachable only
from agent pods."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from jdagent.chart.manifest import container, env_of, mounts_of
from jdagent.chart.render import RenderError, deep_merge, render
from jdagent.engine import agentpod

DIST = yaml.safe_load((Path(__file__).parent / "data" / "upstream" / "distribution.yaml").read_text())
ON = {"mirror": {"enabled": True}}


def mirror(**kw):
    return render(overrides=deep_merge(ON, kw.pop("overrides", {})), **kw)


def dotted(doc, prefix=""):
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and path not in DIST["map_keys"]:
            yield from dotted(value, path + ".")
        else:
            yield path


def test_off_by_default():
    manifest = render()
    assert not [o for o in manifest if o["metadata"]["name"].endswith("-mirror")]
    assert agentpod.registry_mirrors(manifest.agent_pod()["spec"]) == []


@pytest.mark.parametrize("domain", ["cluster.local", "corp.internal"])
def test_agents_use_the_mirror_service(domain):
    manifest = mirror(overrides={"clusterDomain": domain, "agent": {"dind": {"registryMirrors": ["https://m.example"]}}})
    mirrors = agentpod.registry_mirrors(manifest.agent_pod()["spec"])
    assert mirrors[1:] == ["https://m.example"], "the chart's mirror comes first, the user's stay"
    url = urlsplit(mirrors[0])
    assert url.scheme == "http" and url.port == 5000
    name, namespace, svc, *rest = url.hostname.split(".")
    assert svc == "svc" and ".".join(rest) == domain
    service = manifest.get("Service", name=name)
    assert service["metadata"]["namespace"] == namespace
    [port] = service["spec"]["ports"]
    assert port["port"] == 5000
    pod = manifest.get("Deployment", name=name)["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items() and service["spec"]["selector"]
    registry = container(pod["spec"], "registry")
    assert {p["name"]: p["containerPort"] for p in registry["ports"]}[port["targetPort"]] == 5000


def test_config_is_what_distribution_reads_and_matches_the_pod():
    manifest = mirror(overrides={"mirror": {"upstream": "https://mirror.gcr.example"}})
    config = yaml.safe_load(manifest.get("ConfigMap", suffix="-mirror")["data"]["config.yml"])
    assert set(dotted(config)) <= set(DIST["config_keys"])
    assert config["proxy"]["remoteurl"] == "https://mirror.gcr.example"
    assert config["log"]["level"] in DIST["log_levels"]
    spec = manifest.get("Deployment", suffix="-mirror")["spec"]["template"]["spec"]
    registry = container(spec, "registry")
    assert registry["command"][0] == Path(DIST["image"]["binary"]).name
    config_mount = mounts_of(registry)[str(Path(registry["command"][-1]).parent)]
    config_volume = next(v for v in spec["volumes"] if v["name"] == config_mount["name"])
    assert config_volume["configMap"]["name"].endswith("-mirror")
    cache = mounts_of(registry)[config["storage"]["filesystem"]["rootdirectory"]]
    claim = next(v for v in spec["volumes"] if v["name"] == cache["name"])["persistentVolumeClaim"]["claimName"]
    assert manifest.get("PersistentVolumeClaim", name=claim)["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert int(config["http"]["addr"].rsplit(":", 1)[1]) == registry["ports"][0]["containerPort"]
    assert manifest.get("Deployment", suffix="-mirror")["spec"]["strategy"]["type"] == "Recreate"


def test_upstream_credentials_come_from_the_secret_only():
    plain = container(mirror().get("Deployment", suffix="-mirror")["spec"]["template"]["spec"], "registry")
    assert "env" not in plain
    spec = mirror(overrides={"mirror": {"upstreamSecret": "hub"}}).get("Deployment", suffix="-mirror")
    env = env_of(container(spec["spec"]["template"]["spec"], "registry"))
    prefix = DIST["env_prefix"]
    assert env == {f"{prefix}PROXY_USERNAME": {"secretKeyRef": {"name": "hub", "key": "username"}},
                   f"{prefix}PROXY_PASSWORD": {"secretKeyRef": {"name": "hub", "key": "password"}}}


def test_only_agent_pods_reach_the_mirror():
    manifest = mirror(overrides={"agent": {"namespace": {"name": "builds", "create": True}}})
    policy = manifest.get("NetworkPolicy", suffix="-mirror")["spec"]
    pod_labels = manifest.get("Deployment", suffix="-mirror")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"] and policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["policyTypes"] == ["Ingress"]
    [rule] = policy["ingress"]
    [peer] = rule["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "builds"}
    agent_labels = manifest.agent_pod()["metadata"]["labels"]
    assert peer["podSelector"]["matchLabels"] and peer["podSelector"]["matchLabels"].items() <= agent_labels.items()
    assert rule["ports"] == [{"port": "registry", "protocol": "TCP"}]


def test_mirror_pod_is_locked_down():
    spec = mirror().get("Deployment", suffix="-mirror")["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["automountServiceAccountToken"] is False
    sc = container(spec, "registry")["securityContext"]
    assert sc == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}


def test_the_image_is_pinned_by_the_recorded_digest():
    image = container(mirror().get("Deployment", suffix="-mirror")["spec"]["template"]["spec"], "registry")["image"]
    info = DIST["image"]
    assert image == f"{info['repository']}:{info['tag']}@{info['digest']}"


@pytest.mark.parametrize("bad,key", [
    ({"upstream": "registry-1.docker.io"}, "mirror.upstream"),
    ({"upstreamSecret": "Hub_Creds"}, "mirror.upstreamSecret"),
    ({"persistence": {"size": "lots"}}, "mirror.persistence.size"),
])
def test_bad_mirror_values_are_refused(bad, key, helm_major):
    with pytest.raises(RenderError) as err:
        mirror(overrides={"mirror": bad}, helm=helm_major)
    assert key in err.value.stderr or "/" + key.replace(".", "/") in err.value.stderr
