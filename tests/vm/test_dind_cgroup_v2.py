"""The chart's dind container on a real cgroup v2 kernel (issue 23): the guest's Docker runs it the way
containerd runs a privileged container on a systemd node (host cgroup namespace, in the delegated scope
system.slice/docker-<id>.scope, memory.max and cpu.max from the rendered limits), and 1 is written into
the scope's memory.oom.group from the guest's side, as the kubelet does (jdagent.vm.dind). The
container is the chart's own: rendered with the stand-in image, its command, args and env as rendered
(JDA_MEMORY_LIMIT resolved like the downward API), files/dind-start.sh and files/docker-setup.sh
mounted read-only from the rendered ConfigMap, docker-setup run first as its init container.

Which dockerd ran: the `dind` stand-in of the run. In CI (JDA_DIND_STANDIN=dind29) that is the pinned
daemon built from its Go modules, dockerd 29.7.1 with containerd 2.3.3, runc 1.4.3, docker-init (tini) and
moby's hack/dind, behind our entrypoint on the upstream contract (the proxy serves no 29.7.2: facts in
tests/unit/data/upstream/dockerd-pin.yaml); otherwise Debian trixie's docker.io 26.1.5 without hack/dind or
docker-init (dind-start.sh does the cgroup v2 init/subtree step itself either way). Inside it dockerd uses
the cgroupfs driver (no systemd in the container). The guest: Debian trixie's kernel 6.12 under software
emulation (TCG), systemd 257, docker.io 26.1.5 with the systemd cgroup driver.

Proven here:
1. dind-start.sh takes its v2 branch without a cgroup namespace, and its log says so.
2. Containers started through that dind (the docker CLI inside the container against dockerd's
   loopback listener, as jnlp uses it) land in <dind scope>/jda-builds/<id> (read from the guest).
3. A container allocating twice jda-builds' share is OOM-killed at jda-builds' limit: exit 137,
   jda-builds' oom_kill, the kernel's report names jda-builds as the OOM domain; dockerd (same PID,
   `docker info` answers), a concurrent container and the dind container keep running, and the scope's
   oom_group_kill stays 0. The control: the same allocation in a container whose --cgroup-parent is
   directly below dind's root (bypassing jda-builds) makes the kernel kill the whole scope ("going to be
   killed due to memory.oom.group set"): the dind container exits 137.
4. A pids limit on the dind container holds for a fork bomb in an inner container (dockerd survives and
   answers once the bomb's processes are gone), and dind's cpu.max throttles an inner busy loop.
5. A prewarmed overlay2 dind (scripts/build-prewarmed-dind's builder, on the host) still runs its baked
   image after `docker restart` of the dind container: the baked layers are bind-mounted again.

Seen here, not asserted: the bind mount stands in for a cgroup namespace for runc (which finds
/jda-builds/<id> below it), but not for the inner containerd shim, which derives a container's cgroup
from /proc/<pid>/cgroup, i.e. the node's path (/system.slice/docker-<id>.scope/jda-builds/<id>), and
looks that up below /sys/fs/cgroup, where it does not exist: its log says "failed to add inotify watch
for .../memory.events: no such file or directory", so inner `docker inspect` reports OOMKilled false
(exit 137 is right) and `docker stats` reports 0B. Limits and the OOM's containment are unaffected.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

import pytest

from jdagent.engine.agentpod import image_values, render_agent_pod
from jdagent.vm import dind as vmdind
from jdagent.vm.dind import GuestDind
from tests.vm.conftest import TIMINGS, need

LIMIT = "512Mi"
HEADROOM = "256Mi"
SHARE = 256 * 1024 * 1024           # jda-builds' memory.max: dind's limit minus the headroom
GREEDY = "dd if=/dev/zero of=/dev/null bs=512M count=1"  # fills a 512 MiB buffer: twice the share
CPUS = "1"
PIDS = 200                          # --pids-limit on the dind container (the kubelet's podPidsLimit's role)
BOMB = "bomb() { bomb | bomb & }; bomb; sleep 3600"
START_TIMEOUT_S = 600               # every pod's start, in parallel (each step in it is bounded too)
STAGGER_S = 15                      # between the parallel starts of the pods


def values(images: dict[str, str], **dind: Any) -> dict[str, Any]:
    """Stand-in image for dind and the example job; jnlp is not run here and keeps its default."""
    return {"agent": {"dind": {"image": image_values(images["dind"]), **dind}},
            "exampleJob": {"baseImage": images["busybox"]}}


def limited(images: dict[str, str]) -> dict[str, Any]:
    return values(images, resources={"requests": {"memory": "256Mi", "cpu": "500m"},
                                     "limits": {"memory": LIMIT, "cpu": CPUS}},
                  buildMemoryHeadroom=HEADROOM)


def record(what: str, started: float, detail: str = "") -> None:
    took = time.monotonic() - started
    TIMINGS[f"dind v2: {what}"] = f"{took:.0f} s" + (f" ({detail})" if detail else "")
    print(f"\n[timing] {what}: {took:.1f} s {detail}")


@pytest.fixture(scope="module")
def images(guest_images) -> dict[str, str]:
    if not guest_images:
        need("no Docker engine on the host: the stand-in images the guest runs come from it")
    return guest_images


def pod_setups(images: dict[str, str]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """fixture name -> (chart values, vmdind.start arguments) of the three dind pods of this module."""
    return {
        "dind": (limited(images), {"pids_limit": PIDS, "images": [images["busybox"]]}),
        "control_pod": (limited(images), {"images": [images["busybox"]]}),
        "prewarm_pod": (values({**images, "dind": images["prewarmed"]}, storageDriver="overlay2",
                               prewarm={"enabled": True, "images": [images["busybox"]]},
                               resources={"requests": {"memory": "256Mi", "cpu": "500m"},
                                          "limits": {"memory": "1Gi", "cpu": "2"}}), {}),
    }


@pytest.fixture(scope="module")
def pods(request, node, images) -> Iterator[dict[str, Future[GuestDind]]]:
    """The dind pods the selected tests of this module use, started in parallel, STAGGER_S apart (under
    emulation a start is mostly waiting on dockerd initialising: overlapped, three take far less than
    one after the other); each test then waits for its own. Removed at the end of the module, started
    or not."""
    setups = pod_setups(images)
    used = {name for item in request.session.items if item.module is request.module for name in item.fixturenames}
    wanted = [name for name in setups if name in used]  # in the order the tests need them
    names = {fixture: f"jda-{fixture.replace('_pod', '')}-{uuid.uuid4().hex[:6]}" for fixture in wanted}
    started = time.monotonic()

    def start(fixture: str) -> GuestDind:
        time.sleep(STAGGER_S * wanted.index(fixture))  # three dockerds initialising at once starve each other
        overrides, kwargs = setups[fixture]
        manifest, spec = render_agent_pod(overrides=overrides)
        guest = vmdind.start(node, manifest, spec, names[fixture], **kwargs)
        TIMINGS[f"dind v2: start {fixture}"] = (f"{guest.timings['start']:.0f} s (" + ", ".join(
            f"{k} {v:.0f} s" for k, v in guest.timings.items() if k != "start") + ")")
        return guest

    with ThreadPoolExecutor(max_workers=len(wanted) or 1) as pool:
        futures = {fixture: pool.submit(start, fixture) for fixture in wanted}
        try:
            wait(list(futures.values()), timeout=START_TIMEOUT_S)
            took = time.monotonic() - started
            TIMINGS["dind v2: the pods started in parallel"] = f"{took:.0f} s ({', '.join(wanted)})"
            yield futures
        finally:
            for fixture in wanted:
                vmdind.remove(node, names[fixture])


def started_pod(pods: dict[str, Future[GuestDind]], fixture: str) -> GuestDind:
    return pods[fixture].result(timeout=START_TIMEOUT_S)


@pytest.fixture(scope="module")
def dind(pods) -> GuestDind:
    """The chart's dind with limits memory 512Mi, cpu 1, buildMemoryHeadroom 256Mi, and a pids limit."""
    return started_pod(pods, "dind")


@pytest.fixture(scope="module")
def control_pod(pods) -> GuestDind:
    """The same values as `dind`, for the control that kills it."""
    return started_pod(pods, "control_pod")


@pytest.fixture(scope="module")
def prewarm_pod(pods) -> GuestDind:
    """The prewarmed stand-in dind with agent.dind.storageDriver overlay2 and prewarm on."""
    return started_pod(pods, "prewarm_pod")


@pytest.fixture(scope="module")
def concurrent(dind, images) -> str:
    """A second build running while another one runs out of memory."""
    name = "concurrent"
    ran = dind.docker(["run", "-d", "--name", name, "--network", "none", images["busybox"], "sleep", "3600"])
    assert ran.rc == 0, ran.stderr
    return name


def test_dind_start_takes_the_v2_branch_and_says_so(node, dind):
    started = time.monotonic()
    log = dind.logs()
    own = f"/system.slice/docker-{dind.container_id}.scope"
    assert f"cgroup v2 without a cgroup namespace: {own} is now the root of /sys/fs/cgroup" in log, log[:3000]
    assert f"cgroup v2: jda-builds memory.max {SHARE} (dind's limit {512 * 1024 * 1024} minus {SHARE}" in log
    assert "cgroup v2: dockerd's containers go to jda-builds, inside this container's limits" in log
    # host cgroup namespace: inside, /proc/self/cgroup names the node's path (now below init/)
    inside = node.run(["docker", "exec", dind.name, "cat", "/proc/self/cgroup"], 60).stdout.strip()
    assert inside == f"0::{own}/init", inside
    # the guest's view of the scope dind-start.sh delegated
    procs, init, control, builds, limit, group = dind.read_many(*(f"{dind.scope}/{f}" for f in (
        "cgroup.procs", "init/cgroup.procs", "cgroup.subtree_control", "jda-builds/memory.max", "memory.max",
        "memory.oom.group")))
    assert procs == "", "no process left in the scope's root"
    assert str(dind.main_pid()) in init.split()
    assert {"memory", "pids", "cpu"} <= set(control.split()), control
    assert int(builds) == SHARE and int(limit) == 512 * 1024 * 1024 and group == "1", (builds, limit, group)
    info = dind.docker(["info", "--format", "{{.ServerVersion}} {{.CgroupVersion}} {{.CgroupDriver}}"]).stdout.split()
    assert info[1:] == ["2", "cgroupfs"], info
    print(f"inner dockerd {info[0]}, cgroup v{info[1]}, driver {info[2]}")
    record("v2 branch", started)


def test_containers_started_through_dind_land_in_its_jda_builds(node, dind, concurrent):
    started = time.monotonic()
    inner_id = dind.docker(["inspect", "-f", "{{.Id}}", concurrent], 60).stdout.strip()
    pid = dind.inner_pid(concurrent)
    cgroup = node.run(f"cat /proc/{pid}/cgroup", 60).stdout.strip()
    assert cgroup == f"0::/system.slice/docker-{dind.container_id}.scope/jda-builds/{inner_id}", cgroup
    assert node.run(f"cat /proc/{pid}/comm", 60).stdout.strip() == "sleep"
    print(f"guest pid {pid}: {cgroup}")
    record("nesting", started)


def test_a_build_over_its_share_is_oom_killed_and_dockerd_survives(node, dind, concurrent, images):
    started = time.monotonic()
    dockerd = dind.dockerd_pid()
    concurrent_pid = dind.inner_pid(concurrent)
    before, mark = dind.events("jda-builds"), len(dind.kernel_log())
    ran = dind.docker(["run", "--name", "greedy", "--network", "none", images["busybox"], "sh", "-c", GREEDY], 300)
    state = vmdind.inspect_state(dind, "greedy")
    after, scope = dind.events("jda-builds"), dind.events("")
    report = [line for line in dind.kernel_log()[mark:] if "oom-kill:" in line or "memory.oom.group" in line
              or "Killed process" in line]
    print(f"greedy: rc {ran.rc}, ExitCode {state['ExitCode']}, OOMKilled {state['OOMKilled']}; jda-builds "
          f"{after}; scope {scope}\nkernel: " + "\n".join(report))
    assert ran.rc == 137 and state["ExitCode"] == 137, (ran.rc, state, ran.stderr[-1500:])
    assert after["oom_kill"] >= before["oom_kill"] + 1, (before, after)
    own = f"/system.slice/docker-{dind.container_id}.scope"
    kill = [line for line in report if f"oom_memcg={own}/jda-builds," in line and "task=dd," in line]
    assert kill, f"the kernel's OOM domain was not jda-builds: {report}"
    assert not any("memory.oom.group" in line for line in report), report
    killed = {m.group(1) for line in report if (m := re.search(r"Killed process \d+ \((\S+)\)", line))}
    assert killed == {"dd"}, f"the kernel killed {killed}: {report}"
    assert scope["oom_group_kill"] == 0, scope
    # dockerd, the concurrent build and the dind container are alive
    assert dind.dockerd_pid() == dockerd
    assert node.run(f"cat /proc/{dockerd}/comm", 60).stdout.strip() == "dockerd"
    assert dind.outer("{{.State.Status}} {{.RestartCount}}") == "running 0"
    assert dind.docker(["info", "--format", "{{.ServerVersion}}"], 60).rc == 0
    assert vmdind.inspect_state(dind, concurrent)["Running"] is True
    assert dind.inner_pid(concurrent) == concurrent_pid
    dind.docker(["rm", "-f", "greedy"], 60)
    record("contained OOM", started, f"exit {state['ExitCode']}, jda-builds oom_kill {after['oom_kill']}, "
                                     f"scope oom_group_kill {scope['oom_group_kill']}")


def test_dinds_cpu_limit_throttles_an_inner_busy_loop(node, dind, concurrent):
    """Two busy loops in a build container (exec'd into the running one: they end by themselves) want two
    CPUs; dind's cpu.max allows one, and the kernel throttles the scope."""
    started = time.monotonic()
    loop = "timeout 16 sh -c 'while :; do :; done'"
    ran = dind.docker(["exec", "-d", concurrent, "sh", "-c", f"{loop} & {loop}"])
    assert ran.rc == 0, ran.stderr
    stat = f"{dind.scope}/cpu.stat"
    # one guest command: two samples 10 s apart on the guest's clock, no SSH latency between them
    out = dind.sh(f"sleep 2; cat {stat}; echo T $(date +%s%N); sleep 10; cat {stat}; echo T $(date +%s%N)", 120)
    parts = re.split(r"^T (\d+)$", out, flags=re.M)
    a, t0, b, t1 = vmdind.parse_kv(parts[0]), int(parts[1]), vmdind.parse_kv(parts[2]), int(parts[3])
    wall = (t1 - t0) / 1e9
    used = (b["usage_usec"] - a["usage_usec"]) / 1e6
    throttled = b["nr_throttled"] - a["nr_throttled"]
    periods = b["nr_periods"] - a["nr_periods"]
    quota = dind.read(f"{dind.scope}/cpu.max")
    print(f"cpu.max {quota}: two busy loops used {used:.2f} s of CPU in {wall:.2f} s, "
          f"throttled in {throttled} of {periods} periods")
    assert quota == "100000 100000"
    assert throttled > 0, (a, b)
    assert used <= wall * 1.1 + 0.3, f"{used:.2f} s of CPU in {wall:.2f} s is more than cpu.max allows"
    record("cpu limit", started, f"{used / wall:.2f} CPUs, throttled {throttled}/{periods} periods")


def test_dinds_pids_limit_holds_for_a_fork_bomb_and_dockerd_survives(node, dind, concurrent, images):
    """dind-start.sh gives jda-builds all but 64 of the pids limit above it: the bomb fills jda-builds, and
    dockerd, containerd and `docker exec` (the kubelet's probes, jnlp's next step) still start processes."""
    started = time.monotonic()
    dockerd = dind.dockerd_pid()
    builds_max = PIDS - 64
    assert dind.read(f"{dind.scope}/pids.max") == str(PIDS)
    assert dind.read(f"{dind.scope}/jda-builds/pids.max") == str(builds_max)
    ran = dind.docker(["run", "-d", "--name", "bomb", "--network", "none", images["busybox"], "sh", "-c", BOMB])
    assert ran.rc == 0, ran.stderr
    bomb = ran.stdout.strip().splitlines()[-1]
    try:
        # bounded: the limit is reached within seconds
        full = dind.sh(f"n=0; until [ $(cat {dind.scope}/jda-builds/pids.current) -ge {builds_max} ]; do "
                       f"n=$((n+1)); [ $n -lt 120 ] || break; sleep 0.5; done; sleep 3; "
                       f"cat {dind.scope}/pids.current {dind.scope}/jda-builds/pids.current "
                       f"{dind.scope}/jda-builds/pids.peak", 120).split()
        events = dind.events("jda-builds", "pids.events")
        during = node.run(["docker", "exec", dind.name, "docker", "version"], 60)
        alive = node.run(f"cat /proc/{dockerd}/comm", 60).stdout.strip()
        guest_forks = node.run("sh -c 'echo forked'", 60).stdout.strip()
    finally:
        # the bomb's processes go (the kernel's cgroup.kill on its cgroup, from the node's side)
        dind.sh(f"echo 1 > {dind.scope}/jda-builds/{bomb}/cgroup.kill")
    current, builds, peak = (int(v) for v in full)
    print(f"pids.max {PIDS} (jda-builds {builds_max}): dind {current}, jda-builds {builds} (peak {peak}), "
          f"jda-builds pids.events {events}; `docker exec ... docker version` during the bomb: rc {during.rc} "
          f"{during.stderr.strip()[:160]}")
    assert builds == builds_max and peak == builds_max, (builds, peak)
    assert current < PIDS, "dind's own limit was never the one hit"
    assert events["max"] > 0, events
    assert during.rc == 0, during.stderr
    assert alive == "dockerd" and guest_forks == "forked"
    assert dind.dockerd_pid() == dockerd
    assert vmdind.inspect_state(dind, "bomb")["ExitCode"] == 137
    assert vmdind.inspect_state(dind, concurrent)["Running"] is True
    assert dind.outer("{{.State.Status}} {{.RestartCount}}") == "running 0"
    dind.docker(["rm", "-f", "bomb"], 60)
    record("pids limit", started, f"jda-builds {builds}/{builds_max} of {PIDS}, fork failures {events['max']}, "
                                  f"docker exec during the bomb rc {during.rc}")


def test_control_bypassing_jda_builds_the_kernel_kills_all_of_dind(node, control_pod, images):
    """The hazard the nesting prevents: the same allocation in a container whose cgroup parent is directly
    below dind's root (--cgroup-parent=/jda-bypass, not jda-builds) is charged to dind's own limit, and
    with memory.oom.group=1 the kernel kills every process of the dind container: it exits 137."""
    started = time.monotonic()
    guest = control_pod
    assert guest.read(f"{guest.scope}/memory.oom.group") == "1"
    mark = len(guest.kernel_log())
    ran = guest.docker(["run", "--name", "greedy", "--cgroup-parent=/jda-bypass", "--network", "none",
                        images["busybox"], "sh", "-c", GREEDY], 300)
    waited = guest.sh(f"timeout 60 docker wait {guest.name}", 90).strip()
    state = guest.outer("{{.State.Status}} {{.State.ExitCode}} {{.State.OOMKilled}}")
    report = [line for line in guest.kernel_log()[mark:] if "oom" in line.lower() or "Killed process" in line]
    own = f"/system.slice/docker-{guest.container_id}.scope"
    print(f"greedy (bypass): rc {ran.rc}; dind: {state}\nkernel: " + "\n".join(report))
    assert waited == "137" and state.startswith("exited 137"), (waited, state)
    assert any(f"Tasks in {own} are going to be killed due to memory.oom.group set" in line for line in report)
    assert any(f"oom_memcg={own}," in line and f"task_memcg={own}/jda-bypass/" in line for line in report)
    killed = {m.group(1) for line in report if (m := re.search(r"Killed process \d+ \((\S+)\)", line))}
    # the kernel names each task it kills; the list read right after dind exits can miss the last ones
    # (a run had docker-init, dockerd, docker, the shim and dd but not yet containerd), and the group flag's
    # line above says the whole scope goes
    assert {"dd", "dockerd"} <= killed, killed
    record("control: OOM outside jda-builds", started, f"dind {state}, the kernel killed {sorted(killed)}")


def test_a_prewarmed_overlay2_dind_still_runs_its_images_after_a_restart(node, prewarm_pod, images):
    started = time.monotonic()
    guest, busybox = prewarm_pod, images["busybox"]

    def layer_mounts() -> list[list[str]]:
        return [line.split() for line in guest.sh(f"docker exec {guest.name} cat /proc/self/mountinfo").splitlines()
                if "/var/lib/docker/overlay2/" in line and line.split()[4].endswith("/diff")]

    assert "prewarm: overlay2 data root set up in /var/lib/docker" in guest.logs(), guest.logs()[:3000]
    root = guest.docker(["info", "--format", "{{.DockerRootDir}} {{.Driver}}"]).stdout.split()
    assert root == ["/var/lib/docker", "overlay2"], root
    before = layer_mounts()
    assert before and all(fields[5].startswith("ro") for fields in before), before
    seconds = guest.restart()  # the startupProbe passes again: dockerd answers and lists the baked image
    again = guest.docker(["run", "--rm", "--network", "none", busybox, "sh", "-c", "echo layers-there; ls /bin"], 180)
    log = guest.logs()
    match = re.search(r"prewarm: /var/lib/docker is not empty \(a restarted container\): kept; (\d+) layers "
                      r"bind-mounted again from the image, (\d+) already mounted", log)
    after = layer_mounts()
    print(f"after the restart ({seconds:.0f} s to ready): {match.group(0) if match else 'no restart line'}; "
          f"{len(after)} read-only layer mounts (before: {len(before)}); run: rc {again.rc} {again.stdout.split()}")
    assert again.rc == 0 and again.stdout.split()[0] == "layers-there", again
    assert {"busybox", "sh", "dd"} <= set(again.stdout.split()[1:]), again
    assert match and int(match.group(1)) == len(before) and int(match.group(2)) == 0, log[-3000:]
    assert len(after) == len(before) and all(fields[5].startswith("ro") for fields in after), after
    assert guest.outer("{{.State.Status}}") == "running"
    record("prewarm overlay2 restart", started, f"restart to ready {seconds:.0f} s, {len(after)} layers bound again")
