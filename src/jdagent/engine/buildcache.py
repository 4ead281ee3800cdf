"""A docker-container builder with a registry cache, driven from the jnlp container of an agent pod: what the
chart README's Jenkinsfile does, shared by the Docker tier (tests/docker/test_build_cache.py), the cluster
tier (tests/cluster/test_tools_in_agent.py) and the bench (jdagent.engine.bench).

The caller hands in two callables on its jnlp container: `sh(script, timeout)` runs a shell script and returns
(exit code, stdout and stderr), `put(path, data)` writes a file.

Facts this relies on, read at docker/buildx v0.36.1 and moby/buildkit v0.32.2:
- buildx's docker driver offers cache export only on the containerd image store (driver/docker/driver.go,
  Features: CacheExport = the containerd snapshotter), which the chart's vfs data root is not; so a
  registry cache needs the docker-container driver, BuildKit in a container of the pod's dockerd.
- The docker-container driver names its container buildx_buildkit_<builder>0, pulls the image and falls back
  to a local one when the pull fails, and, when dockerd's cgroup driver is cgroupfs, puts the container in
  the cgroup parent /docker/buildx unless `--driver-opt cgroup-parent=` says otherwise
  (driver/docker-container/driver.go): inside dind that is beside jda-builds, outside the builds' share.
- buildkitd.toml `[registry."host:port"] http = true` lets BuildKit use a plain-HTTP registry
  (util/resolver/config/config.go).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

Sh = Callable[[str, float], tuple[int, str]]
Put = Callable[[str, bytes], None]

class BuildCacheError(RuntimeError):
    """A step of the flow failed; the message names the command and ends with its output."""


BUILDER = "jda-cache"
BUILDER_CONTAINER = f"buildx_buildkit_{BUILDER}0"  # buildx's docker-container driver: buildx_buildkit_<node>
# Each RUN step prints a marker: BuildKit shows a step's output only when it runs the step. A step taken from
# the cache shows "CACHED", or, when a later step needs its layer, only the download of that layer.
SLOW_STAGE = "RUN sleep 4 && echo compiled > /artifact && echo ran: build stage"
SLOW_FINAL = "RUN sleep 2 && dd if=/dev/zero of=/blob bs=1M count=4 2>/dev/null && echo ran: final stage"
LAST = "COPY last.txt /last.txt"
FROM_BUILD = "COPY --from=build /artifact /artifact"
STEPS = (SLOW_STAGE, SLOW_FINAL, LAST, FROM_BUILD)
MARKERS = {SLOW_STAGE: "ran: build stage", SLOW_FINAL: "ran: final stage"}


def cache_dockerfile(base: str) -> str:
    """Two stages, laid out like an app's: a build stage with a slow step, then the runtime stage's slow step,
    the app's own file (last.txt) and the build's output. A changed last.txt makes the last two steps run
    again, and COPY --from=build then needs the build stage's layer: from a mode=max cache it is downloaded,
    with mode=min (only the image's layers exported) the build stage runs again."""
    return (f"FROM {base} AS build\n{SLOW_STAGE}\n\n"
            f"FROM {base}\n{SLOW_FINAL}\n{LAST}\n{FROM_BUILD}\n")


def _steps(output: str, instruction: str) -> list[str]:
    """BuildKit's step numbers for `instruction` in its plain progress output."""
    return re.findall(r"^#(\d+) \[[^\]]+\] " + re.escape(instruction) + "$", output, re.M)


def step_ran(output: str, instruction: str) -> bool:
    """Whether BuildKit ran the step: a RUN step's marker among its output lines, for another step the
    absence of CACHED."""
    steps = _steps(output, instruction)
    if not steps:
        raise BuildCacheError(f"no step {instruction!r} in the build's output:\n{output[-3000:]}")
    if instruction in MARKERS:
        return any(re.search(rf"^#{n} \d+\.\d+ {re.escape(MARKERS[instruction])}$", output, re.M) for n in steps)
    return not all(re.search(rf"^#{n} CACHED$", output, re.M) for n in steps)


def step_marked_cached(output: str, instruction: str) -> bool:
    """Whether BuildKit printed CACHED for the step."""
    return any(re.search(rf"^#{n} CACHED$", output, re.M) for n in _steps(output, instruction))


@dataclass
class CacheBuild:
    output: str
    seconds: float
    ran: dict[str, bool]              # instruction -> BuildKit ran the step (else: from the cache)
    marked_cached: dict[str, bool]    # instruction -> BuildKit printed CACHED for it
    builder_cgroup_parent: str        # what dockerd gave BuildKit's container
    builder_cgroup: str               # /proc/1/cgroup of buildkitd, its memory (v1) or unified (v2) line


def dockerd_cgroup_parent(dind_log: str) -> str:
    """The cgroup parent dind-start.sh gave dockerd, from its log line."""
    found = re.findall(r"dockerd's containers go to (\S+), inside", dind_log)
    if len(found) != 1:
        raise BuildCacheError(f"dind's log names {len(found)} cgroup parents:\n{dind_log[-3000:]}")
    return found[0]


def _run(sh: Sh, script: str, timeout: float = 120) -> str:
    code, out = sh(script, timeout)
    if code != 0:
        raise BuildCacheError(f"`{script}` exited {code}:\n{out[-3000:]}")
    return out


def buildkit_registry_cache_build(sh: Sh, put: Put, *, builder_image: str, registry: str, base: str, cache_ref: str,
                                  cgroup_parent: str, last: str, mode: str = "max",
                                  workdir: str = "/home/jenkins/agent/bk") -> CacheBuild:
    """What the chart README's Jenkinsfile does with a docker-container builder: create it inside the pod's
    dockerd (on the pod's network, in dockerd's cgroup parent, plain HTTP to `registry`), build importing and
    exporting a registry cache (`mode`: max, or min for the control), remove the builder."""
    _run(sh, f"mkdir -p {workdir}")
    put(f"{workdir}/buildkitd.toml", f'[registry."{registry}"]\n  http = true\n'.encode())
    put(f"{workdir}/Dockerfile", cache_dockerfile(base).encode())
    put(f"{workdir}/last.txt", last.encode())
    _run(sh, f"docker buildx create --name {BUILDER} --driver docker-container "
            f"--driver-opt image={builder_image},network=host,cgroup-parent={cgroup_parent} "
            f"--buildkitd-config {workdir}/buildkitd.toml --bootstrap 2>&1", 300)
    try:
        started = time.monotonic()
        code, out = sh(f"cd {workdir} && docker buildx build --builder {BUILDER} --progress=plain "
                       f"--cache-from type=registry,ref={cache_ref} "
                       f"--cache-to type=registry,ref={cache_ref},mode={mode} . 2>&1", 600)
        seconds = time.monotonic() - started
        if code != 0:
            raise BuildCacheError(f"docker buildx build exited {code}:\n{out[-3000:]}")
        parent = _run(sh, f"docker inspect -f '{{{{.HostConfig.CgroupParent}}}}' {BUILDER_CONTAINER}").strip()
        cgroups = _run(sh, f"docker exec {BUILDER_CONTAINER} cat /proc/1/cgroup")
        lines = cgroups.splitlines()
        line = next((ln for ln in lines if ":memory:" in ln), next((ln for ln in lines if ln.startswith("0::")), ""))
    finally:
        sh(f"docker buildx rm {BUILDER} 2>&1", 120)
    return CacheBuild(out, seconds, {i: step_ran(out, i) for i in STEPS},
                      {i: step_marked_cached(out, i) for i in STEPS}, parent, line)
