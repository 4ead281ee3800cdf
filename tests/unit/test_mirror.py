"""The pull-through mirror (mirror.enabled): its objects wire to each other and to the agents, its
config uses only keys Distribution reads (data/upstream/distribution.yaml), its nginx front
(mirror.front) uses only directives nginx has, where nginx allows them (data/upstream/nginx.yaml), and
sits between the Service and Distribution, and the mirror is reachable only from agent pods."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import crossplane
import pytest
import yaml

from jdagent.chart.manifest import container, env_of, mounts_of
from jdagent.chart.render import RenderError, deep_merge, render
from jdagent.engine import agentpod

DIST = yaml.safe_load((Path(__file__).parent / "data" / "upstream" / "distribution.yaml").read_text())
NGINX = yaml.safe_load((Path(__file__).parent / "data" / "upstream" / "nginx.yaml").read_text())
ON = {"mirror": {"enabled": True}}
NO_FRONT = {"mirror": {"front": {"enabled": False}}}
DIGEST = "sha256:" + "ab" * 32


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
    served = [(c["name"], p["containerPort"]) for c in pod["spec"]["containers"] for p in c.get("ports", [])
              if p["name"] == port["targetPort"]]
    assert served == [("front", 5000)], "the Service must reach the front alone, not Distribution"


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


def test_without_the_front_distribution_takes_the_service_port():
    manifest = mirror(overrides=NO_FRONT)
    assert "nginx.conf" not in manifest.get("ConfigMap", suffix="-mirror")["data"]
    spec = manifest.get("Deployment", suffix="-mirror")["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["containers"]] == ["registry"]
    assert not [v for v in spec["volumes"] if v["name"].startswith("front")]
    [port] = manifest.get("Service", suffix="-mirror")["spec"]["ports"]
    registry = container(spec, "registry")
    assert {p["name"]: p["containerPort"] for p in registry["ports"]}[port["targetPort"]] == 5000
    config = yaml.safe_load(manifest.get("ConfigMap", suffix="-mirror")["data"]["config.yml"])
    assert config["http"]["addr"] == ":5000"


# --- the front ---------------------------------------------------------------------------------------

def nginx_conf(manifest) -> list[dict[str, Any]]:
    """The rendered nginx.conf, parsed by crossplane (nginx's own config grammar: blocks, quoting)."""
    text = manifest.get("ConfigMap", suffix="-mirror")["data"]["nginx.conf"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "nginx.conf"
        path.write_text(text)
        parsed = crossplane.parse(str(path), check_ctx=False, check_args=False, comments=False, single=True)
    assert parsed["status"] == "ok", parsed["errors"]
    return parsed["config"][0]["parsed"]


def walk(block: list[dict[str, Any]], context: str = "main"):
    """(context, directive) for every directive, with the block kind it sits in."""
    for d in block:
        yield context, d
        if "block" in d:
            yield from walk(d["block"], d["directive"])


def find(block, name: str, context: str | None = None) -> list[dict[str, Any]]:
    return [d for c, d in walk(block) if d["directive"] == name and (context is None or c == context)]


def blob_location(conf) -> dict[str, Any]:
    [loc] = [d for d in find(conf, "location") if d["args"][0] == "~"]
    return loc


def test_every_front_directive_is_one_nginx_has_where_nginx_allows_it():
    conf = nginx_conf(mirror())
    misplaced = [(ctx, d["directive"], d["line"]) for ctx, d in walk(conf)
                 if ctx not in NGINX["directives"].get(d["directive"], [])]
    assert misplaced == [], f"unknown to nginx {NGINX['source']['tag']}, or not allowed in that block"


def test_the_front_command_uses_options_nginx_reads_and_finds_its_config():
    manifest = mirror()
    spec = manifest.get("Deployment", suffix="-mirror")["spec"]["template"]["spec"]
    front = container(spec, "front")
    command = front["command"]
    assert command[0] == NGINX["image"]["command"][0], "the image runs nginx from PATH"
    flags = [a for a in command[1:] if a.startswith("-")]
    assert {f[1:] for f in flags} <= set(NGINX["options"]) and all(len(f) == 2 for f in flags)
    config_path = Path(command[command.index("-c") + 1])
    mount = mounts_of(front)[str(config_path.parent)]
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    data = manifest.get("ConfigMap", name=volume["configMap"]["name"])["data"]
    assert config_path.name in data
    # no "daemon off" on the command line: the config says it, once
    assert "-g" not in command and [d["args"] for d in find(nginx_conf(manifest), "daemon")] == [["off"]]


def test_every_path_nginx_writes_is_a_mounted_empty_dir():
    manifest = mirror(overrides={"mirror": {"front": {"cacheSize": "2Gi"}}})
    spec = manifest.get("Deployment", suffix="-mirror")["spec"]["template"]["spec"]
    front = container(spec, "front")
    assert front["securityContext"]["readOnlyRootFilesystem"] is True
    conf = nginx_conf(manifest)
    written = [d["args"][0] for d in find(conf, "pid")]
    written += [d["args"][0] for c, d in walk(conf) if d["directive"].endswith("_temp_path")]
    [cache_path] = find(conf, "proxy_cache_path")
    written.append(cache_path["args"][0])
    assert len(written) == 7
    volumes = {v["name"]: v for v in spec["volumes"]}
    for path in written:
        mount = next((m for p, m in mounts_of(front).items() if path.startswith(p.rstrip("/") + "/")), None)
        assert mount is not None and not mount.get("readOnly"), f"{path} is not on a writable mount"
        assert "emptyDir" in volumes[mount["name"]], path
    # the cache may fill three quarters of its emptyDir, so the kubelet never evicts the pod for it
    params = dict(a.split("=", 1) for a in cache_path["args"][1:] if "=" in a)
    assert params["max_size"] == "1536m" and params["use_temp_path"] == "off"
    cache_mount = next(m for p, m in mounts_of(front).items() if cache_path["args"][0].startswith(p))
    assert volumes[cache_mount["name"]]["emptyDir"]["sizeLimit"] == "2Gi"


@pytest.mark.parametrize("path,cached", [
    (f"/v2/library/busybox/blobs/{DIGEST}", True),
    (f"/v2/team/sub/app/blobs/{DIGEST}", True),
    ("/v2/library/busybox/manifests/1.37.0", False),
    (f"/v2/library/busybox/manifests/{DIGEST}", False),
    ("/v2/library/busybox/blobs/uploads/", False),
    ("/v2/", False),
    ("/v2/library/busybox/tags/list", False),
])
def test_only_blob_reads_go_through_the_cache_lock_and_by_digest(path, cached):
    conf = nginx_conf(mirror())
    loc = blob_location(conf)
    pattern = re.compile(loc["args"][1].replace("(?<", "(?P<"))  # PCRE named group, in Python's spelling
    match = pattern.search(path)
    assert bool(match) is cached
    if not cached:
        return
    settings = {d["directive"]: d["args"] for d in loc["block"]}
    # keyed by digest alone: the same layer under two repositories is fetched once
    assert settings["proxy_cache_key"] == ["$" + next(iter(pattern.groupindex))]
    assert match.group(1) == DIGEST
    assert settings["proxy_cache_lock"] == ["on"]
    # nginx's defaults (5 s) would let every waiter go to Distribution for a blob that takes longer
    for name in ("proxy_cache_lock_timeout", "proxy_cache_lock_age"):
        assert settings[name] == ["30m"], name
    assert settings["proxy_cache_valid"] == ["200", "10m"], "only complete blobs are cached, never errors"
    assert settings["proxy_ignore_client_abort"] == ["on"], "waiters must not lose the fetch to a client leaving"
    [zone] = [a.split("=", 1)[1].split(":")[0] for a in find(conf, "proxy_cache_path")[0]["args"]
              if a.startswith("keys_zone=")]
    assert settings["proxy_cache"] == [zone]


def test_the_front_forwards_everything_to_distribution_on_loopback():
    manifest = mirror()
    conf = nginx_conf(manifest)
    config = yaml.safe_load(manifest.get("ConfigMap", suffix="-mirror")["data"]["config.yml"])
    port = int(config["http"]["addr"].rsplit(":", 1)[1])
    targets = {urlsplit(d["args"][0]).netloc for d in find(conf, "proxy_pass")}
    assert targets == {f"127.0.0.1:{port}"}
    [listen] = find(conf, "listen")
    spec = manifest.get("Deployment", suffix="-mirror")["spec"]["template"]["spec"]
    front_ports = {p["containerPort"] for p in container(spec, "front")["ports"]}
    assert front_ports == {int(listen["args"][0])}
    # every location proxies, except the front's own health answer
    [plain, blobs] = [d for d in find(conf, "location") if d["args"] != ["=", "/jda-front/healthz"]]
    for loc in (plain, blobs):
        assert find(loc["block"], "proxy_pass"), loc["args"]
    front = container(spec, "front")
    assert front["livenessProbe"]["httpGet"]["path"] == "/jda-front/healthz"
    assert front["readinessProbe"]["httpGet"]["path"] == "/v2/", "ready only when Distribution answers through it"


def test_the_front_is_locked_down_and_pinned():
    spec = mirror().get("Deployment", suffix="-mirror")["spec"]["template"]["spec"]
    front = container(spec, "front")
    assert front["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                        "capabilities": {"drop": ["ALL"]}}
    info = NGINX["image"]
    assert front["image"] == f"{info['repository']}:{info['tag']}@{info['digest']}"
    assert front["resources"]["limits"]["memory"]


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
    # an agent namespace of its own: every pod there is an agent's (Jenkinsfile podTemplates included)
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "builds"}}}]
    assert rule["ports"] == [{"port": "registry", "protocol": "TCP"}]
    # beside the controller: the chart's agents and the plugin's pods, never the controller itself
    shared = mirror(overrides={"agent": {"namespace": {"sameAsController": True}}})
    [rule] = shared.get("NetworkPolicy", suffix="-mirror")["spec"]["ingress"]
    selectors = [peer["podSelector"]["matchLabels"] for peer in rule["from"]]
    agent_labels = shared.agent_pod()["metadata"]["labels"]
    assert selectors[0].items() <= agent_labels.items() and selectors[1] == {"jenkins": "slave"}
    controller = shared.get("StatefulSet")["spec"]["template"]["metadata"]["labels"]
    assert not any(sel.items() <= controller.items() for sel in selectors)


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
    ({"front": {"cacheSize": "4G"}}, "mirror.front.cacheSize"),
    ({"front": {"cacheSize": "0Mi"}}, "mirror.front.cacheSize"),
    ({"front": {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}}, "mirror.front.resources"),
])
def test_bad_mirror_values_are_refused(bad, key, helm_major):
    with pytest.raises(RenderError) as err:
        mirror(overrides={"mirror": bad}, helm=helm_major)
    assert key in err.value.stderr or "/" + key.replace(".", "/") in err.value.stderr
