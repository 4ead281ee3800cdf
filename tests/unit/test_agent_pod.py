"""The agent pod, as the Kubernetes plugin receives it from the JCasC `yaml:` field."""

from __future__ import annotations

import json
import re
import shlex
import subprocess

import pytest

from jdagent.chart.manifest import container, env_of, is_native_sidecar, mounts_of, volume
from jdagent.chart.render import render
from jdagent.paths import CHART_DIR
from tests.conftest import CI_VALUES, ci_ids


def agent_spec(**kw):
    return render(**kw).agent_pod()["spec"]


def dind_args(spec):
    return container(spec, "dind")["args"]


def test_only_dind_is_privileged():
    spec = agent_spec()
    privileged = {c["name"] for c in [*spec["initContainers"], *spec["containers"]]
                  if c.get("securityContext", {}).get("privileged")}
    assert privileged == {"dind"}


def test_dockerd_defaults_to_vfs_on_loopback_without_tls():
    args = dind_args(agent_spec())
    assert args[0] == "dockerd", "first arg must be dockerd or the dind entrypoint adds 0.0.0.0:2375"
    assert "--storage-driver=vfs" in args
    assert [a for a in args if a.startswith("--host")] == ["--host=tcp://127.0.0.1:2375",
                                                           "--host=unix:///var/run/docker.sock"]
    assert "--tls=false" in args
    env = env_of(container(agent_spec(), "dind"))
    assert env["DOCKER_TLS_CERTDIR"] == ""


@pytest.mark.parametrize("driver", ["overlay2"])
def test_storage_driver_switch(driver):
    args = dind_args(agent_spec(overrides={"agent": {"dind": {"storageDriver": driver}}}))
    assert [a for a in args if a.startswith("--storage-driver")] == [f"--storage-driver={driver}"]


def test_auto_storage_driver_passes_no_flag_and_no_snapshotter_override():
    spec = agent_spec(overrides={"agent": {"dind": {"storageDriver": "auto"}}})
    assert not any(a.startswith("--storage-driver") for a in dind_args(spec))
    daemon_json = json.loads(env_of(container(spec, "docker-setup"))["DAEMON_JSON"])
    assert daemon_json == {}


def test_graph_driver_is_not_replaced_by_the_containerd_image_store():
    spec = agent_spec()
    daemon_json = json.loads(env_of(container(spec, "docker-setup"))["DAEMON_JSON"])
    assert daemon_json["features"]["containerd-snapshotter"] is False
    assert "--config-file=/etc/docker-jda/daemon.json" in dind_args(spec)
    setup_mounts = mounts_of(container(spec, "docker-setup"))
    dind_mounts = mounts_of(container(spec, "dind"))
    assert setup_mounts["/dind-config"]["name"] == dind_mounts["/etc/docker-jda"]["name"] == "dind-config"


@pytest.mark.parametrize("values", CI_VALUES, ids=ci_ids(CI_VALUES))
def test_no_wildcard_listen_address_anywhere(values):
    manifest = render(values=values)
    # 0.0.0.0 as an address (10.0.0.0/8 in a NO_PROXY list is not one)
    assert not re.search(r"(?<![0-9.])0\.0\.0\.0(?![0-9.])", manifest.text)
    for c in [container(manifest.agent_pod()["spec"], "dind"), container(manifest.test_pod()["spec"], "dind")]:
        hosts = [a for a in c["args"] if a.startswith(("--host", "-H"))]
        assert hosts == ["--host=tcp://127.0.0.1:2375", "--host=unix:///var/run/docker.sock"]


def test_docker_data_is_an_emptydir_with_size_limit():
    spec = agent_spec(overrides={"agent": {"dind": {"dataSizeLimit": "13Gi"}}})
    mount = mounts_of(container(spec, "dind"))["/var/lib/docker"]
    vol = volume(spec, mount["name"])
    assert vol["emptyDir"]["sizeLimit"] == "13Gi"
    assert "hostPath" not in vol
    # the kubelet's eviction message names the volume ("Usage of EmptyDir volume ... exceeds the limit"),
    # and the Kubernetes plugin prints it into the build's console: the name says which value to raise
    assert mount["name"] == "agent-dind-datasizelimit"


def test_dind_requests_ephemeral_storage_and_sets_no_pod_budget_by_default():
    """The request counts for scheduling. A limit is summed by the kubelet into the pod's budget for all it
    writes, emptyDirs included; the old default (24Gi) fell short of the emptyDirs' own limits (20Gi +
    2Gi + 1Gi + 256Mi) and evicted pods before /var/lib/docker was full, so there is none by default."""
    res = container(agent_spec(), "dind")["resources"]
    assert "ephemeral-storage" in res["requests"] and "ephemeral-storage" not in res["limits"]
    given = container(agent_spec(overrides={"agent": {"dind": {"resources": {"limits": {
        "ephemeral-storage": "32Gi"}}}}}), "dind")["resources"]
    assert given["limits"]["ephemeral-storage"] == "32Gi"


def test_jnlp_uses_the_pod_dockerd_and_is_locked_down():
    spec = agent_spec()
    jnlp = container(spec, "jnlp")
    env = env_of(jnlp)
    assert env["DOCKER_HOST"] == "tcp://localhost:2375"
    sc = jnlp["securityContext"]
    assert sc.get("privileged") is not True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["runAsNonRoot"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]


def test_jnlp_gets_the_docker_cli_from_the_dind_image():
    manifest = render()
    spec = manifest.agent_pod()["spec"]
    setup = container(spec, "docker-setup")
    dind = container(spec, "dind")
    jnlp = container(spec, "jnlp")
    assert setup["image"] == dind["image"], "the CLI must come from the same Docker release as dockerd"
    assert setup["command"] == ["/bin/sh", "/jda-dind/docker-setup.sh"]
    scripts = volume(spec, mounts_of(setup)["/jda-dind"]["name"])["configMap"]["name"]
    assert manifest.get("ConfigMap", name=scripts)["data"]["docker-setup.sh"] == \
        (CHART_DIR / "files" / "docker-setup.sh").read_text()
    cli_mount = mounts_of(setup)["/cli"]["name"]
    jnlp_mount = mounts_of(jnlp)["/usr/local/lib/docker"]
    assert jnlp_mount["name"] == cli_mount and jnlp_mount["readOnly"] is True
    # the CLI finds plugins in /usr/local/lib/docker/cli-plugins; the binary via PATH
    assert env_of(jnlp)["PATH"].split(":")[0] == "/usr/local/lib/docker/bin"
    assert cli_mount == "docker-cli"
    assert spec["initContainers"][0]["name"] == "docker-setup", "setup must finish before dind and jnlp start"


@pytest.mark.parametrize("kube,native", [("1.27.0", False), ("1.28.0", False), ("1.29.0", False), ("1.32.9", False),
                                         ("1.33.0", True), ("1.37.0", True)])
def test_native_sidecar_follows_kubernetes_version(kube, native):
    """auto: native sidecars from 1.33, where SidecarContainers is GA and locked on; on 1.29-1.32 a cluster
    may run with the gate off (the API server then drops restartPolicy and refuses the startupProbe)."""
    spec = agent_spec(kube_version=kube)
    assert is_native_sidecar(spec, "dind") is native
    names = [c["name"] for c in spec["containers"]]
    assert ("dind" in names) is (not native)


@pytest.mark.parametrize("kube", ["1.29.0", "1.32.0"])
def test_native_sidecar_true_is_the_explicit_choice_on_beta_versions(kube):
    assert is_native_sidecar(agent_spec(kube_version=kube, overrides={"agent": {"nativeSidecar": "true"}}), "dind")
    assert not is_native_sidecar(agent_spec(kube_version="1.37.0", overrides={"agent": {"nativeSidecar": False}}),
                                 "dind")


def test_native_sidecar_waits_through_startup_probe():
    dind = container(agent_spec(kube_version="1.33.0"), "dind")
    probe = dind["startupProbe"]
    assert probe["exec"]["command"] == ["docker", "version"], "docker info also starts every CLI plugin"
    assert probe["periodSeconds"] == 1
    assert probe["failureThreshold"] == 60
    assert env_of(dind)["DOCKER_HOST"] == "tcp://127.0.0.1:2375"


@pytest.mark.parametrize("override", [{"nativeSidecar": "false"}, {}])
def test_classic_path_polls_fast_and_bounded_before_the_agent(override):
    spec = agent_spec(kube_version="1.28.0" if not override else "1.33.0",
                      overrides={"agent": {**override, "dind": {"readyTimeoutSeconds": 30}}})
    assert not is_native_sidecar(spec, "dind")
    jnlp = container(spec, "jnlp")
    cmd = jnlp["command"]
    assert cmd[:2] == ["/bin/sh", "-c"]
    script = cmd[2]
    assert "sleep 0.2" in script
    assert "-ge 30 ]" in script and "within 30s" in script  # wall-clock bound
    assert "exit 1" in script and "exec \"$@\"" in script
    assert cmd[-1] == "/usr/local/bin/jenkins-agent"
    assert "${" not in script, "JCasC would interpolate brace variables"


def test_native_sidecar_true_is_refused_on_old_clusters():
    from jdagent.chart.render import RenderError

    with pytest.raises(RenderError, match=r"agent\.nativeSidecar"):
        render(kube_version="1.28.0", overrides={"agent": {"nativeSidecar": "true"}})


def test_optional_dockerd_flags_present_exactly_when_set():
    plain = dind_args(agent_spec())
    assert not any(a.startswith(("--mtu", "--registry-mirror", "--insecure-registry")) for a in plain)
    args = dind_args(agent_spec(overrides={"agent": {"dind": {
        "mtu": 1400,
        "registryMirrors": ["https://mirror.example.internal"],
        "insecureRegistries": ["registry.svc:5000", "10.0.0.0/8"],
    }}}))
    assert "--mtu=1400" in args
    assert "--registry-mirror=https://mirror.example.internal" in args
    assert [a for a in args if a.startswith("--insecure-registry")] == [
        "--insecure-registry=registry.svc:5000", "--insecure-registry=10.0.0.0/8"]


def test_no_service_account_token_unless_enabled():
    assert agent_spec()["automountServiceAccountToken"] is False
    # (the default admission policy refuses a token: giving one needs the policy off)
    assert agent_spec(overrides={"agent": {"automountServiceAccountToken": True, "admissionPolicy": {
        "enabled": False}}})["automountServiceAccountToken"]


def test_registry_secret_reaches_only_docker_setup_and_a_writable_in_memory_docker_config():
    manifest = render(values=[p for p in CI_VALUES if p.name == "push-values.yaml"])
    # only the push template's pods: the default template and the helm test pod mount no Secret at all
    for other in (manifest.agent_pod()["spec"], manifest.test_pod()["spec"]):
        assert not [v for v in other["volumes"] if "secret" in v or "projected" in v], other["volumes"]
    spec = manifest.push_pod()["spec"]
    auth = volume(spec, "registry-auth")
    assert auth["secret"]["secretName"] == "registry-push"
    assert auth["secret"]["items"] == [{"key": ".dockerconfigjson", "path": "config.json"}]
    users = [c["name"] for c in [*spec["initContainers"], *spec["containers"]]
             if any(m["name"] == "registry-auth" for m in c.get("volumeMounts", []))]
    assert users == ["docker-setup"]
    assert mounts_of(container(spec, "docker-setup"))["/run/jda/registry-auth"]["readOnly"] is True
    # docker-setup writes config.json into ~/.docker of jnlp: writable (docker login), in memory
    config = mounts_of(container(spec, "jnlp"))["/home/jenkins/.docker"]
    assert not config.get("readOnly") and "subPath" not in config
    assert mounts_of(container(spec, "docker-setup"))["/docker-config"]["name"] == config["name"]
    assert volume(spec, config["name"])["emptyDir"]["medium"] == "Memory"


def test_helm_test_pod_is_the_agent_pod_spec():
    manifest = render()
    agent, test = manifest.agent_pod()["spec"], manifest.test_pod()["spec"]
    assert container(agent, "dind") == container(test, "dind")
    assert container(agent, "docker-setup") == container(test, "docker-setup")
    assert test["restartPolicy"] == "Never"
    jnlp = container(test, "jnlp")
    assert jnlp["command"][-2:] == ["/bin/sh", "/jda-test-files/helm-test.sh"]
    files = manifest.get("ConfigMap", suffix="-helm-test")["data"]
    assert "--network host" in files["helm-test.sh"]
    assert files["Dockerfile"].count("FROM ") == 2, "the test builds a multi-stage Dockerfile"


def test_classic_helm_test_pod_stops_dockerd_when_done():
    manifest = render(kube_version="1.28.0")
    spec = manifest.test_pod()["spec"]
    dind = container(spec, "dind")
    assert dind["args"] == container(manifest.agent_pod()["spec"], "dind")["args"]
    assert "/jda-test/done" in dind["command"][2]
    assert mounts_of(container(spec, "jnlp"))["/jda-test"]["name"] == mounts_of(dind)["/jda-test"]["name"]


def test_helm_test_runs_in_the_agent_namespace():
    manifest = render(values=[p for p in CI_VALUES if p.name == "agent-namespace-values.yaml"])
    assert manifest.test_pod()["metadata"]["namespace"] == "ci-agents"
    assert manifest.get("ConfigMap", suffix="-helm-test")["metadata"]["namespace"] == "ci-agents"


def sh_syntax_ok(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True, timeout=10)


def test_every_inline_shell_script_parses():
    """`sh -n` (the syntax check of the shell that runs them), not a tokenizer."""
    prewarm = {"agent": {"dind": {"prewarm": {"enabled": True, "images": ["busybox:1.37.0"]}}}}
    scripts = {
        "wait (classic)": container(agent_spec(kube_version="1.28.0"), "jnlp")["command"][2],
        "dind of the classic helm test": container(render(kube_version="1.28.0").test_pod()["spec"],
                                                   "dind")["command"][2],
        "prewarm postStart": container(agent_spec(overrides=prewarm), "dind")["lifecycle"]["postStart"]["exec"][
            "command"][2],
        "prewarm probe": container(agent_spec(overrides=prewarm), "dind")["startupProbe"]["exec"]["command"][2],
    }
    reload = render(overrides={"controller": {"jcasc": {"reload": {"enabled": True}}}})
    sidecar = container(reload.get("StatefulSet")["spec"]["template"]["spec"], "casc-reload")
    scripts["reload liveness"] = sidecar["livenessProbe"]["exec"]["command"][2]
    for name, script in scripts.items():
        result = sh_syntax_ok(script)
        assert result.returncode == 0, f"{name}: {result.stderr}"
    for path in sorted((CHART_DIR / "files").glob("*.sh")):
        result = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True, timeout=10)
        assert result.returncode == 0, f"{path.name}: {result.stderr}"


def test_the_syntax_check_rejects_what_the_tokenizer_accepted():
    """The old check (shlex.split) passed this broken loop; sh -n does not."""
    broken = 'until docker version; do sleep 0.2; done; fi'
    shlex.split(broken)
    assert sh_syntax_ok(broken).returncode != 0


def test_prewarm_loads_archives_before_the_agent_starts():
    plain = container(agent_spec(), "dind")
    assert "lifecycle" not in plain
    over = {"agent": {"dind": {"prewarm": {"enabled": True, "images": ["busybox:1.37.0", "alpine:3.22"]}}}}
    native = container(agent_spec(overrides=over, kube_version="1.33.0"), "dind")
    hook = native["lifecycle"]["postStart"]["exec"]["command"][-1]
    assert "docker load -q -i" in hook and "/opt/jda-prewarm/*.tar" in hook and "${" not in hook
    probe = native["startupProbe"]["exec"]["command"][-1]
    assert "docker image inspect busybox:1.37.0 alpine:3.22" in probe
    classic = container(agent_spec(overrides=over, kube_version="1.28.0"), "jnlp")["command"][2]
    assert "docker image inspect busybox:1.37.0 alpine:3.22" in classic
