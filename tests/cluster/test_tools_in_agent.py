"""Docker tools as users run them from jnlp, on the real node: the chart installed with stand-in values, agent
pods created as the Kubernetes plugin creates them (the JCasC template's yaml, with the controller's own
token, in the chart's agent namespace), and each tool driven with `kubectl exec` in jnlp.

Testcontainers: testcontainers-python 4.15.0 in a jnlp image built FROM the jnlp stand-in, Ryuk 0.14.0 built
from its Go module and pulled by the pod's dockerd from the in-cluster registry (RYUK_CONTAINER_IMAGE), the
service (busybox httpd) pulled from there too. The session is killed like an aborted build; the reaper alone
removes its container. The session sets what the chart README's Jenkinsfile sets,
TESTCONTAINERS_CONNECTION_MODE=gateway_ip: jnlp here has no /.dockerenv, so the library would connect to
DOCKER_HOST's host, localhost, through dockerd's userland proxy, and lose its registration with the reaper
whenever it connects before the reaper listens; a second test measures both modes.

Compose: compose v5.5.0 from the pinned-daemon stand-in (dind29), copied into jnlp by docker-setup:
`docker compose up --wait` of two services with healthchecks on a named network, `down -v`, nothing left.
Without the dind29 build the compose test skips naming it (JDA_REQUIRE_DIND29=1 makes that a failure).

BuildKit with a registry cache: a docker-container builder (BuildKit v0.32.2 built from its module, pulled by
the pod's dockerd from the in-cluster registry) created from jnlp with the README's options, exporting a
mode=max cache to the in-cluster registry; three fresh pods in turn (cold, unchanged, last file changed) show
BuildKit's CACHED lines; BuildKit's container sits in jda-builds in the kubelet's cgroup tree.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import uuid
from collections.abc import Callable

import docker
import pytest
import yaml

from jdagent import tools
from jdagent.chart.render import render
from jdagent.cluster.portforward import port_forward
from jdagent.engine import agentpod, dockerd, images, registry, toolimages
from jdagent.engine.buildcache import buildkit_registry_cache_build
from jdagent.paths import CHART_DIR
from tests.agenttools import (
    CONNECTION_MODE,
    check_cache_builds,
    check_compose,
    check_registrations,
    check_testcontainers,
    compose_up_and_down,
    reaper_registrations,
    run_testcontainers_session,
)
from tests.cluster.kube import (
    BASE_IMAGE,
    REGISTRY,
    agent_namespace,
    delete_namespace,
    helm,
    namespace,
    service_account_kubeconfig,
    standin_values,
    values_file,
    wait_for,
)

RELEASE_NS, RELEASE = "tools-in-agent", "ci"
NS = agent_namespace(RELEASE_NS, RELEASE)
CONTROLLER_SA = f"{RELEASE}-jenkins-dind-agent"
Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def tool_images(cluster, standins, in_cluster_registry, node_images) -> dict[str, str | None]:
    """The jnlp tools image (in the node's containerd), Ryuk (in the in-cluster registry, as pods pull it)
    and the pinned-daemon stand-in when its Go builds exist (None otherwise)."""
    client = docker.from_env(version="auto", timeout=600)
    jnlp = toolimages.ensure_jnlp_tools(client, standins["jnlp"])
    ryuk = toolimages.ensure_ryuk(client)
    buildkit = toolimages.ensure_buildkit(client)
    with port_forward(cluster, "registry", "svc/registry", 5000) as port:
        for image in (ryuk, buildkit):
            repository, _, tag = image.partition(":")
            registry.push_to_loopback(client, image, port, repository, tag)
    try:
        dind29: str | None = images.ensure_dind29(client)
    except images.Dind29Missing:
        dind29 = None
    node_images(jnlp, *([dind29] if dind29 and dind29 != standins["dind"] else []))
    return {"jnlp": jnlp, "ryuk": f"{REGISTRY}/{ryuk}", "buildkit": f"{REGISTRY}/{buildkit}", "dind29": dind29}


@pytest.fixture(scope="module")
def plugin(cluster, standins, tool_images, tmp_path_factory):
    """(the rendered manifest, a kubectl with the controller's token in the agent namespace)."""
    namespace(cluster, RELEASE_NS, level="restricted")
    dind = tool_images["dind29"] or standins["dind"]
    values = standin_values(standins, agent={"jnlp": {"image": agentpod.image_values(str(tool_images["jnlp"]))},
                                             "dind": {"image": agentpod.image_values(dind)}})
    path = values_file(tmp_path_factory.mktemp("tools"), values)
    helm(cluster, "4", "install", RELEASE, str(CHART_DIR), "-n", RELEASE_NS, "-f", str(path))
    manifest = render(values=[path], namespace=RELEASE_NS, release=RELEASE, kube_version="1.36.3")
    config = service_account_kubeconfig(cluster, RELEASE_NS, CONTROLLER_SA, path.parent / "controller.kubeconfig")

    def kubectl(*args: str, input_text: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(tools.find_kubectl()), "--kubeconfig", str(config), "-n", NS, *args],
                              capture_output=True, text=True, timeout=timeout, input=input_text)

    yield manifest, kubectl
    helm(cluster, "4", "uninstall", RELEASE, "-n", RELEASE_NS, check=False)
    delete_namespace(cluster, NS)
    delete_namespace(cluster, RELEASE_NS)


def start(kubectl: Kubectl, manifest) -> str:
    pod = manifest.agent_pod(None)
    name = f"tools-{uuid.uuid4().hex[:5]}"
    pod["metadata"] = {**pod.get("metadata", {}), "name": name, "namespace": NS}
    created = kubectl("create", "-f", "-", "-o", "json", input_text=yaml.safe_dump(pod))
    assert created.returncode == 0, created.stderr
    wait_for(f"agent pod {name} to run", lambda: kubectl("get", "pod", name, "-o", "jsonpath={.status.phase}")
             .stdout == "Running", timeout=300, every=2)
    return name


def jnlp_callables(kubectl: Kubectl, pod: str):
    def sh(script: str, timeout: float) -> tuple[int, str]:
        proc = kubectl("exec", pod, "-c", "jnlp", "--", "sh", "-c", script, timeout=timeout + 30)
        return proc.returncode, proc.stdout + proc.stderr

    def put(path: str, data: bytes) -> None:
        proc = kubectl("exec", "-i", pod, "-c", "jnlp", "--", "sh", "-c", f"cat > {shlex.quote(path)}",
                       input_text=data.decode())
        assert proc.returncode == 0, proc.stderr

    return sh, put


def test_testcontainers_from_jnlp_runs_a_service_and_its_reaper_removes_it(plugin, tool_images):
    manifest, kubectl = plugin
    name = start(kubectl, manifest)
    sh, put = jnlp_callables(kubectl, name)
    ryuk = str(tool_images["ryuk"])
    result = run_testcontainers_session(sh, put, BASE_IMAGE, ryuk)
    lines = check_testcontainers(result, ryuk)
    assert result.facts["mode"] == CONNECTION_MODE, result.facts
    assert result.facts["ryuk_socket"] == "/var/run/docker.sock", result.facts
    print(f"\n{name}: " + "\n".join(lines))
    kubectl("delete", "pod", name, "--wait=false")


def test_testcontainers_sessions_register_with_their_reaper_through_the_bridge_gateway(plugin, tool_images):
    """Six sessions with the README's TESTCONTAINERS_CONNECTION_MODE=gateway_ip all get the reaper's ACK. Six
    without it: the library's own choice here is docker_host (jnlp has no /.dockerenv), localhost through
    dockerd's userland proxy; their tally is printed."""
    manifest, kubectl = plugin
    name = start(kubectl, manifest)
    sh, put = jnlp_callables(kubectl, name)
    args = (sh, put, BASE_IMAGE, str(tool_images["ryuk"]))
    recommended = reaper_registrations(*args, CONNECTION_MODE, runs=6)
    default = reaper_registrations(*args, None, runs=6)
    print(f"\n{name}: " + check_registrations(recommended, default, "docker_host"))
    left = sh("docker ps -aq", 60)
    assert left == (0, ""), left
    kubectl("delete", "pod", name, "--wait=false")


def test_compose_up_wait_and_down_leave_nothing_behind(plugin, tool_images):
    if tool_images["dind29"] is None:
        message = ("compose needs the pinned-daemon stand-in (jda-standin-dind29: Debian's dind stand-in has no "
                   "compose plugin); build it with `python -m jdagent.engine.images --dind29`")
        if os.environ.get("JDA_REQUIRE_DIND29") == "1":
            pytest.fail(f"JDA_REQUIRE_DIND29=1 but {message}")
        pytest.skip(message)
    manifest, kubectl = plugin
    name = start(kubectl, manifest)
    sh, put = jnlp_callables(kubectl, name)
    code, version = sh("docker compose version --short", 60)
    assert code == 0 and version.strip().lstrip("v") == dockerd.COMPOSE.lstrip("v"), version
    result = compose_up_and_down(sh, put, BASE_IMAGE)
    print(f"\n{name}: " + "\n".join(check_compose(result)))
    kubectl("delete", "pod", name, "--wait=false")


def test_a_docker_container_builder_reuses_a_registry_cache_across_fresh_agents(plugin, tool_images):
    """The README's cgroup-parent, /jda-builds, is where dind-start.sh puts dockerd's containers on a kubelet
    node: BuildKit's container lands in jda-builds below dind's cgroup, inside the builds' share."""
    manifest, kubectl = plugin
    cache_ref = f"{REGISTRY}/cache-demo-{uuid.uuid4().hex[:6]}:buildcache"
    runs = {}
    for label, last in (("cold", "one"), ("unchanged", "one"), ("changed last file", "two")):
        name = start(kubectl, manifest)
        sh, put = jnlp_callables(kubectl, name)
        runs[label] = buildkit_registry_cache_build(sh, put, builder_image=str(tool_images["buildkit"]),
                                                    registry=REGISTRY, base=BASE_IMAGE, cache_ref=cache_ref,
                                                    cgroup_parent="/jda-builds", last=last)
        kubectl("delete", "pod", name, "--wait=true", "--timeout=120s", timeout=180)
        assert runs[label].builder_cgroup_parent == "/jda-builds"
        # the kernel's path (no cgroup namespace): <the pod's cgroup>/<dind's container>/jda-builds/<BuildKit's>
        assert "/jda-builds/" in runs[label].builder_cgroup and "/pod" in runs[label].builder_cgroup, runs[label]
    print("\n" + check_cache_builds(runs))
