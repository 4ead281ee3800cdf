"""The agent's extension points (issue 14): extra pod templates (inheriting the dind pod or plain),
scheduling and metadata, the workspace volume, proxies, CA bundles, runtime classes, daemon.json and
a writable home, read from the rendered JCasC pod templates as the Kubernetes plugin builds them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from jdagent.chart import k8splugin
from jdagent.chart.manifest import all_containers, container, env_of, mounts_of, volume
from jdagent.chart.render import RenderError, render
from tests.conftest import CI_VALUES

RUNTIME = yaml.safe_load((Path(__file__).parent / "data" / "upstream" / "jenkins-runtime.yaml").read_text())
DOCKERD = yaml.safe_load((Path(__file__).parent / "data" / "upstream" / "dockerd.yaml").read_text())
KUBE = RUNTIME["kubernetes"]
CI = {p.name.removesuffix("-values.yaml"): p for p in CI_VALUES}
MAVEN = {"name": "maven", "containers": [{"name": "maven", "image": "maven:3.9.16-eclipse-temurin-21",
                                          "command": ["sleep"], "args": ["infinity"]}]}


def fails(overrides) -> str:
    with pytest.raises(RenderError) as err:
        render(overrides=overrides)
    return err.value.stderr


def spec_of(overrides=None, values=None, template=None) -> dict[str, Any]:
    return render(values=values, overrides=overrides).agent_pod(template)["spec"]


# --- extra templates -----------------------------------------------------------------------------------

def test_an_extra_template_inherits_the_dind_pod_and_adds_its_containers():
    manifest = render(values=CI["team"])
    main, extra = manifest.pod_template(), manifest.pod_template("maven")
    assert extra["inheritFrom"] == main["name"] and extra["yamlMergeStrategy"] == "merge"
    assert extra["label"] == "maven" and extra["instanceCap"] == 5
    assert KUBE["yaml_merge"]["inherited_yamls"] == "parent_first"
    pod = manifest.agent_pod("maven")["spec"]
    assert [c["name"] for c in pod["containers"]][-1] == "maven"
    assert {"jnlp", "dind", "docker-setup", "maven"} == {c["name"] for c in all_containers(pod)}
    # the parent's pod is untouched: only containers were added
    parent = manifest.agent_pod()["spec"]
    assert {k: v for k, v in pod.items() if k != "containers"} == {k: v for k, v in parent.items() if k != "containers"}


def test_extra_containers_share_workspace_home_and_dockerd():
    pod = spec_of(values=CI["team"], template="maven")
    maven, jnlp = container(pod, "maven"), container(pod, "jnlp")
    env = env_of(maven)
    assert env["DOCKER_HOST"] == env_of(jnlp)["DOCKER_HOST"] == "tcp://localhost:2375"
    assert env["HOME"] == "/home/jenkins" and env["MAVEN_OPTS"] == "-Xmx1g"
    for path in ("/home/jenkins/agent", "/home/jenkins", "/tmp", "/home/jenkins/.docker"):
        assert mounts_of(maven)[path]["name"] == mounts_of(jnlp)[path]["name"], path
    # the workspace is the volume the plugin replaces with its own workspaceVolume
    assert mounts_of(maven)["/home/jenkins/agent"]["name"] == KUBE["workspace_volume"]["name"]
    docker = mounts_of(maven)["/usr/local/bin/docker"]
    assert docker["name"] == "docker-cli" and docker["subPath"] == "bin/docker" and docker["readOnly"] is True
    # same uid as jnlp (both write the workspace), nothing privileged, read-only root
    assert maven["securityContext"] == jnlp["securityContext"]
    assert maven["resources"] == {"requests": {"cpu": "1", "memory": "1536Mi"},
                                  "limits": {"cpu": "2", "memory": "2Gi"}}


def test_a_plain_template_has_no_dockerd_and_nothing_privileged():
    plain = {**MAVEN, "name": "tools", "dind": False}
    manifest = render(overrides={"agent": {"extraTemplates": [plain]}})
    template = manifest.pod_template("tools")
    assert "inheritFrom" not in template and template["yamlMergeStrategy"] == "override"
    pod = manifest.agent_pod("tools")["spec"]
    assert [c["name"] for c in all_containers(pod)] == ["jnlp", "maven"]
    assert not any(c.get("securityContext", {}).get("privileged") for c in all_containers(pod))
    assert "DOCKER_HOST" not in env_of(container(pod, "jnlp")) and "DOCKER_HOST" not in env_of(container(pod, "maven"))
    assert {v["name"] for v in pod["volumes"]} == {"workspace-volume", "home", "tmp"}
    assert container(pod, "maven")["resources"] == container(pod, "jnlp")["resources"], "jnlp's by default"


def test_every_template_runs_in_the_agent_namespace_under_the_agent_account():
    manifest = render(values=CI["team"], overrides={"agent": {"namespace": {"name": "builds"}}})
    for template in manifest.kubernetes_cloud()["templates"]:
        assert template["namespace"] == "builds"
        assert manifest.agent_pod(template["name"])["spec"]["serviceAccountName"] == "ci-jenkins-dind-agent-agent"


@pytest.mark.parametrize("templates,expected", [
    ([MAVEN, MAVEN], "agent.extraTemplates[1].name maven is taken by agent.extraTemplates[0]"),
    ([{**MAVEN, "name": "dind"}], "agent.extraTemplates[0].name dind is taken by agent.label"),
    ([{**MAVEN, "label": "dind"}], "agent.extraTemplates[0] label dind is already the label of agent.label"),
    ([{**MAVEN, "containers": MAVEN["containers"] * 2}], "agent.extraTemplates[0].containers[1] repeats"),
    ([{**MAVEN, "instanceCap": 50}], "agent.extraTemplates[0].instanceCap (50) is larger than agent.containerCap"),
])
def test_extra_template_conflicts_are_refused(templates, expected):
    assert expected in fails({"agent": {"extraTemplates": templates}})


@pytest.mark.parametrize("bad", [
    {"name": "jnlp", "image": "x"},
    {"name": "tool", "image": "x", "securityContext": {"privileged": True}},
    {"name": "tool"},
])
def test_extra_containers_cannot_replace_or_escalate(bad):
    message = fails({"agent": {"extraTemplates": [{"name": "t", "containers": [bad]}]}})
    assert "/agent/extraTemplates/0/containers/0" in message


def test_the_merge_model_refuses_what_it_does_not_cover():
    parent = {"spec": {"containers": [{"name": "jnlp"}], "volumes": [{"name": "a", "emptyDir": {}}]}}
    with pytest.raises(k8splugin.MergeError):
        k8splugin.merge_pods(parent, {"spec": {"containers": [{"name": "jnlp", "image": "other"}]}})
    with pytest.raises(k8splugin.MergeError):
        k8splugin.merge_pods(parent, {"spec": {"hostNetwork": True}})
    merged = k8splugin.merge_pods(parent, {"metadata": {"labels": {"x": "1"}}, "spec": {
        "containers": [{"name": "tool"}], "volumes": [{"name": "a", "configMap": {"name": "c"}}],
        "nodeSelector": {"pool": "ci"}}})
    assert [c["name"] for c in merged["spec"]["containers"]] == ["jnlp", "tool"]
    assert merged["spec"]["volumes"] == [{"name": "a", "configMap": {"name": "c"}}], "child volume wins"
    assert merged["metadata"]["labels"] == {"x": "1"} and merged["spec"]["nodeSelector"] == {"pool": "ci"}
    assert parent["spec"]["containers"] == [{"name": "jnlp"}], "inputs untouched"


# --- scheduling, metadata, hatches -----------------------------------------------------------------------

def test_scheduling_and_metadata_reach_every_agent_pod():
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["ci"]}]}]}}}
    manifest = render(overrides={"agent": {
        "affinity": affinity, "priorityClassName": "ci-batch", "imagePullSecrets": [{"name": "pull"}],
        "podLabels": {"team": "a"}, "podAnnotations": {"cost-center": "42"},
        "extraTemplates": [MAVEN, {**MAVEN, "name": "plain", "dind": False}]}})
    for name in ("dind", "maven", "plain"):
        pod = manifest.agent_pod(name)
        spec = pod["spec"]
        assert spec["affinity"] == affinity and spec["priorityClassName"] == "ci-batch", name
        assert spec["imagePullSecrets"] == [{"name": "pull"}], name
        assert pod["metadata"]["labels"]["team"] == "a", name
        assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "agent", name
        assert pod["metadata"]["annotations"]["cost-center"] == "42", name
    test_pod = manifest.test_pod()["spec"]
    assert test_pod["affinity"] == affinity and test_pod["imagePullSecrets"] == [{"name": "pull"}]


@pytest.mark.parametrize("shared", [False, True], ids=["own-namespace", "beside-the-controller"])
def test_networkpolicy_still_selects_agent_pods_with_extra_labels(shared):
    manifest = render(values=CI["platform"], overrides={"agent": {"namespace": {"sameAsController": shared}}})
    policy = next(p for p in manifest.all("NetworkPolicy") if p["metadata"]["name"].endswith("-agents"))
    selector = policy["spec"]["podSelector"]
    # in their own namespace every pod there is selected; beside the controller, the chart's agent labels
    assert bool(selector) is shared
    for template in manifest.kubernetes_cloud()["templates"]:
        labels = manifest.agent_pod(template["name"])["metadata"]["labels"]
        assert selector.get("matchLabels", {}).items() <= labels.items()


def test_jnlp_hatches_and_extra_volumes():
    spec = spec_of({"agent": {"extraVolumes": [{"name": "m2", "persistentVolumeClaim": {"claimName": "m2"}}],
                              "jnlp": {"extraEnv": [{"name": "GRADLE_USER_HOME", "value": "/cache/gradle"}],
                                       "extraVolumeMounts": [{"name": "m2", "mountPath": "/cache"}]}}})
    jnlp = container(spec, "jnlp")
    assert env_of(jnlp)["GRADLE_USER_HOME"] == "/cache/gradle"
    assert mounts_of(jnlp)["/cache"]["name"] == "m2"
    assert volume(spec, "m2")["persistentVolumeClaim"] == {"claimName": "m2"}


def test_hostpath_volumes_are_refused_for_agents():
    message = fails({"agent": {"extraVolumes": [{"name": "sock", "hostPath": {"path": "/var/run/docker.sock"}}]}})
    assert "/agent/extraVolumes/0" in message


def test_workspace_size_limit_goes_through_jcasc_for_every_template():
    manifest = render(overrides={"agent": {"workspaceVolume": {"sizeLimit": "6Gi"}, "extraTemplates": [MAVEN]}})
    for template in manifest.kubernetes_cloud()["templates"]:
        assert template["workspaceVolume"] == {"emptyDirWorkspaceVolume": {"memory": False, "sizeLimit": "6Gi"}}
    # the yaml's own volume of that name (replaced by the plugin) says the same, for the helm test pod
    assert volume(manifest.agent_pod()["spec"], KUBE["workspace_volume"]["name"])["emptyDir"] == {"sizeLimit": "6Gi"}
    # bounded by default (10Gi); only an explicit empty value leaves the workspace unbounded
    assert render().pod_template()["workspaceVolume"]["emptyDirWorkspaceVolume"]["sizeLimit"] == "10Gi"
    assert "workspaceVolume" not in render(overrides={"agent": {"workspaceVolume": {"sizeLimit": ""}}}).pod_template()


def test_jnlp_home_is_writable_with_a_read_only_root():
    spec = spec_of()
    jnlp = container(spec, "jnlp")
    home = mounts_of(jnlp)["/home/jenkins"]
    assert not home.get("readOnly") and "emptyDir" in volume(spec, home["name"])
    assert jnlp["securityContext"]["readOnlyRootFilesystem"] is True
    assert jnlp["securityContext"]["runAsUser"] == 1000


# --- proxy ---------------------------------------------------------------------------------------------

def remoting_bypasses(host: str, no_proxy: str) -> bool:
    """NoProxyEvaluator's domain rule (data/upstream/jenkins-runtime.yaml, remoting.proxy)."""
    rules = RUNTIME["remoting"]["proxy"]
    entries = []
    for entry in no_proxy.split(","):
        entry = entry.strip()
        for prefix in rules["strip_prefixes"]:
            entry = entry.removeprefix(prefix)
        if entry:
            entries.append(entry)
    return host == "localhost" or any(host.endswith(e) for e in entries)


def go_bypasses(host: str, no_proxy: str) -> bool:
    """Go's httpproxy rule for names (dockerd, the docker CLI): an entry matches the host and its
    subdomains, a leading dot only its subdomains."""
    for entry in no_proxy.split(","):
        entry = entry.strip().split(":")[0]
        if entry.startswith("."):
            if host.endswith(entry):
                return True
        elif host == entry or host.endswith("." + entry):
            return True
    return False


def test_proxy_reaches_dockerd_jnlp_and_builds_and_bypasses_the_cluster():
    manifest = render(values=CI["corporate"])
    spec = manifest.agent_pod()["spec"]
    args = container(spec, "dind")["args"]
    no_proxy = next(a.split("=", 1)[1] for a in args if a.startswith("--no-proxy="))
    assert "--http-proxy=http://proxy.corp.example.com:3128" in args
    assert "--https-proxy=http://proxy.corp.example.com:3128" in args
    assert {"http-proxy", "https-proxy", "no-proxy"} <= set(DOCKERD["flags"])
    jnlp = env_of(container(spec, "jnlp"))
    for name in RUNTIME["remoting"]["proxy"]["http_proxy_env"] + ["HTTP_PROXY", "HTTPS_PROXY", "https_proxy"]:
        assert jnlp[name] == "http://proxy.corp.example.com:3128", name
    for name in RUNTIME["remoting"]["proxy"]["no_proxy_env"]:
        assert jnlp[name] == no_proxy
    # the agent reaches the controller directly (remoting's rule), dockerd the mirror and registry (Go's)
    cloud = manifest.kubernetes_cloud()
    controller_host = re.match(r"https?://([^:/]+)", cloud["jenkinsUrl"]).group(1)
    tunnel_host = cloud["jenkinsTunnel"].split(":")[0]
    assert remoting_bypasses(controller_host, no_proxy) and remoting_bypasses(tunnel_host, no_proxy)
    assert go_bypasses("ci-jenkins-dind-agent-mirror.ci.svc.cluster.local", no_proxy)
    assert go_bypasses("registry.corp.example.com", no_proxy), "agent.registry.server"
    assert not go_bypasses("registry-1.docker.io", no_proxy)
    assert not remoting_bypasses("updates.jenkins.io", no_proxy)
    # builds get the proxies as build args through the CLI's config.json
    proxies = json.loads(env_of(container(spec, "docker-setup"))["DOCKER_PROXIES"])
    assert proxies == {"default": {"httpProxy": "http://proxy.corp.example.com:3128",
                                   "httpsProxy": "http://proxy.corp.example.com:3128", "noProxy": no_proxy}}


def test_no_proxy_follows_the_cluster_domain():
    spec = spec_of({"clusterDomain": "k8s.internal", "agent": {"proxy": {"httpsProxy": "http://p:3128"}}})
    no_proxy = env_of(container(spec, "jnlp"))["NO_PROXY"]
    assert ".svc.k8s.internal" in no_proxy.split(",") and "--http-proxy" not in str(container(spec, "dind")["args"])


def test_no_proxy_settings_without_a_proxy():
    spec = spec_of()
    args = container(spec, "dind")["args"]
    assert not any(a.startswith(("--http-proxy", "--https-proxy", "--no-proxy")) for a in args)
    assert "NO_PROXY" not in env_of(container(spec, "jnlp"))
    assert "DOCKER_PROXIES" not in env_of(container(spec, "docker-setup"))


# --- CA certificates -----------------------------------------------------------------------------------

def test_ca_certificates_land_where_dockerd_and_tools_look():
    spec = spec_of(values=CI["corporate"])
    dind, setup, jnlp = container(spec, "dind"), container(spec, "docker-setup"), container(spec, "jnlp")
    mount = mounts_of(dind)["/etc/docker/certs.d"]
    vol = volume(spec, mount["name"])
    assert mount["readOnly"] is True
    assert vol["configMap"] == {"name": "corp-ca", "items": [{"key": "corp-root-ca.pem",
                                                              "path": "registry.corp.example.com/ca.crt"}]}
    assert mounts_of(setup)["/run/jda/ca"]["name"] == mount["name"]
    for name in ("SSL_CERT_FILE", "GIT_SSL_CAINFO", "CURL_CA_BUNDLE"):
        bundle = env_of(jnlp)[name]
        assert bundle.startswith(mounts_of(jnlp)["/usr/local/lib/docker"]["mountPath"])
    assert "jnlp" not in [c["name"] for c in all_containers(spec)
                          if any(m["name"] == mount["name"] for m in c.get("volumeMounts", []))]


@pytest.mark.parametrize("ca,expected", [
    ({"configMap": "a", "secret": "b", "hosts": [{"host": "r", "key": "k"}]}, "are both set"),
    ({"hosts": [{"host": "r", "key": "k"}]}, "neither agent.caCertificates.configMap nor .secret"),
    ({"secret": "b"}, "agent.caCertificates.hosts is empty"),
    ({"secret": "b", "hosts": [{"host": "r", "key": "k"}, {"host": "r", "key": "j"}]}, "repeats host r"),
])
def test_ca_certificate_mistakes_are_refused(ca, expected):
    assert expected in fails({"agent": {"caCertificates": ca}})


# --- runtime class, daemon.json --------------------------------------------------------------------------

def test_unprivileged_dind_only_with_a_runtime_class():
    assert "agent.runtimeClassName is empty" in fails({"agent": {"dind": {"privileged": False}}})
    spec = spec_of({"agent": {"runtimeClassName": "sysbox-runc", "dind": {"privileged": False}}})
    assert spec["runtimeClassName"] == "sysbox-runc"
    assert not any(c.get("securityContext", {}).get("privileged") for c in all_containers(spec))


def daemon_json(overrides) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(env_of(container(spec_of(overrides), "docker-setup"))["DAEMON_JSON"])
    return value


def test_daemon_config_merges_with_the_charts_keys():
    config = daemon_json({"agent": {"dind": {"daemonConfig": {"log-level": "warn", "features": {"cdi": True}}}}})
    assert config == {"log-level": "warn", "features": {"cdi": True, "containerd-snapshotter": False}}
    assert daemon_json({}) == {"features": {"containerd-snapshotter": False}}


@pytest.mark.parametrize("key,use", [
    ("hosts", "tcp://127.0.0.1:2375"), ("storage-driver", "agent.dind.storageDriver"),
    ("registry-mirrors", "agent.dind.registryMirrors"), ("tls", "without TLS"), ("proxies", "agent.proxy"),
    ("mtu", "agent.dind.mtu"), ("data-root", "/var/lib/docker"),
])
def test_daemon_config_keys_the_chart_owns_are_refused(key, use):
    message = fails({"agent": {"dind": {"daemonConfig": {key: "x"}}}})
    assert f"agent.dind.daemonConfig.{key} is owned by the chart" in message and use in message


def test_daemon_config_cannot_repeat_a_flag():
    message = fails({"agent": {"dind": {"extraArgs": ["--label=a=b"], "daemonConfig": {"labels": ["c=d"]}}}})
    assert "agent.dind.daemonConfig.labels is also set by the flag --label" in message
    message = fails({"agent": {"dind": {"extraArgs": ["--debug"], "daemonConfig": {"debug": True}}}})
    assert "daemonConfig.debug is also set by the flag --debug" in message
    # dind-start.sh adds --mtu and --default-network-opt at start even with mtu 0 (auto)
    message = fails({"agent": {"dind": {"daemonConfig": {"default-network-opts": {}}}}})
    assert "default-network-opts is owned by the chart" in message
    assert "containerd-snapshotter is owned" in fails(
        {"agent": {"dind": {"daemonConfig": {"features": {"containerd-snapshotter": True}}}}})


def test_unknown_daemon_config_keys_are_refused_by_the_schema():
    assert "/agent/dind/daemonConfig" in fails({"agent": {"dind": {"daemonConfig": {"log-levl": "warn"}}}})


def test_the_templates_named_options_are_dockerds():
    """_validate.tpl maps flags to their daemon.json keys; dockerd's source says which differ."""
    text = (Path(__file__).parents[2] / "charts" / "jenkins-dind-agent" / "templates" / "_validate.tpl").read_text()
    block = text.split('define "jda.dockerdNamedOptions"')[1].split("{{- end -}}")[0].split("-}}", 1)[1]
    assert yaml.safe_load(block) == {n: f["json"] for n, f in DOCKERD["flags"].items() if "json" in f}


def test_every_flag_dockerd_starts_with_makes_its_daemon_json_key_refused():
    """dockerd refuses a directive given as a flag and in daemon.json; the chart refuses it first."""
    args = container(spec_of(values=CI["corporate"]), "dind")["args"]
    flags = {a[2:].split("=")[0] for a in args if a.startswith("--")}
    flags |= {"cgroup-parent", "mtu", "default-network-opt", "data-root"}  # dind-start.sh (test_dockerd_flags)
    assert {"host", "tls", "storage-driver", "config-file", "http-proxy", "no-proxy"} <= flags
    for flag in sorted(flags):
        key = DOCKERD["flags"][flag].get("json", flag)
        with pytest.raises(RenderError) as err:
            render(values=CI["corporate"], overrides={"agent": {"dind": {"daemonConfig": {key: "x"}}}})
        assert f"agent.dind.daemonConfig.{key} is" in err.value.stderr, flag
