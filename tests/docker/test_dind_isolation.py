"""dind stays inside its pod, on a real engine (this machine runs cgroup v1; the v2 branch of
files/dind-start.sh is exercised with fake inputs in tests/unit/test_dind_start.py):

- containers and build steps that dockerd starts cannot use more memory than the dind container was
  given minus the headroom kept for dockerd (the cgroup jda-builds and its own limit): they are
  OOM-killed at jda-builds' limit, not dind's, and dockerd survives; without the chart's nesting the
  same allocation lives;
- /var/run/docker.sock exists on the daemon's side, for tools that mount it into their containers;
- the bridges follow the pod network's MTU, and an explicit agent.dind.mtu wins.
"""

from __future__ import annotations

import copy
import uuid

import pytest

from jdagent.chart.manifest import container
from jdagent.engine import agentpod
from jdagent.engine.podrun import PodRunner

pytestmark = pytest.mark.docker
LIMIT = "384Mi"
HEADROOM = "128Mi"  # jda-builds: 256 MiB
GREEDY = "dd if=/dev/zero of=/dev/null bs=700M count=1"  # fills a 700 MiB buffer (reads every page)
MODEST = "dd if=/dev/zero of=/dev/null bs=64M count=1"


def pod(docker_client, standins, network=None, mutate=None, **dind):
    overrides = agentpod.standin_overrides(standins, dind={
        "resources": {"requests": {"memory": "256Mi"}, "limits": {"memory": LIMIT}}, "buildMemoryHeadroom": HEADROOM,
        **dind})
    manifest, spec = agentpod.render_agent_pod(overrides=overrides)
    spec = copy.deepcopy(spec)
    if mutate:
        mutate(spec)
    return PodRunner(spec, client=docker_client, files=agentpod.pod_files(manifest, spec), network=network,
                     name="jda-iso")


def memory_cgroup(proc_cgroup: str) -> str:
    return next(line.split(":", 2)[2] for line in proc_cgroup.split("\n") if line.split(":")[1:2] == ["memory"])


def limit_hits(runner, cgroup: str) -> tuple[int, int]:
    """How often a charge failed at the memory limit of dind's cgroup and of its jda-builds cgroup (cgroup
    v1 memory.failcnt, counted on the cgroup whose limit was hit, not on its ancestors)."""
    base = f"/sys/fs/cgroup/memory{cgroup.rstrip('/')}"
    out = runner.exec("dind", ["sh", "-c", f"cat {base}/memory.failcnt {base}/jda-builds/memory.failcnt"]).output
    own, builds = (int(n) for n in out.split())
    return own, builds


def run_greedy(runner, busybox, command):
    name = f"greedy-{uuid.uuid4().hex[:6]}"
    run = runner.exec("jnlp", ["docker", "run", "--name", name, "--network", "none", busybox, "sh", "-c", command])
    state = runner.exec("jnlp", ["docker", "inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}}", name])
    runner.exec("jnlp", ["docker", "rm", "-f", name], quiet=True)
    return run, state.output.strip()


def test_containers_and_builds_are_held_to_the_dind_memory_limit(docker_client, standins):
    busybox = standins["busybox"]
    with pod(docker_client, standins) as runner:
        agentpod.load_image(runner, docker_client, busybox)
        own = memory_cgroup(runner.exec("dind", ["cat", "/proc/self/cgroup"]).output)
        probe = runner.exec("jnlp", ["docker", "run", "--rm", "--network", "none", busybox,
                                     "cat", "/proc/self/cgroup"])
        inner = memory_cgroup(probe.output)
        assert inner.startswith(f"{own}/jda-builds/"), (own, inner)
        builds = f"/sys/fs/cgroup/memory{own.rstrip('/')}/jda-builds/memory.limit_in_bytes"
        assert int(runner.exec("dind", ["cat", builds]).output) == 256 * 1024 * 1024, "dind's limit minus the headroom"
        logged = "jda-builds memory.limit_in_bytes 268435456 (dind's limit 402653184 minus 134217728"
        assert logged in runner.logs("dind")
        ok, state = run_greedy(runner, busybox, MODEST)
        assert ok.exit_code == 0 and state == "false 0", "control: a modest allocation works"
        own_before, builds_before = limit_hits(runner, own)
        killed, state = run_greedy(runner, busybox, GREEDY)
        assert killed.exit_code == 137, (killed.output, state)
        own_after, builds_after = limit_hits(runner, own)
        # the allocation hit jda-builds' limit, never dind's own: the OOM stayed below dockerd's cgroup
        assert builds_after > builds_before and own_after == own_before, (own_before, own_after, builds_before,
                                                                          builds_after, state)
        built = agentpod.build(runner, {"Dockerfile": f"FROM {busybox}\nRUN {GREEDY}\n".encode()}, "greedy:1")
        assert built.result.exit_code != 0
        assert "exit code: 137" in built.result.output, built.result.output[-1500:]
        assert limit_hits(runner, own)[1] > builds_after, "the build step hit jda-builds' limit too"
        runner.container("dind").reload()
        assert runner.container("dind").status == "running", "dockerd must survive its containers' OOM"
        assert runner.exec("jnlp", ["docker", "version"]).exit_code == 0
        assert "jda-builds" in runner.logs("dind")


def test_without_the_nesting_the_same_allocation_escapes(docker_client, standins):
    """The control that makes the test above mean something: dind-start.sh told there is no memory
    cgroup (so no --cgroup-parent) leaves dockerd's default parent, a sibling of the dind container."""
    def no_nesting(spec):
        dind = container(spec, "dind")
        dind["env"].append({"name": "JDA_PROC_CGROUP", "value": "/dev/null"})

    with pod(docker_client, standins, mutate=no_nesting) as runner:
        agentpod.load_image(runner, docker_client, standins["busybox"])
        escaped, state = run_greedy(runner, standins["busybox"], GREEDY)
        assert escaped.exit_code == 0 and state == "false 0", (escaped.output, state)


def test_tools_that_mount_docker_sock_reach_the_pod_dockerd(docker_client, standins):
    """Testcontainers, compose files and `docker run -v /var/run/docker.sock:...` name the socket on the
    daemon's side; a container started from jnlp lists containers through it."""
    base = "jda-base:trixie"  # glibc, for the stand-in's dynamically linked docker CLI
    with pod(docker_client, standins) as runner:
        assert runner.exec("dind", ["test", "-S", "/var/run/docker.sock"]).exit_code == 0
        agentpod.load_image(runner, docker_client, base)
        name = f"sock-{uuid.uuid4().hex[:6]}"
        # detached, then read from its log: a `docker run` attach can miss a short-lived container's output
        # on a loaded machine (seen once in CI: exit 0, nothing printed)
        started = runner.exec("jnlp", ["docker", "run", "-d", "--name", name, "--network", "none",
                                       "-v", "/var/run/docker.sock:/var/run/docker.sock",
                                       # the CLI where the upstream image (and both stand-ins) keep it
                                       "-v", "/usr/local/bin/docker:/usr/local/bin/docker:ro",
                                       base, "docker", "ps", "--format", "{{.Names}}"])
        assert started.exit_code == 0, started.output
        waited = runner.exec("jnlp", ["docker", "wait", name])
        listed = runner.exec("jnlp", ["docker", "logs", name])
        runner.exec("jnlp", ["docker", "rm", "-f", name], quiet=True)
        assert waited.output.strip() == "0", (waited.output, listed.output)
        assert name in listed.output.split()
        assert runner.exec("jnlp", "echo $DOCKER_HOST").output.strip() == "tcp://localhost:2375"


@pytest.fixture
def mtu_network(docker_client):
    network = docker_client.networks.create(f"jda-mtu-{uuid.uuid4().hex[:6]}", driver="bridge",
                                            options={"com.docker.network.driver.mtu": "1400"})
    yield network.name
    network.remove()


def bridge_mtus(runner, busybox) -> dict[str, str]:
    fmt = '{{index .Options "com.docker.network.driver.mtu"}}'
    runner.exec("jnlp", ["docker", "network", "create", "jda-user"], quiet=True)
    out = {}
    for network in ("bridge", "jda-user"):
        option = runner.exec("jnlp", ["docker", "network", "inspect", network, "--format", fmt]).output.strip()
        inside = runner.exec("jnlp", ["docker", "run", "--rm", "--network", network, busybox,
                                      "cat", "/sys/class/net/eth0/mtu"]).output.strip()
        out[network] = f"{option}/{inside}"
    return out


def test_bridges_follow_the_pod_network_mtu(docker_client, standins, mtu_network):
    with pod(docker_client, standins, network=mtu_network) as runner:
        assert runner.exec("jnlp", ["cat", "/sys/class/net/eth0/mtu"]).output.strip() == "1400"
        agentpod.load_image(runner, docker_client, standins["busybox"])
        assert bridge_mtus(runner, standins["busybox"]) == {"bridge": "1400/1400", "jda-user": "1400/1400"}
        assert "bridge MTU 1400 (the pod's eth0)" in runner.logs("dind")


def test_an_explicit_mtu_wins(docker_client, standins, mtu_network):
    with pod(docker_client, standins, network=mtu_network, mtu=1300) as runner:
        agentpod.load_image(runner, docker_client, standins["busybox"])
        assert bridge_mtus(runner, standins["busybox"]) == {"bridge": "1300/1300", "jda-user": "1300/1300"}
        assert "bridge MTU" not in runner.logs("dind")
