"""The chart's agent pod on its pinned daemon: the dind29 stand-in carries dockerd 29.7.1 (github.com/moby/moby/v2
v2.0.0-beta.21, the newest release at or below the pinned docker:29.7.2-dind that the module proxy serves),
containerd v2.3.3, runc v1.4.3 and the docker CLI 29.7.2 built from their Go modules, moby's hack/dind and an
entrypoint of ours with the upstream contract. Each test asks the daemon itself and compares its answers with
tests/unit/data/upstream/dockerd-pin.yaml: versions, the classic vfs store, the loopback-only listener, a
multi-stage `--network host` build, the minimum API version (1.40, and agent.dind.minAPIVersion lowering it),
ip6tables, and which path the entrypoint took. The last test runs the image without the chart's flags to show
the upstream defaults the chart overrides."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from jdagent.chart.manifest import container
from jdagent.engine import agentpod, dockerd, netstat
from jdagent.engine.podrun import PodRunner
from jdagent.paths import CHART_DIR

pytestmark = pytest.mark.docker

FACTS = yaml.safe_load((Path(__file__).parents[1] / "unit" / "data" / "upstream" / "dockerd-pin.yaml").read_text())
DIFF = FACTS["differences"]
SNAPSHOTTER = ["driver-type", "io.containerd.snapshotter.v1"]


def pinned_pod(docker_client: Any, standins: dict[str, str], dind29: str, name: str, **dind: Any) -> PodRunner:
    overrides = agentpod.standin_overrides(standins, dind={"image": agentpod.image_values(dind29), **dind})
    manifest, spec = agentpod.render_agent_pod(overrides=overrides)
    return PodRunner(spec, client=docker_client, files=agentpod.pod_files(manifest, spec), name=name)


@pytest.fixture(scope="module")
def pod29(docker_client, standins, dind29_standin) -> Iterator[PodRunner]:
    """One agent pod with the chart's defaults (vfs, no minAPIVersion) on the pinned daemon."""
    with pinned_pod(docker_client, standins, dind29_standin, "jda-pinned") as pod:
        if pod.privileged_fallback:
            print("dind ran with the capability fallback (privileged refused on this machine)")
        yield pod


def docker_json(pod: PodRunner, *args: str, where: str = "jnlp") -> Any:
    result = pod.exec(where, ["docker", *args, "--format", "{{json .}}"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def http_get(pod: PodRunner, path: str) -> tuple[int, str]:
    """A raw HTTP/1.0 GET to dockerd's TCP listener from jnlp (no client that negotiates the API version)."""
    script = (f"exec 3<>/dev/tcp/127.0.0.1/2375 && printf 'GET {path} HTTP/1.0\\r\\nHost: docker\\r\\n\\r\\n' >&3 "
              "&& timeout 10 cat <&3")
    result = pod.exec("jnlp", ["bash", "-c", script])
    assert result.exit_code == 0, result.output
    head, _, body = result.output.partition("\r\n\r\n")
    return int(head.split()[1]), body


def too_old(version: str, minimum: str) -> str:
    return DIFF["min_api_version"]["refusal"].replace("%s", version, 1).replace("%s", minimum, 1)


def dockerd_pid(pod: PodRunner) -> str:
    pid = pod.exec("dind", ["pgrep", "-x", "dockerd"]).output.split()
    assert len(pid) == 1, pid
    return pid[0]


def dockerd_args(pod: PodRunner) -> list[str]:
    raw = pod.exec("dind", ["cat", f"/proc/{dockerd_pid(pod)}/cmdline"]).output
    return [a for a in raw.split("\0") if a]


def chosen_iptables(log: str) -> str:
    """The directory of the iptables the entrypoint chose (its log line names nf_tables or legacy)."""
    line = next(li for li in log.splitlines() if li.startswith("dockerd-entrypoint: iptables:"))
    return "/usr/local/sbin/.iptables-legacy" if "(legacy)" in line else "/usr/sbin"


def test_the_pinned_daemon_reports_its_own_versions(pod29):
    built = FACTS["built"]
    version = docker_json(pod29, "version")
    assert version["Server"]["Version"] == built["dockerd"]["reports"] == dockerd.DOCKER_VERSION
    assert version["Server"]["GitCommit"] == built["dockerd"]["commit"][:7]
    assert version["Client"]["Version"] == built["docker"]["reports"]  # the image's CLI, copied into jnlp
    components = {c["Name"]: c["Version"] for c in version["Server"]["Components"]}
    assert components["containerd"] == built["containerd"]["version"] == dockerd.CONTAINERD
    assert components["runc"] == built["runc"]["version"].lstrip("v") == dockerd.RUNC.lstrip("v")
    assert components["docker-init"] == "0.19.0"
    info = docker_json(pod29, "info")
    assert info["ServerVersion"] == dockerd.DOCKER_VERSION
    assert info["ContainerdCommit"]["ID"] == dockerd.CONTAINERD_COMMIT
    assert info["RuncCommit"]["ID"] == dockerd.RUNC_DESCRIBE
    buildx = pod29.exec("jnlp", ["docker", "buildx", "version"]).output
    if dockerd.built(dockerd.PLUGINS) is None:  # the stand-in then carries Debian's buildx
        assert " 0.13.1" in buildx, buildx
    else:
        assert f" {dockerd.BUILDX} " in f"{buildx} ", buildx
        compose = pod29.exec("jnlp", ["docker", "compose", "version", "--short"]).output.strip()
        assert compose == dockerd.COMPOSE.lstrip("v"), compose


def test_storage_is_the_classic_vfs_graph_driver(pod29):
    """--storage-driver=vfs (and the chart's containerd-snapshotter=false) keep dockerd 29 on the graph driver
    store: no snapshotter in DriverStatus (daemon/image_store_choice.go)."""
    info = docker_json(pod29, "info")
    assert info["Driver"] == "vfs"
    assert SNAPSHOTTER not in (info.get("DriverStatus") or []), info.get("DriverStatus")


def test_dockerd_listens_on_loopback_2375_and_its_unix_socket_only(pod29):
    ports = {s for table in ("tcp", "tcp6")
             for s in netstat.listeners(table, pod29.exec("dind", ["cat", f"/proc/net/{table}"]).output)}
    assert ports == {"127.0.0.1:2375"}, ports
    assert netstat.beyond_loopback(ports) == []
    hosts = sorted(a.split("=", 1)[1] for a in dockerd_args(pod29) if a.startswith("--host="))
    assert hosts == ["tcp://127.0.0.1:2375", "unix:///var/run/docker.sock"], hosts
    local = pod29.exec("dind", ["docker", "-H", "unix:///var/run/docker.sock", "version", "--format",
                                "{{.Server.Version}}"])
    assert local.exit_code == 0 and local.output.strip() == dockerd.DOCKER_VERSION, local.output


def test_the_entrypoint_took_the_dockerd_first_path(pod29):
    """The chart passes `dockerd` first: the entrypoint adds no --host, runs dockerd under docker-init inside
    hack/dind (tmpfs /tmp, rshared /, container=docker) and logs its iptables choice."""
    log = pod29.logs("dind")
    assert "dockerd-entrypoint: dockerd given first: its flags are used as they are" in log, log[-3000:]
    assert "adding --host" not in log
    args = dockerd_args(pod29)
    spec_args = container(pod29.pod_spec, "dind")["args"]
    assert args[:len(spec_args)] == spec_args, args  # the chart's args as given; dind-start.sh appends its own
    assert not any("0.0.0.0" in a for a in args), args
    pid = dockerd_pid(pod29)
    assert pod29.exec("dind", ["cat", "/proc/1/comm"]).output.strip() == "docker-init"
    status = pod29.exec("dind", ["cat", f"/proc/{pid}/status"]).output
    assert re.search(r"^PPid:\s+1$", status, re.M), status
    environ = pod29.exec("dind", ["cat", f"/proc/{pid}/environ"]).output.split("\0")
    assert "container=docker" in environ  # exported by hack/dind
    assert pod29.exec("dind", ["stat", "-f", "-c", "%T", "/tmp"]).output.strip() == "tmpfs"
    assert "shared" in pod29.exec("dind", ["findmnt", "-n", "-o", "PROPAGATION", "/"]).output
    assert re.search(r"dockerd-entrypoint: iptables: iptables v\S+ \((nf_tables|legacy)\)", log), log[-3000:]


def test_a_multi_stage_network_host_build(pod29, docker_client, standins):
    agentpod.load_image(pod29, docker_client, standins["busybox"])
    built = agentpod.build(pod29, {"Dockerfile": agentpod.SAMPLE_DOCKERFILE.read_bytes()}, "sample29:1",
                           {"BASE_IMAGE": standins["busybox"]})
    assert built.result.exit_code == 0, built.result.output
    out = pod29.exec("jnlp", ["docker", "run", "--rm", "sample29:1"])
    assert out.exit_code == 0 and out.output.strip() == "built in stage one on x86_64", out.output
    history = pod29.exec("jnlp", ["docker", "history", "-q", "sample29:1"]).output.split()
    base_layers = pod29.exec("jnlp", ["docker", "history", "-q", standins["busybox"]]).output.split()
    assert len(history) == len(base_layers) + 2, "final image = base + COPY + CMD, no build-stage layers"


def test_the_minimum_api_version_is_1_40(pod29):
    """dockerd 29 refuses API versions below 1.40 by default (26.1 accepted 1.24): an old docker-java or
    Testcontainers client pinned to an older API gets the daemon's own message."""
    minimum = DIFF["min_api_version"]["v29"]["default"]
    assert docker_json(pod29, "version")["Server"]["MinAPIVersion"] == minimum == "1.40"
    status, body = http_get(pod29, "/v1.39/version")
    assert status == 400 and too_old("1.39", minimum) in body, (status, body)
    status, body = http_get(pod29, f"/v{minimum}/version")
    assert status == 200 and json.loads(body)["Version"] == dockerd.DOCKER_VERSION, (status, body)


def test_the_chart_turns_ip6tables_off(pod29):
    """dockerd 29 defaults to --ip6tables=true (26.1: false); the chart passes --ip6tables=false, so the IPv6
    filter table gets no DOCKER chains while the IPv4 one has them."""
    assert "--ip6tables=false" in dockerd_args(pod29)
    tools = chosen_iptables(pod29.logs("dind"))
    v4 = pod29.exec("dind", [f"{tools}/iptables", "-S"]).output
    v6 = pod29.exec("dind", [f"{tools}/ip6tables", "-S"]).output
    assert "-N DOCKER" in v4, v4
    assert "DOCKER" not in v6, v6


@pytest.mark.skipif("minAPIVersion:" not in (CHART_DIR / "values.yaml").read_text(),
                    reason="the chart has no agent.dind.minAPIVersion")
def test_agent_dind_min_api_version_lowers_the_minimum(docker_client, standins, dind29_standin):
    lowest = DIFF["min_api_version"]["v29"]["lowest"]
    with pinned_pod(docker_client, standins, dind29_standin, "jda-pinned-api", minAPIVersion=lowest) as pod:
        assert docker_json(pod, "version")["Server"]["MinAPIVersion"] == lowest
        status, body = http_get(pod, "/v1.32/version")  # what older docker-java / Testcontainers ask for
        assert status == 200 and json.loads(body)["Version"] == dockerd.DOCKER_VERSION, (status, body)
        status, body = http_get(pod, "/v1.23/version")
        assert status == 400 and too_old("1.23", lowest) in body, (status, body)


def test_without_the_charts_flags_the_upstream_defaults_apply(docker_client, dind29_standin):
    """The image alone, no arguments: the entrypoint's flag-first path adds --host=tcp://0.0.0.0:2375 (the
    listener the chart avoids by passing `dockerd` first), and dockerd 29 picks the containerd image store
    (no storage driver given), a minimum API version of 1.40 and ip6tables rules."""
    spec = {"containers": [{"name": "dind", "image": dind29_standin, "securityContext": {"privileged": True}}]}
    with PodRunner(spec, client=docker_client, name="jda-pinned-bare") as pod:
        deadline = time.monotonic() + 90  # a non-loopback listener without TLS costs dockerd 29 a 15 s pause
        while pod.exec("dind", ["docker", "version"], quiet=True).exit_code != 0:
            assert time.monotonic() < deadline, pod.logs("dind")[-3000:]
            time.sleep(1)
        log = pod.logs("dind")
        assert ("dockerd-entrypoint: no command, or a flag first: adding --host=unix:///var/run/docker.sock "
                "--host=tcp://0.0.0.0:2375") in log, log[-3000:]
        ports = netstat.listeners("tcp", pod.exec("dind", ["cat", "/proc/net/tcp"]).output)
        ports |= netstat.listeners("tcp6", pod.exec("dind", ["cat", "/proc/net/tcp6"]).output)
        assert ports & {"0.0.0.0:2375", ":::2375"}, ports
        info = docker_json(pod, "info", where="dind")
        assert SNAPSHOTTER in (info.get("DriverStatus") or []), (info["Driver"], info.get("DriverStatus"))
        assert docker_json(pod, "version", where="dind")["Server"]["MinAPIVersion"] == "1.40"
        tools = chosen_iptables(log)
        v6 = pod.exec("dind", [f"{tools}/ip6tables", "-S"]).output
        assert DIFF["ip6tables_default"]["v29"]["default"] is True
        assert "-N DOCKER" in v6, v6
