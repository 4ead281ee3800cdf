"""The agent pod as the Kubernetes plugin would create it (the JCasC template's yaml, and an extra
template merged with it the way the plugin merges inheritFrom), created with the controller's own
token on the real node: a build runs from jnlp and from the extra template's tool container, and once
the pod is deleted the kubelet has removed its emptyDirs and its pod cgroup."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from jdagent import tools
from jdagent.chart.render import render
from jdagent.cluster.local.config import POD_PIDS_LIMIT, Layout
from jdagent.cluster.local.host import cgroup_dirs
from jdagent.paths import CHART_DIR
from tests.cluster.kube import (
    BASE_IMAGE,
    agent_namespace,
    delete_namespace,
    find_json,
    helm,
    namespace,
    service_account_kubeconfig,
    standin_values,
    values_file,
    wait_for,
)

# the release namespace enforces restricted; the agents run in the chart's the chart's default agent namespace
RELEASE_NS, RELEASE = "agent-pod", "ci"
NS = agent_namespace(RELEASE_NS, RELEASE)
CONTROLLER_SA = f"{RELEASE}-jenkins-dind-agent"


def tool_template(standins) -> dict:
    return {"name": "tools", "containers": [{"name": "tool", "image": standins["jnlp"], "imagePullPolicy": "Never",
                                             "command": ["sleep", "3600"]}]}


@pytest.fixture(scope="module")
def plugin(cluster, standins, in_cluster_registry, tmp_path_factory):
    """(create pod as the controller, the rendered manifest, a kubectl with the controller's token)."""
    namespace(cluster, RELEASE_NS, level="restricted")
    values = standin_values(standins, agent={"extraTemplates": [tool_template(standins)]})
    path = values_file(tmp_path_factory.mktemp("agents"), values)
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



@pytest.fixture(autouse=True)
def no_pod_left(plugin):
    """Each test's agent pod is gone before the next starts, also when the test failed half-way: a
    left-over pod holds the node's memory and the next one stays Pending."""
    yield
    _, kubectl = plugin
    kubectl("delete", "pods", "--all", "--wait=true", "--timeout=180s", timeout=240)

def start(kubectl, manifest, template: str | None) -> tuple[str, dict]:
    pod = manifest.agent_pod(template)
    name = f"{template or 'dind'}-{uuid.uuid4().hex[:5]}"
    pod["metadata"] = {**pod.get("metadata", {}), "name": name, "namespace": NS}
    created = kubectl("create", "-f", "-", "-o", "json", input_text=yaml.safe_dump(pod))
    assert created.returncode == 0, created.stderr
    wait_for(f"agent pod {name} to run", lambda: kubectl("get", "pod", name, "-o", "jsonpath={.status.phase}")
             .stdout == "Running", timeout=300, every=2)
    return name, yaml.safe_load(created.stdout)


def pod_cgroup(cluster, uid: str, marker: str) -> Path:
    """The pod's cgroup in the hierarchy that has `marker` (the node's view: the shallowest pod<uid>)."""
    found = [p for root in cgroup_dirs(Layout(cluster.name).cgroup_root) for p in root.rglob(f"pod{uid}")
             if (p / marker).exists()]
    assert found, f"the pod has a cgroup with {marker}"
    return min(found, key=lambda p: len(p.parts))


def build(kubectl, pod: str, container: str, marker: str) -> subprocess.CompletedProcess[str]:
    script = (f"set -e; d=$(mktemp -d); printf 'FROM {BASE_IMAGE} AS one\\nRUN echo {marker} > /m\\n"
              f"FROM {BASE_IMAGE}\\nCOPY --from=one /m /m\\nCMD cat /m\\n' > $d/Dockerfile; "
              f"docker build --network host -q -t agent-{container}:1 $d >/dev/null; "
              f"docker run --rm agent-{container}:1")
    return kubectl("exec", pod, "-c", container, "--", "sh", "-c", script)


def test_the_default_template_builds_from_jnlp_and_leaves_nothing_on_the_node(cluster, plugin):
    manifest, kubectl = plugin
    name, created = start(kubectl, manifest, None)
    uid = created["metadata"]["uid"]
    ran = build(kubectl, name, "jnlp", "from-jnlp")
    assert ran.returncode == 0 and ran.stdout.strip() == "from-jnlp", ran.stderr
    layout = Layout(cluster.name)
    volumes = layout.kubelet_root / "pods" / uid / "volumes" / "kubernetes.io~empty-dir"
    assert volumes.is_dir() and any(volumes.iterdir()), "the kubelet keeps the pod's emptyDirs here"
    pod_cgroups = [p for root in cgroup_dirs(layout.cgroup_root) for p in root.rglob(f"pod{uid}")]
    assert pod_cgroups, "the pod has a cgroup under the node's cgroup root"
    deleted = kubectl("delete", "pod", name, "--wait=true", "--timeout=120s", timeout=180)
    assert deleted.returncode == 0, deleted.stderr
    wait_for("the kubelet to remove the pod's folder", lambda: not (layout.kubelet_root / "pods" / uid).exists(),
             timeout=120)
    assert not [p for p in pod_cgroups if p.exists()], "the pod cgroup outlived the pod"


def test_an_extra_template_merged_as_the_plugin_merges_it_builds_from_its_tool_container(cluster, plugin):
    manifest, kubectl = plugin
    name, created = start(kubectl, manifest, "tools")
    names = {c["name"] for c in created["spec"]["containers"]} | {c["name"] for c in created["spec"].get(
        "initContainers", [])}
    assert {"jnlp", "tool", "dind"} <= names, names
    ran = build(kubectl, name, "tool", "from-the-tool")
    assert ran.returncode == 0 and ran.stdout.strip() == "from-the-tool", ran.stderr
    assert find_json(cluster, "-n", NS, "get", "pod", name)["status"]["phase"] == "Running"
    kubectl("delete", "pod", name, "--wait=false")



def test_a_build_over_dinds_memory_limit_is_oom_killed_inside_the_pod_and_dockerd_survives(cluster, plugin):
    manifest, kubectl = plugin
    name, created = start(kubectl, manifest, None)
    dind = next(c for c in created["spec"].get("initContainers", []) + created["spec"]["containers"]
                if c["name"] == "dind")
    limit = dind["resources"]["limits"]["memory"]
    assert limit.endswith("Gi"), limit
    twice = f"{int(limit[:-2]) * 2}G"
    sleeper = kubectl("exec", name, "-c", "jnlp", "--", "docker", "run", "-d", "--name", "bystander", BASE_IMAGE,
                      "sleep", "600")
    assert sleeper.returncode == 0, sleeper.stderr
    hog = kubectl("exec", name, "-c", "jnlp", "--", "sh", "-c",
                  f"docker run --name hog {BASE_IMAGE} dd if=/dev/zero of=/dev/null bs={twice} count=1 "
                  "iflag=fullblock; "
                  "echo exit=$?; docker inspect -f 'oom={{.State.OOMKilled}}' hog", timeout=300)
    assert "exit=137" in hog.stdout and "oom=true" in hog.stdout, (hog.stdout, hog.stderr)
    # the OOM happened at jda-builds' limit (dind's limit minus agent.dind.buildMemoryHeadroom), which the
    # real kubelet's cgroup tree shows on the node
    uid = created["metadata"]["uid"]
    pod_memory = pod_cgroup(cluster, uid, "memory.limit_in_bytes")
    [builds] = [b for b in pod_memory.rglob("jda-builds") if (b / "memory.limit_in_bytes").exists()]
    assert builds.parent.parent == pod_memory, f"jda-builds is a child of dind's cgroup: {builds}"
    headroom = next(e["value"] for e in dind["env"] if e["name"] == "JDA_BUILD_MEMORY_HEADROOM")
    assert int((builds / "memory.limit_in_bytes").read_text()) == int(limit[:-2]) * 2**30 - int(headroom)
    oom_control = dict(line.split() for line in (builds / "memory.oom_control").read_text().splitlines())
    assert int(oom_control.get("oom_kill", "0")) >= 1 or int((builds / "memory.failcnt").read_text()) > 0, oom_control
    # what happened to dockerd and the other build: the kernel picked the hog; both live on
    info = kubectl("exec", name, "-c", "jnlp", "--", "docker", "inspect", "-f", "{{.State.Running}}", "bystander")
    assert info.returncode == 0 and info.stdout.strip() == "true", (info.stdout, info.stderr)
    status = find_json(cluster, "-n", NS, "get", "pod", name)["status"]
    dind_status = next(s for s in status.get("initContainerStatuses", []) + status["containerStatuses"]
                       if s["name"] == "dind")
    assert dind_status["restartCount"] == 0 and "running" in dind_status["state"], dind_status
    print(f"\n{name}: dind limit {limit}; a {twice} allocation was OOM-killed inside dind (exit 137, "
          f"OOMKilled=true); dockerd kept running, the bystander container too, dind restarts: 0")
    kubectl("delete", "pod", name, "--wait=false")


def test_a_fork_bomb_in_a_build_stops_short_of_the_pods_pids_limit_and_dockerd_survives(cluster, plugin):
    """The limit is the kubelet's podPidsLimit on the pod cgroup (the chart cannot set one). dind-start.sh
    gives the builds' cgroup (jda-builds) all but 64 of it: the kernel holds the bomb there (pids.peak), so
    the pod keeps pids for dockerd, containerd, jnlp and `kubectl exec`, which works while the bomb runs;
    afterwards dockerd answers and dind was never restarted."""
    manifest, kubectl = plugin
    name, created = start(kubectl, manifest, None)
    uid = created["metadata"]["uid"]
    cgroup = pod_cgroup(cluster, uid, "pids.max")
    assert (cgroup / "pids.max").read_text().strip() == str(POD_PIDS_LIMIT)
    [builds] = [b for b in cgroup.rglob("jda-builds") if (b / "pids.max").exists()]
    assert builds.parent.parent == cgroup, f"jda-builds is a child of dind's cgroup: {builds}"
    builds_max = POD_PIDS_LIMIT - 64
    assert (builds / "pids.max").read_text().strip() == str(builds_max)
    hold_s = 25
    # the bomb runs in a subshell, which dies at its first refused fork; its sleeps, reparented to the
    # container's init (the outer shell, blocked in the builtin `wait` on a sleep started before the bomb,
    # so it needs no fork), hold the pids for hold_s seconds
    bomb = kubectl("exec", name, "-c", "jnlp", "--", "docker", "run", "-d", "--name", "bomb", BASE_IMAGE, "sh", "-c",
                   f"sleep {hold_s + 30} & (n=0; while [ $n -lt {POD_PIDS_LIMIT * 2} ]; do sleep {hold_s} 2>/dev/null "
                   "& n=$((n+1)); done); wait")
    assert bomb.returncode == 0, bomb.stderr

    # read from the node, not through the pod; pids.peak is the kernel's high-water mark
    filled = wait_for("the bomb to fill jda-builds' pids", lambda: (
        c := int((builds / "pids.peak").read_text())) >= builds_max - 4 and c, timeout=120, every=0.2)
    held = int((builds / "pids.current").read_text())
    during = kubectl("exec", name, "-c", "jnlp", "--", "true", timeout=60) if held >= builds_max - 4 else None
    pod_peak = int((cgroup / "pids.peak").read_text())
    after = wait_for("the bomb's processes to end", lambda: (
        c := int((cgroup / "pids.current").read_text())) < POD_PIDS_LIMIT // 2 and str(c), timeout=hold_s + 120)
    version = kubectl("exec", name, "-c", "jnlp", "--", "docker", "version", "--format", "{{.Server.Version}}")
    state = kubectl("exec", name, "-c", "jnlp", "--", "docker", "inspect", "-f",
                    "{{.State.Status}} exit={{.State.ExitCode}} {{.State.Error}}", "bomb")
    status = find_json(cluster, "-n", NS, "get", "pod", name)["status"]
    dind_status = next(s for s in status.get("initContainerStatuses", []) + status["containerStatuses"]
                       if s["name"] == "dind")
    exec_during = "not tried (the pids were already freed)" if during is None else \
        f"exit {during.returncode} {during.stderr.strip()[:100]!r}"
    print(f"\n{name}: pod pids.max {POD_PIDS_LIMIT}, jda-builds {builds_max}; the bomb drove jda-builds' pids.peak "
          f"to {filled} (current {held}), the pod's to {pod_peak}; `kubectl exec` meanwhile: {exec_during}; "
          f"afterwards pids.current {after}, dockerd {version.stdout.strip()!r}, the bomb {state.stdout.strip()!r}, "
          f"dind restarts {dind_status['restartCount']}")
    assert filled <= builds_max and pod_peak < POD_PIDS_LIMIT, (filled, pod_peak)
    assert during is not None and during.returncode == 0, exec_during
    assert version.returncode == 0 and version.stdout.strip(), version.stderr
    assert dind_status["restartCount"] == 0 and "running" in dind_status["state"], dind_status
    kubectl("delete", "pod", name, "--wait=false")
