"""Smoke tests of the VM node: each asserts what the guest itself answers about its kernel, init,
cgroups and Docker, so the later dind and kubelet tests stand on a proven cgroup v2 node."""

from __future__ import annotations

import hashlib
import re
import shlex
import time
import uuid

from jdagent.vm import pins
from jdagent.vm.machine import host_image_ids
from tests.vm.conftest import TIMINGS


def sh(node, command: str, timeout: float = 120) -> str:
    result = node.run(command, timeout)
    assert result.rc == 0, f"`{command}` exited {result.rc} in the guest: {result.stderr or result.stdout}"
    return result.stdout.strip()


def test_the_cgroup_file_system_is_cgroup2(node):
    assert sh(node, "stat -f -c %T /sys/fs/cgroup") == "cgroup2fs"
    assert sh(node, "cat /proc/self/cgroup").startswith("0::/")  # one line: the unified hierarchy only
    assert "memory" in sh(node, "cat /sys/fs/cgroup/cgroup.subtree_control").split()


def test_pid_1_is_systemd_and_the_boot_finished(node):
    assert sh(node, "cat /proc/1/comm") == "systemd"
    assert sh(node, "readlink /proc/1/exe").endswith("/systemd")
    assert node.state in ("running", "degraded"), node.state
    if node.failed:
        print(f"failed units in the guest: {', '.join(node.failed)}")


def test_docker_runs_on_cgroup_v2_with_the_systemd_driver(node):
    info = sh(node, "docker info --format '{{.CgroupVersion}} {{.CgroupDriver}} {{.ServerVersion}}'").split()
    assert info[:2] == ["2", "systemd"], info
    assert info[2].startswith(pins.EXPECTED["docker.io"]), info


def test_a_host_cgroupns_container_lands_in_its_docker_scope(node, busybox):
    started = time.monotonic()
    cid = sh(node, f"docker run -d --cgroupns=host {busybox} sleep 600", 180)
    try:
        pid = sh(node, f"docker inspect -f '{{{{.State.Pid}}}}' {cid}")
        assert sh(node, f"cat /proc/{pid}/cgroup") == f"0::/system.slice/docker-{cid}.scope"
        # with the host cgroup namespace the container sees the node's whole hierarchy
        assert f"docker-{cid}.scope" in sh(node, f"docker exec {cid} cat /proc/self/cgroup", 120)
    finally:
        node.run(f"docker rm -f {cid}", 120)
    print(f"docker run + checks: {time.monotonic() - started:.1f} s")


def test_a_delegated_transient_scope_gets_a_subtree_it_can_control(node):
    unit = f"jda-smoke-{uuid.uuid4().hex[:8]}.scope"
    script = (
        'cg=/sys/fs/cgroup$(sed -n "s/^0:://p" /proc/self/cgroup); echo "cgroup $cg"; '
        f'echo "delegate $(systemctl show -p Delegate --value {unit})"; '
        'mkdir "$cg/supervisor" && echo $$ > "$cg/supervisor/cgroup.procs" && '  # no internal processes
        'echo "+memory +pids" > "$cg/cgroup.subtree_control" && '
        'echo "controls $(cat "$cg/cgroup.subtree_control")" && '
        'mkdir "$cg/build" && echo 64M > "$cg/build/memory.max" && echo "build $(cat "$cg/build/memory.max")"'
    )
    out = sh(node, f"systemd-run --quiet --scope -p Delegate=yes --unit={unit} sh -c {shlex.quote(script)}")
    facts = dict(line.split(" ", 1) for line in out.splitlines())
    assert facts["cgroup"] == f"/sys/fs/cgroup/system.slice/{unit}", out
    assert facts["delegate"] == "yes", out
    assert {"memory", "pids"} <= set(facts["controls"].split()), out
    assert facts["build"] == str(64 * 1024 * 1024), out
    assert node.run(f"test -e /sys/fs/cgroup/system.slice/{unit}", 30).rc != 0  # systemd removed it, subtree and all


def test_memory_max_and_oom_group_are_set_and_the_kernel_enforces_them(node):
    cg = f"/sys/fs/cgroup/jda-smoke-{uuid.uuid4().hex[:8]}"
    try:
        sh(node, f"mkdir {cg} && echo 32M > {cg}/memory.max && echo 1 > {cg}/memory.oom.group")
        assert sh(node, f"cat {cg}/memory.max {cg}/memory.oom.group").split() == [str(32 * 1024 * 1024), "1"]
        # tail keeps a line without end in memory: it grows past 32 MiB and the kernel kills the group
        hog = node.run(f"sh -c 'echo $$ > {cg}/cgroup.procs; exec tail /dev/zero'", 120)
        assert hog.rc == 137, (hog.rc, hog.stderr)
        events = dict(line.split() for line in sh(node, f"cat {cg}/memory.events").splitlines())
        assert int(events["oom_group_kill"]) >= 1 and int(events["oom_kill"]) >= 1, events
    finally:
        node.run(f"rmdir {cg}", 30)


def test_a_standin_image_from_the_host_runs_in_the_guest(node, standins, busybox):
    for tag, image_id in host_image_ids(list(standins.values())).items():
        assert sh(node, f"docker image inspect -f '{{{{.Id}}}}' {tag}") == image_id, tag
    assert sh(node, f"docker run --rm {busybox} echo hello from the guest", 180) == "hello from the guest"
    dind = standins["dind"]
    # Debian's 26.1.5, or the pinned daemon (29.7.1) with JDA_DIND_STANDIN=dind29
    assert re.fullmatch(r"Docker version (26\.1\.5|29\.7\.1)\b.*",
                        sh(node, f"docker run --rm --entrypoint dockerd {dind} --version", 180))


def test_load_images_streams_an_image_from_the_host_engine(node, busybox):
    started = time.monotonic()
    ids = node.load_images([busybox])
    TIMINGS["load_images (busybox, per call)"] = f"{time.monotonic() - started:.1f} s"
    assert sh(node, f"docker image inspect -f '{{{{.Id}}}}' {busybox}") == ids[busybox]


def test_files_go_into_and_out_of_the_guest(node):
    payload = bytes(range(256)) * 4096 + b"\n"
    local, back = node.folder / "payload.bin", node.folder / "payload.back"
    try:
        local.write_bytes(payload)
        node.put(local, "/root/payload.bin", mode=0o600)
        assert sh(node, "sha256sum /root/payload.bin").split()[0] == hashlib.sha256(payload).hexdigest()
        assert sh(node, "stat -c %a /root/payload.bin") == "600"
        node.get("/root/payload.bin", back)
        assert back.read_bytes() == payload
    finally:
        local.unlink(missing_ok=True)
        back.unlink(missing_ok=True)
        node.run("rm -f /root/payload.bin", 30)


def test_a_command_past_its_timeout_is_killed_in_the_guest(node):
    started = time.monotonic()
    result = node.run("sleep 31", timeout=2)
    assert result.rc == 124 and time.monotonic() - started < 20
    assert sh(node, "ps -eo args | grep -cx 'sleep 31' || true") == "0"
