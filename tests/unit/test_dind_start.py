"""files/dind-start.sh decides, from /proc/self/cgroup and the cgroup mount, how dockerd's containers
stay inside the dind container. The Docker tier runs the v1 branch for real; here every branch runs
against fake inputs (JDA_PROC_CGROUP, JDA_CGROUP_ROOT, JDA_NET_ROOT) with a fake `mount` on PATH and a
fake entrypoint that prints the command line dockerd would get."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from jdagent.chart.manifest import container, env_of
from jdagent.chart.render import render
from jdagent.paths import CHART_DIR

SCRIPT = CHART_DIR / "files" / "dind-start.sh"
V1 = """12:pids:/kubepods/burstable/pod1/c0ffee
11:cpu,cpuacct:/kubepods/burstable/pod1/c0ffee
4:memory:/kubepods/burstable/pod1/c0ffee
1:name=systemd:/kubepods/burstable/pod1/c0ffee
0::/
"""
V2 = "0::/kubepods.slice/kubepods-burstable.slice/cri-containerd-c0ffee.scope\n"


@pytest.fixture
def box(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mount").write_text('#!/bin/sh\nprintf "%s\\n" "$*" >> "$FAKE_MOUNT_LOG"\n')
    (bin_dir / "entry").write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    for f in ("mount", "entry"):
        (bin_dir / f).chmod(0o755)
    (tmp_path / "net" / "eth0").mkdir(parents=True)
    (tmp_path / "net" / "eth0" / "mtu").write_text("1450\n")
    (tmp_path / "cgroup").mkdir()
    return tmp_path


def run(box: Path, proc: str, v2: bool = False, mtu: str = "auto", net: bool = True):
    (box / "proc-cgroup").write_text(proc)
    if v2:
        (box / "cgroup" / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    env = {**os.environ, "PATH": f"{box / 'bin'}:{os.environ['PATH']}", "FAKE_MOUNT_LOG": str(box / "mounts"),
           "JDA_PROC_CGROUP": str(box / "proc-cgroup"), "JDA_CGROUP_ROOT": str(box / "cgroup"),
           "JDA_NET_ROOT": str(box / ("net" if net else "nonet")), "JDA_MTU": mtu}
    proc_ = subprocess.run(["sh", str(SCRIPT), "entry", "dockerd", "--host=tcp://127.0.0.1:2375", "--tls=false"],
                           env=env, capture_output=True, text=True, timeout=30)
    assert proc_.returncode == 0, proc_.stderr
    mounts = (box / "mounts").read_text().splitlines() if (box / "mounts").exists() else []
    return proc_.stdout.split(), proc_.stderr, mounts


def test_valid_posix_shell():
    assert subprocess.run(["sh", "-n", str(SCRIPT)]).returncode == 0


def test_v1_nests_dockerd_containers_under_this_container(box):
    argv, log, mounts = run(box, V1, mtu="static")
    assert argv == ["dockerd", "--host=tcp://127.0.0.1:2375", "--tls=false",
                    "--cgroup-parent=/kubepods/burstable/pod1/c0ffee/jda-builds"]
    assert mounts == []
    assert "cgroup v1: dockerd's containers go to /kubepods/burstable/pod1/c0ffee/jda-builds" in log


def test_v1_with_a_private_namespace_needs_nothing(box):
    argv, log, _ = run(box, "4:memory:/\n0::/\n", mtu="static")
    assert argv == ["dockerd", "--host=tcp://127.0.0.1:2375", "--tls=false"]
    assert "cgroup v1 with a private cgroup namespace" in log


def test_v2_without_a_namespace_makes_its_own_cgroup_the_root(box):
    argv, log, mounts = run(box, V2, v2=True, mtu="static")
    own = "/kubepods.slice/kubepods-burstable.slice/cri-containerd-c0ffee.scope"
    assert mounts == [f"--bind {box / 'cgroup'}{own} {box / 'cgroup'}"]
    assert not any(a.startswith("--cgroup-parent") for a in argv)
    assert f"cgroup v2 without a cgroup namespace: {own} is now the root" in log


def test_v2_with_a_namespace_leaves_it_to_the_image(box):
    argv, log, mounts = run(box, "0::/\n", v2=True, mtu="static")
    assert mounts == [] and argv == ["dockerd", "--host=tcp://127.0.0.1:2375", "--tls=false"]
    assert "cgroup v2 with a private cgroup namespace" in log


def test_unreadable_cgroup_info_changes_nothing_and_says_so(box):
    argv, log, mounts = run(box, "", mtu="static")
    assert argv == ["dockerd", "--host=tcp://127.0.0.1:2375", "--tls=false"] and mounts == []
    assert "keeps its default cgroup parent" in log


def test_auto_mtu_comes_from_eth0(box):
    argv, log, _ = run(box, "4:memory:/\n")
    assert argv[-2:] == ["--mtu=1450", "--default-network-opt=bridge=com.docker.network.driver.mtu=1450"]
    assert "bridge MTU 1450 (the pod's eth0)" in log
    argv, log, _ = run(box, "4:memory:/\n", net=False)
    assert not any(a.startswith("--mtu") for a in argv) and "keeps its default MTU" in log


def test_the_chart_starts_dind_through_this_script():
    manifest = render()
    spec = manifest.agent_pod()["spec"]
    dind = container(spec, "dind")
    assert dind["command"] == ["/bin/sh", "/jda-dind/dind-start.sh", "dockerd-entrypoint.sh"]
    assert dind["args"][0] == "dockerd", "the entrypoint must not add its own listeners"
    mount = next(m for m in dind["volumeMounts"] if m["mountPath"] == "/jda-dind")
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    cm = manifest.get("ConfigMap", name=volume["configMap"]["name"])
    assert cm["metadata"]["namespace"] == manifest.pod_template()["namespace"]
    assert cm["data"]["dind-start.sh"].strip() == SCRIPT.read_text().strip()
    assert env_of(dind)["JDA_MTU"] == "auto"
    explicit = container(render(overrides={"agent": {"dind": {"mtu": 1400}}}).agent_pod()["spec"], "dind")
    assert env_of(explicit)["JDA_MTU"] == "static"
    assert {"--mtu=1400", "--default-network-opt=bridge=com.docker.network.driver.mtu=1400"} <= set(explicit["args"])
    classic = render(kube_version="1.28.0").test_pod()["spec"]
    assert "/bin/sh /jda-dind/dind-start.sh dockerd-entrypoint.sh" in container(classic, "dind")["command"][2]


def prewarm_run(box: Path, driver: str, baked: bool, docker_root_has: str | None = None):
    root = box / "prewarm"
    if baked:  # a data root: image metadata, and (overlay2) a layer directory with its diff
        (root / driver / "image").mkdir(parents=True)
        (root / driver / "image" / "repositories.json").write_text("baked\n")
        layer = root / driver / driver / "abc123"
        (layer / "diff" / "bin").mkdir(parents=True)
        (layer / "diff" / "bin" / "sh").write_text("layer content\n")
        (layer / "link").write_text("SHORTID\n")
        (root / driver / driver / "l").mkdir()
    docker_root = box / "docker"
    docker_root.mkdir(exist_ok=True)
    if docker_root_has:
        (docker_root / docker_root_has).write_text("old\n")
    env = {**os.environ, "PATH": f"{box / 'bin'}:{os.environ['PATH']}", "JDA_PROC_CGROUP": "/dev/null",
           "JDA_CGROUP_ROOT": str(box / "cgroup"), "JDA_MTU": "static", "JDA_PREWARM": "1",
           "JDA_STORAGE_DRIVER": driver, "JDA_PREWARM_ROOT": str(root), "JDA_DOCKER_ROOT": str(docker_root),
           "FAKE_MOUNT_LOG": str(box / "mounts")}
    proc = subprocess.run(["sh", str(SCRIPT), "entry", "dockerd"], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split(), proc.stderr, docker_root


def test_prewarm_vfs_runs_on_the_baked_data_root_in_place(box):
    argv, log, docker_root = prewarm_run(box, "vfs", baked=True)
    assert argv == ["dockerd", f"--data-root={box / 'prewarm' / 'vfs'}"]
    assert "nothing to load" in log and not list(docker_root.iterdir())


def test_prewarm_overlay2_copies_metadata_and_binds_the_layers(box):
    argv, log, docker_root = prewarm_run(box, "overlay2", baked=True)
    assert argv == ["dockerd"]
    assert (docker_root / "image" / "repositories.json").read_text() == "baked\n"
    assert (docker_root / "overlay2" / "abc123" / "link").read_text() == "SHORTID\n"
    assert (docker_root / "overlay2" / "l").is_dir()
    diff = docker_root / "overlay2" / "abc123" / "diff"
    assert diff.is_dir() and not (diff / "bin").exists(), "layer contents are bound, not copied"
    baked = box / "prewarm" / "overlay2" / "overlay2" / "abc123" / "diff"
    assert (box / "mounts").read_text().splitlines() == [f"--bind {baked} {diff}", f"-o remount,bind,ro {diff}"]
    assert "metadata copied, 1 layers bind-mounted from the image" in log


def test_prewarm_overlay2_keeps_a_root_that_is_not_empty(box):
    _, log, docker_root = prewarm_run(box, "overlay2", baked=True, docker_root_has="engine-id")
    assert not (docker_root / "image").exists() and "is not empty" in log
    assert not (box / "mounts").exists()


def test_prewarm_without_a_data_root_leaves_it_to_the_archives(box):
    argv, log, _ = prewarm_run(box, "overlay2", baked=False)
    assert argv == ["dockerd"] and "the postStart hook loads the baked archives" in log
