"""Issue 14's agent extension points on a real Docker engine: an extra pod template (jnlp, a tool
container and dind, merged the way the Kubernetes plugin merges inheritFrom) builds from its tool
container; a proxy reaches dockerd and builds; a registry with a private CA is trusted only through
agent.caCertificates; `docker login` can save its credentials in jnlp's home."""

from __future__ import annotations

import pytest

from jdagent.chart.manifest import container, env_of
from jdagent.engine import agentpod, registry, tlsca
from jdagent.engine.podrun import PodRunner

pytestmark = pytest.mark.docker
PROXY = "http://proxy.invalid:3128"


def tool_template(standins) -> dict:
    # a Debian-based image: the stand-in dind's docker CLI is Debian's dynamically linked one (the
    # upstream docker:dind CLI is static and runs in any image)
    return {"name": "tools", "containers": [{"name": "tool", "image": standins["jnlp"],
                                             "imagePullPolicy": "Never", "command": ["sleep", "3600"]}]}


def test_an_extra_templates_tool_container_builds_with_the_pods_dockerd(docker_client, standins):
    overrides = agentpod.standin_overrides(standins, extraTemplates=[tool_template(standins)])
    manifest = agentpod.render(overrides=overrides, kube_version="1.33.0")
    spec = manifest.agent_pod("tools")["spec"]
    with PodRunner(spec, client=docker_client, files=agentpod.pod_files(manifest, spec), name="jda-test") as pod:
        # the tool container runs as the jnlp user, with a read-only root and `docker` on its own PATH
        status = pod.exec("tool", ["cat", "/proc/self/status"]).output
        assert next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:")) == "1000"
        assert pod.exec("tool", ["sh", "-c", "echo x > /probe"]).exit_code != 0
        assert pod.exec("tool", ["sh", "-c", "command -v docker"]).output.strip() == "/usr/local/bin/docker"
        # the workspace is shared: jnlp writes the context, the tool container builds it
        agentpod.load_image(pod, docker_client, standins["busybox"])
        pod.exec("jnlp", ["mkdir", "-p", f"{agentpod.WORKSPACE}/app"])
        pod.copy_in("jnlp", f"{agentpod.WORKSPACE}/app", {"Dockerfile": (
            f"FROM {standins['busybox']}\nRUN echo built by the tool container > /message\n"
            "CMD cat /message\n").encode()})
        built = pod.exec("tool", ["sh", "-c", f"cd {agentpod.WORKSPACE}/app && docker build -t tool:1 . 2>&1"])
        assert built.exit_code == 0, built.output
        assert pod.exec("jnlp", ["docker", "run", "--rm", "tool:1"]).output.strip() == "built by the tool container"
        # HOME is writable for tools (caches, ~/.docker) without a writable root
        assert pod.exec("tool", ["sh", "-c", "mkdir -p $HOME/.m2 && echo ok > $HOME/.m2/x && cat $HOME/.m2/x"]
                        ).output.strip() == "ok"


def test_a_proxy_reaches_dockerd_and_the_builds(docker_client, standins):
    overrides = agentpod.standin_overrides(standins, proxy={"httpProxy": PROXY, "httpsProxy": PROXY})
    manifest, spec = agentpod.render_agent_pod(overrides=overrides)
    with PodRunner(spec, client=docker_client, files=agentpod.pod_files(manifest, spec), name="jda-test") as pod:
        info = pod.exec("jnlp", ["docker", "info", "--format", "{{.HTTPProxy}} {{.HTTPSProxy}} {{.NoProxy}}"])
        http, https, no_proxy = info.output.split()
        assert http == https == PROXY, info.output
        assert no_proxy == env_of(container(spec, "jnlp"))["NO_PROXY"]
        agentpod.load_image(pod, docker_client, standins["busybox"])
        built = agentpod.build(pod, {"Dockerfile": (
            f"FROM {standins['busybox']}\nRUN echo \"proxy=$HTTP_PROXY no=$NO_PROXY\" > /seen\nCMD cat /seen\n"
        ).encode()}, "proxied:1")
        assert built.result.exit_code == 0, built.result.output
        seen = pod.exec("jnlp", ["docker", "run", "--rm", "-e", "HTTP_PROXY=", "proxied:1"]).output.strip()
        assert seen == f"proxy={PROXY} no={no_proxy}", "the CLI passed the proxies as build args"
        # jnlp itself still reaches dockerd directly (localhost is never proxied)
        assert pod.exec("jnlp", ["docker", "version"]).exit_code == 0


@pytest.fixture(scope="module")
def tls_registry(docker_client, standins):
    cert = tlsca.issue(["registry.jda.test"], ips=["127.0.0.1"])
    reg = registry.start(docker_client, standins["registry"], run_id="ca", auth=False, tls=cert)
    registry.seed(docker_client, reg, standins["busybox"], "base", "1")
    yield reg, cert
    reg.stop()


def pull_over_tls(docker_client, standins, reg, with_ca: bool, cert) -> str:
    host = "registry.jda.test:5000"
    agent = {"caCertificates": {"secret": "corp-ca", "hosts": [{"host": host, "key": "ca.pem"}]}} if with_ca else {}
    manifest, spec = agentpod.render_agent_pod(overrides=agentpod.standin_overrides(standins, **agent))
    files = agentpod.pod_files(manifest, spec, {"corp-ca": {"ca.pem": cert.ca_pem}})
    hosts = {"registry.jda.test": reg.address.split(":")[0]}
    with PodRunner(spec, client=docker_client, files=files, name="jda-test", hosts=hosts) as pod:
        pulled = pod.exec("jnlp", ["docker", "pull", f"{host}/base:1"])
        if with_ca:
            bundle = pod.exec("jnlp", ["sh", "-c", "cat \"$SSL_CERT_FILE\""]).output
            assert cert.ca_pem.decode().strip() in bundle, "tools in jnlp get the CA through SSL_CERT_FILE"
        return f"{pulled.exit_code} {pulled.output}"


def test_a_registry_signed_by_a_private_ca_is_trusted_through_ca_certificates(docker_client, standins,
                                                                                tls_registry):
    reg, cert = tls_registry
    refused = pull_over_tls(docker_client, standins, reg, with_ca=False, cert=cert)
    assert not refused.startswith("0 ") and "certificate" in refused.lower(), "control: unknown CA refused"
    trusted = pull_over_tls(docker_client, standins, reg, with_ca=True, cert=cert)
    assert trusted.startswith("0 "), trusted


def test_docker_login_saves_its_credentials_in_jnlps_home(docker_client, standins, auth_registry):
    agent = {"dind": {"insecureRegistries": [auth_registry.address]},
             "registry": {"server": auth_registry.address, "push": True, "secretName": "registry-push",
                          "pushFolders": ["releases"]}}
    overrides = {**agentpod.standin_overrides(standins, **agent), "exampleJob": {"folder": "releases"}}
    manifest, spec = agentpod.render_agent_pod(overrides=overrides, push=True)
    files = agentpod.pod_files(manifest, spec, {"registry-push": {".dockerconfigjson": b'{"auths": {}}'}})
    with PodRunner(spec, client=docker_client, files=files, name="jda-test") as pod:
        login = pod.exec("jnlp", f"echo {registry.PASSWORD} | docker login -u {registry.USER} --password-stdin "
                                 f"{auth_registry.address} 2>&1")
        assert login.exit_code == 0 and "Login Succeeded" in login.output, login.output
        saved = pod.exec("jnlp", ["cat", "/home/jenkins/.docker/config.json"]).output
        assert auth_registry.address in saved
        assert pod.exec("dind", ["test", "-e", "/home/jenkins/.docker/config.json"]).exit_code != 0
