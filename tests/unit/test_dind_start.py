"""files/dind-start.sh decides, from /proc/self/cgroup and the cgroup mount, how dockerd's containers
stay inside the dind container, in the cgroup jda-builds with a memory limit of its own; it sizes the
bridges to the pod network's MTU and sets up prewarmed data roots. The Docker tier runs the v1 branch for
real (tests/docker/test_dind_isolation.py); here every branch runs against fake inputs (JDA_PROC_CGROUP,
JDA_CGROUP_ROOT, JDA_NET_ROOT, JDA_PREWARM_ROOT, JDA_DOCKER_ROOT) with fake `mount`, `mountpoint` and
`ip` commands on a PATH that holds nothing else but the tools the script needs, and a fake entrypoint
that prints the command line dockerd would get."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from jdagent.chart.manifest import container, env_of
from jdagent.chart.render import render
from jdagent.paths import CHART_DIR

SCRIPT = CHART_DIR / "files" / "dind-start.sh"
OWN = "/kubepods/burstable/pod1/c0ffee"
V1 = f"""12:pids:{OWN}
11:cpu,cpuacct:{OWN}
4:memory:{OWN}
1:name=systemd:{OWN}
0::/
"""
V2_OWN = "/kubepods.slice/kubepods-burstable.slice/cri-containerd-c0ffee.scope"
V2 = f"0::{V2_OWN}\n"
LIMIT = 1024 * 1024 * 1024  # dind's memory limit as the downward API gives it (bytes)
HEADROOM = 256 * 1024 * 1024
BASE = ["dockerd", "--host=tcp://127.0.0.1:2375", "--tls=false"]
# The tools dind-start.sh may use besides the fakes: a missing one fails the tests that reach it.
TOOLS = ["sh", "sed", "head", "awk", "cat", "tr", "grep", "mkdir", "cp", "ls", "basename", "sleep", "mktemp",
         "rmdir"]
# moby's hack/dind at docker-v29.7.2 (the image's entrypoint runs it after dind-start.sh): its cgroup v2
# step, with /sys/fs/cgroup replaced by the fake root.
HACK_DIND_V2 = """
if [ -f "$R/cgroup.controllers" ]; then
	mkdir -p "$R/init"
	while ! {
		xargs -rn1 < "$R/cgroup.procs" > "$R/init/cgroup.procs" || :
		sed -e 's/ / +/g' -e 's/^/+/' < "$R/cgroup.controllers" \\
			> "$R/cgroup.subtree_control"
	}; do true; done
fi
"""


@pytest.fixture
def box(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (tools / tool).symlink_to(found)
    # `mount -t cgroup -o pids NAME DIR` (a second view of a v1 hierarchy) shows FAKE_CGROUP_TREE, or fails
    (bin_dir / "mount").write_text(
        '#!/bin/sh\nprintf "%s\\n" "$*" >> "$FAKE_MOUNT_LOG"\n'
        'if [ "$1" = "--bind" ]; then printf "%s\\n" "$3" >> "$FAKE_MOUNTED"; fi\n'
        'if [ "$1" = "-t" ]; then [ -d "${FAKE_CGROUP_TREE:-}" ] || exit 32; cp -R "$FAKE_CGROUP_TREE/." "$6"; fi\n')
    (bin_dir / "umount").write_text(f'#!/bin/sh\nprintf "umount %s\\n" "$*" >> "$FAKE_MOUNT_LOG"\n'
                                    f'{shutil.which("rm")} -rf "$1"/*\n')
    (bin_dir / "mountpoint").write_text(
        '#!/bin/sh\n[ "$1" = "-q" ] || exit 2\ngrep -qxF "$2" "$FAKE_MOUNTED" 2>/dev/null\n')
    (bin_dir / "entry").write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    for f in ("mount", "umount", "mountpoint", "entry"):
        (bin_dir / f).chmod(0o755)
    (tmp_path / "net" / "eth0").mkdir(parents=True)
    (tmp_path / "net" / "eth0" / "mtu").write_text("1450\n")
    (tmp_path / "cgroup").mkdir()
    return tmp_path


def fake_ip(box: Path, v4: str | None, v6: str | None = None) -> None:
    """An `ip` that answers `ip route get` for the two documentation addresses the script asks about."""
    script = "#!/bin/sh\n[ \"$1 $2\" = \"route get\" ] || exit 2\ncase \"$3\" in\n"
    for target, out in (("192.0.2.1", v4), ("2001:db8::1", v6)):
        if out is None:
            script += f"  {target}) echo 'RTNETLINK answers: Network is unreachable' >&2; exit 2 ;;\n"
        else:
            script += f"  {target}) printf '%b\\n' '{out}' ;;\n"
    script += "esac\n"
    (box / "bin" / "ip").write_text(script)
    (box / "bin" / "ip").chmod(0o755)


def script_env(box: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JDA_")}
    return {**env, "PATH": f"{box / 'bin'}:{box / 'tools'}", "FAKE_MOUNT_LOG": str(box / "mounts"),
            "FAKE_MOUNTED": str(box / "mounted"), "JDA_CGROUP_ROOT": str(box / "cgroup"),
            "JDA_MOUNTINFO": str(box / "mountinfo"), "TMPDIR": str(box), **extra}


def mounts(box: Path) -> list[str]:
    return (box / "mounts").read_text().splitlines() if (box / "mounts").exists() else []


def run(box: Path, proc: str, v2: bool = False, mtu: str = "auto", net: bool = True,
        controllers: str = "cpuset cpu io memory pids", limit: int | None = LIMIT, headroom: int = HEADROOM,
        procs: str = "1\n7\n", extra: dict[str, str] | None = None):
    (box / "proc-cgroup").write_text(proc)
    root = box / "cgroup"
    if v2:
        (root / "cgroup.controllers").write_text(controllers + "\n")
        (root / "cgroup.procs").write_text(procs)
    memory = {"JDA_MEMORY_LIMIT": str(limit), "JDA_BUILD_MEMORY_HEADROOM": str(headroom)} if limit else {}
    env = script_env(box, JDA_PROC_CGROUP=str(box / "proc-cgroup"), JDA_NET_ROOT=str(box / ("net" if net else "nonet")),
                     JDA_MTU=mtu, **memory, **(extra or {}))
    proc_ = subprocess.run(["sh", str(SCRIPT), "entry", *BASE], env=env, capture_output=True, text=True, timeout=30)
    assert proc_.returncode == 0, proc_.stderr
    return proc_.stdout.split(), proc_.stderr, mounts(box)


def test_valid_posix_shell():
    assert subprocess.run(["sh", "-n", str(SCRIPT)]).returncode == 0


# --- cgroup v1 --------------------------------------------------------------------------------------
def test_v1_nests_dockerd_containers_in_jda_builds_with_a_memory_limit_of_its_own(box):
    argv, log, mounted = run(box, V1, mtu="static")
    assert argv == [*BASE, f"--cgroup-parent={OWN}/jda-builds"]
    assert mounted == []
    limit_file = box / "cgroup" / "memory" / OWN.lstrip("/") / "jda-builds" / "memory.limit_in_bytes"
    assert int(limit_file.read_text()) == LIMIT - HEADROOM
    assert f"cgroup v1: dockerd's containers go to {OWN}/jda-builds" in log
    assert f"jda-builds memory.limit_in_bytes {LIMIT - HEADROOM}" in log


def test_v1_with_a_private_namespace_nests_below_its_root(box):
    argv, log, _ = run(box, "4:memory:/\n0::/\n", mtu="static")
    assert argv == [*BASE, "--cgroup-parent=/jda-builds"]
    assert "cgroup v1: dockerd's containers go to /jda-builds" in log
    assert int((box / "cgroup" / "memory" / "jda-builds" / "memory.limit_in_bytes").read_text()) == LIMIT - HEADROOM


def test_without_the_downward_api_limit_builds_get_no_limit_of_their_own(box):
    argv, log, _ = run(box, V1, mtu="static", limit=None)
    assert argv[-1] == f"--cgroup-parent={OWN}/jda-builds", "the nesting does not depend on the limit"
    assert not (box / "cgroup" / "memory").exists()
    assert "no memory limit or headroom given" in log


def test_a_limit_not_above_the_headroom_leaves_builds_unlimited_and_says_so(box):
    _, log, _ = run(box, V1, mtu="static", limit=HEADROOM)
    assert not (box / "cgroup" / "memory").exists()
    assert "is not above the headroom for dockerd" in log


# --- cgroup v2 --------------------------------------------------------------------------------------
def v2_files(box: Path) -> dict[str, str]:
    root = box / "cgroup"
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_v2_without_a_namespace_makes_its_own_cgroup_the_root_and_delegates_memory(box):
    argv, log, mounted = run(box, V2, v2=True, mtu="static")
    root = box / "cgroup"
    assert mounted == [f"--bind {root}{V2_OWN} {root}"]
    files = v2_files(box)
    assert files["init/cgroup.procs"] == "1\n7\n", "every process of this cgroup moves to init/"
    assert files["cgroup.subtree_control"] == "+cpuset +cpu +io +memory +pids\n"
    assert int(files["jda-builds/memory.max"]) == LIMIT - HEADROOM
    assert argv == [*BASE, "--cgroup-parent=/jda-builds"]
    assert f"cgroup v2 without a cgroup namespace: {V2_OWN} is now the root" in log
    assert f"jda-builds memory.max {LIMIT - HEADROOM}" in log


def test_v2_with_a_namespace_delegates_memory_too(box):
    argv, log, mounted = run(box, "0::/\n", v2=True, mtu="static")
    assert mounted == []
    assert int(v2_files(box)["jda-builds/memory.max"]) == LIMIT - HEADROOM
    assert argv == [*BASE, "--cgroup-parent=/jda-builds"]
    assert "cgroup v2 with a private cgroup namespace" in log


def test_hack_dind_still_works_after_the_delegation(box):
    """The image's entrypoint runs moby's hack/dind next: its own move to init/ and subtree_control write
    must succeed on what dind-start.sh left, and keep jda-builds' limit."""
    run(box, V2, v2=True, mtu="static")
    before = v2_files(box)
    env = {**script_env(box, R=str(box / "cgroup")), "PATH": os.environ["PATH"]}  # xargs too
    done = subprocess.run(["sh", "-c", HACK_DIND_V2], env=env,
                          capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    after = v2_files(box)
    assert after["cgroup.subtree_control"] == before["cgroup.subtree_control"]
    assert after["jda-builds/memory.max"] == before["jda-builds/memory.max"]


def test_v2_leaves_dockerd_pids_below_the_pod_pids_limit(box):
    """The kubelet's pod pids limit sits on the pod's cgroup, above this container's (read before the bind
    mount hides it); jda-builds gets all but 64 of the smallest limit on the way up, so a fork bomb in a
    build leaves dockerd and `docker exec` room (proven on the real kernel: tests/vm)."""
    root = box / "cgroup"
    pod = root / V2_OWN.lstrip("/").rsplit("/", 1)[0]
    (root / V2_OWN.lstrip("/")).mkdir(parents=True)
    (pod / "pids.max").write_text("1024\n")
    (root / V2_OWN.lstrip("/") / "pids.max").write_text("max\n")
    _, log, _ = run(box, V2, v2=True, mtu="static")
    assert v2_files(box)["jda-builds/pids.max"] == "960\n"
    assert "jda-builds pids.max 960 (the pids limit above this container, 1024, minus 64)" in log


def test_v2_without_a_pids_limit_sets_none(box):
    run(box, V2, v2=True, mtu="static")
    assert "jda-builds/pids.max" not in v2_files(box)


def test_v1_leaves_dockerd_pids_below_the_pod_pids_limit(box):
    pod = box / "cgroup" / "pids" / OWN.lstrip("/").rsplit("/", 1)[0]
    (pod / OWN.rsplit("/", 1)[1]).mkdir(parents=True)
    (pod / "pids.max").write_text("300\n")
    _, log, _ = run(box, V1, mtu="static")
    assert (box / "cgroup" / "pids" / OWN.lstrip("/") / "jda-builds" / "pids.max").read_text() == "236\n"
    assert "jda-builds pids.max 236" in log



def runc_v1_mountinfo(box: Path) -> None:
    """/proc/self/mountinfo as runc leaves it in a v1 container: each hierarchy a bind of its own cgroup."""
    lines = [f"{40 + i} 30 0:{30 + i} {OWN} {box / 'cgroup' / name} rw,nosuid - cgroup cgroup rw,{name}"
             for i, name in enumerate(("memory", "pids"))]
    (box / "mountinfo").write_text("\n".join(lines) + "\n")


def test_v1_under_runcs_bind_of_its_own_cgroup_nests_below_the_mount(box):
    """The kubelet's containers see their own cgroup at /sys/fs/cgroup/memory (the mount's root is OWN):
    jda-builds is /jda-builds there, a child of the container's cgroup, not OWN repeated below it."""
    runc_v1_mountinfo(box)
    argv, log, _ = run(box, V1, mtu="static")
    assert argv == [*BASE, "--cgroup-parent=/jda-builds"]
    assert int((box / "cgroup" / "memory" / "jda-builds" / "memory.limit_in_bytes").read_text()) == LIMIT - HEADROOM
    assert not (box / "cgroup" / "memory" / "kubepods").exists()
    assert "cgroup v1: dockerd's containers go to /jda-builds" in log



def test_v1_with_the_nodes_hierarchy_mounted_over_runcs_bind_uses_the_full_path(box):
    """The Docker tier's fallback binds the node's /sys/fs/cgroup over the runtime's mounts: the mount
    listed last is the one visible, whose root is the node's."""
    runc_v1_mountinfo(box)
    with (box / "mountinfo").open("a") as f:
        f.write(f"90 80 0:30 / {box / 'cgroup' / 'memory'} rw,nosuid - cgroup cgroup rw,memory\n")
    argv, _, _ = run(box, V1, mtu="static")
    assert argv == [*BASE, f"--cgroup-parent={OWN}/jda-builds"]

def test_v1_under_runcs_bind_reads_the_pod_pids_limit_from_a_second_view_of_the_hierarchy(box):
    runc_v1_mountinfo(box)
    tree = box / "whole-pids-tree"
    (tree / OWN.lstrip("/")).mkdir(parents=True)
    (tree / OWN.lstrip("/")).parent.joinpath("pids.max").write_text("300\n")
    (tree / OWN.lstrip("/") / "pids.max").write_text("max\n")
    (box / "cgroup" / "pids").mkdir()
    _, log, mounted = run(box, V1, mtu="static", extra={"FAKE_CGROUP_TREE": str(tree)})
    assert (box / "cgroup" / "pids" / "jda-builds" / "pids.max").read_text() == "236\n"
    assert "jda-builds pids.max 236 (the pids limit above this container, 300, minus 64)" in log
    view = next(m.split()[-1] for m in mounted if m.startswith("-t cgroup -o pids"))
    assert f"umount {view}" in mounted and not Path(view).exists(), "the second view is unmounted and removed"


def test_v1_under_runcs_bind_without_a_second_view_sets_no_pids_limit_and_says_so(box):
    runc_v1_mountinfo(box)
    (box / "cgroup" / "pids").mkdir()
    argv, log, _ = run(box, V1, mtu="static")
    assert argv == [*BASE, "--cgroup-parent=/jda-builds"]
    assert not (box / "cgroup" / "pids" / "jda-builds").exists()
    assert "cgroup v1: no pids limit found above this container; jda-builds gets none of its own" in log

def test_v2_without_the_memory_controller_gives_no_limit_and_says_so(box):
    argv, log, _ = run(box, V2, v2=True, mtu="static", controllers="cpu pids")
    assert "jda-builds/memory.max" not in v2_files(box)
    assert argv[-1] == "--cgroup-parent=/jda-builds"
    assert "the memory controller is not enabled" in log


def test_v2_gives_up_on_a_busy_cgroup_after_bounded_retries(box):
    (box / "cgroup" / "cgroup.subtree_control").mkdir()  # every write fails, as with EBUSY
    argv, log, _ = run(box, V2, v2=True, mtu="static")
    assert "could not enable the controllers" in log
    assert "jda-builds/memory.max" not in v2_files(box)
    assert argv[-1] == "--cgroup-parent=/jda-builds"


def test_unreadable_cgroup_info_changes_nothing_and_says_so(box):
    argv, log, mounted = run(box, "", mtu="static")
    assert argv == BASE and mounted == []
    assert "keeps its default cgroup parent" in log
    argv, log, mounted = run(box, "", v2=True, mtu="static")
    assert argv == BASE and mounted == [] and "no v2 entry" in log


# --- MTU --------------------------------------------------------------------------------------------
def mtu_flags(mtu: int) -> list[str]:
    return [f"--mtu={mtu}", f"--default-network-opt=bridge=com.docker.network.driver.mtu={mtu}"]


def test_without_ip_the_mtu_comes_from_eth0_and_the_log_says_why(box):
    argv, log, _ = run(box, "4:memory:/\n")
    assert argv[-2:] == mtu_flags(1450)
    assert "bridge MTU 1450 (the pod's eth0)" in log and "no ip command" in log
    argv, log, _ = run(box, "4:memory:/\n", net=False)
    assert not any(a.startswith("--mtu") for a in argv) and "keeps its default MTU" in log


@pytest.mark.parametrize("v4,v6,expected,reason", [
    # Cilium with a tunnel: eth0 says 1500 (here 1450), the route carries the smaller MTU
    ("192.0.2.1 via 10.0.0.1 dev eth0 src 10.0.0.7 uid 0 \\n    cache mtu 1400", None, 1400, "route"),
    ("192.0.2.1 via 10.0.0.1 dev eth0 src 10.0.0.7 uid 0 \\n    cache mtu lock 1380", None, 1380, "route"),
    (None, "2001:db8::1 from :: via fe80::1 dev eth0 src fd00::7 metric 1024 mtu 1280 pref medium", 1280, "route"),
    ("192.0.2.1 via 10.0.0.1 dev eth0 src 10.0.0.7 uid 0 \\n    cache mtu 9000", None, 1450, "eth0"),
    # busybox's ip (the upstream dind image) prints no route metrics
    ("192.0.2.1 via 10.0.0.1 dev eth0  src 10.0.0.7 ", None, 1450, "eth0"),
    (None, None, 1450, "eth0"),
])
def test_the_mtu_is_the_smaller_of_eth0_and_the_route(box, v4, v6, expected, reason):
    fake_ip(box, v4, v6)
    argv, log, _ = run(box, "4:memory:/\n")
    assert argv[-2:] == mtu_flags(expected)
    assert "no ip command" not in log
    assert ("the MTU of the pod's route; eth0 says 1450" in log) is (reason == "route"), log


def test_a_route_mtu_without_eth0_is_used(box):
    fake_ip(box, "192.0.2.1 dev eth0 src 10.0.0.7 \\n    cache mtu 1400")
    argv, log, _ = run(box, "4:memory:/\n", net=False)
    assert argv[-2:] == mtu_flags(1400) and "eth0 says nothing" in log


def test_a_static_mtu_asks_nothing(box):
    fake_ip(box, "192.0.2.1 dev eth0 \\n    cache mtu 1400")
    argv, log, _ = run(box, "4:memory:/\n", mtu="static")
    assert not any(a.startswith("--mtu") for a in argv) and "bridge MTU" not in log


# --- the chart --------------------------------------------------------------------------------------
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


@pytest.mark.parametrize("kube", ["1.28.0", "1.33.0"])
def test_the_chart_gives_the_script_dinds_own_limit_and_the_headroom(kube):
    """The limit comes from the downward API (what the kubelet applies, a LimitRange's default included),
    the headroom in bytes from agent.dind.buildMemoryHeadroom."""
    for spec in (render(kube_version=kube).agent_pod()["spec"], render(kube_version=kube).test_pod()["spec"]):
        env = {e["name"]: e for e in container(spec, "dind")["env"]}
        assert env["JDA_MEMORY_LIMIT"]["valueFrom"] == {"resourceFieldRef": {"resource": "limits.memory"}}
        assert env["JDA_BUILD_MEMORY_HEADROOM"]["value"] == str(512 * 1024 * 1024)
    spec = render(overrides={"agent": {"dind": {"buildMemoryHeadroom": "1.5Gi"}}}).agent_pod()["spec"]
    assert env_of(container(spec, "dind"))["JDA_BUILD_MEMORY_HEADROOM"] == str(3 * 512 * 1024 * 1024)


# --- prewarm ----------------------------------------------------------------------------------------
def bake(box: Path, driver: str) -> Path:
    """A data root: image metadata, and (overlay2) a layer directory with its diff."""
    root = box / "prewarm"
    (root / driver / "image").mkdir(parents=True)
    (root / driver / "image" / "repositories.json").write_text("baked\n")
    layer = root / driver / driver / "abc123"
    (layer / "diff" / "bin").mkdir(parents=True)
    (layer / "diff" / "bin" / "sh").write_text("layer content\n")
    (layer / "link").write_text("SHORTID\n")
    (root / driver / driver / "l").mkdir()
    return root


def prewarm_run(box: Path, driver: str, baked: bool, docker_root_has: str | None = None):
    root = bake(box, driver) if baked and not (box / "prewarm" / driver).exists() else box / "prewarm"
    docker_root = box / "docker"
    docker_root.mkdir(exist_ok=True)
    if docker_root_has:
        (docker_root / docker_root_has).write_text("old\n")
    env = script_env(box, JDA_PROC_CGROUP="/dev/null", JDA_MTU="static", JDA_PREWARM="1", JDA_STORAGE_DRIVER=driver,
                     JDA_PREWARM_ROOT=str(root), JDA_DOCKER_ROOT=str(docker_root))
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
    assert mounts(box) == [f"--bind {baked} {diff}", f"-o remount,bind,ro {diff}"]
    assert "metadata copied, 1 layers bind-mounted from the image" in log


def restart(box: Path) -> None:
    """What a container restart does to the fakes: a new mount namespace (no mounts), the emptyDir kept."""
    for f in ("mounts", "mounted"):
        (box / f).unlink(missing_ok=True)


def test_prewarm_overlay2_binds_the_layers_again_after_a_restart(box):
    _, _, docker_root = prewarm_run(box, "overlay2", baked=True)
    # meanwhile dockerd wrote its own state and a layer of its own, and the old mounts died
    (docker_root / "engine-id").write_text("engine\n")
    (docker_root / "image" / "repositories.json").write_text("evolved\n")
    (docker_root / "overlay2" / "def456" / "diff").mkdir(parents=True)
    (docker_root / "overlay2" / "def456" / "diff" / "built").write_text("a build's layer\n")
    restart(box)
    argv, log, _ = prewarm_run(box, "overlay2", baked=True)
    diff = docker_root / "overlay2" / "abc123" / "diff"
    baked = box / "prewarm" / "overlay2" / "overlay2" / "abc123" / "diff"
    assert mounts(box) == [f"--bind {baked} {diff}", f"-o remount,bind,ro {diff}"]
    assert (docker_root / "image" / "repositories.json").read_text() == "evolved\n", "dockerd's state is kept"
    assert (docker_root / "overlay2" / "def456" / "diff" / "built").exists()
    assert argv == ["dockerd"]
    assert "a restarted container): kept; 1 layers bind-mounted again from the image, 0 already mounted" in log


def test_prewarm_overlay2_leaves_mounted_layers_alone(box):
    prewarm_run(box, "overlay2", baked=True)
    (box / "mounts").unlink()  # same mount namespace: the layer is still mounted
    _, log, _ = prewarm_run(box, "overlay2", baked=True)
    assert mounts(box) == []
    assert "0 layers bind-mounted again from the image, 1 already mounted" in log


def test_prewarm_overlay2_does_not_bring_back_a_layer_dockerd_removed(box):
    _, _, docker_root = prewarm_run(box, "overlay2", baked=True)
    shutil.rmtree(docker_root / "overlay2" / "abc123")
    restart(box)
    _, log, _ = prewarm_run(box, "overlay2", baked=True)
    assert mounts(box) == [] and not (docker_root / "overlay2" / "abc123").exists()
    assert "0 layers bind-mounted again" in log


def test_prewarm_overlay2_never_mounts_over_content(box):
    _, _, docker_root = prewarm_run(box, "overlay2", baked=True)
    restart(box)
    (docker_root / "overlay2" / "abc123" / "diff" / "stray").write_text("x\n")
    _, log, _ = prewarm_run(box, "overlay2", baked=True)
    assert mounts(box) == [] and "is neither empty nor a mount point; left alone" in log


def test_prewarm_overlay2_keeps_a_root_that_is_not_empty(box):
    _, log, docker_root = prewarm_run(box, "overlay2", baked=True, docker_root_has="engine-id")
    assert not (docker_root / "image").exists() and "is not empty" in log
    assert mounts(box) == [], "no layer directory of the baked root exists there: nothing to bind"


def test_prewarm_without_a_data_root_leaves_it_to_the_archives(box):
    argv, log, _ = prewarm_run(box, "overlay2", baked=False)
    assert argv == ["dockerd"] and "the postStart hook loads the baked archives" in log
