"""The chart's rendered dind container on the guest's Docker, the way containerd runs a privileged
container on a cgroup v2 node with the systemd cgroup driver, and what the tests read back from the
guest's side.

How the pod is laid out (what a kubelet does, as far as the dind container is concerned):
- volumes are directories under /var/lib/jda-pods/<pod>/volumes/<name> in the guest, bind-mounted where
  the container's volumeMounts say: an emptyDir is an empty directory (mode 0777, like the kubelet's), a
  configMap a directory holding the rendered ConfigMap's files (files/dind-start.sh and
  files/docker-setup.sh for the dind-start volume), mounted read-only;
- init containers that are not native sidecars (docker-setup) run to completion first, with their
  user, read-only root, dropped capabilities, no-new-privileges and limits;
- the dind container runs detached with the rendered command, args and env; the downward API's
  resourceFieldRef (JDA_MEMORY_LIMIT) is resolved as the kubelet does: the container's limit, in units of
  the divisor, rounded up; `privileged: true` is `--privileged --cgroupns=host`: containerd gives a
  privileged container no cgroup namespace, and the guest's dockerd (systemd driver) puts it in the
  delegated transient unit system.slice/docker-<id>.scope; limits.memory and limits.cpu become the
  scope's memory.max and cpu.max (-m, --cpus), an optional pids limit its pids.max (--pids-limit; the
  kubelet sets one per pod, podPidsLimit);
- then, as the kubelet does on cgroup v2 unless singleProcessOOMKill is true, 1 is written into the
  scope's memory.oom.group from the guest's side. (The kubelet has runc write it before the container's
  first process runs; Docker has no flag for it, so here it is written right after `docker run`
  returns, before any inner container exists.) After a `docker restart` the scope is new: `restarted()`
  writes it again;
- ready is the container's startupProbe command (`docker version`, with prewarm also the images)
  answering inside the container, bounded by the probe's period x failureThreshold; a postStart hook
  runs before that, as with the kubelet. A dind container that exits before that is started again (at
  most START_RESTARTS times, said and counted), as the kubelet restarts a native sidecar: on a loaded
  machine under emulation, dockerd sometimes gives up waiting for its own containerd (a fixed 15 s).

The "jnlp-like" client is `docker exec <dind> docker ...`: the docker CLI against dockerd's loopback
listener (DOCKER_HOST from the container's env), as jnlp uses it from the same network namespace.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import re
import shlex
import tarfile
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import docker
from docker.errors import ImageNotFound

from jdagent.chart.manifest import Manifest, Obj, container
from jdagent.engine import prewarm
from jdagent.engine.agentpod import pod_files
from jdagent.engine.podrun import cpu_cores, quantity_bytes
from jdagent.vm.channel import Result
from jdagent.vm.machine import Machine
from jdagent.vm.progress import VmError, say

PODS = "/var/lib/jda-pods"
LABEL = "jda.vm.pod"
# restarts of a dind container that exits before its startupProbe passes (see wait_ready); the kubelet has
# no bound, this keeps the tier bounded. Single-threaded TCG on a loaded two-core machine: a CI run needed
# 2 restarts for one of three dinds started together (dockerd gave up waiting for its containerd).
START_RESTARTS = 5


def resource_field(c: Obj, ref: Obj, node_memory: int, node_cpus: int) -> int:
    """The downward API's resourceFieldRef of container `c` as the kubelet resolves it: the limit (or
    request) in units of the divisor, rounded up; an unset limit is the node's allocatable."""
    kind, _, resource = ref["resource"].partition(".")
    value = ((c.get("resources") or {}).get(kind) or {}).get(resource)
    if resource == "memory":
        amount = float(quantity_bytes(value) if value else node_memory)
        divisor = float(quantity_bytes(str(ref.get("divisor", "1"))))
    elif resource == "cpu":
        amount = cpu_cores(value) if value else float(node_cpus)
        divisor = cpu_cores(str(ref.get("divisor", "1")))
    else:
        raise VmError(f"resourceFieldRef {ref['resource']}: only cpu and memory are supported")
    return max(1, -int(-amount // divisor))


def environment(c: Obj, node_memory: int, node_cpus: int) -> dict[str, str]:
    env: dict[str, str] = {}
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = str(e["value"])
        elif "resourceFieldRef" in (e.get("valueFrom") or {}):
            env[e["name"]] = str(resource_field(c, e["valueFrom"]["resourceFieldRef"], node_memory, node_cpus))
        else:
            raise VmError(f"container {c['name']}: env {e['name']}: only values and resourceFieldRef are supported")
    return env


def run_argv(pod: str, c: Obj, env: Mapping[str, str], *, detach: bool, network: str | None = None,
             extra: Sequence[str] = ()) -> list[str]:
    """`docker run` for container `c` of pod `pod` (volumes under PODS/<pod>/volumes)."""
    sc = c.get("securityContext") or {}
    argv = ["docker", "run", "-d" if detach else "--rm", "--name", f"{pod}-{c['name']}", "--label", f"{LABEL}={pod}"]
    if sc.get("privileged"):
        argv += ["--privileged", "--cgroupns=host"]
    if "runAsUser" in sc:
        argv += ["--user", f"{sc['runAsUser']}:{sc.get('runAsGroup', sc['runAsUser'])}"]
    if sc.get("readOnlyRootFilesystem"):
        argv.append("--read-only")
    if sc.get("allowPrivilegeEscalation") is False:
        argv += ["--security-opt", "no-new-privileges"]
    argv += [f"--cap-drop={cap}" for cap in (sc.get("capabilities") or {}).get("drop", [])]
    limits = (c.get("resources") or {}).get("limits") or {}
    if limits.get("memory"):
        argv += ["--memory", str(quantity_bytes(limits["memory"]))]
    if limits.get("cpu"):
        argv += ["--cpus", f"{cpu_cores(limits['cpu']):g}"]
    if network:
        argv += ["--network", network]
    for name, value in env.items():
        argv += ["--env", f"{name}={value}"]
    for m in c.get("volumeMounts", []):
        source = f"{PODS}/{pod}/volumes/{m['name']}" + (f"/{m['subPath']}" if m.get("subPath") else "")
        argv += ["--mount", f"type=bind,src={source},dst={m['mountPath']}" + (",readonly" if m.get("readOnly") else "")]
    argv += list(extra)
    command = list(c.get("command") or [])
    if command:
        argv += ["--entrypoint", command[0]]
    return [*argv, c["image"], *command[1:], *c.get("args", [])]


def _tar(files: Mapping[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def parse_kv(text: str) -> dict[str, int]:
    """A flat-keyed cgroup file (memory.events, pids.events, cpu.stat): name -> number."""
    return {k: int(v) for k, v in (line.split() for line in text.splitlines() if len(line.split()) == 2)}


@dataclass
class GuestDind:
    """The dind container of pod `pod`, running in `machine`'s Docker."""

    machine: Machine
    pod: str
    spec: Obj  # the pod spec as rendered
    container_id: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.pod}-dind"

    @property
    def dind(self) -> Obj:
        return container(self.spec, "dind")

    @property
    def scope(self) -> str:
        """The container's cgroup in the guest (a delegated systemd scope)."""
        return f"/sys/fs/cgroup/system.slice/docker-{self.container_id}.scope"

    # -- guest commands ----------------------------------------------------------------------------
    def sh(self, command: str, timeout: float = 120) -> str:
        """A guest command's stdout; VmError naming it when it fails."""
        return self.machine.run(command, timeout, check=True).stdout

    def read(self, path: str) -> str:
        return self.sh(f"cat {shlex.quote(path)}", 60).strip()

    def read_many(self, *paths: str) -> list[str]:
        """Several guest files in one command (each stripped; a missing file reads as "")."""
        quoted = " ".join(shlex.quote(p) for p in paths)
        out = self.sh(f"for f in {quoted}; do cat \"$f\" 2>/dev/null; printf '\\036'; done", 60)
        return [part.strip() for part in out.split("\x1e")[: len(paths)]]

    def docker(self, args: Sequence[str], timeout: float = 180) -> Result:
        """The docker CLI inside the dind container against its dockerd (the jnlp container's view)."""
        return self.machine.run(["docker", "exec", self.name, "docker", *args], timeout)

    def outer(self, template: str) -> str:
        """`docker inspect -f template` of the dind container, from the guest's Docker."""
        return self.sh(f"docker inspect -f {shlex.quote(template)} {self.name}", 60).strip()

    def logs(self) -> str:
        return self.machine.run(f"docker logs {self.name} 2>&1", 60).stdout

    def main_pid(self) -> int:
        """The guest PID of the container's first process (dockerd after dind-start.sh's exec, or, with the
        upstream entrypoint's docker-init, docker-init)."""
        return int(self.outer("{{.State.Pid}}"))

    def dockerd_pid(self) -> int:
        """The guest PID of the container's dockerd: its first process, or the one dockerd among that
        process's descendants (docker-init and moby's hack/dind exec into it)."""
        first = self.main_pid()
        found = self.sh(f"p={first}; for _ in 1 2 3 4; do [ \"$(cat /proc/$p/comm)\" = dockerd ] && "
                        "{ echo $p; exit 0; }; p=$(cat /proc/$p/task/$p/children | cut -d' ' -f1); "
                        "[ -n \"$p\" ] || break; done; exit 1", 30).strip()
        if not found.isdigit():
            raise VmError(f"no dockerd below the dind container's first process {first}")
        return int(found)

    def inner_pid(self, inner: str) -> int:
        """The guest PID of the first process of container `inner` of the dind's dockerd: its PID in
        the dind's namespace (inner `docker inspect`) matched against the second field of NSpid, among
        the guest's processes that descend from the dind container's first process."""
        result = self.docker(["inspect", "-f", "{{.State.Pid}}", inner], 60)
        if result.rc != 0:
            raise VmError(f"inner docker inspect {inner}: {result.stderr.strip()}")
        in_dind = int(result.stdout.strip())
        table = self.sh("grep -H -E '^(PPid|NSpid):' /proc/[0-9]*/status 2>/dev/null || true", 60)
        parents: dict[int, int] = {}
        nspids: dict[int, list[int]] = {}
        for line in table.splitlines():
            match = re.match(r"/proc/(\d+)/status:(PPid|NSpid):\s*(.*)$", line)
            if not match:
                continue
            pid, key, value = int(match.group(1)), match.group(2), [int(v) for v in match.group(3).split()]
            if key == "PPid":
                parents[pid] = value[0]
            else:
                nspids[pid] = value
        root = self.main_pid()

        def descends(pid: int) -> bool:
            seen = 0
            while pid > 1 and seen < 64:
                if pid == root:
                    return True
                pid, seen = parents.get(pid, 0), seen + 1
            return False

        found = [pid for pid, ns in nspids.items() if len(ns) >= 3 and ns[1] == in_dind and descends(pid)]
        if len(found) != 1:
            raise VmError(f"inner container {inner} (pid {in_dind} in the dind): guest PIDs {found}")
        return found[0]

    def events(self, relative: str, kind: str = "memory.events") -> dict[str, int]:
        """A flat-keyed file of the dind scope or one of its children (relative: "" or "jda-builds")."""
        return parse_kv(self.read(f"{self.scope}/{relative}/{kind}".replace("//", "/")))

    def kernel_log(self) -> list[str]:
        """The guest kernel's log lines (dmesg), oldest first: slice it at an earlier length to get what a
        step added (the OOM killer's report names the cgroups, not every line names the container)."""
        return self.sh("dmesg", 60).splitlines()

    # -- lifecycle ---------------------------------------------------------------------------------
    def set_oom_group(self) -> None:
        """What the kubelet writes into every container's cgroup on cgroup v2 (singleProcessOOMKill false)."""
        self.sh(f"echo 1 > {self.scope}/memory.oom.group")

    def wait_ready(self, what: str, restarts: int = 0) -> float:
        """Run the startupProbe's command inside the container until it passes (bounded like the probe).
        When the container exits first (dockerd gave up: under emulation on a loaded machine, dockerd 26
        can give up waiting for its own containerd, a fixed 15 s), start it again, as the kubelet restarts
        a native sidecar, at most `restarts` times, each with the kubelet's memory.oom.group on the new
        scope; every restart is counted in `timings` and said."""
        probe = self.dind.get("startupProbe") or {"exec": {"command": ["docker", "version"]}}
        budget = float(probe.get("periodSeconds", 1)) * float(probe.get("failureThreshold", 60)) + 60
        check = shlex.join(["docker", "exec", self.name, *probe["exec"]["command"]])
        running = f"[ \"$(docker inspect -f '{{{{.State.Running}}}}' {self.name})\" = true ] || exit 3"
        started = time.monotonic()
        for attempt in range(restarts + 1):
            waited = self.machine.run(f"until {check} >/dev/null 2>&1; do {running}; sleep 1; done", budget)
            if waited.rc == 0:
                break
            seconds = time.monotonic() - started
            state = self.outer("{{.State.Status}} {{.State.ExitCode}}")
            tail = self.logs()
            if waited.rc != 3 or attempt == restarts:
                why = "it exited" if waited.rc == 3 else "timed out"
                raise VmError(f"{self.name}: the startupProbe did not pass {what} ({why} after {seconds:.0f} s, "
                              f"{attempt} restart(s); state {state}); its log ends:\n{tail[-3000:]}")
            last = tail.strip().splitlines()[-1] if tail.strip() else ""
            say(f"{self.name} exited before its startupProbe passed ({state}: {last[-200:]}); starting it again, "
                f"as the kubelet restarts a sidecar ({attempt + 1}/{restarts})")
            self.timings["restarts"] = self.timings.get("restarts", 0) + 1
            self.sh(f"docker start {self.name}", 180)
            self.set_oom_group()
        seconds = time.monotonic() - started
        self.timings[f"ready {what}"] = seconds
        return seconds

    def restart(self, timeout: int = 10) -> float:
        """`docker restart` (the container's processes end, its volumes stay), then the kubelet's
        memory.oom.group on the new scope, then ready again; the seconds until ready."""
        started = time.monotonic()
        self.sh(f"docker restart -t {timeout} {self.name}", 180)
        self.set_oom_group()
        self.wait_ready("after the restart", restarts=START_RESTARTS)
        self.timings["restart to ready"] = time.monotonic() - started
        return self.timings["restart to ready"]

    def load(self, images: Iterable[str], timeout: float = 300) -> None:
        """Copy images from the guest's Docker into the dind's dockerd (docker save | docker load)."""
        names = " ".join(shlex.quote(i) for i in images)
        self.sh(f"docker save {names} | docker exec -i {self.name} docker load -q", timeout)

    def remove(self) -> None:
        remove(self.machine, self.pod)


def remove(machine: Machine, pod: str) -> None:
    """Remove pod `pod`'s containers and volumes from the guest (also after a failed start)."""
    machine.run(f"docker ps -aq --filter label={LABEL}={pod} | xargs -r docker rm -f >/dev/null; rm -rf {PODS}/{pod}",
                120)


def start(machine: Machine, manifest: Manifest, spec: Obj, pod: str, *, pids_limit: int | None = None,
          oom_group: bool = True, images: Iterable[str] = ()) -> GuestDind:
    """Lay out the pod's volumes in the guest, run its init containers, start its dind container (see the
    module's docstring), wait for its startupProbe, and load `images` into its dockerd."""
    started = time.monotonic()
    guest = GuestDind(machine, pod, spec)
    dind = guest.dind
    used = {m["name"] for c in [*spec.get("initContainers", []), *spec["containers"]]
            for m in c.get("volumeMounts", [])}
    volumes = [v for v in spec.get("volumes", []) if v["name"] in used]
    files = {f"{name}/{path}": data for name, items in pod_files(manifest, spec).items() if name in used
             for path, data in items.items()}
    root = f"{PODS}/{pod}/volumes"
    empty = [f"{root}/{v['name']}" for v in volumes if "emptyDir" in v]
    others = [v["name"] for v in volumes if "emptyDir" not in v and "configMap" not in v]
    if others:
        raise VmError(f"pod {pod}: volumes {others}: only emptyDir and configMap are laid out here")
    remove(machine, pod)
    with tempfile.TemporaryDirectory(prefix="jda-vm-pod-") as tmp:
        archive = Path(tmp) / "volumes.tar"
        archive.write_bytes(_tar(files))
        machine.put(archive, f"/tmp/{pod}-volumes.tar")
    quoted = " ".join(shlex.quote(p) for p in empty)
    guest.sh(f"mkdir -p {root} && tar -C {root} -xf /tmp/{pod}-volumes.tar && rm /tmp/{pod}-volumes.tar"
             + (f" && mkdir -p -m 0777 {quoted} && chmod 0777 {quoted}" if empty else ""))
    node = guest.sh("awk '/^MemTotal:/ { print $2 * 1024 }' /proc/meminfo; nproc").split()
    node_memory, node_cpus = int(node[0]), int(node[1])
    for c in spec.get("initContainers", []):
        if c.get("restartPolicy") == "Always":
            continue  # the dind container itself (a native sidecar)
        step = time.monotonic()
        ran = machine.run(run_argv(pod, c, environment(c, node_memory, node_cpus), detach=False, network="none"), 300)
        if ran.rc != 0:
            raise VmError(f"pod {pod}: init container {c['name']} exited {ran.rc}: "
                          f"{(ran.stderr or ran.stdout)[-2000:]}")
        guest.timings[f"init {c['name']}"] = time.monotonic() - step
    step = time.monotonic()
    extra = ["--pids-limit", str(pids_limit)] if pids_limit else []
    argv = run_argv(pod, dind, environment(dind, node_memory, node_cpus), detach=True, extra=extra)
    say(f"{pod}: {shlex.join(argv)}")
    ran = machine.run(argv, 300)
    if ran.rc != 0:
        raise VmError(f"pod {pod}: the dind container did not start: {(ran.stderr or ran.stdout)[-2000:]}")
    guest.container_id = ran.stdout.strip().splitlines()[-1]
    if oom_group:
        guest.set_oom_group()
    guest.timings["docker run"] = time.monotonic() - step
    hook = ((dind.get("lifecycle") or {}).get("postStart") or {}).get("exec")
    if hook:
        ran = machine.run(["docker", "exec", guest.name, *hook["command"]], 300)
        if ran.rc != 0:
            raise VmError(f"pod {pod}: the postStart hook exited {ran.rc}: {(ran.stderr or ran.stdout)[-2000:]}")
    guest.wait_ready("after the start", restarts=START_RESTARTS)
    images = list(images)
    if images:
        step = time.monotonic()
        guest.load(images)
        guest.timings["load images"] = time.monotonic() - step
    guest.timings["start"] = time.monotonic() - started
    say(f"summary: {pod}: dind up in {guest.timings['start']:.0f} s (" +
        ", ".join(f"{k} {v:.0f} s" for k, v in guest.timings.items() if k != "start") + ")")
    return guest


def inspect_state(guest: GuestDind, inner: str) -> dict[str, object]:
    """State of an inner container (inner `docker inspect`)."""
    result = guest.docker(["inspect", "-f", "{{json .State}}", inner], 60)
    if result.rc != 0:
        raise VmError(f"inner docker inspect {inner}: {result.stderr.strip()}")
    state: dict[str, object] = json.loads(result.stdout)
    return state


def prewarmed_tag(dind: str, images: Sequence[str], name: str) -> str:
    """The tag of a prewarmed stand-in dind: a hash of its inputs and of the prewarm builder's source, the
    same scheme (and so the same image) as the Docker tier's `prewarmed_dind` fixture."""
    key = hashlib.sha256(("|".join([dind, *images]) + inspect.getsource(prewarm)).encode())
    return f"jda-prewarmed-{name}:{key.hexdigest()[:12]}"


def ensure_prewarmed(client: docker.DockerClient, dind: str, images: Sequence[str], name: str = "dind") -> str:
    """The prewarmed stand-in dind on the host's engine (scripts/build-prewarmed-dind's builder), built
    when missing; its tag."""
    tag = prewarmed_tag(dind, images, name)
    try:
        client.images.get(tag)
    except ImageNotFound:
        prewarm.build(client, dind, list(images), tag, pull=False)
    return tag
