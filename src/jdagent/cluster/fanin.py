"""Many agent pods at once on a real node: start N copies of the rendered agent pod together, read each
one's start-up from the kubelet's own pod status, pull one image in all of them at the same moment
through the chart's mirror, and count what the mirror fetched from its upstream (the upstream
registry's access log). The cluster tier asserts on these figures; `tox -e bench` prints them.

Times come from the API server's pod status (one-second resolution): created (metadata), dind
started (its container state), dind ready (the Initialized condition: a native sidecar's startupProbe
passed), jnlp started, pod Ready.
"""

from __future__ import annotations

import io
import json
import os
import re
import statistics
import tarfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import docker
import yaml

from jdagent.cluster.local.host import cgroup_dirs
from jdagent.cluster.provider import Cluster, log

# what a 2-core node fits eight times over; the chart's defaults ask for 750m CPU per agent
SMALL_REQUESTS = {"jnlp": {"resources": {"requests": {"cpu": "50m", "memory": "128Mi"}}},
                  "dind": {"resources": {"requests": {"cpu": "100m", "memory": "256Mi", "ephemeral-storage": "1Gi"}}}}


@dataclass
class Startup:
    name: str
    uid: str
    created: float
    dind_started: float
    dind_ready: float
    jnlp_started: float
    ready: float

    @property
    def to_ready(self) -> float:
        return self.ready - self.created


@dataclass
class Round:
    agents: int
    startups: list[Startup]
    pull_seconds: list[float]
    upstream_blob_fetches: dict[str, int]
    upstream_manifest_fetches: int
    idle_memory_mib: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        ready = sorted(s.to_ready for s in self.startups)
        return {"agents": self.agents, "ready_p50_s": percentile(ready, 50), "ready_p95_s": percentile(ready, 95),
                "pull_p50_s": round(percentile(sorted(self.pull_seconds), 50), 1),
                "idle_memory_mib_per_pod": round(statistics.mean(self.idle_memory_mib), 1)
                if self.idle_memory_mib else None,
                "upstream_fetches_per_blob": dict(self.upstream_blob_fetches),
                "upstream_manifest_fetches": self.upstream_manifest_fetches}


def percentile(values: list[float], pct: int) -> float:
    if not values:
        return 0.0
    index = min(len(values) - 1, max(0, round(pct / 100 * len(values) + 0.5) - 1))
    return values[index]


def _at(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def startup_of(pod: dict) -> Startup:
    status = pod["status"]
    conditions = {c["type"]: _at(c["lastTransitionTime"]) for c in status.get("conditions", [])}
    containers = {s["name"]: s for s in status.get("initContainerStatuses", []) + status.get("containerStatuses", [])}

    def started(name: str) -> float:
        state = containers[name]["state"]
        return _at((state.get("running") or state.get("terminated"))["startedAt"])

    return Startup(pod["metadata"]["name"], pod["metadata"]["uid"], _at(pod["metadata"]["creationTimestamp"]),
                   started("dind"), conditions["Initialized"], started("jnlp"), conditions["Ready"])


def start_agents(cluster: Cluster, pod: dict, namespace: str, count: int, prefix: str) -> list[str]:
    """Create `count` copies of the agent pod in one request, so the kubelet gets them together."""
    names = [f"{prefix}-{index}-{uuid.uuid4().hex[:4]}" for index in range(count)]
    docs = [{**pod, "metadata": {**pod.get("metadata", {}), "name": name, "namespace": namespace}} for name in names]
    cluster.kubectl("create", "-f", "-", input_text=yaml.safe_dump_all(docs))
    return names


def wait_ready(cluster: Cluster, namespace: str, names: list[str], timeout_s: int = 600) -> list[Startup]:
    cluster.kubectl_wait(timeout_s, "-n", namespace, "wait", "--for=condition=Ready", *(f"pod/{n}" for n in names))
    pods = json.loads(cluster.kubectl("-n", namespace, "get", "pods", *names, "-o", "json").stdout)
    return [startup_of(p) for p in pods.get("items", [pods])]


def pull_everywhere(cluster: Cluster, namespace: str, names: list[str], image: str) -> list[float]:
    """`docker pull image` in every agent's jnlp at the same moment; seconds each took."""
    seconds: dict[str, float] = {}
    errors: dict[str, str] = {}
    gate = threading.Barrier(len(names))

    def pull(name: str) -> None:
        gate.wait()
        began = time.monotonic()
        proc = cluster.kubectl("-n", namespace, "exec", name, "-c", "jnlp", "--", "docker", "pull", "-q", image,
                               check=False, timeout=600)
        seconds[name] = time.monotonic() - began
        if proc.returncode != 0:
            errors[name] = proc.stderr.strip()[-300:]

    threads = [threading.Thread(target=pull, args=(n,)) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"pulls of {image} failed: {errors}")
    return [seconds[n] for n in names]


def upstream_fetches(access_log: str, repository: str) -> tuple[dict[str, int], int]:
    """(successful GETs per blob digest, successful manifest GETs) of `repository`, read from the
    combined-format lines of a Distribution access log (`"GET /v2/... HTTP/1.1" 200 ...`)."""
    request = re.compile(rf'"GET /v2/{re.escape(repository)}/(blobs|manifests)/([^ "]+) HTTP/[0-9.]+" 200 ')
    blobs: Counter[str] = Counter()
    manifests = 0
    for found in request.finditer(access_log):
        if found.group(1) == "blobs":
            blobs[found.group(2)] += 1
        else:
            manifests += 1
    return dict(blobs), manifests


def idle_memory_mib(cgroup_root: str, uid: str) -> float | None:
    """The pod cgroup's working set (usage minus inactive file pages, as the kubelet counts it)."""
    for root in cgroup_dirs(cgroup_root):
        for folder in root.rglob(f"pod{uid}"):
            usage = folder / "memory.usage_in_bytes"
            if usage.exists():
                stat = dict(line.split() for line in (folder / "memory.stat").read_text().splitlines())
                return (int(usage.read_text()) - int(stat.get("total_inactive_file", 0))) / 2**20
            current = folder / "memory.current"
            if current.exists():
                stat = dict(line.split() for line in (folder / "memory.stat").read_text().splitlines())
                return (int(current.read_text()) - int(stat.get("inactive_file", 0))) / 2**20
    return None


def table(rounds: list[Round]) -> str:
    lines = ["| agents | ready p50 | ready p95 | pull p50 | idle memory / pod | upstream GETs per blob | manifests |",
             "|---:|---:|---:|---:|---:|---|---:|"]
    for r in rounds:
        s = r.summary()
        fetches = ", ".join(f"{d[7:19]}: {c}" for d, c in sorted(s["upstream_fetches_per_blob"].items()))
        memory = f"{s['idle_memory_mib_per_pod']} MiB" if s["idle_memory_mib_per_pod"] is not None else "n/a"
        lines.append(f"| {r.agents} | {s['ready_p50_s']:.0f} s | {s['ready_p95_s']:.0f} s | {s['pull_p50_s']} s | "
                     f"{memory} | {fetches} | {s['upstream_manifest_fetches']} |")
    return "\n".join(lines)


def write(rounds: list[Round], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([r.summary() for r in rounds], indent=2) + "\n")
    log(f"fan-in figures written to {path}")


def round_image(client: docker.DockerClient, marker: str, mib: int = 8) -> str:
    """An image no earlier round shares a blob with: FROM scratch, one layer of `mib` MiB of random
    bytes (so concurrent pulls overlap the mirror's fetch) and a marker; the front caches blobs by
    digest across repositories, so a shared base layer would be served without a miss."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in (("Dockerfile", b"FROM scratch\nCOPY blob marker /\n"),
                           ("blob", os.urandom(mib * 1024 * 1024)), ("marker", marker.encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    tag = f"jda-fanin:{marker}"
    client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True, forcerm=True)
    return tag


def in_cluster_upstream(cluster: Cluster, client: docker.DockerClient,
                        namespace: str = "registry") -> tuple[Callable[[str, str], None], Callable[[], str]]:
    """(push, upstream_log) for run_rounds, with the in-cluster registry Deployment (jdagent.cluster.local
    .addons.seeded_registry) as the mirror's upstream: push builds round_image(marker) and pushes it to
    `repository` through a port-forward; upstream_log is that registry's whole log."""
    from jdagent.cluster.portforward import port_forward
    from jdagent.engine import registry

    def push(repository: str, marker: str) -> None:
        image = round_image(client, marker)
        try:
            with port_forward(cluster, namespace, f"svc/{namespace}", 5000) as port:
                registry.push_to_loopback(client, image, port, repository, "1")
        finally:
            client.images.remove(image, force=True)

    def upstream_log() -> str:
        return cluster.kubectl("-n", namespace, "logs", f"deployment/{namespace}", "--tail=-1").stdout

    return push, upstream_log


@dataclass
class Rerun:
    """What pulling already-fetched blobs again cost the upstream: the first round's image in a new agent
    (warm), and the same image under a repository the mirror has never seen (other_repository)."""
    warm: dict[str, int]
    other_repository: dict[str, int]
    other_repository_manifests: int


def run_rounds(cluster: Cluster, pod: dict, namespace: str, counts: tuple[int, ...],
               push: Callable[[str, str], None], upstream_log: Callable[[], str]) -> tuple[list[Round], Rerun]:
    """One round per count, each on a repository the mirror has never seen, holding an image of its own
    (`push(repository, marker)` puts round_image(marker) there in the upstream), then a new agent pulling
    the first round's image again, and the same image from a second repository."""
    from jdagent.cluster.local.config import Layout

    layout = Layout(cluster.name)
    done: list[Round] = []
    first: tuple[str, str, dict[str, int]] | None = None
    for count in counts:
        marker = uuid.uuid4().hex[:6]
        repository = f"library/fanin{count}-{marker}"
        push(repository, marker)
        log(f"fan-in: {count} agent pod(s) at once, pulling {repository}:1 through the mirror")
        names = start_agents(cluster, pod, namespace, count, f"n{count}")
        startups = wait_ready(cluster, namespace, names)
        time.sleep(5)
        memory = [m for s in startups if (m := idle_memory_mib(layout.cgroup_root, s.uid)) is not None]
        pulls = pull_everywhere(cluster, namespace, names, f"{repository.split('/', 1)[1]}:1")
        blobs, manifests = upstream_fetches(upstream_log(), repository)
        done.append(Round(count, startups, pulls, blobs, manifests, memory))
        cluster.kubectl("-n", namespace, "delete", "pod", *names, "--wait=true", "--timeout=180s", timeout=240)
        first = first or (repository, marker, blobs)
    assert first is not None
    repository, marker, before = first
    other = f"library/fanin-again-{marker}"
    push(other, marker)
    names = start_agents(cluster, pod, namespace, 1, "warm")
    wait_ready(cluster, namespace, names)
    pull_everywhere(cluster, namespace, names, f"{repository.split('/', 1)[1]}:1")
    after, _ = upstream_fetches(upstream_log(), repository)
    pull_everywhere(cluster, namespace, names, f"{other.split('/', 1)[1]}:1")
    again, again_manifests = upstream_fetches(upstream_log(), other)
    cluster.kubectl("-n", namespace, "delete", "pod", *names, "--wait=false")
    return done, Rerun({d: after.get(d, 0) - before.get(d, 0) for d in before}, {d: again.get(d, 0) for d in before},
                       again_manifests)
