"""Issue 20 item 3: the image Spinnaker deploys is named after the in-cluster registry the agents push to
(registry.registry.svc.cluster.local:5000/...), a name only cluster DNS resolves, served over plain HTTP.
The nodes' containerd gets a registry hosts entry for that name pointing at the registry Service's fixed
ClusterIP (kind: config_path + a mounted hosts.toml, as kind's local-registry guide does; the local cluster
reads the same folder). The cluster tier proves the pull (tests/cluster/test_spinnaker.py)."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from jdagent.chart import spinnaker
from jdagent.cluster import kind, registry
from jdagent.cluster.local import addons, config
from jdagent.paths import REPO_ROOT

E2E = REPO_ROOT / "tests" / "e2e"
HOSTS_DIR = E2E / "containerd-certs.d"
FACTS = yaml.safe_load((REPO_ROOT / "tests" / "unit" / "data" / "upstream" / "spinnaker-kustomize.yaml")
                       .read_text())["node_registry"]
KIND = yaml.safe_load(kind.KIND_CONFIG.read_text())


def host_dir(name: str) -> Path:
    """The first directory containerd tries for a registry host with a port (recorded host_dirs)."""
    host, port = name.rsplit(":", 1)
    return HOSTS_DIR / FACTS["containerd"]["host_dirs"][0].replace("<host>", host).replace("<port>", port)


def registry_service() -> dict:
    return next(d for d in yaml.safe_load_all((E2E / "registry.yaml").read_text()) if d["kind"] == "Service")


def test_the_registry_name_is_where_the_agents_push_and_what_spinnaker_lists():
    push = yaml.safe_load((REPO_ROOT / "charts" / "jenkins-dind-agent" / "ci" / "push-values.yaml").read_text())
    assert push["agent"]["registry"]["server"] == registry.REGISTRY
    assert spinnaker.load().registry.host == registry.REGISTRY
    service = registry_service()
    assert f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local:" \
           f"{service['spec']['ports'][0]['port']}" == registry.REGISTRY


def test_the_hosts_entry_maps_the_name_to_the_registry_cluster_ip_over_http():
    hosts = tomllib.loads((host_dir(registry.REGISTRY) / "hosts.toml").read_text())
    server = urlsplit(hosts["server"])
    assert FACTS["containerd"]["http_server_is_plain_http"] is True and server.scheme == "http"
    service = registry_service()
    assert server.hostname == service["spec"]["clusterIP"] == addons.REGISTRY_IP
    assert server.port == service["spec"]["ports"][0]["port"]
    assert f"{server.hostname}:{server.port}" == addons.REGISTRY, "the local cluster's registry: the same address"
    assert set(hosts) == {"server"}
    assert ":" not in str(host_dir(registry.REGISTRY).relative_to(REPO_ROOT)), "no ':' in repository paths"


def test_kind_reads_the_hosts_folder_as_its_guide_says():
    [patch] = KIND["containerdConfigPatches"]
    parsed = tomllib.loads(patch)
    guide = FACTS["kind"]["config_patch"]
    table = parsed
    for part in ("plugins", "io.containerd.grpc.v1.cri", "registry"):
        table = table[part]
    assert guide["table"] == 'plugins."io.containerd.grpc.v1.cri".registry'
    assert table == {guide["key"]: guide["value"]}
    [node] = KIND["nodes"]
    [mount] = node["extraMounts"]
    assert mount["containerPath"] == guide["value"] and mount["readOnly"] is True
    assert (REPO_ROOT / mount["hostPath"]).resolve() == HOSTS_DIR.resolve()


def test_the_cluster_ip_lies_in_the_service_ranges_of_both_clusters():
    ip = ipaddress.ip_address(registry_service()["spec"]["clusterIP"])
    kind_subnet = KIND["networking"]["serviceSubnet"]
    assert kind_subnet == FACTS["kind"]["service_subnet_default"]["value"]
    assert ip in ipaddress.ip_network(kind_subnet)
    assert ip in ipaddress.ip_network(config.SERVICE_CIDR)
