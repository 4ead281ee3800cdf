"""The first build in a fresh agent pod on the real node, as a breakdown from the kubelet's pod status:
created -> dind started -> dind ready (its startupProbe passed) -> jnlp started -> first build done.

One pod per variant, for vfs and overlay2, cold (the build's base image is pulled from the in-cluster
registry) and prewarmed (baked into the dind image by jdagent.engine.prewarm under the name the build
uses, so nothing is pulled). The build is the engine bench's multi-stage build (a 50 MB layer on a
Debian base); the same build on the host engine, with the same buildx, is the floor.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from jdagent.chart.render import deep_merge, render
from jdagent.cluster import fanin
from jdagent.cluster.provider import Cluster, log
from jdagent.engine import agentpod, prewarm
from jdagent.engine.bench import BENCH_DOCKERFILE, Bench

DRIVERS = ("vfs", "overlay2")


@dataclass
class FirstBuild:
    driver: str
    prewarmed: bool
    startup: fanin.Startup
    build_s: float      # the docker build alone, timed around the exec
    done_s: float       # from the pod's creation to the build's end

    def row(self) -> dict[str, Any]:
        s = self.startup
        return {"driver": self.driver, "prewarmed": self.prewarmed,
                "dind_started_s": s.dind_started - s.created, "dind_ready_s": s.dind_ready - s.created,
                "jnlp_started_s": s.jnlp_started - s.created, "ready_s": s.to_ready,
                "build_s": round(self.build_s, 1), "first_build_done_s": round(self.done_s, 1)}


def build_in(cluster: Cluster, namespace: str, pod: str, base: str) -> float:
    """The bench build in the pod's jnlp container (Dockerfile on stdin); seconds it took."""
    script = ("set -e; d=$(mktemp -d); cat > $d/Dockerfile; "
              f"docker build --network host -q --build-arg BASE_IMAGE={base} -t jda-first:1 $d >/dev/null")
    began = time.monotonic()
    cluster.kubectl("-n", namespace, "exec", "-i", pod, "-c", "jnlp", "--", "sh", "-c", script,
                    input_text=BENCH_DOCKERFILE.decode(), timeout=900)
    return time.monotonic() - began


def measure(cluster: Cluster, load_image: Callable[[str], None], client: docker.DockerClient,
            standins: dict[str, str], values: dict[str, Any], namespace: str, release: str,
            push: Callable[[str, str], str], kube_version: str) -> dict[str, Any]:
    """Every variant once, and the host floor, with the release `release` in `namespace` (its agent pods in
    the agent namespace the chart renders). `push(image, repository)` puts a host image into the in-cluster
    registry and returns the name pods pull; `load_image(image)` imports one into the node."""
    engine = Bench(client, runs=1)
    remote = push(engine.base, "bench-base")
    client.images.get(engine.base).tag(remote)  # the prewarmed data root lists it under the build's name
    warm_image = f"jda-prewarmed-dind:cluster-{standins['dind'].split(':')[1]}"
    try:
        prewarm.build(client, standins["dind"], [remote], warm_image, pull=False, drivers=DRIVERS, say=log)
    finally:
        client.images.remove(remote)
    load_image(warm_image)
    rows = []
    for driver in DRIVERS:
        for warm in (False, True):
            dind: dict[str, Any] = {"storageDriver": driver}
            if warm:
                dind |= {"image": agentpod.image_values(warm_image), "prewarm": {"enabled": True, "images": [remote]}}
            manifest = render(overrides=deep_merge(values, {"agent": {"dind": dind}}), namespace=namespace,
                              release=release, kube_version=kube_version)
            pod, agents = manifest.agent_pod(None), manifest.kubernetes_cloud()["namespace"]
            [name] = fanin.start_agents(cluster, pod, agents, 1, f"first-{driver}-{'warm' if warm else 'cold'}")
            try:
                [startup] = fanin.wait_ready(cluster, agents, [name])
                seconds = build_in(cluster, agents, name, remote)
                done = FirstBuild(driver, warm, startup, seconds, time.time() - startup.created)
            finally:
                cluster.kubectl("-n", agents, "delete", "pod", name, "--wait=true", "--timeout=120s", timeout=180,
                                check=False)
            rows.append(done.row())
            log(f"first build, {driver} {'prewarmed' if warm else 'cold'}: ready {done.startup.to_ready:.0f} s, "
                f"build {seconds:.1f} s, done {done.done_s:.1f} s after creation")
    with tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp) / "context"
        context.mkdir()
        (context / "Dockerfile").write_bytes(BENCH_DOCKERFILE)
        config = engine.host_buildx(Path(tmp) / "docker-config")
        floor = engine.host_build(context, config)
    engine.cleanup()
    client.images.remove(warm_image, force=True)
    return {"variants": rows, "host_build_s": round(floor, 1)}


def table(figures: dict[str, Any]) -> str:
    lines = ["| dind | start | dind started | dind ready | jnlp started | Ready | build | first build done |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in figures["variants"]:
        lines.append(f"| {r['driver']} | {'prewarmed' if r['prewarmed'] else 'cold'} | {r['dind_started_s']:.0f} s | "
                     f"{r['dind_ready_s']:.0f} s | {r['jnlp_started_s']:.0f} s | {r['ready_s']:.0f} s | "
                     f"{r['build_s']:.1f} s | {r['first_build_done_s']:.1f} s |")
    lines.append(f"| host engine (floor) | | | | | | {figures['host_build_s']:.1f} s | |")
    return "\n".join(lines)
