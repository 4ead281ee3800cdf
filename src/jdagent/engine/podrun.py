"""Run a rendered Kubernetes pod spec on a Docker engine, the way a kubelet would:

- one network (and IPC) namespace for the whole pod: an infra container, the others join it;
- emptyDir volumes as fresh Docker volumes (world-writable like the kubelet's; sizeLimit noted, not
  enforced), a persistentVolumeClaim as a fresh volume (a new, empty claim), secret and configMap volumes
  filled from the data the caller passes; the pod's fsGroup owns its writable volumes and is a
  supplementary group of every container, and pod-level runAsUser/runAsGroup apply where a container sets
  none;
- `hosts` maps names to addresses in the pod's /etc/hosts (what cluster DNS would answer), and
  `network` puts the pod's interface on a given Docker network (a CNI with its own MTU, say);
- init containers run to completion in order; native sidecars (restartPolicy Always) start in their
  place and are waited on through their postStart hook and startupProbe; then the regular containers
  start (each after its postStart hook, if any);
- command/args/env (values, and the downward API's resourceFieldRef)/workingDir/runAsUser/
  readOnlyRootFilesystem/capabilities as Docker settings, and
  memory and CPU limits as the container's memory limit and CPU quota, like the kubelet's;
- `privileged: true` as privileged. On machines whose capability bounding set lacks CAP_SYS_RESOURCE,
  runc refuses privileged containers ("unable to apply caps: operation not permitted"); on exactly
  that error the runner retries with every capability but SYS_RESOURCE, unconfined seccomp, AppArmor
  and system paths, a writable /sys/fs/cgroup and the device rule privileged gets (`a *:* rwm`, so that
  a privileged container nested in it, BuildKit's, can be made), and says so.

Everything it creates carries the label jda.run=<id> and is removed by `close()` (also on errors and
Ctrl-C when used as a context manager).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import shlex
import signal
import socket
import sys
import tarfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import Any

import docker
from docker.errors import APIError, NotFound
from docker.models.containers import Container
from docker.types import Mount

from jdagent.chart.manifest import Obj

LABEL = "jda.run"
OWNER = "jda.owner"
CAPS_ERROR = "unable to apply caps: operation not permitted"
FALLBACK_SECURITY = {
    "cap_add": ["ALL"],
    "cap_drop": ["SYS_RESOURCE"],
    "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],  # + no masked/read-only system paths
    "device_cgroup_rules": ["a *:* rwm"],  # every device, as privileged: a privileged container nested in it
}
_QTY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_UNITS = {None: 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4,
          "k": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4}


class PodRunError(RuntimeError):
    """A container of the pod failed to start, exited non-zero, or never became ready."""


def cpu_cores(value: str | float) -> float:
    """A CPU quantity ("250m", "2", 0.5) in cores."""
    text = str(value)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def quantity_bytes(value: str) -> int:
    match = _QTY.match(str(value))
    if not match:
        raise ValueError(f"unsupported quantity {value!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


@dataclass
class ExecResult:
    exit_code: int
    output: str


@dataclass
class PodRunner:
    """Run `pod_spec`; `files` holds the data of secret/configMap volumes: {volume: {path: bytes}}."""

    pod_spec: Obj
    files: Mapping[str, Mapping[str, bytes]] = field(default_factory=dict)
    client: docker.DockerClient | None = None
    hosts: Mapping[str, str] = field(default_factory=dict)
    network: str | None = None  # the Docker network the pod's interface is on (default: the engine's bridge)
    name: str = "jda-pod"
    log: Callable[[str], None] = field(default=lambda m: print(f"[pod] {m}", file=sys.stderr, flush=True))
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    privileged_fallback: bool | None = None  # None: not tried yet
    containers: dict[str, Container] = field(default_factory=dict)
    volumes: dict[str, str] = field(default_factory=dict)
    infra: Container | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.client = self.client or docker.from_env(version="auto", timeout=300)

    # --- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> PodRunner:
        self._old_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            self.start()
        except BaseException:
            self.close()
            signal.signal(signal.SIGTERM, self._old_sigterm)
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.close()
        finally:
            signal.signal(signal.SIGTERM, self._old_sigterm)

    def labels(self) -> dict[str, str]:
        return owner_labels(self.run_id)

    @property
    def prefix(self) -> str:
        return f"{self.name}-{self.run_id}"

    def start(self) -> None:
        started = time.monotonic()
        self._create_volumes()
        self._start_infra()
        self._fill_volumes()
        for spec in self.pod_spec.get("initContainers", []):
            if spec.get("restartPolicy") == "Always":
                self._start(spec)
                self._wait_startup_probe(spec)
            else:
                self._run_to_completion(spec)
        for spec in self.pod_spec.get("containers", []):
            self._start(spec)
        self.timings["pod_start_s"] = time.monotonic() - started
        self.log(f"pod {self.prefix} running: {', '.join(self.containers)} "
                 f"({self.timings['pod_start_s']:.1f} s)")

    def close(self) -> None:
        """Remove every container and volume of this run (idempotent)."""
        assert self.client is not None
        for c in self.client.containers.list(all=True, filters={"label": f"{LABEL}={self.run_id}"}):
            with contextlib.suppress(NotFound):
                c.remove(force=True, v=True)
        for v in self.client.volumes.list(filters={"label": f"{LABEL}={self.run_id}"}):
            try:
                v.remove(force=True)
            except (NotFound, APIError) as exc:
                self.log(f"could not remove volume {v.name}: {exc}")
        self.containers.clear()
        self.volumes.clear()
        self.infra = None

    # --- volumes ---------------------------------------------------------------------------
    def _create_volumes(self) -> None:
        assert self.client is not None
        for vol in self.pod_spec.get("volumes", []):
            name = f"{self.prefix}-{vol['name']}"
            if "persistentVolumeClaim" in vol:
                self.client.volumes.create(name, labels=self.labels())
                self.log(f"volume {vol['name']}: claim {vol['persistentVolumeClaim']['claimName']} (fresh and empty)")
            elif "emptyDir" in vol:
                limit = (vol["emptyDir"] or {}).get("sizeLimit")
                note = f" (sizeLimit {limit} noted, not enforced by Docker)" if limit else ""
                opts = {}
                if (vol["emptyDir"] or {}).get("medium") == "Memory":
                    opts = {"type": "tmpfs", "device": "tmpfs", "o": "mode=1777"}
                self.client.volumes.create(name, driver_opts=opts, labels=self.labels())
                self.log(f"volume {vol['name']}: emptyDir{note}")
            elif "secret" in vol or "configMap" in vol or "projected" in vol:
                if vol["name"] not in self.files:
                    raise PodRunError(f"volume {vol['name']} needs its data: pass files={{'{vol['name']}': {{...}}}}")
                self.client.volumes.create(name, labels=self.labels())
            else:
                raise PodRunError(f"volume {vol['name']}: only emptyDir, persistentVolumeClaim, secret, configMap "
                                  "and projected are supported")
            self.volumes[vol["name"]] = name

    def _fill_volumes(self) -> None:
        assert self.infra is not None
        specs = self._volume_specs()
        empty = [f"/jda-vol/{n}" for n, v in specs.items() if "emptyDir" in v]
        if empty:
            self._infra_exec(["chmod", "0777", *empty])
        group = (self.pod_spec.get("securityContext") or {}).get("fsGroup")
        claims = [f"/jda-vol/{n}" for n, v in specs.items() if "persistentVolumeClaim" in v]
        if group is not None and claims:
            self._infra_exec(["chgrp", str(group), *claims])
            self._infra_exec(["chmod", "2775", *claims])
        for vol_name, items in self.files.items():
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tar:
                for path, data in items.items():
                    info = tarfile.TarInfo(path)
                    info.size = len(data)
                    info.mode = 0o644
                    tar.addfile(info, io.BytesIO(data))
            self.infra.put_archive(f"/jda-vol/{vol_name}", buf.getvalue())

    def _volume_specs(self) -> dict[str, Obj]:
        return {v["name"]: v for v in self.pod_spec.get("volumes", [])}

    def _mounts(self, spec: Obj) -> list[Mount]:
        assert self.client is not None
        mounts = []
        for m in spec.get("volumeMounts", []):
            volume = self.volumes[m["name"]]
            read_only = bool(m.get("readOnly"))
            if m.get("subPath"):
                # Docker < 26 cannot mount a volume subpath: bind the file from the volume's host path.
                host = self.client.volumes.get(volume).attrs["Mountpoint"]
                mounts.append(Mount(m["mountPath"], f"{host}/{m['subPath']}", type="bind", read_only=read_only))
            else:
                # no_copy: Kubernetes never fills a volume from the image (Docker would copy the image's
                # directory, and its owner and mode, into an empty volume)
                mounts.append(Mount(m["mountPath"], volume, type="volume", read_only=read_only, no_copy=True))
        return mounts

    # --- containers ------------------------------------------------------------------------
    def _start_infra(self) -> None:
        assert self.client is not None
        first = (self.pod_spec.get("initContainers") or self.pod_spec["containers"])[0]
        mounts = [Mount(f"/jda-vol/{n}", v, type="volume") for n, v in self.volumes.items()]
        self.infra = self.client.containers.run(
            first["image"], entrypoint=["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 1; done"],
            command=[], name=f"{self.prefix}-infra",
            labels=self.labels(), detach=True, ipc_mode="shareable", mounts=mounts,
            hostname=self.prefix[:63], extra_hosts=dict(self.hosts) or None, network=self.network,
        )
        self.log(f"infra container up (pod network namespace), image {first['image']}")

    def _infra_exec(self, cmd: list[str]) -> None:
        assert self.infra is not None
        code, out = self.infra.exec_run(cmd, user="0")
        if code != 0:
            raise PodRunError(f"infra {' '.join(cmd)} failed: {out.decode(errors='replace')}")

    def _create_kwargs(self, spec: Obj) -> dict[str, Any]:
        assert self.infra is not None
        pod_sc = self.pod_spec.get("securityContext") or {}
        inherited = {k: pod_sc[k] for k in ("runAsUser", "runAsGroup") if k in pod_sc}
        sc = {**inherited, **(spec.get("securityContext") or {})}
        kwargs: dict[str, Any] = {
            "image": spec["image"],
            "name": f"{self.prefix}-{spec['name']}",
            "labels": {**self.labels(), "jda.container": spec["name"]},
            "environment": self._environment(spec),
            "network_mode": f"container:{self.infra.id}",
            "ipc_mode": f"container:{self.infra.id}",
            "mounts": self._mounts(spec),
            "detach": True,
        }
        if spec.get("command"):
            kwargs["entrypoint"] = spec["command"]
            kwargs["command"] = spec.get("args", [])
        elif spec.get("args"):
            kwargs["command"] = spec["args"]
        if spec.get("workingDir"):
            kwargs["working_dir"] = spec["workingDir"]
        if "runAsUser" in sc:
            kwargs["user"] = f"{sc['runAsUser']}:{sc.get('runAsGroup', sc['runAsUser'])}"
        if sc.get("readOnlyRootFilesystem"):
            kwargs["read_only"] = True
        if sc.get("allowPrivilegeEscalation") is False:
            kwargs["security_opt"] = ["no-new-privileges"]
        caps = sc.get("capabilities") or {}
        if caps.get("drop"):
            kwargs["cap_drop"] = caps["drop"]
        if caps.get("add"):
            kwargs["cap_add"] = caps["add"]
        if pod_sc.get("fsGroup") is not None:
            kwargs["group_add"] = [str(pod_sc["fsGroup"])]
        limits = (spec.get("resources") or {}).get("limits") or {}
        if limits.get("memory"):
            kwargs["mem_limit"] = quantity_bytes(limits["memory"])
        if limits.get("cpu"):
            kwargs["nano_cpus"] = int(cpu_cores(limits["cpu"]) * 1e9)
        if sc.get("privileged"):
            kwargs.update(self._privileged_kwargs())
        return kwargs

    def _environment(self, spec: Obj) -> dict[str, str]:
        """env values, and the downward API's resourceFieldRef as the kubelet resolves it: the named (or this)
        container's limit or request in units of the divisor, rounded up; a limit that is not set is the
        node's allocatable, here the engine's memory or CPUs."""
        env: dict[str, str] = {}
        for e in spec.get("env", []):
            if "value" in e:
                env[e["name"]] = e["value"]
            elif "resourceFieldRef" in (e.get("valueFrom") or {}):
                env[e["name"]] = str(self._resource_field(spec, e["valueFrom"]["resourceFieldRef"]))
        return env

    def _resource_field(self, spec: Obj, ref: Obj) -> int:
        assert self.client is not None
        name = ref.get("containerName") or spec["name"]
        target = next(c for c in [*self.pod_spec.get("initContainers", []), *self.pod_spec["containers"]]
                      if c["name"] == name)
        kind, _, resource = ref["resource"].partition(".")
        value = ((target.get("resources") or {}).get(kind) or {}).get(resource)
        if resource == "memory":
            amount = float(quantity_bytes(value) if value else self.client.info()["MemTotal"])
            divisor = float(quantity_bytes(str(ref.get("divisor", "1"))))
        elif resource == "cpu":
            amount = cpu_cores(value) if value else float(self.client.info()["NCPU"])
            divisor = cpu_cores(str(ref.get("divisor", "1")))
        else:
            raise PodRunError(f"resourceFieldRef {ref['resource']}: only cpu and memory are supported")
        return max(1, -int(-amount // divisor))

    def _privileged_kwargs(self) -> dict[str, Any]:
        if self.privileged_fallback:
            return {**FALLBACK_SECURITY,
                    "mounts_extra": [Mount("/sys/fs/cgroup", "/sys/fs/cgroup", type="bind", read_only=False)]}
        return {"privileged": True}

    def _create(self, kwargs: dict[str, Any]) -> Container:
        """Create through the low-level API: the fallback needs HostConfig fields (no masked or read-only
        system paths, what the CLI's systempaths=unconfined means) that the high-level API lacks."""
        assert self.client is not None
        api = self.client.api
        host = api.create_host_config(
            network_mode=kwargs["network_mode"], ipc_mode=kwargs["ipc_mode"],
            mounts=[*kwargs["mounts"], *kwargs.get("mounts_extra", [])],
            read_only=kwargs.get("read_only"), security_opt=kwargs.get("security_opt"),
            cap_add=kwargs.get("cap_add"), cap_drop=kwargs.get("cap_drop"), mem_limit=kwargs.get("mem_limit"),
            device_cgroup_rules=kwargs.get("device_cgroup_rules"),
            privileged=kwargs.get("privileged", False), group_add=kwargs.get("group_add"),
            nano_cpus=kwargs.get("nano_cpus"),
        )
        if self.privileged_fallback and kwargs.get("mounts_extra"):
            host["MaskedPaths"] = []
            host["ReadonlyPaths"] = []
        created = api.create_container(
            kwargs["image"], command=kwargs.get("command"), entrypoint=kwargs.get("entrypoint"),
            environment=kwargs["environment"], user=kwargs.get("user"), working_dir=kwargs.get("working_dir"),
            labels=kwargs["labels"], name=kwargs["name"], host_config=host, detach=True,
        )
        return self.client.containers.get(created["Id"])

    def _start(self, spec: Obj) -> Container:
        kwargs = self._create_kwargs(spec)
        try:
            container = self._create(kwargs)
        except APIError as exc:
            raise PodRunError(f"container {spec['name']} could not be created: {exc}") from exc
        try:
            container.start()
        except APIError as exc:
            container.remove(force=True, v=True)  # with the anonymous volumes of its image
            if not (CAPS_ERROR in str(exc) and kwargs.get("privileged")):
                raise PodRunError(f"container {spec['name']} failed to start: {exc}") from exc
            self.privileged_fallback = True
            self.log(f"privileged refused here ({CAPS_ERROR}); running {spec['name']} with all capabilities "
                     "but SYS_RESOURCE, unconfined seccomp/AppArmor/system paths and a writable /sys/fs/cgroup")
            return self._start(spec)
        if spec.get("securityContext", {}).get("privileged") and self.privileged_fallback is None:
            self.privileged_fallback = False
            self.log(f"{spec['name']} runs privileged")
        self.containers[spec["name"]] = container
        self._post_start(spec)
        return container

    def _post_start(self, spec: Obj) -> None:
        """lifecycle.postStart exec: like the kubelet, the container counts as started only after it."""
        hook = ((spec.get("lifecycle") or {}).get("postStart") or {}).get("exec")
        if not hook:
            return
        started = time.monotonic()
        result = self.exec(spec["name"], hook["command"], quiet=True)
        if result.exit_code != 0:
            raise PodRunError(f"{spec['name']} postStart hook exited {result.exit_code}:\n{result.output[-2000:]}")
        took = time.monotonic() - started
        self.timings[f"{spec['name']}_post_start_s"] = took
        self.log(f"{spec['name']} postStart hook done in {took:.1f} s")

    def _run_to_completion(self, spec: Obj) -> None:
        started = time.monotonic()
        container = self._start(spec)
        result = container.wait(timeout=300)
        self.timings[f"{spec['name']}_s"] = time.monotonic() - started
        output = container.logs().decode(errors="replace").strip()
        if result.get("StatusCode") != 0:
            raise PodRunError(f"init container {spec['name']} exited {result.get('StatusCode')}:\n{output}")
        self.log(f"init container {spec['name']} completed: {output.splitlines()[-1] if output else ''}")

    def _wait_startup_probe(self, spec: Obj) -> None:
        probe = spec.get("startupProbe")
        if not probe:
            return
        period = float(probe.get("periodSeconds", 10))
        attempts = int(probe.get("failureThreshold", 3))
        cmd = probe["exec"]["command"]
        started = time.monotonic()
        for _ in range(attempts):
            if self.exec(spec["name"], cmd, quiet=True).exit_code == 0:
                waited = time.monotonic() - started
                self.timings[f"{spec['name']}_ready_s"] = waited
                self.log(f"{spec['name']} startupProbe `{shlex.join(cmd)}` passed after {waited:.1f} s")
                return
            time.sleep(period)
        logs = self.logs(spec["name"])
        raise PodRunError(f"{spec['name']} startupProbe failed {attempts} times; its log ends:\n{logs[-3000:]}")

    # --- use -------------------------------------------------------------------------------
    def container(self, name: str) -> Container:
        return self.containers[name]

    def exec(self, name: str, cmd: list[str] | str, quiet: bool = False, user: str | None = None,
             environment: Mapping[str, str] | None = None,
             stream: Callable[[str], None] | None = None) -> ExecResult:
        """Run a command in a container of the pod; `stream` receives output lines as they come."""
        container = self.containers[name]
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else cmd
        if stream is None:
            code, out = container.exec_run(argv, user=user or "", environment=dict(environment or {}))
            text = out.decode(errors="replace")
            if not quiet and code != 0:
                self.log(f"{name}: `{shlex.join(argv)}` exited {code}")
            return ExecResult(code, text)
        api = container.client.api
        exec_id = api.exec_create(container.id, argv, user=user or "", environment=dict(environment or {}))["Id"]
        chunks: list[str] = []
        pending = ""
        for chunk in api.exec_start(exec_id, stream=True):
            pending += chunk.decode(errors="replace")
            *lines, pending = pending.split("\n")
            for line in lines:
                chunks.append(line)
                stream(line)
        if pending:
            chunks.append(pending)
            stream(pending)
        code = api.exec_inspect(exec_id)["ExitCode"]
        return ExecResult(code, "\n".join(chunks))

    def logs(self, name: str) -> str:
        return self.containers[name].logs().decode(errors="replace")

    def ip_address(self) -> str:
        """The pod's address on the Docker network (what other pods would connect to)."""
        assert self.infra is not None
        self.infra.reload()
        settings = self.infra.attrs["NetworkSettings"]
        return str(settings.get("IPAddress") or next(iter(settings["Networks"].values()))["IPAddress"])

    def copy_in(self, name: str, path: str, files: Mapping[str, bytes], mode: int = 0o644) -> None:
        """Put files into a directory of a running container (like `kubectl cp`)."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for rel, data in files.items():
                info = tarfile.TarInfo(rel)
                info.size = len(data)
                info.mode = mode
                info.uid = info.gid = 1000
                tar.addfile(info, io.BytesIO(data))
        self.containers[name].put_archive(path, buf.getvalue())


def dockerconfigjson(server: str, username: str, password: str) -> bytes:
    """The .dockerconfigjson document a kubernetes.io/dockerconfigjson Secret would hold."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {server: {"auth": auth}}}).encode()


def owner_labels(run_id: str) -> dict[str, str]:
    """Labels of everything a run creates: its id and the process that owns it."""
    return {LABEL: run_id, OWNER: f"{socket.gethostname()}/{os.getpid()}"}


def _owner_gone(labels: Mapping[str, str]) -> bool:
    host, _, pid = labels.get(OWNER, "/").partition("/")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def remove_leftovers(client: docker.DockerClient | None = None) -> int:
    """Remove containers and volumes of earlier runs whose process died before cleaning up; runs of
    live processes (a concurrent test session, a benchmark) are left alone."""
    client = client or docker.from_env(version="auto")
    count = 0
    for c in client.containers.list(all=True, filters={"label": LABEL}):
        if _owner_gone(c.labels):
            c.remove(force=True, v=True)
            count += 1
    for v in client.volumes.list(filters={"label": LABEL}):
        if _owner_gone(v.attrs.get("Labels") or {}):
            with contextlib.suppress(APIError):
                v.remove(force=True)
                count += 1
    return count


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
